import Foundation
import SystemFiles
#if canImport(Glibc)
import Glibc
#endif

/// oneDNN runs its parallel loops on OpenMP (libgomp), whose pool is as wide as the affinity mask,
/// whatever the cgroup's CPU quota, and whose idle threads spin for a while before they sleep
/// (`GOMP_SPINCOUNT`, 300,000 by default). Between the many small layers of a network like MobileNetV2
/// the spinning pays (no futex wake-up per layer); beside other busy processes a spinning thread takes
/// the CPU a descheduled peer needs to reach the next barrier. `dropline infer` on 400 photos with the
/// MobileNetV2 model, quiet / beside two busy loops on 2 cores: passive waits 18.2 / 25.8 s, spinning
/// forever (`active`) 11.6 / 75.6 s, libgomp's default 61.8 s loaded, `GOMP_SPINCOUNT=10000` 12.7 / 44.9 s,
/// `GOMP_SPINCOUNT=1000` 11.6 / 27.5 s (2.4x), 3000 10.3 / 29.1 s. So the process spins 1,000 rounds
/// (libgomp's own value when it has more threads than CPUs) and uses `CPUBudget.available` threads.
/// Training is the exception: its epochs beside two busy loops (small CNN at 64 px on imagenette-mini,
/// 2.6 s each quiet) took 7.7, 14.3, 14.5, 14.4, 8.1 s with 1,000 rounds, 7.4-14.3 s with 100, and a
/// steady 7.3-7.5 s with passive waits, which cost training nothing quiet; so `train` and `model train`
/// wait passively (`OMP_WAIT_POLICY=PASSIVE`).
/// libgomp reads its environment once, when it is loaded, before `main`: for each setting the user has
/// not made (`OMP_WAIT_POLICY` or `GOMP_SPINCOUNT` for the waiting, `OMP_NUM_THREADS`), the process sets
/// it and executes itself again. The names it set are listed in `DROPLINE_SET_ENVIRONMENT`, so that
/// programs the rules run do not inherit them.
enum ThreadPolicy {
    static let marker = "DROPLINE_SET_ENVIRONMENT"

    /// Whether the command is a training (`train`, `model train`), given its words without options.
    static func trains(_ words: [String]) -> Bool {
        words.first == "train" || (words.first == "model" && words.dropFirst().first == "train")
    }

    static func apply() {
        guard getenv(marker) == nil else { return }  // already set, by this process before it ran again
        var set: [String] = []
        if getenv("OMP_WAIT_POLICY") == nil && getenv("GOMP_SPINCOUNT") == nil {
            if trains(CommandLine.arguments.dropFirst().filter { !$0.hasPrefix("-") }) {
                setenv("OMP_WAIT_POLICY", "PASSIVE", 1)
                set.append("OMP_WAIT_POLICY")
            } else {
                setenv("GOMP_SPINCOUNT", "1000", 1)
                set.append("GOMP_SPINCOUNT")
            }
        }
        if getenv("OMP_NUM_THREADS") == nil {
            setenv("OMP_NUM_THREADS", "\(CPUBudget.available)", 1)
            set.append("OMP_NUM_THREADS")
        }
        guard !set.isEmpty else { return }
        setenv(marker, set.joined(separator: ","), 1)
        let arguments = CommandLine.arguments.map { strdup($0) } + [nil]
        execv("/proc/self/exe", arguments)
        // exec failed (no /proc): carry on with the defaults
        arguments.forEach { free($0) }
        for name in set { unsetenv(name) }
        unsetenv(marker)
    }
}
