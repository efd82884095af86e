import CDNNL
#if canImport(Glibc)
import Glibc
#endif

/// A thin layer over oneDNN's C API: the engine and stream, memory descriptors, memories that own
/// aligned buffers, and primitives executed with argument lists prepared once.
///
/// oneDNN chooses blocked layouts (e.g. nChw8c) for convolution outputs when asked with
/// `format_tag_any`; every other primitive here is created with the layout its input actually has, so
/// activations stay blocked between layers and reorders happen only at the edges.
enum DNNL {
    /// The CPU engine, created once per process (engines are thread-safe; streams are not, so each
    /// executor has its own `ExecutionContext`).
    final class Context: @unchecked Sendable {
        let engine: dnnl_engine_t
        static let shared = Context()
        private init() {
            var engine: dnnl_engine_t?
            precondition(dnnl_engine_create(&engine, dnnl_cpu, 0) == dnnl_success, "oneDNN: no CPU engine")
            self.engine = engine!
        }
    }

    static var engine: dnnl_engine_t { Context.shared.engine }

    /// Primitive attributes with a user-managed scratchpad (so concurrent executors never share
    /// oneDNN's global one) and optional post-ops. The caller destroys them.
    static func attributes(postOps: dnnl_post_ops_t? = nil) -> dnnl_primitive_attr_t {
        var attributes: dnnl_primitive_attr_t?
        precondition(dnnl_primitive_attr_create(&attributes) == dnnl_success, "oneDNN attributes")
        dnnl_primitive_attr_set_scratchpad_mode(attributes, dnnl_scratchpad_mode_user)
        if let postOps { dnnl_primitive_attr_set_post_ops(attributes, postOps) }
        return attributes!
    }

    /// Calls a oneDNN function; a failure is a thrown error naming what was attempted.
    static func call(_ what: @autoclosure () -> String, _ status: dnnl_status_t) throws(NetworkError) {
        guard status == dnnl_success else {
            throw NetworkError.backend("oneDNN could not \(what()) (status \(status.rawValue): \(describe(status)))")
        }
    }

    static func describe(_ status: dnnl_status_t) -> String {
        switch status {
        case dnnl_out_of_memory: "out of memory"
        case dnnl_invalid_arguments: "invalid arguments"
        case dnnl_unimplemented: "no implementation for this configuration"
        case dnnl_runtime_error: "runtime error"
        default: "error"
        }
    }

    /// A memory descriptor for `dims` (N, C, H, W order for images) with a layout tag.
    static func desc(_ dims: [Int], _ tag: dnnl_format_tag_t) -> dnnl_memory_desc_t {
        var md = dnnl_memory_desc_t()
        let d = dims.map(Int64.init)
        let status = dnnl_memory_desc_init_by_tag(&md, Int32(d.count), d, dnnl_f32, tag)
        precondition(status == dnnl_success, "oneDNN memory descriptor \(dims) tag \(tag.rawValue): status \(status.rawValue)")
        return md
    }

    /// The plain row-major layout for a rank.
    static func plainTag(rank: Int) -> dnnl_format_tag_t {
        switch rank {
        case 1: dnnl_a
        case 2: dnnl_ab
        case 3: dnnl_abc
        case 4: dnnl_abcd
        case 5: dnnl_abcde
        default: preconditionFailure("no plain layout for rank \(rank)")
        }
    }

    static func plain(_ dims: [Int]) -> dnnl_memory_desc_t { desc(dims, plainTag(rank: dims.count)) }
    static func any(_ dims: [Int]) -> dnnl_memory_desc_t { desc(dims, dnnl_format_tag_any) }

    static func equal(_ a: dnnl_memory_desc_t, _ b: dnnl_memory_desc_t) -> Bool {
        var a = a, b = b
        return dnnl_memory_desc_equal(&a, &b) != 0
    }

    static func size(_ md: dnnl_memory_desc_t) -> Int {
        var md = md
        return dnnl_memory_desc_get_size(&md)
    }

    static func dims(_ md: dnnl_memory_desc_t) -> [Int] {
        withUnsafeBytes(of: md.dims) { raw in
            Array(raw.bindMemory(to: Int64.self).prefix(Int(md.ndims))).map(Int.init)
        }
    }
}

/// A oneDNN memory and its buffer: owned (aligned, zeroed, freed with the memory) or borrowed.
extension DNNL {
    /// Whether a memory of `batch` examples holds each example contiguously, one after another (a
    /// plain or blocked layout with the batch dimension outermost and no padding around it).
    static func isBatchOutermost(_ desc: dnnl_memory_desc_t, batch: Int, bytes: Int) -> Bool {
        guard desc.format_kind == dnnl_blocked, desc.ndims > 0, desc.dims.0 == Int64(batch) else { return false }
        return Int(desc.format_desc.blocking.strides.0) * batch * 4 == bytes
    }
}

final class Memory {
    let desc: dnnl_memory_desc_t
    let handle: dnnl_memory_t
    let pointer: UnsafeMutableRawPointer
    let bytes: Int
    private let owned: Bool

    /// A new zeroed buffer for `desc`.
    init(_ desc: dnnl_memory_desc_t) {
        self.desc = desc
        bytes = max(DNNL.size(desc), 4)
        var raw: UnsafeMutableRawPointer?
        precondition(posix_memalign(&raw, 64, bytes) == 0, "out of memory allocating \(bytes) bytes")
        memset(raw!, 0, bytes)
        pointer = raw!
        owned = true
        var d = desc
        var memory: dnnl_memory_t?
        precondition(dnnl_memory_create(&memory, &d, DNNL.engine, pointer) == dnnl_success, "oneDNN memory")
        handle = memory!
    }

    /// Wraps a buffer that outlives this memory.
    init(_ desc: dnnl_memory_desc_t, borrowing pointer: UnsafeMutableRawPointer) {
        self.desc = desc
        bytes = DNNL.size(desc)
        self.pointer = pointer
        owned = false
        var d = desc
        var memory: dnnl_memory_t?
        precondition(dnnl_memory_create(&memory, &d, DNNL.engine, pointer) == dnnl_success, "oneDNN memory")
        handle = memory!
    }

    deinit {
        dnnl_memory_destroy(handle)
        if owned { free(pointer) }
    }

    /// Every float of the buffer, including any padding of blocked layouts.
    var floats: UnsafeMutableBufferPointer<Float> {
        UnsafeMutableBufferPointer(start: pointer.assumingMemoryBound(to: Float.self), count: bytes / 4)
    }

    func zero() { memset(pointer, 0, bytes) }

    var dims: [Int] { DNNL.dims(desc) }
}

/// A primitive with its descriptor; executed with argument lists prepared by the caller.
final class Primitive {
    let descriptor: dnnl_primitive_desc_t
    let primitive: dnnl_primitive_t
    let name: String
    /// A backward descriptor keeps a raw pointer to its forward "hint" descriptor in oneDNN 2.x, so
    /// the forward primitive must outlive it.
    private let hint: Primitive?

    /// Creates the primitive for an operation descriptor (`opDesc` points at a dnnl_*_desc_t).
    init<D>(_ name: String, opDesc: inout D, postOps: dnnl_post_ops_t? = nil,
            hint: Primitive? = nil) throws(NetworkError) {
        self.name = name
        self.hint = hint
        var pd: dnnl_primitive_desc_t?
        let attributes = DNNL.attributes(postOps: postOps)
        defer { dnnl_primitive_attr_destroy(attributes) }
        let created = withUnsafePointer(to: &opDesc) { pointer in
            dnnl_primitive_desc_create(&pd, UnsafeRawPointer(pointer), attributes, DNNL.engine, hint?.descriptor)
        }
        try DNNL.call("create \(name)", created)
        var p: dnnl_primitive_t?
        let status = dnnl_primitive_create(&p, pd)
        if status != dnnl_success { dnnl_primitive_desc_destroy(pd) }
        try DNNL.call("instantiate \(name)", status)
        descriptor = pd!
        primitive = p!
    }

    /// A reorder between two layouts of the same logical tensor.
    init(reorder source: dnnl_memory_desc_t, to destination: dnnl_memory_desc_t, name: String = "reorder") throws(NetworkError) {
        self.name = name
        self.hint = nil
        var pd: dnnl_primitive_desc_t?
        var s = source, d = destination
        let attributes = DNNL.attributes()
        defer { dnnl_primitive_attr_destroy(attributes) }
        try DNNL.call("create \(name)", dnnl_reorder_primitive_desc_create(&pd, &s, DNNL.engine, &d, DNNL.engine, attributes))
        var p: dnnl_primitive_t?
        try DNNL.call("instantiate \(name)", dnnl_primitive_create(&p, pd))
        descriptor = pd!
        primitive = p!
    }

    deinit {
        dnnl_primitive_destroy(primitive)
        dnnl_primitive_desc_destroy(descriptor)
    }

    /// The memory descriptor the primitive expects for `what` (e.g. dnnl_query_dst_md).
    func md(_ what: dnnl_query_t, _ index: Int32 = 0) -> dnnl_memory_desc_t {
        dnnl_primitive_desc_query_md(descriptor, what, index).pointee
    }

    /// The implementation oneDNN chose (e.g. "jit:avx2").
    var implementation: String {
        var info: UnsafePointer<CChar>?
        guard dnnl_primitive_desc_query(descriptor, dnnl_query_impl_info_str, 0, &info) == dnnl_success, let info else { return "?" }
        return String(cString: info)
    }
}

/// What the primitives of one executor share: a stream, and one scratchpad buffer sized for the
/// largest need (its primitives run one at a time).
final class ExecutionContext {
    let stream: dnnl_stream_t
    private(set) var scratchpadBytes = 0
    private var scratchpad: UnsafeMutableRawPointer?

    init() {
        var stream: dnnl_stream_t?
        precondition(dnnl_stream_create(&stream, DNNL.engine, dnnl_stream_default_flags.rawValue) == dnnl_success, "oneDNN: no stream")
        self.stream = stream!
    }

    deinit {
        dnnl_stream_destroy(stream)
        free(scratchpad)
    }

    func reserve(_ bytes: Int) { scratchpadBytes = max(scratchpadBytes, bytes) }

    /// The scratchpad buffer, allocated on first use at its final size.
    var scratchpadPointer: UnsafeMutableRawPointer {
        if let scratchpad { return scratchpad }
        var raw: UnsafeMutableRawPointer?
        precondition(posix_memalign(&raw, 64, max(scratchpadBytes, 64)) == 0, "out of memory for a \(scratchpadBytes)-byte scratchpad")
        scratchpad = raw
        return raw!
    }
}

/// One primitive execution with its arguments, prepared once and run many times.
struct Step {
    let primitive: Primitive
    let args: [dnnl_exec_arg_t]
    /// Keeps the memories alive as long as the step.
    let memories: [Memory]
    let context: ExecutionContext
    private let scratchpad: ScratchpadHandle?

    init(_ primitive: Primitive, _ arguments: [(Int32, Memory)], context: ExecutionContext) {
        self.primitive = primitive
        self.context = context
        var args = arguments.map { dnnl_exec_arg_t(arg: $0.0, memory: $0.1.handle) }
        let md = primitive.md(dnnl_query_scratchpad_md)
        let bytes = DNNL.size(md)
        if bytes > 0 {
            context.reserve(bytes)
            let handle = ScratchpadHandle(md)
            scratchpad = handle
            args.append(dnnl_exec_arg_t(arg: DNNL_ARG_SCRATCHPAD, memory: handle.memory))
        } else {
            scratchpad = nil
        }
        self.args = args
        memories = arguments.map(\.1)
    }

    func run() {
        if let scratchpad { dnnl_memory_set_data_handle(scratchpad.memory, context.scratchpadPointer) }
        let status = args.withUnsafeBufferPointer { a in
            dnnl_primitive_execute(primitive.primitive, context.stream, Int32(a.count), a.baseAddress)
        }
        precondition(status == dnnl_success, "oneDNN \(primitive.name) failed at run time: status \(status.rawValue)")
    }
}

/// A oneDNN memory without a buffer of its own, pointed at the shared scratchpad before each run.
final class ScratchpadHandle {
    let memory: dnnl_memory_t
    init(_ md: dnnl_memory_desc_t) {
        var d = md
        var memory: dnnl_memory_t?
        precondition(dnnl_memory_create(&memory, &d, DNNL.engine, nil) == dnnl_success, "oneDNN scratchpad memory")
        self.memory = memory!
    }
    deinit { dnnl_memory_destroy(memory) }
}
