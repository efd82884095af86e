import DroplineSupport
import Foundation
import JSONFiles
import Monitoring
import Prometheus
import Store

/// The metrics file (`outputs/metrics/dropline.prom`) in the Prometheus text exposition format, for
/// node_exporter's textfile collector (point `--collector.textfile.directory` at `outputs/metrics/`).
///
/// The values are read from the index, not counted in this process: a root is served by a daemon
/// that restarts, by hand-run commands beside it, and by a standby that takes over, and the index
/// is the one place that has all of them. That is why the swift-metrics facade (process-local
/// counters that start at zero in every process) does not fit; swift-prometheus's registry, its
/// Prometheus backend, is used directly to write the exposition format from the index's totals.
struct MetricsFile {
    let reports: Reports

    func render() throws -> String {
        let index = reports.index
        let registry = PrometheusCollectorRegistry()
        // every name is dropline_<name>; the unit is part of the name already (_total, _seconds)
        func descriptor(_ name: String, _ help: String) -> MetricNameDescriptor {
            MetricNameDescriptor(namespace: "dropline", metricName: name, unitName: "", helpText: help)
        }
        func makeCounter(_ name: String, labels: [(String, String)] = [], help: String) -> Counter {
            registry.makeCounter(descriptor: descriptor(name, help), labels: labels)
        }
        func makeGauge(_ name: String, labels: [(String, String)] = [], help: String) -> Gauge {
            registry.makeGauge(descriptor: descriptor(name, help), labels: labels)
        }
        let totals = try index.totals()
        for r in totals.runs {
            makeCounter("runs_total", labels: [("kind", r.kind), ("outcome", r.status)],
                                 help: "Pipeline runs by kind (train, serve) and outcome (succeeded, failed, running).").increment(by: Int64(r.count))
            makeCounter("run_seconds_total", labels: [("kind", r.kind), ("outcome", r.status)],
                                 help: "Seconds spent in finished pipeline runs, by kind and outcome.").increment(by: r.seconds)
        }
        let served = totals.runs.filter { $0.kind == "serve" && $0.status == "succeeded" }.map(\.count).reduce(0, +)
        makeCounter("batches_served_total", help: "Batches served (serve runs that succeeded).").increment(by: Int64(served))
        makeCounter("images_served_total", help: "Images classified in served batches.").increment(by: Int64(totals.imagesServed))
        for outcome in ["not_regular", "junk", "empty", "truncated", "corrupt", "unsupported", "too_large", "unreadable"] {
            makeCounter("images_refused_total", labels: [("reason", outcome)],
                                 help: "Files of served batches that were refused, by reason.").increment(by: Int64(totals.refusals[outcome] ?? 0))
        }
        for drift in [true, false] {
            makeCounter("drift_decisions_total", labels: [("decision", drift ? "drift" : "no_drift")],
                                 help: "Drift decisions of served batches.").increment(by: Int64(totals.driftDecisions[drift] ?? 0))
        }
        if let last = try index.batchTimeline(limit: 1).last {
            makeGauge("last_batch_drift", help: "1 when the newest served batch found drift.").set(Double(last.drift ? 1 : 0))
            if let p = last.minimumAdjustedPValue {
                makeGauge("last_batch_min_adjusted_p_value", help: "Smallest corrected KS p-value of the newest served batch.").set(p)
            }
            if let d = last.maximumStatistic {
                makeGauge("last_batch_max_ks_statistic", help: "Largest KS statistic of the newest served batch.").set(d)
            }
            makeGauge("last_batch_images", help: "Usable images of the newest served batch.").set(Double(last.batchSize))
            if let e = last.estimatedAccuracy, let drop = last.estimatedAccuracyDrop {
                makeGauge("last_batch_estimated_accuracy", help: "The newest batch's accuracy estimated from calibrated confidences.").set(e)
                makeGauge("last_batch_estimated_accuracy_drop", help: "The model's held-out accuracy minus that estimate.").set(drop)
            }
            if let at = seconds(last.finishedAt) {
                makeGauge("last_batch_timestamp_seconds", help: "When the newest batch was served.").set(at)
            }
        }
        if let a = try index.accuracyTimeline(limit: 1).last {
            makeGauge("accuracy", help: "Accuracy of the newest batch with merged ground truth.").set(a.accuracy)
            makeGauge("accuracy_constraint", help: "The serving model's accuracy constraint for that batch.").set(a.constraintAccuracy)
            makeGauge("accuracy_below_constraint", help: "1 when that accuracy is below its constraint.").set(Double(a.belowConstraint ? 1 : 0))
        }
        for state in ["queued", "running", "succeeded", "failed", "skipped"] {
            let n = Double(totals.jobs[state] ?? 0)
            if state == "queued" || state == "running" {
                makeGauge("queue_jobs", labels: [("state", state)], help: "Daemon jobs waiting or running now.").set(n)
            } else {
                makeCounter("jobs_total", labels: [("outcome", state)], help: "Daemon jobs ended, by outcome.").increment(by: Int64(n))
            }
        }
        for kind in ["drift", "retrain", "quality"] {
            makeCounter("flags_total", labels: [("kind", kind)], help: "Flags raised or dropped, by kind.").increment(by: Int64(totals.flags[kind] ?? 0))
        }
        makeGauge("flags_unhandled", help: "Flags not yet handled.").set(Double(totals.unhandledFlags))
        if let champion = try index.champion() {
            makeGauge("champion_version", help: "The serving model version.").set(Double(champion.version))
            makeGauge("champion_validation_accuracy", help: "The serving model's validation accuracy.").set(champion.validationAccuracy)
        }
        let lease = DaemonLease.read(reports.root)
        let alive = lease.map { Owners.liveness($0).isAlive } ?? false
        makeGauge("daemon_up", help: "1 when a daemon holds the root's lease and is alive.").set(Double(alive ? 1 : 0))
        if let lease, let at = seconds(lease.heartbeatAt) {
            makeGauge("daemon_heartbeat_timestamp_seconds", help: "The daemon's last lease renewal.").set(at)
            makeGauge("daemon_degraded", help: "1 when the daemon says it is degraded (locked index, full disk).").set(Double(lease.state == "degraded" ? 1 : 0))
        }
        makeGauge("metrics_generated_timestamp_seconds", help: "When this file was written.").set(Date().timeIntervalSince1970)
        return registry.emitToString()
    }
}
