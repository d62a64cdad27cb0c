"""Thin Cython layer over the low-bit C kernels (k-bit x int8 and ternary popcount GEMMs).

Prior validation of every argument is assumed: shapes, dtypes, contiguity, the
SIMD level and the packed layouts are checked by the public functions in
``_lowbit_weights.py``, ``_lowbit_gemm.py`` and ``_ternary.py``.
"""
from libc.stdint cimport int8_t, int32_t, int64_t, uint8_t, uint64_t
from libc.stdlib cimport free, malloc

cdef extern from "qt_lowbit_all.h" nogil:
    ctypedef struct qt_lb_weights:
        const uint8_t *w
        const float *scale
        const uint8_t *zz
        const int32_t *wsum
        const uint8_t *lut
        size_t n
        size_t k
        size_t nsb
        size_t sb_per_group
        size_t n_groups
        int bits
        int mul
        int zz_uniform
    ctypedef struct qt_lb_acts:
        const int8_t *a
        size_t lda
        const int32_t *sums
        const int32_t *za
        const float *sa
        int asym
    int qt_lb_openmp_enabled()
    int qt_lb_amx_available()
    void qt_lb_set_amx(int enabled)
    int64_t qt_lb_amx_repeat(int bits, size_t nsb, size_t reps)
    const char *qt_lb_kernel_name(int level)
    const char *qt_tern_kernel_name(int level)
    void qt_lb_pack_weights(const uint8_t *u, size_t n, size_t k, size_t ldu, int bits,
                            uint8_t *dst)
    size_t qt_lb_quantize_rows(const float *x, size_t m, size_t k, size_t ldx, int asym,
                               int8_t *q, size_t lda, size_t gs, size_t G, int32_t *sums,
                               int32_t *za, float *sa, int level, int n_threads)
    void qt_lb_row_sums(const int8_t *q, size_t m, size_t k, size_t lda, size_t gs, size_t G,
                        int32_t *sums)
    int qt_lb_gemm(const qt_lb_weights *w, const qt_lb_acts *x, size_t m, float *out,
                   size_t ldo, int32_t *gout, int level, int n_threads)
    int64_t qt_lb_ukernel_repeat(int level, int bits, size_t nsb, size_t reps)
    int qt_tern_gemm(const uint64_t *as_, const uint64_t *az, size_t m, size_t lda,
                     const uint64_t *bs, const uint64_t *bz, size_t n, size_t ldb, size_t nw,
                     int32_t *c, size_t ldc, int level, int n_threads)
    int64_t qt_tern_ukernel_repeat(int level, size_t kw, size_t reps)


def openmp_enabled():
    """True if the low-bit drivers were built with OpenMP threads."""
    return bool(qt_lb_openmp_enabled())


def amx_available():
    """True if products of 16 rows or more run on the AMX tile unit at the avx512 level."""
    return bool(qt_lb_amx_available())


def set_amx(bint enabled):
    """Let (True, the default) or stop (False) the avx512 level using AMX; for tests."""
    qt_lb_set_amx(enabled)


def kernel_names(int level):
    """(k-bit kernel, ternary kernel) names that ``level`` runs, None where it cannot run."""
    cdef const char *a = qt_lb_kernel_name(level)
    cdef const char *b = qt_tern_kernel_name(level)
    return (None if a == NULL else a.decode(), None if b == NULL else b.decode())


def pack_weights(const uint8_t[:, ::1] u, int bits, uint8_t[::1] dst):
    """Pack unsigned codes ``u`` (IN, N x K) into the panel layout ``dst`` (OUT)."""
    if u.shape[0] == 0 or u.shape[1] == 0 or dst.shape[0] == 0:
        return
    with nogil:
        qt_lb_pack_weights(&u[0, 0], u.shape[0], u.shape[1], u.shape[1], bits, &dst[0])


def quantize_rows(const float[:, ::1] x, int asym, int8_t[:, ::1] q, size_t gs,
                  int32_t[:, ::1] sums, int32_t[::1] za, float[::1] sa, int level, int n_threads):
    """Quantize rows of ``x`` (IN) into ``q``, ``sums``, ``za``, ``sa`` (OUT); return the
    number of non-finite values."""
    cdef size_t bad = 0
    cdef size_t m = x.shape[0]
    if m == 0:
        return 0
    cdef const float *px = &x[0, 0] if x.shape[1] > 0 else NULL
    with nogil:
        bad = qt_lb_quantize_rows(px, m, x.shape[1], x.shape[1], asym, &q[0, 0], q.shape[1],
                                  gs, sums.shape[1], &sums[0, 0], &za[0], &sa[0], level,
                                  n_threads)
    return bad


def row_sums(const int8_t[:, ::1] q, size_t k, size_t gs, int32_t[:, ::1] sums):
    """Group sums (OUT) of int8 codes (IN)."""
    if q.shape[0] == 0:
        return
    with nogil:
        qt_lb_row_sums(&q[0, 0], q.shape[0], k, q.shape[1], gs, sums.shape[1], &sums[0, 0])


cdef qt_lb_weights _weights(const uint8_t[::1] wp, const float[:, :, ::1] scale,
                           const uint8_t[:, :, ::1] zz, const int32_t[:, :, ::1] wsum,
                           const uint8_t[::1] lut, size_t n, size_t k, int bits, int mul,
                           size_t sb_per_group, int zz_uniform, size_t lda):
    """The C view of packed weights (the arguments ``gemm`` and ``matmul`` share)."""
    cdef qt_lb_weights w
    w.w = &wp[0]
    w.scale = &scale[0, 0, 0]
    w.zz = &zz[0, 0, 0]
    w.wsum = &wsum[0, 0, 0]
    w.lut = &lut[0] if lut is not None else NULL
    w.n = n
    w.k = k
    w.nsb = lda // 32
    w.sb_per_group = sb_per_group
    w.n_groups = scale.shape[1]
    w.bits = bits
    w.mul = mul
    w.zz_uniform = zz_uniform
    return w


def gemm(const uint8_t[::1] wp, const float[:, :, ::1] scale, const uint8_t[:, :, ::1] zz,
         const int32_t[:, :, ::1] wsum, const uint8_t[::1] lut, size_t n, size_t k, int bits,
         int mul, size_t sb_per_group, int zz_uniform, const int8_t[:, ::1] a,
         const int32_t[:, ::1] sums, const int32_t[::1] za, const float[::1] sa, int asym,
         float[:, ::1] out, int32_t[:, :, ::1] gout, int level, int n_threads):
    """Float (``out``) or integer (``gout``) low-bit product; exactly one of them is given."""
    cdef qt_lb_weights w
    cdef qt_lb_acts x
    cdef int rc
    cdef size_t m = a.shape[0]
    if m == 0 or n == 0:
        return
    w = _weights(wp, scale, zz, wsum, lut, n, k, bits, mul, sb_per_group, zz_uniform, a.shape[1])
    x.a = &a[0, 0]
    x.lda = a.shape[1]
    x.sums = &sums[0, 0]
    x.za = &za[0]
    x.sa = &sa[0] if sa is not None else NULL
    x.asym = asym
    cdef float *po = &out[0, 0] if out is not None else NULL
    cdef size_t ldo = out.shape[1] if out is not None else 0
    cdef int32_t *pg = &gout[0, 0, 0] if gout is not None else NULL
    with nogil:
        rc = qt_lb_gemm(&w, &x, m, po, ldo, pg, level, n_threads)
    if rc == -2:
        raise RuntimeError(f"lowbit gemm: SIMD level {level} cannot run on this CPU")


def matmul(const uint8_t[::1] wp, const float[:, :, ::1] scale, const uint8_t[:, :, ::1] zz,
           const int32_t[:, :, ::1] wsum, const uint8_t[::1] lut, size_t n, size_t k, int bits,
           int mul, size_t sb_per_group, int zz_uniform, const float[:, ::1] x, int asym,
           size_t lda, size_t gs, float[:, ::1] out, int level, int q_threads, int n_threads):
    """Quantize the rows of ``x`` (IN) and multiply them into ``out`` (OUT), in one call.

    The codes, group sums, zero points and scales live in one C work buffer (the codes on a
    64-byte line) for the duration of the call. Returns the number of non-finite values in
    ``x`` (0: ``out`` holds the product; otherwise it is left unwritten).
    """
    cdef size_t m = x.shape[0], G = scale.shape[1], bad = 0
    cdef int rc = 0
    if m == 0 or n == 0:
        return 0
    cdef size_t qbytes = (m * lda + 63) // 64 * 64
    cdef size_t total = 64 + qbytes + 4 * (m * G + 2 * m)
    cdef char *raw = <char *>malloc(total)
    if raw == NULL:
        raise MemoryError("lowbit matmul: out of memory for the activation codes")
    cdef char *base = raw + (64 - (<size_t>raw) % 64) % 64
    cdef int8_t *q = <int8_t *>base
    cdef int32_t *sums = <int32_t *>(base + qbytes)
    cdef int32_t *za = sums + m * G
    cdef float *sa = <float *>(za + m)
    cdef qt_lb_weights w = _weights(wp, scale, zz, wsum, lut, n, k, bits, mul, sb_per_group,
                                    zz_uniform, lda)
    cdef qt_lb_acts a
    a.a = q
    a.lda = lda
    a.sums = sums
    a.za = za
    a.sa = sa
    a.asym = asym
    with nogil:
        bad = qt_lb_quantize_rows(&x[0, 0], m, k, k, asym, q, lda, gs, G, sums, za, sa, level,
                                  q_threads)
        if bad == 0:
            rc = qt_lb_gemm(&w, &a, m, &out[0, 0], out.shape[1], NULL, level, n_threads)
    free(raw)
    if rc == -2:
        raise RuntimeError(f"lowbit gemm: SIMD level {level} cannot run on this CPU")
    return bad


def ukernel_repeat(int level, int bits, size_t nsb, size_t reps):
    """Run the k-bit micro-kernel ``reps`` times on one L1-resident panel; return MACs done."""
    cdef int64_t macs
    with nogil:
        macs = qt_lb_ukernel_repeat(level, bits, nsb, reps)
    if macs == -1:
        raise MemoryError("ukernel_repeat: out of memory")
    if macs == -2:
        raise RuntimeError(f"ukernel_repeat: SIMD level {level} cannot run on this CPU")
    return macs


def ternary_gemm(const uint64_t[:, ::1] as_, const uint64_t[:, ::1] az,
                 const uint64_t[:, ::1] bs, const uint64_t[:, ::1] bz, size_t nw,
                 int32_t[:, ::1] c, int level, int n_threads):
    """c (OUT) = ternary products of the planes (IN) over ``nw`` words."""
    cdef int rc
    cdef size_t m = as_.shape[0], n = bs.shape[0]
    if m == 0 or n == 0:
        return
    with nogil:
        rc = qt_tern_gemm(&as_[0, 0], &az[0, 0], m, as_.shape[1], &bs[0, 0], &bz[0, 0], n,
                          bs.shape[1], nw, &c[0, 0], c.shape[1], level, n_threads)
    if rc == -1:
        raise MemoryError("ternary_gemm: out of memory for the packed panels")
    if rc == -2:
        raise RuntimeError(f"ternary_gemm: SIMD level {level} cannot run on this CPU")


def amx_ukernel_repeat(int bits, size_t nsb, size_t reps):
    """Run the AMX tile loop ``reps`` times on one cache-resident panel; return MACs done."""
    cdef int64_t macs
    with nogil:
        macs = qt_lb_amx_repeat(bits, nsb, reps)
    if macs == -1:
        raise MemoryError("amx_ukernel_repeat: out of memory")
    if macs == -2:
        raise RuntimeError("amx_ukernel_repeat: this CPU (or OS) gives no AMX tiles")
    return macs


def ternary_ukernel_repeat(int level, size_t kw, size_t reps):
    """Run the ternary micro-kernel ``reps`` times on L1-resident panels; return MACs done."""
    cdef int64_t macs
    with nogil:
        macs = qt_tern_ukernel_repeat(level, kw, reps)
    if macs == -1:
        raise MemoryError("ternary_ukernel_repeat: out of memory")
    if macs == -2:
        raise RuntimeError(f"ternary_ukernel_repeat: SIMD level {level} cannot run on this CPU")
    return macs
