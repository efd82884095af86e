import DroplineSupport
import Foundation

/// One file as `dropline image info` reports it.
public struct ImageRecord: Sendable, Codable, Equatable {
    /// `ok`, `junk`, or an `ImagingError.Kind` raw value.
    public var outcome: String
    public var path: String
    public var format: String?
    public var width: Int?
    public var height: Int?
    /// Channels as stored in the file.
    public var channels: Int?
    public var bitDepth: Int?
    public var colorModel: String?
    /// EXIF orientation 1 to 8.
    public var orientation: Int?
    public var reason: String?
    public var remedy: String?
    public var warnings: [String]?

    enum CodingKeys: String, CodingKey {
        case path, outcome, format, width, height, channels
        case bitDepth = "bit_depth", colorModel = "color_model"
        case orientation, reason, remedy, warnings
    }
}

/// Classifies files: junk, a usable image (fully decoded to prove it), or a specific failure.
public enum ImageInspector {
    /// Expands folders (recursively, sorted) and inspects every file. `progress` is called per file.
    public static func inspect(paths: [String], options: DecodeOptions = DecodeOptions(),
                               progress: (@Sendable (Int, Int) -> Void)? = nil) -> [ImageRecord] {
        let files = expand(paths)
        var records = [ImageRecord?](repeating: nil, count: files.count)
        let lock = NSLock()
        nonisolated(unsafe) var done = 0
        records.withUnsafeMutableBufferPointer { buffer in
            nonisolated(unsafe) let out = buffer
            DispatchQueue.concurrentPerform(iterations: files.count) { i in
                let record = inspect(file: files[i].path, relative: files[i].relative, options: options)
                out[i] = record
                lock.lock()
                done += 1
                let count = done
                lock.unlock()
                progress?(count, files.count)
            }
        }
        return records.map { $0! }
    }

    /// Inspects one file. `relative` is its path below the folder given by the user (for junk rules).
    public static func inspect(file path: String, relative: String? = nil, options: DecodeOptions = DecodeOptions()) -> ImageRecord {
        var record = ImageRecord(outcome: "ok", path: path)
        if let junk = DropFolderJunk.reason(for: relative ?? (path as NSString).lastPathComponent) {
            record.outcome = "junk"
            record.reason = junk
            return record
        }
        var validation = options
        validation.minimumSize = Size(width: 1, height: 1)  // decode at 1/8 scale: proves the data, fast
        validation.applyOrientation = false
        do {
            let decoded = try ImageDecoder.decode(file: path, options: validation)
            fill(&record, with: decoded.info)
            if !decoded.warnings.isEmpty { record.warnings = decoded.warnings }
        } catch {
            record.outcome = error.kind.rawValue
            record.format = error.format?.rawValue
            record.reason = error.reason
            record.remedy = error.remedy
            if let info = try? ImageDecoder.info(file: path, options: DecodeOptions.unlimited) { fill(&record, with: info) }
        }
        return record
    }

    static func fill(_ record: inout ImageRecord, with info: ImageInfo) {
        record.format = info.format.rawValue
        record.width = info.width
        record.height = info.height
        record.channels = info.channels
        record.bitDepth = info.bitDepth
        record.colorModel = info.colorModel
        record.orientation = info.orientation
    }

    /// A file found under a path the user gave, with its path relative to that folder.
    public struct FileEntry: Sendable {
        public let path: String
        public let relative: String
    }

    /// The files under `paths` a dataset or a batch uses: `expand` without drop-folder junk and
    /// without hidden names at any depth.
    public static func expandSkippingJunk(_ paths: [String]) -> [FileEntry] {
        expand(paths).filter { entry in
            DropFolderJunk.reason(for: entry.relative) == nil && !entry.relative.split(separator: "/").contains { $0.hasPrefix(".") }
        }
    }

    /// The sub-folders of `folder` that can be class folders (not hidden, not junk), sorted.
    public static func classFolders(in folder: String) -> [String] {
        let fm = FileManager.default
        return ((try? fm.contentsOfDirectory(atPath: folder)) ?? []).filter { name in
            var isDirectory: ObjCBool = false
            return !name.hasPrefix(".") && DropFolderJunk.reason(for: name + "/x") == nil
                && fm.fileExists(atPath: folder + "/" + name, isDirectory: &isDirectory) && isDirectory.boolValue
        }.sorted()
    }

    /// Regular files under `paths` (folders walked recursively, entries sorted by name).
    public static func expand(_ paths: [String]) -> [FileEntry] {
        var result: [FileEntry] = []
        let fm = FileManager.default
        for path in paths {
            var isDirectory: ObjCBool = false
            guard fm.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue else {
                result.append(FileEntry(path: path, relative: (path as NSString).lastPathComponent))
                continue
            }
            let base = path.hasSuffix("/") ? String(path.dropLast()) : path
            var found: [String] = []
            if let walker = fm.enumerator(atPath: base) {
                while let relative = walker.nextObject() as? String {
                    var sub: ObjCBool = false
                    if fm.fileExists(atPath: base + "/" + relative, isDirectory: &sub), !sub.boolValue {
                        found.append(relative)
                    }
                }
            }
            for relative in found.sorted() {
                result.append(FileEntry(path: base + "/" + relative, relative: relative))
            }
        }
        return result
    }
}

extension DecodeOptions {
    /// No pixel limit: for reading headers only.
    static var unlimited: DecodeOptions {
        var options = DecodeOptions()
        options.maxPixels = .max
        return options
    }
}
