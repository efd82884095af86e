import Charts
import Explainability
import Foundation
import Hashing
import Imaging
import JSONFiles
import Modeling
import Pipeline
import SystemFiles
import Tensor

/// Pieces the run pages share: reading a run folder's files, images inline, explanation cards.
enum PageParts {
    /// A JSON file of the run folder, or the reason it cannot be read (shown on the page).
    static func read<T: Decodable>(_ type: T.Type, _ path: String) -> Result<T, ReportError> {
        do { return .success(try SnakeCaseJSON.read(type, from: path)) } catch {
            return .failure(ReportError("\((path as NSString).lastPathComponent) could not be read (\(error))"))
        }
    }

    static func problem(_ error: ReportError) -> String { "<p class=\"note\">\(HTML.text(error.description))</p>" }

    /// The image file at `path` as the model saw it (its resize and crop) at `side` pixels, when it
    /// is still the file that was served or trained on (its SHA-256 matches): a file changed or
    /// removed since is not shown as if it were the one explained. Only regular files are read,
    /// never through a link.
    static func original(path: String, sha256: String?, preprocessing: Preprocessing, side: Int) -> (image: RGBImage?, why: String?) {
        guard let bytes = try? AtomicFile.read(path, limit: 256 << 20, links: .refuse) else {
            return (nil, "the original is no longer readable at its path")
        }
        if let sha256, SHA256.hash(bytes) != sha256 { return (nil, "the original has changed since it was explained") }
        let view = Preprocessing(imageSize: side, resize: preprocessing.resize, normalization: preprocessing.normalization)
        guard let decoded = try? ImageDecoder.decode(bytes, options: view.decodeOptions) else {
            return (nil, "the original could not be decoded again")
        }
        return (view.prepare(decoded.image), nil)
    }

    /// An explanation's raw per-pixel attribution (`<stem>.attribution.safetensors`) and its size.
    static func attribution(_ path: String) -> (values: [Float], width: Int, height: Int)? {
        guard let bytes = try? AtomicFile.read(path, limit: 64 << 20, links: .refuse),
              let tensor = try? SafeTensors.decode(bytes).tensors["attribution"], tensor.shape.count == 2 else { return nil }
        return (tensor.data, tensor.shape[1], tensor.shape[0])
    }

    static func jpeg(_ image: RGBImage) -> [UInt8]? { try? ImageEncoder.jpeg(image, quality: 85) }

    /// The colour scale of the heatmaps, with what it means.
    static func heatmapLegend(target: String?) -> String {
        let against = target.map { "evidence against \($0)" } ?? "evidence against the class", forClass = target.map { "evidence for \($0)" } ?? "evidence for the class"
        return """
        <div class="legend"><span>\(HTML.text(against))</span>\
        <svg class="chart" width="180" height="14" viewBox="0 0 180 14" role="img"><title>heatmap colour scale</title>\
        <defs><linearGradient id="ig-scale"><stop offset="0" stop-color="#145aeb"/><stop offset="0.5" stop-color="#8a8f96"/><stop offset="1" stop-color="#e62814"/></linearGradient></defs>\
        <rect width="180" height="14" fill="url(#ig-scale)"/></svg><span>\(HTML.text(forClass))</span></div>\
        <p class="note">Integrated gradients summed over the colour channels and smoothed by a gaussian of 1/16 of the image side, so that \
        the evidence shows as regions; red raises the predicted class's score, blue lowers it; full colour is the smoothed map's 95th \
        percentile of magnitude, lighter is weaker, and below 15% of it nothing is drawn. The raw per-pixel values are in each explanation's .attribution.safetensors beside its JSON. \
        The completeness delta is how far the attributions' sum is from the score's change between baseline and image (integrated gradients' \
        own check; below 1% is a faithful attribution).</p>
        """
    }

    /// One explanation: the image as the model saw it beside its heatmap, and what was found. The
    /// heatmap is drawn from the raw attribution over the original decoded again at the display
    /// size (sharper than the model's input upscaled); without them, the run folder's PNG is shown.
    static func explanationCard(_ e: Explanation, folder: String, preprocessing: Preprocessing, extra: [(String, String)]) -> String {
        let side = AttributionView.displaySide(preprocessing.imageSize)
        let (original, why) = original(path: e.path, sha256: e.sha256, preprocessing: preprocessing, side: side)
        var heat: [UInt8]?
        if let original, let raw = e.attribution.flatMap({ attribution(folder + "/" + $0) }), raw.values.count == raw.width * raw.height {
            let (map, scale) = AttributionView.regions(raw.values, width: raw.width, height: raw.height)
            heat = jpeg(AttributionView.overlay(map, width: raw.width, height: raw.height, scale: scale, on: original))
        } else if let png = try? ImageDecoder.decode(file: folder + "/" + e.heatmap) {
            heat = jpeg(png.image)
        }
        var images = ""
        if let original, let bytes = jpeg(original) { images += HTML.image(bytes, mime: "image/jpeg", alt: "the image as the model saw it", width: side, height: side) }
        if let heat { images += HTML.image(heat, mime: "image/jpeg", alt: "integrated-gradients heatmap", width: side, height: side) }
        var facts: [(String, String)] = [
            ("predicted", HTML.text(e.predicted) + " (" + percent(e.confidence) + ")"),
            ("completeness delta", percent(e.relativeDelta, 2) + " (\(e.steps) \(e.method.rawValue) points)"),
        ]
        facts += extra
        if let why { facts.append(("original", HTML.text(why))) }
        return "<div class=\"card\"><div class=\"pair\">\(images)</div><p class=\"mono\">\(HTML.text((e.path as NSString).lastPathComponent))</p>\(HTML.facts(facts))</div>"
    }

    /// Links to the run folder's own files that exist.
    static func fileLinks(folder: String, _ files: [(String, String)]) -> String {
        let present = files.filter { FileSystem.entryType(folder + "/" + $0.0) != nil }
        return "<ul>" + present.map { "<li>" + HTML.link($0.0, $0.0) + " — " + HTML.text($0.1) + "</li>" }.joined() + "</ul>"
    }

    /// The section of the files the run's processing refused.
    static func refusedSection(_ manifest: Result<RunManifest, ReportError>) -> String {
        let rejected = (try? manifest.get())?.components.first { $0.component == .processing }?.rejected ?? []
        return HTML.section("Refused files", id: "refused", refusals(rejected))
    }

    /// Refused files as a table.
    static func refusals(_ rejected: [Rejection]) -> String {
        guard !rejected.isEmpty else { return "<p>None: every file was read and decoded.</p>" }
        return HTML.table(["file", "outcome", "reason"], rejected.prefix(200).map {
            ["<span class=\"mono\">\(HTML.text($0.path))</span>", HTML.text($0.outcome), HTML.text($0.reason)]
        }) + (rejected.count > 200 ? "<p class=\"note\">\(rejected.count - 200) more in the run's manifest.json.</p>" : "")
    }

    /// The run manifest, read once per page.
    static func manifest(_ folder: String) -> Result<RunManifest, ReportError> { read(RunManifest.self, folder + "/manifest.json") }
}
