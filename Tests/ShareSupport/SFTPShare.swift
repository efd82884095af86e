import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A real network file system for tests: a private OpenSSH server on a loopback port (its own host
/// key, one authorized key, the internal SFTP server) exporting a temporary folder, mounted twice with
/// sshfs (FUSE) as two clients would: each mount has its own attribute and directory caches. Needs
/// root, /usr/sbin/sshd and /usr/bin/sshfs (Debian's openssh-server and sshfs, which `.ci/run` installs).
public final class SFTPShare {
    public let base: String
    public var export: String { base + "/export" }
    public let mounts: [String]
    let server: Process

    public static var available: Bool {
        getuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/sbin/sshd") && FileManager.default.isExecutableFile(atPath: "/usr/bin/sshfs")
            && FileManager.default.fileExists(atPath: "/dev/fuse")
    }
    public static let unavailable = "needs root, /dev/fuse, sshd and sshfs (apt-get install openssh-server sshfs; .ci/run installs them)"

    /// Runs a tool and waits for it, with posix_spawn and waitpid (Foundation's Process was seen to
    /// leave sshfs, which forks its daemon, unreaped and wait forever; and, once a share is mounted,
    /// to leave its other children unreaped too).
    public static func tool(_ path: String, _ arguments: [String]) throws -> Int32 {
        wait(try spawn(path, arguments))
    }

    /// Starts `path` with `arguments` and `environment` added to this process's, its output to the
    /// files named (or /dev/null); returns its pid, for `wait`.
    public static func spawn(_ path: String, _ arguments: [String], environment: [String: String] = [:], stdout: String? = nil,
                             stderr: String? = nil) throws -> Int32 {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, stdout ?? "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_addopen(&actions, 2, stderr ?? "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        let argv = ([path] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        let merged = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let envp = merged.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { envp.forEach { free($0) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, path, &actions, nil, argv, envp)
        guard spawned == 0 else { throw Failure(description: "cannot run \(path): \(String(cString: strerror(spawned)))") }
        return pid
    }

    /// Waits for `pid`; its exit status, or -1 when a signal ended it.
    public static func wait(_ pid: Int32) -> Int32 {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
        return (status & 0x7f) == 0 ? (status >> 8) & 0xff : -1
    }

    /// A loopback port nobody listens on (the kernel picks it), so that shares of tests running in
    /// parallel do not collide.
    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "socket: \(String(cString: strerror(errno)))") }
        defer { Glibc.close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard bound else { throw Failure(description: "bind: \(String(cString: strerror(errno)))") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    public struct Failure: Error, CustomStringConvertible { public var description: String }

    public init(clients: Int = 2) throws {
        base = FileManager.default.temporaryDirectory.appendingPathComponent("dropline-sftp-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: base + "/export", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: "/run/sshd", withIntermediateDirectories: true)
        for key in ["host_key", "client_key"] {
            guard try Self.tool("/usr/bin/ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", base + "/" + key]) == 0 else { throw Failure(description: "ssh-keygen failed") }
        }
        try FileManager.default.copyItem(atPath: base + "/client_key.pub", toPath: base + "/authorized_keys")
        let port = try Self.freePort()
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
    public func close() {
        for mount in mounts { _ = try? Self.tool("/bin/umount", ["-l", mount]) }
        server.terminate()
        server.waitUntilExit()
        try? FileManager.default.removeItem(atPath: base)
    }
}
