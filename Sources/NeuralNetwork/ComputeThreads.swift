#if canImport(Glibc)
import Glibc
#endif

/// How many threads oneDNN uses for the primitives the calling thread creates and runs.
///
/// Debian's oneDNN runs on OpenMP (libgomp), where the thread count is a per-thread setting (the
/// `nthreads-var` ICV): `omp_set_num_threads` on one thread leaves every other thread, and
/// `OMP_NUM_THREADS`, as they were. Work made of independent items that are each too small to keep
/// two cores busy (one image's integrated-gradients passes at batch 2: every layer ends in a barrier,
/// and small layers leave one thread waiting) runs faster as one item per thread, each thread limited
/// to one oneDNN thread. oneDNN sizes a primitive's work split when the primitive is created, so the
/// limit must be set before the thread creates its executors.
///
/// The function is looked up at run time rather than linked, so that a oneDNN built on another
/// threading runtime still loads; there `limitCallingThread` does nothing and says so.
public enum ComputeThreads {
    private typealias SetThreads = @convention(c) (Int32) -> Void
    private typealias GetThreads = @convention(c) () -> Int32

    nonisolated(unsafe) private static let setter: SetThreads? = symbol("omp_set_num_threads")
    nonisolated(unsafe) private static let getter: GetThreads? = symbol("omp_get_max_threads")

    private static func symbol<T>(_ name: String) -> T? {
        guard let address = dlsym(UnsafeMutableRawPointer(bitPattern: 0), name) else { return nil }
        return unsafeBitCast(address, to: T.self)
    }

    /// Limits oneDNN to `n` threads for work started on the calling thread. Returns false when the
    /// threading runtime offers no such setting.
    @discardableResult
    public static func limitCallingThread(to n: Int) -> Bool {
        guard let setter else { return false }
        setter(Int32(max(1, n)))
        return true
    }

    /// The number of threads oneDNN would use for work started on the calling thread (nil: unknown).
    public static var forCallingThread: Int? { getter.map { Int($0()) } }
}
