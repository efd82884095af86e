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
/// A training whose network is a pretrained backbone is the other exception, found once its recipe is
/// known: its time goes into inference (the features through the frozen base, the shifted sets of the
/// accuracy map, the explanations), which passive waits slow down quiet. MobileNetV2 on imagenette-mini
/// (1,500 + 300 photos), quiet: 70.5 s passive, 37.9 s with 1,000 rounds (algorithm 38.0 / 15.6 s,
/// monitoring 21.0 / 9.7 s, explanations 15.4 / 9.8 s); so such a training runs again with 1,000 rounds
/// (`settle`), as the daemon's retrainings always do.
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
        let threads = getenv("DROPLINE_THREADS").map { String(cString: $0) }
        if let problem = CPUBudget.override(threads, online: CPUBudget.online).problem {
            FileHandle.standardError.write(Data("note: \(problem)\n".utf8))
        }
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
        execute(undoing: set)
    }

    /// For a training that turns out to be inference-bound (a backbone's), before it opens anything:
    /// when this process chose passive waits itself, it executes itself again spinning 1,000 rounds.
    /// `inferenceBound` is asked only then (finding the recipe opens the index).
    static func settle(inferenceBound: () throws -> Bool) rethrows {
        guard let value = getenv(marker) else { return }
        var set = String(cString: value).split(separator: ",").map(String.init)
        guard let i = set.firstIndex(of: "OMP_WAIT_POLICY"), try inferenceBound() else { return }
        unsetenv("OMP_WAIT_POLICY")
        setenv("GOMP_SPINCOUNT", "1000", 1)
        set[i] = "GOMP_SPINCOUNT"
        setenv(marker, set.joined(separator: ","), 1)
        execute(undoing: [])
        // exec failed: carry on waiting passively
        unsetenv("GOMP_SPINCOUNT")
        setenv("OMP_WAIT_POLICY", "PASSIVE", 1)
        set[i] = "OMP_WAIT_POLICY"
        setenv(marker, set.joined(separator: ","), 1)
    }

    private static func execute(undoing set: [String]) {
        let arguments = CommandLine.arguments.map { strdup($0) } + [nil]
        execv("/proc/self/exe", arguments)
        // exec failed (no /proc): carry on with the defaults
        arguments.forEach { free($0) }
        guard !set.isEmpty else { return }
        for name in set { unsetenv(name) }
        unsetenv(marker)
    }
}
