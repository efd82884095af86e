import DroplineSupport
import Foundation
import Imaging
import NeuralNetwork
import Tensor
import Testing
import SystemFiles

@Suite("Keras / TensorFlow.js import", .enabled(if: SharedMaterial.locate() != nil, "../shared is not present: the backbone import tests are skipped"))
struct KerasImportTests {
    static var modelPath: String { SharedMaterial.locate()! + "/models/mobilenet_v2_0.35_224_tfjs/model.json" }

    @Test("MobileNetV2-0.35 imports up to the global pool, with all 260 backbone tensors")
    func structure() throws {
        let model = try KerasImport.load(modelJSON: Self.modelPath)
        #expect(model.cut == "global_average_pooling2d_GlobalAveragePooling2D2")
        let shapes = try model.network.shapes()
        #expect(shapes[model.network.input.name] == [3, 224, 224])
        #expect(shapes[model.network.output.name] == [1280])
        // 35 convolutions + 17 depthwise (weights only, no biases) + 52 batch norms x 4 = 260
        #expect(model.parameters.names.count == 260)
        #expect(!model.layerNames.contains("dense_Dense3"))
    }

    @Test("features match an independent float64 reference forward pass within 1e-3 relative")
    func features() throws {
        let (tensors, metadata) = try SafeTensors.decode(try AtomicFile.read(
            URL(fileURLWithPath: #filePath).deletingLastPathComponent().path + "/Fixtures/backbone/mobilenet_features.safetensors"))
        let images = try JSONDecoder().decode([String].self, from: Data(metadata["images"]!.utf8))
        let model = try KerasImport.load(modelJSON: Self.modelPath)
        var input: [Float] = []
        for image in images {
            input += try ImageDecoder.decode(file: SharedMaterial.locate()! + "/" + image).image.floats(layout: .chw, normalization: .symmetric)
        }
        let predictor = try Predictor(network: model.network, parameters: model.parameters)
        let features = Tensor(shape: [images.count, 1280], data: try predictor.predict(input, count: images.count))
        let error = features.relativeError(to: tensors["features"]!)
        #expect(error < 1e-3, "relative error \(error)")
    }

    @Test("cutting at a named layer, and naming a missing one")
    func cut() throws {
        let model = try KerasImport.load(modelJSON: Self.modelPath, cut: "block_6_expand_relu")
        #expect(try model.network.shapes()[model.network.output.name] == [96, 28, 28])  // 16 channels at 28x28 (alpha 0.35), expanded 6x
        #expect(throws: NetworkError.self) { try KerasImport.load(modelJSON: Self.modelPath, cut: "no_such_layer") }
    }

    @Test("an unknown layer type in the needed part is an error naming the layer")
    func unknownLayer() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("keras-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let json = """
        {"modelTopology": {"class_name": "Sequential", "config": {"name": "s", "layers": [
          {"class_name": "Conv3D", "config": {"name": "volume", "batch_input_shape": [null, 8, 8, 3]}},
          {"class_name": "GlobalAveragePooling2D", "config": {"name": "pool"}}]}},
         "weightsManifest": [{"paths": [], "weights": []}]}
        """
        try json.write(toFile: folder + "/model.json", atomically: true, encoding: .utf8)
        do {
            _ = try KerasImport.load(modelJSON: folder + "/model.json")
            Issue.record("imported an unknown layer")
        } catch {
            #expect(error.description.contains("'volume'") && error.description.contains("Conv3D"), "\(error)")
        }
    }
}
