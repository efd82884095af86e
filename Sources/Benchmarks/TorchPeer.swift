import Foundation
import NeuralNetwork

/// PyTorch (eager) and onnxruntime, the peers for the network engine, run as a subprocess on the
/// same network description with random weights of the same shapes.
enum TorchPeer {
    /// Builds a Dropline network description as a PyTorch module and times it.
    static let script = #"""
import io, json, sys, time, warnings
warnings.filterwarnings("ignore")
import torch
import torch.nn.functional as F
spec = json.load(open(sys.argv[1])); batch = int(sys.argv[2]); threads = int(sys.argv[3]); seconds = float(sys.argv[4])
torch.set_num_threads(threads)
torch.manual_seed(0)

class Graph(torch.nn.Module):
    def __init__(self, layers):
        super().__init__()
        self.layers = layers
        self.mods = torch.nn.ModuleDict()
        shapes = {}
        for l in layers:
            (op, a), = l["operation"].items()
            n = l["name"].replace(".", "_")
            if op == "input":
                shapes[l["name"]] = (a["channels"], a["height"], a["width"]); continue
            if op == "features":
                shapes[l["name"]] = (a["count"],); continue
            s = shapes[l["inputs"][0]]
            if op == "conv2d":
                self.mods[n] = torch.nn.Conv2d(s[0], a["filters"], a["kernel"], a["stride"], groups=a["groups"], bias=a["bias"])
            elif op == "batchNorm":
                self.mods[n] = torch.nn.BatchNorm2d(s[0], eps=a["epsilon"], momentum=a["momentum"]) if len(s) == 3 else torch.nn.BatchNorm1d(s[0])
            elif op == "dense":
                self.mods[n] = torch.nn.Linear(s[0], a["units"], bias=a["bias"])
            shapes[l["name"]] = self.shape(op, a, s)

    @staticmethod
    def pads(p, size, k, st):
        (key, v), = p.items()
        if key == "valid": return (0, 0, 0, 0)
        if key == "explicit": return (v["top"], v["bottom"], v["left"], v["right"])
        out = [(size[i] + st[i] - 1) // st[i] for i in range(2)]
        t = [max((out[i] - 1) * st[i] + k[i] - size[i], 0) for i in range(2)]
        return (t[0] // 2, t[0] - t[0] // 2, t[1] // 2, t[1] - t[1] // 2)

    def shape(self, op, a, s):
        if op in ("conv2d", "maxPool", "avgPool"):
            t, b, l, r = self.pads(a["padding"], s[1:], a["kernel"], a["stride"])
            return (a["filters"] if op == "conv2d" else s[0], (s[1] + t + b - a["kernel"][0]) // a["stride"][0] + 1,
                    (s[2] + l + r - a["kernel"][1]) // a["stride"][1] + 1)
        if op == "zeroPad": return (s[0], s[1] + a["top"] + a["bottom"], s[2] + a["left"] + a["right"])
        if op == "globalAvgPool": return (s[0],)
        if op == "dense": return (a["units"],)
        if op == "flatten":
            n = 1
            for d in s: n *= d
            return (n,)
        return s

    def forward(self, x):
        v = {}
        for l in self.layers:
            (op, a), = l["operation"].items()
            n = l["name"].replace(".", "_")
            if op in ("input", "features"): v[l["name"]] = x; continue
            y = v[l["inputs"][0]]
            if op == "conv2d":
                t, b, le, r = self.pads(a["padding"], y.shape[2:], a["kernel"], a["stride"])
                if t == b and le == r:
                    m = self.mods[n]; m.padding = (t, le); y = m(y)
                else:
                    y = self.mods[n](F.pad(y, (le, r, t, b)))
            elif op in ("batchNorm", "dense"): y = self.mods[n](y)
            elif op == "relu": y = F.relu(y)
            elif op == "relu6": y = F.relu6(y)
            elif op == "maxPool":
                t, b, le, r = self.pads(a["padding"], y.shape[2:], a["kernel"], a["stride"])
                y = F.max_pool2d(y, a["kernel"], a["stride"], padding=(t, le))
            elif op == "avgPool":
                t, b, le, r = self.pads(a["padding"], y.shape[2:], a["kernel"], a["stride"])
                y = F.avg_pool2d(y, a["kernel"], a["stride"], padding=(t, le), count_include_pad=a["countIncludePad"])
            elif op == "globalAvgPool": y = y.mean(dim=(2, 3))
            elif op == "dropout": y = F.dropout(y, a["rate"], self.training)
            elif op == "add": y = y + v[l["inputs"][1]]
            elif op == "flatten": y = y.flatten(1)
            elif op == "zeroPad": y = F.pad(y, (a["left"], a["right"], a["top"], a["bottom"]))
            v[l["name"]] = y
        return v[self.layers[-1]["name"]]

def rate(step):
    step(); step(); step()  # warm-up
    best = 0.0
    for _ in range(3):
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            step(); n += 1
        best = max(best, n * batch / (time.perf_counter() - start))
    return best

model = Graph(spec["layers"])
first, = spec["layers"][0]["operation"].values()
x = torch.randn(batch, first["channels"], first["height"], first["width"])
result = {}
model.eval()
with torch.no_grad():
    result["torch_inference"] = rate(lambda: model(x))
if sys.argv[5] == "train":
    model.train()
    classes = spec["layers"][-1]["operation"]["dense"]["units"]
    y = torch.randint(0, classes, (batch,))
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    def step():
        opt.zero_grad(); F.cross_entropy(model(x), y).backward(); opt.step()
    result["torch_training"] = rate(step)
    model.eval()
ig_images = int(sys.argv[6]) if len(sys.argv) > 6 else 0
if ig_images > 0:
    try:
        from captum.attr import IntegratedGradients
        model.eval()
        ig = IntegratedGradients(model)
        xs = x[:ig_images]
        def attribute(internal):
            def go():
                ig.attribute(xs, target=0, n_steps=50, internal_batch_size=internal)
            return go
        def ig_rate(go):
            go()
            best = 0.0
            for _ in range(2):
                start = time.perf_counter(); go(); best = max(best, len(xs) / (time.perf_counter() - start))
            return best
        result["captum_ig"] = ig_rate(attribute(None))
        result["captum_ig_chunked"] = ig_rate(attribute(100))
        # the fastest setting found for MobileNetV2 at 224 (scripts/pipeline_peer.py): channels-last,
        # one image at a time, 10 path inputs per pass
        fast = Graph(spec["layers"]); fast.load_state_dict(model.state_dict())
        fast = fast.to(memory_format=torch.channels_last).eval()
        ig_fast = IntegratedGradients(fast)
        def one_by_one():
            for i in range(len(xs)):
                ig_fast.attribute(xs[i:i + 1].contiguous(memory_format=torch.channels_last), target=0, n_steps=50, internal_batch_size=10)
        result["captum_ig_channels_last"] = ig_rate(one_by_one)
    except Exception as e:
        result["captum_error"] = type(e).__name__ + ": " + str(e)[:200]
try:
    import onnxruntime as ort
    buf = io.BytesIO()
    torch.onnx.export(model, x, buf, dynamo=False, input_names=["x"], output_names=["y"])
    options = ort.SessionOptions(); options.intra_op_num_threads = threads
    session = ort.InferenceSession(buf.getvalue(), options, providers=["CPUExecutionProvider"])
    feed = {"x": x.numpy()}
    result["onnxruntime_inference"] = rate(lambda: session.run(None, feed))
except Exception as e:
    result["onnxruntime_error"] = type(e).__name__ + ": " + str(e)[:200]
print(json.dumps(result))
"""#

    struct Result: Decodable {
        var torchInference: Double?
        var torchTraining: Double?
        var onnxruntimeInference: Double?
        var onnxruntimeError: String?
        var captumIG: Double?
        var captumIGChunked: Double?
        var captumIGChannelsLast: Double?
        enum CodingKeys: String, CodingKey {
            case captumIG = "captum_ig", captumIGChunked = "captum_ig_chunked", captumIGChannelsLast = "captum_ig_channels_last"
            case torchInference = "torch_inference", torchTraining = "torch_training"
            case onnxruntimeInference = "onnxruntime_inference", onnxruntimeError = "onnxruntime_error"
        }
    }

    static func available(python: String) -> Bool {
        (try? Pillow.run(python, ["-c", "import torch"]))?.status == 0
    }

    /// Times `network` in PyTorch (and onnxruntime when importable); nil when the peer failed.
    /// `integratedGradientImages`: how many images Captum explains (0: none).
    static func measure(_ network: Network, batch: Int, threads: Int, seconds: Double, training: Bool, integratedGradientImages: Int = 0,
                        python: String, scratch: String, tunables: Bool) throws -> Result? {
        let path = scratch + "/peer-network.json"
        try JSONEncoder().encode(network).write(to: URL(fileURLWithPath: path))
        let environment = tunables
            ? ["GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=4294967296"] : [:]
        let output = try Pillow.run(python, ["-c", script, path, String(batch), String(threads), String(seconds), training ? "train" : "infer", String(integratedGradientImages)],
                                    environment: environment)
        guard output.status == 0, let line = output.output.split(separator: "\n").last else { return nil }
        return try? JSONDecoder().decode(Result.self, from: Data(line.utf8))
    }
}
