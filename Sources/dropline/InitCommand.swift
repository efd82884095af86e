import ArgumentParser
import DroplineSupport
import Foundation
import Hashing
import Rules
import Store
import SystemFiles

struct InitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Create a Dropline root: the drop inbox, the output tree and the index.",
        discussion: """
        Creates <root>/inbox/{training,production,labels}, <root>/outputs/{models,runs}, \
        <root>/flags/{drift,retrain,quality,done}, <root>/logs, <root>/index.sqlite and <root>/rules.yaml (a copy of \
        the shipped rules/default.yaml, kept if it exists). Safe to run on an \
        existing root: only what is missing is created, and the index is migrated to this version's schema. \
        The root's id goes into <root>/.dropline-root.json and the index; a root whose index is missing is refused \
        (restore it from a backup) unless --new-index, which starts an empty one. \
        The layout is documented in inbox-layout/README.md and docs/store.md. \
        A root on a network share (NFS, SMB, sshfs or another FUSE file system) keeps its index on this machine's \
        local disk instead, in --state-dir (default $DROPLINE_STATE_DIR, /var/lib/dropline for root, else \
        ~/.local/state/dropline), recorded in <root>/.dropline-index.json; other machines read the snapshot this \
        machine publishes in <root>/outputs/.index/ (docs/nas.md). \
        With --backbone <model.json>, the TensorFlow.js backbone (model.json and its weight shards) is copied \
        into <root>/backbones/<name>/ and <root>/dropline.yaml trains on it (training.arch), so that a root on a \
        share is self-contained and its models verifiable from the backbone's hashes (docs/configuration.md).
        """
    )

    @Argument(help: "The root folder (created if missing).")
    var root: String

    @Flag(help: "Start an empty index for a root whose index.sqlite is missing (the record of runs, models and jobs is lost; the folders stay).")
    var newIndex = false

    @Option(help: "Keep the index in this local folder (under <root id>/) and record it in the root; the default for a root on a network share.")
    var stateDir: String?

    @Flag(help: "Move the index of a root on a network share out of the root, to this machine's state directory (stop every Dropline process on the root first).")
    var moveIndex = false

    @Flag(help: "Make this machine the index's, from the root's latest snapshot, when the machine that held it is gone for good.")
    var adoptIndex = false

    @Option(help: ArgumentHelp("Make the index a PostgreSQL database, postgresql://USER@HOST:PORT/DATABASE[?sslmode=require], which several daemons on several machines may share (docs/scale-out.md). The password comes from PGPASSWORD or --password-file, never the URL.", valueName: "url"))
    var index: String?

    @Option(help: "A file (mode 600, yours, not a link) whose first line is the PostgreSQL password; its path is recorded in the root, never the password.")
    var passwordFile: String?

    @Option(help: "A TensorFlow.js backbone's model.json: copied into <root>/backbones/ with its weight shards, and made the root's training recipe in dropline.yaml.")
    var backbone: String?

    func run() throws {
        let existing = try? DroplineRoot(existing: root)
        let existed = try existing.map { r in try r.indexLocation() }.map { location in
            if case .here(let path) = location { return FileManager.default.fileExists(atPath: path) } else { return true }
        } ?? false
        if passwordFile != nil && index == nil { throw ValidationError("--password-file goes with --index postgresql://...") }
        let postgresql = try index.map { url in
            do { return try PostgresLocation(url: url, passwordFile: passwordFile.map { $0.hasPrefix("/") ? $0 : FileManager.default.currentDirectoryPath + "/" + $0 }) } catch {
                throw ValidationError("--index: \(error)")
            }
        }
        let created = try DroplineRoot.create(at: root, newIndex: newIndex, stateDirectory: stateDir, moveIndex: moveIndex, adoptIndex: adoptIndex,
                                              postgresql: postgresql)
        let opened = try Index.open(root: created)
        defer { RootIndex.publish(opened, created) }
        let rules = created.path + "/rules.yaml"
        var rulesNote = "kept (existing)"
        if !FileManager.default.fileExists(atPath: rules) {
            try AtomicFile.write(Array(DefaultRules.yaml.utf8), to: rules)
            rulesNote = "the default rules (rules/default.yaml)"
        }
        try opened.event(kind: existed ? "root_opened" : "root_created", subject: created.path, detail: nil)
        print("\(existed ? "checked" : "created") Dropline root \(created.path)")
        print("  drop training data in   \(created.relative(created.trainingInbox))/<stage>/{train,validation}/<class>/")
        print("  drop production batches \(created.relative(created.productionInbox))/<batch>/")
        print("  drop labels             \(created.relative(created.labelsInbox))/<batch>.csv")
        let where_: String
        if case .postgresql(let location) = try created.indexLocation() { where_ = "\(location), shared by every daemon of the root" } else {
            where_ = created.relative(try created.openableIndex())
        }
        print("  index                   \(where_) (schema \(try opened.appliedMigrations().joined(separator: ", ")))")
        print("  rules                   rules.yaml: \(rulesNote)")
        let config = created.path + "/" + RootConfiguration.fileName
        if let backbone {
            let copied = try Backbones.copy(backbone, into: created.path)
            try Backbones.setTrainingArch("backbone:" + copied, in: config)
            _ = try RootConfiguration.load(root: created.path)  // what was written must read back
            print("  backbone                \(copied) (in dropline.yaml's training.arch)")
        } else if FileSystem.entryType(config) == nil {
            try AtomicFile.write(Array(Backbones.template.utf8), to: config)
            print("  configuration           \(RootConfiguration.fileName): every key commented out, the defaults (`dropline config \(root)`)")
        }
    }
}

/// A root's own copy of a backbone, and the configuration that trains on it.
enum Backbones {
    /// The configuration file `init` writes: the format, every key commented out.
    static let template = """
    # The root's configuration (docs/configuration.md); `dropline config <root>` shows what is in force.
    version: 1
    # training:                      # over the champion's recipe, and the recipe when there is none
    #   arch: backbone:backbones/mobilenet_v2_0.35_224_tfjs/model.json   # or scratch, small-cnn
    #   image_size: 224
    #   epochs: 60
    # watch:                         # what `dropline watch` does without flags
    #   marker: _READY
    #   settle_seconds: 60
    #   jobs: 1
    # thresholds:
    #   drift_p_value: 0.05          # corrected KS p-value below which a feature drifts
    #   drift_minimum_statistic: 0.1 # the KS statistic a drifted feature must also reach
    #   promotion_margin: 0.01       # promoted when validation accuracy >= champion's - margin
    #   quality_tolerance: 0.05      # quality flag when accuracy < validation accuracy - tolerance
    # data_quality:                  # limits of the data-quality check (docs/monitoring.md#data-quality)
    #   out_of_range_share: 0.05     # a property breaks when more of a batch is outside its training range
    #   category_tolerance: 0.1      # a format/colour model/channels value may exceed its training share by this
    #   duplicate_tolerance: 0.05    # duplicates may exceed the training rate by this share of the batch
    #   refusal_tolerance: 0.05      # refused files may exceed the training rate by this share of the files
    #   significance: 0.01           # ...and only beyond chance: binomial probability below this
    # slurm:                         # `dropline watch --executor slurm` (docs/scale-out.md)
    #   partition: cpu               # serve runs' shard arrays and merges (default: the cluster's default)
    #   training_partition: gpu      # trainings (default: partition)
    #   training_gres: gpu:1         # --gres of trainings
    #   shard_images: 500            # images per shard task
    #   resubmissions: 2             # lost shards are submitted again at most this often

    """

    /// Copies `model.json` and the weight shards its manifest names (regular files only, never
    /// through a link) into `<root>/backbones/<folder name>/`; returns the copy's path relative to
    /// the root. An existing copy with the same bytes is kept; a different one is refused.
    static func copy(_ modelJson: String, into root: String) throws -> String {
        let source = (modelJson as NSString).deletingLastPathComponent
        let name = (source as NSString).lastPathComponent
        guard SafeName.problem(name, what: "backbone folder") == nil else {
            throw ValidationError("the backbone's folder name '\(DisplayText.escaped(name))' cannot name a folder of the root: \(SafeName.remedy)")
        }
        let json = try AtomicFile.read(modelJson, limit: 64 << 20)
        guard let manifest = try? JSONSerialization.jsonObject(with: Data(json)) as? [String: Any],
              let groups = manifest["weightsManifest"] as? [[String: Any]] else {
            throw ValidationError("'\(modelJson)' is not a TensorFlow.js model.json (no weightsManifest)")
        }
        let shards = groups.flatMap { ($0["paths"] as? [String]) ?? [] }
        for shard in shards where SafeName.problem(shard, what: "weight shard") != nil || shard.contains("/") {
            throw ValidationError("'\(modelJson)' names the weight shard '\(DisplayText.escaped(shard))', which is not a file beside it")
        }
        let destination = root + "/backbones/" + name
        try FileManager.default.createDirectory(atPath: destination, withIntermediateDirectories: true)
        for file in ["model.json"] + shards {
            let bytes = file == "model.json" ? json : try AtomicFile.read(source + "/" + file, limit: 1 << 30, links: .refuse)
            let target = destination + "/" + file
            if FileSystem.entryType(target) != nil {
                guard (try? AtomicFile.read(target, limit: 1 << 30, links: .refuse)) == bytes else {
                    throw ValidationError("\(target) exists with other bytes; remove it, or give the backbone another folder name")
                }
                continue
            }
            try AtomicFile.write(bytes, to: target)
        }
        return "backbones/" + name + "/model.json"
    }

    /// Sets `training.arch` in the configuration file (written whole from the template when absent).
    static func setTrainingArch(_ arch: String, in file: String) throws {
        var text = FileSystem.entryType(file) == nil ? template : String(decoding: try AtomicFile.read(file, limit: 64 << 10), as: UTF8.self)
        let line = "  arch: \(arch)"
        if text.contains("\ntraining:\n") {
            guard !text.contains("\n  arch:") else { throw ValidationError("\(file) already sets training.arch; edit it there") }
            text = text.replacingOccurrences(of: "\ntraining:\n", with: "\ntraining:\n\(line)\n")
        } else {
            text += "training:\n\(line)\n"
        }
        try AtomicFile.write(Array(text.utf8), to: file)
    }
}
