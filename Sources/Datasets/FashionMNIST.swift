public import DroplineSupport
import Foundation
import Imaging

/// Fashion-MNIST (Zalando Research, MIT licence) as Debian's `dataset-fashion-mnist` installs it,
/// written out as a labelled image-folder dataset: `<out>/{train,validation,test}/<class>/*.png`.
public enum FashionMNIST {
    /// Where the Debian package puts the four IDX files.
    public static let debianFolder = "/usr/share/datasets/fashion-mnist"
    /// The ten classes, in label order, as folder names.
    public static let classes = ["t-shirt_top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle_boot"]

    /// How many images per class each split gets.
    public struct Subset: Sendable, Codable, Equatable {
        public var train: Int
        public var validation: Int
        public var test: Int
        public init(train: Int, validation: Int, test: Int) {
            self.train = train
            self.validation = validation
            self.test = test
        }

        /// Images over all splits and classes.
        public var imageCount: Int { classes.count * (train + validation + test) }
    }

    /// Writes the subset: train and validation are the first `train` and the next `validation`
    /// images of each class in the training file (disjoint), test the first `test` of each class
    /// in the test file. 28x28 grey images, written as PNG files named after their index in the
    /// source file. Files already written are kept (a rerun resumes). Returns the images per split.
    @discardableResult
    public static func export(from folder: String = debianFolder, to out: String, subset: Subset,
                              progress: (any ProgressReporter)? = nil) throws -> [String: Int] {
        func file(_ name: String) throws -> String {
            for candidate in [folder + "/" + name + ".gz", folder + "/" + name] where FileManager.default.fileExists(atPath: candidate) {
                return candidate
            }
            throw DatasetFileError(path: folder + "/" + name + ".gz", reason: "does not exist",
                                   remedy: "install Fashion-MNIST with `apt-get install dataset-fashion-mnist` (README's first command does), or give the folder holding its four IDX files")
        }
        let trainImages = try IDXArray(file: try file("train-images-idx3-ubyte"))
        let trainLabels = try IDXArray(file: try file("train-labels-idx1-ubyte"))
        let testImages = try IDXArray(file: try file("t10k-images-idx3-ubyte"))
        let testLabels = try IDXArray(file: try file("t10k-labels-idx1-ubyte"))
        for (images, labels, name) in [(trainImages, trainLabels, "train"), (testImages, testLabels, "t10k")] {
            guard images.dimensions.count == 3, labels.dimensions.count == 1, images.dimensions[0] == labels.dimensions[0] else {
                throw DatasetFileError(path: folder, reason: "has \(name) images \(images.dimensions) and labels \(labels.dimensions) that do not match",
                                       remedy: "reinstall dataset-fashion-mnist")
            }
        }
        // (split, index in its source file, label)
        var plan: [(split: String, source: IDXArray, index: Int, label: Int)] = []
        var taken = [Int](repeating: 0, count: classes.count)
        for (i, label) in trainLabels.values.enumerated() where Int(label) < classes.count {
            let k = taken[Int(label)]
            if k < subset.train { plan.append(("train", trainImages, i, Int(label))) }
            else if k < subset.train + subset.validation { plan.append(("validation", trainImages, i, Int(label))) }
            taken[Int(label)] += 1
        }
        taken = [Int](repeating: 0, count: classes.count)
        for (i, label) in testLabels.values.enumerated() where Int(label) < classes.count && taken[Int(label)] < subset.test {
            plan.append(("test", testImages, i, Int(label)))
            taken[Int(label)] += 1
        }
        for split in ["train", "validation", "test"] {
            for name in classes { try FileManager.default.createDirectory(atPath: "\(out)/\(split)/\(name)", withIntermediateDirectories: true) }
        }
        let work = plan
        try concurrentForEach(work.count) { n in
            let item = work[n]
            let path = String(format: "%@/%@/%@/%@-%05d.png", out, item.split, classes[item.label], item.split == "test" ? "t10k" : "train", item.index)
            if !FileManager.default.fileExists(atPath: path) {
                let (height, width) = (item.source.dimensions[1], item.source.dimensions[2])
                let start = item.index * width * height
                var pixels = [UInt8](repeating: 0, count: width * height * 3)
                for p in 0..<width * height {
                    let v = item.source.values[start + p]
                    pixels[3 * p] = v; pixels[3 * p + 1] = v; pixels[3 * p + 2] = v
                }
                try ImageEncoder.write(RGBImage(width: width, height: height, pixels: pixels), to: path)
            }
            progress?.advance()
        }
        progress?.finish()
        return Dictionary(grouping: plan, by: \.split).mapValues(\.count)
    }
}
