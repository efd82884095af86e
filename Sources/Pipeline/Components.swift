import DroplineSupport
import Foundation
import Imaging
public import Modeling
import Randomness
import SystemFiles
import JSONFiles

/// # Pipeline
///
/// The four components of the cloud design, each a batch job with a train and a serve mode that reads
/// folders and writes its outputs and a `manifest.json` into its own output folder, so each can run
/// alone (`dropline component ...`) or chained (the two pipelines).

/// The components.
public enum ComponentName: String, Sendable, Codable, CaseIterable {
    case processing, algorithm, monitoring, explainability
}

public enum ComponentMode: String, Sendable, Codable, CaseIterable {
    case train, serve
}

/// What a component run did: written as `manifest.json` in its output folder.
public struct ComponentManifest: Codable, Sendable {
    public struct Input: Codable, Sendable {
        public var role: String
        public var path: String
        public var files: Int
        /// SHA-256 over the sorted "relative path, file hash" lines of its images.
        public var sha256: String
    }

    public var component: ComponentName
    public var mode: ComponentMode
    public var inputs: [Input]
    /// Output key (with the component's prefix, as the index stores it) -> path relative to the output folder.
    public var outputs: [String: String]
    public var parameters: [String: String]
    public var rejected: [Rejection]
    public var droplineVersion: String
    public var startedAt: String
    public var finishedAt: String
    public var outcome: String

    public static let fileName = "manifest.json"

    func write(to folder: String) throws {
        try SnakeCaseJSON.write(self, to: folder + "/" + Self.fileName)
    }

    public static func read(from folder: String) throws -> ComponentManifest {
        try SnakeCaseJSON.read(ComponentManifest.self, from: folder + "/" + fileName)
    }
}

public struct ComponentError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Shared bookkeeping for component runs.
enum ComponentRun {
    static func now() -> String {
        ISOTime.now()
    }

    /// Creates the output folder; an existing non-empty one is refused (outputs are never mixed).
    static func prepare(_ folder: String) throws {
        let fm = FileManager.default
        if fm.fileExists(atPath: folder), !((try? fm.contentsOfDirectory(atPath: folder))?.isEmpty ?? true) {
            throw ComponentError("output folder '\(folder)' is not empty; give a new or empty folder")
        }
        try fm.createDirectory(atPath: folder, withIntermediateDirectories: true)
    }

    static func requireFolder(_ path: String, _ what: String) throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw ComponentError("\(what) '\(path)' is not a folder")
        }
    }
}

/// Processing: decode and resize; in train mode also a seeded random rotation of every training image.
public struct ProcessingComponent {
    /// Square side of the processed images.
    public var imageSize: Int
    /// Training copies are rotated by a uniform angle within ±rotationDegrees (0: no rotated copies).
    public var rotationDegrees: Double = 15
    public var seed: UInt64 = 1
    public var progress: (@Sendable () -> Void)?

    public init(imageSize: Int) { self.imageSize = imageSize }

    /// Train mode: `stage` holds train/<class>/ and validation/<class>/. Writes train/<class>/<name>.png
    /// (and <name>.rotated.png), validation/<class>/<name>.png.
    public func train(stage: String, output: String) throws -> ComponentManifest {
        let started = ComponentRun.now()
        try ComponentRun.requireFolder(stage + "/train", "training data")
        try ComponentRun.requireFolder(stage + "/validation", "validation data")
        try ComponentRun.prepare(output)
        var inputs: [ComponentManifest.Input] = [], rejected: [Rejection] = []
        var generator = SeededGenerator(seed: seed)
        for split in ["train", "validation"] {
            let collection = ImageCollection(paths: [stage + "/" + split], side: imageSize)
            rejected += collection.rejected
            inputs.append(.init(role: split, path: stage + "/" + split, files: collection.items.count, sha256: collection.contentHash))
            for (item, image) in zip(collection.items, collection.images) {
                let target = output + "/" + split + "/" + Self.pngName(item.relativePath)
                try FileManager.default.createDirectory(atPath: (target as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
                try ImageEncoder.write(image, to: target, format: .png)
                if split == "train" && rotationDegrees > 0 {
                    let rotated = image.randomlyRotated(upTo: rotationDegrees, using: &generator)
                    try ImageEncoder.write(rotated, to: String(target.dropLast(4)) + ".rotated.png", format: .png)
                }
                progress?()
            }
        }
        let manifest = ComponentManifest(
            component: .processing, mode: .train, inputs: inputs,
            outputs: ["processing/train": "train", "processing/validation": "validation"],
            parameters: ["image_size": "\(imageSize)", "rotation_degrees": "\(rotationDegrees)", "seed": "\(seed)"],
            rejected: rejected, droplineVersion: DroplineVersion.current, startedAt: started, finishedAt: ComponentRun.now(), outcome: "succeeded")
        try manifest.write(to: output)
        return manifest
    }

    /// Serve mode: resizes a batch into images/ and writes files.csv (processed name, original path,
    /// SHA-256), so later components can name the original files.
    /// With `frozen`, exactly the files of the frozen batch, each checked against its hash (`BatchChanged`).
    public func serve(batch: String, output: String, frozen: FrozenBatch? = nil) throws -> ComponentManifest {
        let started = ComponentRun.now()
        try ComponentRun.requireFolder(batch, "batch")
        try ComponentRun.prepare(output)
        let collection = try ImageCollection.of(batch, frozen: frozen, side: imageSize)
        try FileManager.default.createDirectory(atPath: output + "/images", withIntermediateDirectories: true)
        var lines = ["processed,original,sha256"]
        for (n, item) in collection.items.enumerated() {
            lines.append([String(format: "%06d.png", n), item.path, item.sha256].map(CSV.field).joined(separator: ","))
        }
        // several files written at once: each atomic write is several round trips on a network mount
        let images = collection.images, folder = output + "/images", tick = progress
        try InFlight.forEach(images.count) { n in
            try ImageEncoder.write(images[n], to: folder + String(format: "/%06d.png", n), format: .png)
            tick?()
        }
        try AtomicFile.write(Array((lines.joined(separator: "\n") + "\n").utf8), to: output + "/files.csv")
        let manifest = ComponentManifest(
            component: .processing, mode: .serve,
            inputs: [.init(role: "batch", path: batch, files: collection.items.count, sha256: collection.contentHash)],
            outputs: ["processing/images": "images", "processing/files": "files.csv"],
            parameters: ["image_size": "\(imageSize)"], rejected: collection.rejected, droplineVersion: DroplineVersion.current,
            startedAt: started, finishedAt: ComponentRun.now(), outcome: "succeeded")
        try manifest.write(to: output)
        return manifest
    }

    static func pngName(_ relative: String) -> String {
        let stem = (relative as NSString).deletingPathExtension
        return stem + ".png"
    }
}

/// RFC 4180 fields: quoted when they hold a comma, a quote or a line break.
public enum CSV {
    public static func field(_ value: String) -> String {
        guard value.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return value }
        return "\"" + value.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    /// Parses RFC 4180 text into rows of fields.
    public static func parse(_ text: String) -> [[String]] {
        var rows: [[String]] = [], row: [String] = [], field = ""
        var quoted = false
        var iterator = text.makeIterator()
        var pending: Character? = nil
        while let c = pending ?? iterator.next() {
            pending = nil
            if quoted {
                if c == "\"" {
                    if let next = iterator.next() {
                        if next == "\"" { field.append("\"") } else { quoted = false; pending = next }
                    } else { quoted = false }
                } else { field.append(c) }
            } else if c == "\"" && field.isEmpty {
                quoted = true
            } else if c == "," {
                row.append(field); field = ""
            } else if c == "\n" || c == "\r\n" {
                row.append(field); field = ""
                rows.append(row); row = []
            } else if c != "\r" {
                field.append(c)
            }
        }
        if !field.isEmpty || !row.isEmpty { row.append(field); rows.append(row) }
        return rows
    }
}
