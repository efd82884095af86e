import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// oneDNN runs its parallel loops on OpenMP (libgomp), whose threads spin between loops by default.
/// Beside other busy processes a spinning thread takes the CPU a descheduled peer needs to reach the
/// next barrier: `dropline infer` on 400 photos (small CNN) took 2.3-4.8 s beside two busy loops on 2
/// cores with spinning waits, 1.7-1.9 s with passive ones (quiet: 0.8-1.1 s either way, within the
/// noise). Training beside the same loops was 22-34 s passive and 23-26 s spinning (7.3 s quiet):
/// no clear difference. libgomp reads `OMP_WAIT_POLICY` once, when it is loaded, before `main`; so when
/// the user has not chosen a policy (`OMP_WAIT_POLICY=active` restores spinning), the process sets it
/// and executes itself again.
enum ThreadPolicy {
    static func preferPassiveWaits() {
        guard getenv("OMP_WAIT_POLICY") == nil else { return }
        setenv("OMP_WAIT_POLICY", "PASSIVE", 1)
        setenv("DROPLINE_SET_OMP_WAIT_POLICY", "1", 1)  // so that programs the rules run do not inherit it
        let arguments = CommandLine.arguments.map { strdup($0) } + [nil]
        execv("/proc/self/exe", arguments)
        // exec failed (no /proc): carry on with the default policy
        arguments.forEach { free($0) }
    }
}
