import CDNNL

/// Row-major single-precision matrix products through oneDNN's `dnnl_sgemm` (its tuned, threaded
/// GEMM): for the linear algebra around the engine (the logistic-regression head), so that no second
/// BLAS is linked.
public enum MatrixMultiply {
    /// `c = alpha * op(a) * op(b) + beta * c`, where op(a) is `m x k`, op(b) is `k x n` and `c` is
    /// `m x n`, all row-major; `transposeA`/`transposeB` say that `a`/`b` are stored transposed.
    public static func gemm(_ a: UnsafePointer<Float>, transposeA: Bool = false, _ b: UnsafePointer<Float>, transposeB: Bool = false,
                            into c: UnsafeMutablePointer<Float>, m: Int, n: Int, k: Int, alpha: Float = 1, beta: Float = 0) {
        let lda = transposeA ? m : k, ldb = transposeB ? k : n
        let status = dnnl_sgemm(CChar(UInt8(ascii: transposeA ? "T" : "N")), CChar(UInt8(ascii: transposeB ? "T" : "N")),
                                dnnl_dim_t(m), dnnl_dim_t(n), dnnl_dim_t(k), alpha, a, dnnl_dim_t(lda), b, dnnl_dim_t(ldb), beta, c, dnnl_dim_t(n))
        precondition(status == dnnl_success, "oneDNN sgemm failed (status \(status.rawValue)) for \(m)x\(k) by \(k)x\(n)")
    }
}
