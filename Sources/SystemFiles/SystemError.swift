#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A failed system call: which call, on which file, and errno's own words.
public struct SystemError: Error, CustomStringConvertible, Sendable {
    public let call: String
    public let path: String?
    public let errno: Int32

    public init(call: String, path: String?, errno: Int32) {
        self.call = call
        self.path = path
        self.errno = errno
    }

    public var reason: String { String(cString: strerror(errno)) }

    public var description: String {
        if let path { return "\(call) '\(path)': \(reason)" }
        return "\(call): \(reason)"
    }
}

/// System calls as Dropline uses them: EINTR retried, failures thrown with errno and the path.
public enum Syscall {
    /// Runs `body` until it returns something other than -1 with EINTR; throws on any other failure.
    @discardableResult
    public static func retrying<T: SignedInteger>(_ call: String, path: String? = nil, _ body: () -> T) throws -> T {
        while true {
            let result = body()
            if result != -1 { return result }
            let code = Glibc.errno
            if code == EINTR { continue }
            throw SystemError(call: call, path: path, errno: code)
        }
    }
}
