import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A real network file system for tests: a private OpenSSH server on a loopback port (its own host
/// key, one authorized key, the internal SFTP server) exporting a temporary folder, mounted twice with
/// sshfs (FUSE) as two clients would: each mount has its own attribute and directory caches. Needs
/// root, /usr/sbin/sshd and /usr/bin/sshfs (Debian's openssh-server and sshfs, which `.ci/run` installs).
final class SFTPShare {
    let base: String
    var export: String { base + "/export" }
    let mounts: [String]
    let server: Process

    static var available: Bool {
        getuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/sbin/sshd") && FileManager.default.isExecutableFile(atPath: "/usr/bin/sshfs")
            && FileManager.default.fileExists(atPath: "/dev/fuse")
    }
    static let unavailable = "needs root, /dev/fuse, sshd and sshfs (apt-get install openssh-server sshfs; .ci/run installs them)"

    /// Runs a tool and waits for it, with posix_spawn and waitpid (Foundation's Process was seen to
    /// leave sshfs, which forks its daemon, unreaped and wait forever).
    static func tool(_ path: String, _ arguments: [String]) throws -> Int32 {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        let argv = ([path] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, path, &actions, nil, argv, environ)
        guard spawned == 0 else { throw Failure(description: "cannot run \(path): \(String(cString: strerror(spawned)))") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
        return (status & 0x7f) == 0 ? (status >> 8) & 0xff : -1
    }

    struct Failure: Error, CustomStringConvertible { var description: String }

    init(clients: Int = 2) throws {
        base = FileManager.default.temporaryDirectory.appendingPathComponent("dropline-sftp-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: base + "/export", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: "/run/sshd", withIntermediateDirectories: true)
        for key in ["host_key", "client_key"] {
            guard try Self.tool("/usr/bin/ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", base + "/" + key]) == 0 else { throw Failure(description: "ssh-keygen failed") }
        }
        try FileManager.default.copyItem(atPath: base + "/client_key.pub", toPath: base + "/authorized_keys")
        let port = 20000 + Int(getpid() % 20000)
        try """
        Port \(port)
        ListenAddress 127.0.0.1
        HostKey \(base)/host_key
        AuthorizedKeysFile \(base)/authorized_keys
        PermitRootLogin prohibit-password
        PasswordAuthentication no
        KbdInteractiveAuthentication no
        UsePAM no
        StrictModes no
        PidFile \(base)/sshd.pid
        Subsystem sftp internal-sftp

        """.write(toFile: base + "/sshd_config", atomically: true, encoding: .utf8)
        server = Process()
        server.executableURL = URL(fileURLWithPath: "/usr/sbin/sshd")
        server.arguments = ["-D", "-e", "-f", base + "/sshd_config"]
        server.standardError = FileHandle.nullDevice
        try server.run()
        var mounted: [String] = []
        for client in 0..<clients {
            let mount = base + "/client-\(client)"
            try FileManager.default.createDirectory(atPath: mount, withIntermediateDirectories: true)
            let options = "IdentityFile=\(base)/client_key,StrictHostKeyChecking=no,UserKnownHostsFile=/dev/null,BatchMode=yes,port=\(port)"
            var status: Int32 = -1
            for _ in 0..<50 {  // the server may still be starting
                status = try Self.tool("/usr/bin/sshfs", ["-o", options, "root@127.0.0.1:\(base)/export", mount])
                if status == 0 { break }
                usleep(100_000)
            }
            guard status == 0 else {
                server.terminate()
                throw Failure(description: "sshfs could not mount the loopback share (status \(status))")
            }
            mounted.append(mount)
        }
        mounts = mounted
    }

    /// Unmounts both clients, stops the server, removes everything.
    func close() {
        for mount in mounts { _ = try? Self.tool("/bin/umount", ["-l", mount]) }
        server.terminate()
        server.waitUntilExit()
        try? FileManager.default.removeItem(atPath: base)
    }
}
