import ArgumentParser
import DroplineSupport
import Foundation
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
        machine publishes in <root>/outputs/.index/ (docs/nas.md).
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

    func run() throws {
        let existing = try? DroplineRoot(existing: root)
        let existed = try existing.map { r in try r.indexLocation() }.map { location in
            if case .here(let path) = location { return FileManager.default.fileExists(atPath: path) } else { return true }
        } ?? false
        let created = try DroplineRoot.create(at: root, newIndex: newIndex, stateDirectory: stateDir, moveIndex: moveIndex, adoptIndex: adoptIndex)
        let index = try Index.open(root: created)
        defer { RootIndex.publish(index, created) }
        let rules = created.path + "/rules.yaml"
        var rulesNote = "kept (existing)"
        if !FileManager.default.fileExists(atPath: rules) {
            try AtomicFile.write(Array(DefaultRules.yaml.utf8), to: rules)
            rulesNote = "the default rules (rules/default.yaml)"
        }
        try index.event(kind: existed ? "root_opened" : "root_created", subject: created.path, detail: nil)
        print("\(existed ? "checked" : "created") Dropline root \(created.path)")
        print("  drop training data in   \(created.relative(created.trainingInbox))/<stage>/{train,validation}/<class>/")
        print("  drop production batches \(created.relative(created.productionInbox))/<batch>/")
        print("  drop labels             \(created.relative(created.labelsInbox))/<batch>.csv")
        print("  index                   \(created.relative(try created.openableIndex())) (schema \(try index.appliedMigrations().joined(separator: ", ")))")
        print("  rules                   rules.yaml: \(rulesNote)")
    }
}
