"""Thin Cython layer over the C bit kernels: buffers in, GIL released, kernels called.

Prior validation of every argument is assumed: shapes, dtypes, contiguity and
the SIMD level are checked by the public functions in ``_packing.py`` and
``_gemm.py``.
"""
from libc.stdint cimport int32_t, int64_t, uint8_t, uint64_t

cdef extern from "qt_bitops.h" nogil:
    int QT_N_LEVELS
    int QT_LEVEL_AVX2
    int qt_cpu_has(int level)
    int qt_level_usable(int level)
    const char *qt_level_name(int level)
    int qt_openmp_enabled()
    size_t qt_pack_rows_f32(const float *x, size_t rows, size_t k, size_t ldx,
                            uint64_t *out, size_t ldo, int use_simd, int n_threads)
    size_t qt_pack_rows_f64(const double *x, size_t rows, size_t k, size_t ldx,
                            uint64_t *out, size_t ldo, int use_simd, int n_threads)
    size_t qt_pack_rows_u8(const uint8_t *x, size_t rows, size_t k, size_t ldx,
                           uint64_t *out, size_t ldo, int use_simd, int n_threads)
    int qt_xnor_gemm(const uint64_t *a, size_t m, size_t lda, const uint64_t *b, size_t n,
                     size_t ldb, size_t nw, int32_t kbits, int32_t *c, size_t ldc,
                     int level, int n_threads)
    int64_t qt_ukernel_repeat(int level, size_t kw, size_t reps)
    size_t qt_conv_pack(const float *x, int nchw, size_t n, size_t P, size_t groups,
                        size_t cg, size_t cw, uint64_t *out, int use_simd, int n_threads)
    void qt_conv_im2col_words(const uint64_t *src, size_t n, size_t h, size_t w, size_t ldp,
                              size_t off, size_t cw, size_t kh, size_t kw, size_t sh,
                              size_t sw, size_t ph, size_t pw, size_t dh, size_t dw,
                              size_t oh, size_t ow, uint64_t *dst, int n_threads)
    void qt_conv_epilogue(const int32_t *acc, size_t aso, size_t asr, const int32_t *fix,
                          size_t fso, size_t fsp, const float *alpha, const float *bias,
                          size_t n, size_t P, size_t og, float *y, size_t yc, size_t o0,
                          int nchw, int n_threads)

LEVEL_NAMES = tuple(qt_level_name(i).decode() for i in range(QT_N_LEVELS))


def cpu_has(int level):
    """1 if the CPU (and OS) support instruction-set level ``level``."""
    return bool(qt_cpu_has(level))


def level_usable(int level):
    """True if ``level`` is compiled in and runs on this CPU."""
    return bool(qt_level_usable(level))


def openmp_enabled():
    """True if the extension was built with OpenMP."""
    return bool(qt_openmp_enabled())


ctypedef fused pack_t:
    float
    double
    uint8_t


def pack_rows(const pack_t[:, ::1] x, uint64_t[:, ::1] out, int level, int n_threads=1):
    """Pack each row of ``x`` (IN) into ``out`` (OUT): the sign bits (x >= 0) of floats, the
    non-zero bytes of uint8. Return the number of NaNs seen (0 means none)."""
    cdef size_t nan = 0
    cdef int simd = level >= QT_LEVEL_AVX2 and qt_cpu_has(QT_LEVEL_AVX2)
    if x.shape[0] == 0:
        return 0
    with nogil:
        if pack_t is float:
            nan = qt_pack_rows_f32(&x[0, 0], x.shape[0], x.shape[1], x.shape[1],
                                   &out[0, 0], out.shape[1], simd, n_threads)
        elif pack_t is double:
            nan = qt_pack_rows_f64(&x[0, 0], x.shape[0], x.shape[1], x.shape[1],
                                   &out[0, 0], out.shape[1], simd, n_threads)
        else:
            nan = qt_pack_rows_u8(&x[0, 0], x.shape[0], x.shape[1], x.shape[1],
                                  &out[0, 0], out.shape[1], simd, n_threads)
    return nan


def xnor_gemm(const uint64_t[:, ::1] a, const uint64_t[:, ::1] b, size_t nw, int32_t kbits,
              int32_t[:, ::1] c, int level, int n_threads):
    """c (OUT) = kbits - 2 popcount(a_i ^ b_j) over the first ``nw`` words of each row."""
    cdef int rc
    cdef size_t m = a.shape[0], n = b.shape[0]
    if m == 0 or n == 0:
        return
    cdef const uint64_t *pa = &a[0, 0] if a.shape[1] > 0 else NULL
    cdef const uint64_t *pb = &b[0, 0] if b.shape[1] > 0 else NULL
    with nogil:
        rc = qt_xnor_gemm(pa, m, a.shape[1], pb, n, b.shape[1], nw, kbits,
                          &c[0, 0], c.shape[1], level, n_threads)
    if rc == -1:
        raise MemoryError("xnor_gemm: out of memory for the packed panels")
    if rc == -2:
        raise RuntimeError(f"xnor_gemm: SIMD level {level} cannot run on this CPU")


def ukernel_repeat(int level, size_t kw, size_t reps):
    """Run the micro-kernel of ``level`` ``reps`` times on L1-resident panels of ``kw`` words;
    return the binary MACs done (for measuring the kernel's in-cache throughput)."""
    cdef int64_t macs
    with nogil:
        macs = qt_ukernel_repeat(level, kw, reps)
    if macs == -1:
        raise MemoryError("ukernel_repeat: out of memory")
    if macs == -2:
        raise RuntimeError(f"ukernel_repeat: SIMD level {level} cannot run on this CPU")
    return macs


def conv_pack(const float[::1] x, int nchw, size_t n, size_t P, size_t groups, size_t cg,
              size_t cw, uint64_t[::1] out, int level, int n_threads):
    """Pack the signs of ``x`` (IN; NCHW or NHWC, flat) into ``out`` (OUT), laid out
    (N, P, groups, cw). Return the number of NaNs seen (0 means none)."""
    cdef size_t nan = 0
    cdef int simd = level >= QT_LEVEL_AVX2 and qt_cpu_has(QT_LEVEL_AVX2)
    if x.shape[0] == 0 or out.shape[0] == 0:
        return 0
    with nogil:
        nan = qt_conv_pack(&x[0], nchw, n, P, groups, cg, cw, &out[0], simd, n_threads)
    return nan


def conv_im2col_words(const uint64_t[::1] src, size_t n, size_t h, size_t w, size_t ldp,
                      size_t off, size_t cw, tuple kernel, tuple stride, tuple padding,
                      tuple dilation, tuple out_hw, uint64_t[:, ::1] dst, int n_threads):
    """Patches (OUT, rows (N, OH, OW), tap-major) of packed pixels ``src`` (IN, (N, H, W,
    ldp) words), ``cw`` words at offset ``off``; zero words for taps in the padding."""
    cdef size_t kh = kernel[0], kw = kernel[1], sh = stride[0], sw = stride[1]
    cdef size_t ph = padding[0], pw = padding[1], dh = dilation[0], dw = dilation[1]
    cdef size_t oh = out_hw[0], ow = out_hw[1]
    if dst.shape[0] == 0 or dst.shape[1] == 0:
        return
    with nogil:
        qt_conv_im2col_words(&src[0], n, h, w, ldp, off, cw, kh, kw, sh, sw, ph, pw, dh, dw,
                             oh, ow, &dst[0, 0], n_threads)


def conv_epilogue(const int32_t[:, ::1] acc, int acc_by_output, const int32_t[:, ::1] fix,
                  int fix_by_output, const float[::1] alpha, const float[::1] bias, size_t n,
                  size_t P, float[::1] y, size_t yc, size_t o0, int nchw, int n_threads):
    """y (OUT) = float32(acc + fix) * alpha (+ bias) for one group: ``acc`` (IN) is (og, N P)
    when ``acc_by_output`` else (N P, og), ``fix`` (IN, optional) (og, P) or (P, og)."""
    cdef size_t og = alpha.shape[0]
    cdef size_t aso = acc.shape[1] if acc_by_output else 1
    cdef size_t asr = 1 if acc_by_output else acc.shape[1]
    cdef size_t fso = 0, fsp = 0
    cdef const int32_t *pf = NULL
    cdef const float *pb = NULL
    if n == 0 or P == 0 or og == 0:
        return
    if fix is not None:
        pf = &fix[0, 0]
        fso = fix.shape[1] if fix_by_output else 1
        fsp = 1 if fix_by_output else fix.shape[1]
    if bias is not None:
        pb = &bias[0]
    with nogil:
        qt_conv_epilogue(&acc[0, 0], aso, asr, pf, fso, fsp, &alpha[0], pb, n, P, og, &y[0],
                         yc, o0, nchw, n_threads)
