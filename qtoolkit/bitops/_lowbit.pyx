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
        int signed_ok
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
    int qt_lb_signed_fits(const qt_lb_weights *w)
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
    """The C view of packed weights (the arguments ``gemm`` and ``Packed`` share)."""
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
    w.signed_ok = 0  # (Packed computes it: it reads every zero point)
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


cdef class Packed:
    """The C view of one LowBitWeights' packed arrays, built once and kept with the weights.

    Holds the arrays it points into (``args``), so the view stays valid as long as it lives;
    pickles as those arguments.
    """
    cdef qt_lb_weights w
    cdef readonly tuple args
    cdef size_t lda, gs

    def __cinit__(self, wp, scale, zz, wsum, lut, size_t n, size_t k, int bits, int mul,
                  size_t sb_per_group, int zz_uniform, size_t lda, size_t gs):
        if n == 0 or k == 0:
            raise ValueError("a C view needs weights with rows and columns")
        self.args = (wp, scale, zz, wsum, lut, n, k, bits, mul, sb_per_group, zz_uniform, lda,
                     gs)
        self.lda = lda
        self.gs = gs
        self.w = _weights(wp, scale, zz, wsum, lut, n, k, bits, mul, sb_per_group, zz_uniform,
                          lda)
        self.w.signed_ok = qt_lb_signed_fits(&self.w)

    def __reduce__(self):
        return (Packed, self.args)


# What the fast path of lowbit_matmul reads from Python (set_fast_context): the dispatch
# state (this thread's level, the default, kernel_level's memo), the family name, the
# weights class, os.sched_getaffinity and the thresholds of the thread counts.
cdef object _fx_local = None, _fx_default = None, _fx_memo = None, _fx_family = None
cdef object _fx_weights_type = None, _fx_affinity = None, _fx_f32 = None
cdef object _fx_ndarray = None, _fx_empty = None
cdef Py_ssize_t _fx_min_values = 0, _fx_min_macs = 0, _fx_small_out = 0, _fx_max_threads = 0


def set_fast_context(local, default, memo, family, weights_type, affinity, Py_ssize_t min_values,
                     Py_ssize_t min_macs, Py_ssize_t small_out, Py_ssize_t max_threads):
    global _fx_local, _fx_default, _fx_memo, _fx_family, _fx_weights_type, _fx_affinity
    global _fx_f32, _fx_ndarray, _fx_empty
    global _fx_min_values, _fx_min_macs, _fx_small_out, _fx_max_threads
    import numpy
    _fx_local, _fx_default, _fx_memo, _fx_family = local, default, memo, family
    _fx_weights_type, _fx_affinity = weights_type, affinity
    _fx_f32, _fx_ndarray, _fx_empty = numpy.dtype(numpy.float32), numpy.ndarray, numpy.empty
    _fx_min_values, _fx_min_macs = min_values, min_macs
    _fx_small_out, _fx_max_threads = small_out, max_threads


cdef int _fx_threads(object n_threads, Py_ssize_t work, Py_ssize_t threshold) except -2:
    """check_n_threads(n_threads, default=1 if work < threshold else None), or -1 when the
    fast path does not apply (the caller then takes the Python path, which raises)."""
    cdef Py_ssize_t n, ncpu
    if n_threads is None:
        if work < threshold:
            return 1
        n = _fx_max_threads
    elif type(n_threads) is int:
        n = n_threads
        if n < 1 or n > _fx_max_threads:
            return -1
        if n == 1:
            return 1
    else:
        return -1
    try:
        ncpu = len(_fx_affinity(0))
    except Exception:
        return -1
    return <int>max(1, min(n, ncpu, _fx_max_threads))


def matmul_fast(x, w, symmetric, out, n_threads):
    """lowbit_matmul for the common case, or None when it is not that case.

    The common case: a C-contiguous 2-D float32 ndarray ``x`` with rows and columns, weights
    whose C view is built (``_c_view``), ``symmetric`` a bool, ``n_threads`` None or an int,
    ``out`` None (for an output below the buffer cache's size) or a C-contiguous writeable
    float32 ndarray of the product's shape, and a kernel level the dispatch has answered for
    this thread's level before. Everything else, bad input included, returns None for the
    Python path to handle. A one-row product is short enough for the Python work around it to
    count: right after the weights have streamed through the caches, that work runs several
    times slower than it does alone.
    """
    if _fx_memo is None or type(w) is not _fx_weights_type or type(x) is not _fx_ndarray:
        return None
    pw_obj = getattr(w, "_c_view", None)
    if type(pw_obj) is not Packed:
        return None
    cdef Packed pw = <Packed>pw_obj
    if x.dtype is not _fx_f32 or x.ndim != 2 or not x.flags.c_contiguous:
        return None
    cdef Py_ssize_t m = x.shape[0], k = x.shape[1]
    cdef Py_ssize_t n = <Py_ssize_t>pw.w.n
    if m == 0 or k != <Py_ssize_t>pw.w.k:
        return None
    cdef int asym
    if symmetric is True:
        asym = 0
    elif symmetric is False:
        asym = 1
    else:
        return None
    level = getattr(_fx_local, "level", None)
    if level is None:
        level = _fx_default["level"]
    hit = _fx_memo.get((_fx_family, level))
    if hit is None:
        return None
    cdef int lvl = hit[1]
    cdef int qt = _fx_threads(n_threads, m * k, _fx_min_values)
    cdef int nt = _fx_threads(n_threads, m * n * k, _fx_min_macs)
    if qt < 0 or nt < 0:
        return None
    if out is None:
        if m * n * 4 >= _fx_small_out:
            return None
        out = _fx_empty((m, n), dtype=_fx_f32)
    elif (type(out) is not _fx_ndarray or out.dtype is not _fx_f32 or out.ndim != 2
          or out.shape[0] != m or out.shape[1] != n or not out.flags.c_contiguous
          or not out.flags.writeable):
        return None
    bad = matmul_packed(pw, x, asym, out, lvl, qt, nt)
    if bad:
        raise ValueError(f"x contains NaN or Inf ({bad} values)")
    return out


def matmul_packed(Packed pw, const float[:, ::1] x, int asym, float[:, ::1] out, int level,
                  int q_threads, int n_threads):
    """Quantize the rows of ``x`` (IN) and multiply them by ``pw`` into ``out`` (OUT), in one
    call; returns the number of non-finite values in ``x`` (0: ``out`` holds the product).

    The codes, group sums, zero points and scales live in one C work buffer (the codes on a
    64-byte line) for the duration of the call.
    """
    cdef size_t m = x.shape[0], lda = pw.lda, gs = pw.gs, bad = 0
    cdef size_t G = pw.w.n_groups, k = pw.w.k
    cdef int rc = 0
    if m == 0:
        return 0
    cdef size_t qbytes = (m * lda + 63) // 64 * 64
    cdef size_t total = 64 + qbytes + 4 * (m * G + 2 * m)
    cdef char *raw = <char *>malloc(total)
    if raw == NULL:
        raise MemoryError("lowbit matmul: out of memory for the activation codes")
    cdef char *base = raw + (64 - (<size_t>raw) % 64) % 64
    cdef qt_lb_acts a
    a.a = <int8_t *>base
    a.lda = lda
    a.sums = <int32_t *>(base + qbytes)
    a.za = a.sums + m * G
    a.sa = <float *>(a.za + m)
    a.asym = asym
    with nogil:
        bad = qt_lb_quantize_rows(&x[0, 0], m, k, k, asym, <int8_t *>a.a, lda, gs, G,
                                  <int32_t *>a.sums, <int32_t *>a.za, <float *>a.sa, level,
                                  q_threads)
        if bad == 0:
            rc = qt_lb_gemm(&pw.w, &a, m, &out[0, 0], out.shape[1], NULL, level, n_threads)
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
