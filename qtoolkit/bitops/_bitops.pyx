"""Thin Cython layer over the C bit kernels: buffers in, GIL released, kernels called.

Prior validation of every argument is assumed: shapes, dtypes, contiguity and
the SIMD level are checked by the public functions in ``_packing.py`` and
``_gemm.py``.
"""
cimport cython
from cpython.ref cimport Py_DECREF, Py_INCREF, PyObject
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


# ---- the cache of freed output buffers (policy and documentation: _buffers.py) ----------
# Every field below is changed only by the C code of these functions, which call no Python
# code and allocate no Python object while they change it: under the GIL the cache is then
# never seen half-updated, and a block freed inside any of them cannot re-enter it (a freed
# raw array runs no Python code: its base is None and its memory is NumPy's own).

cdef enum:
    CACHE_SLOTS = 64
cdef PyObject *_cache_raw[CACHE_SLOTS]     # oldest first; one reference held on each
cdef Py_ssize_t _cache_cap[CACHE_SLOTS]    # its capacity in bytes (without the 64 of slack)
cdef Py_ssize_t _cache_n = 0
cdef Py_ssize_t _cache_bytes = 0
cdef Py_ssize_t _cache_limit = 0
cdef Py_ssize_t _cache_hits = 0
cdef Py_ssize_t _cache_misses = 0


cdef void _cache_drop_oldest(Py_ssize_t keep) noexcept:
    """Free the oldest cached buffers until at most ``keep`` bytes and ``CACHE_SLOTS - 1``
    buffers remain (room for one more)."""
    global _cache_n, _cache_bytes
    cdef Py_ssize_t i, j = 0
    cdef PyObject *drop[CACHE_SLOTS]
    while _cache_n and (_cache_bytes > keep or _cache_n >= CACHE_SLOTS):
        drop[j] = _cache_raw[0]
        j += 1
        _cache_bytes -= _cache_cap[0]
        _cache_n -= 1
        for i in range(_cache_n):
            _cache_raw[i] = _cache_raw[i + 1]
            _cache_cap[i] = _cache_cap[i + 1]
    for i in range(j):
        Py_DECREF(<object>drop[i])


cdef void _cache_give(object raw, Py_ssize_t cap) noexcept:
    """Keep ``raw`` (``cap`` usable bytes) for reuse, within the limit."""
    global _cache_n, _cache_bytes
    if cap > _cache_limit:
        return
    _cache_drop_oldest(_cache_limit - cap)
    Py_INCREF(raw)
    _cache_raw[_cache_n] = <PyObject *>raw
    _cache_cap[_cache_n] = cap
    _cache_n += 1
    _cache_bytes += cap


def cache_take(Py_ssize_t cap):
    """The most recently freed cached buffer of exactly ``cap`` bytes, or None."""
    global _cache_n, _cache_bytes, _cache_hits, _cache_misses
    cdef Py_ssize_t i, j
    cdef PyObject *found = NULL
    i = _cache_n - 1
    while i >= 0:
        if _cache_cap[i] == cap:
            found = _cache_raw[i]
            _cache_bytes -= cap
            _cache_n -= 1
            for j in range(i, _cache_n):
                _cache_raw[j] = _cache_raw[j + 1]
                _cache_cap[j] = _cache_cap[j + 1]
            break
        i -= 1
    if found == NULL:
        _cache_misses += 1
        return None
    _cache_hits += 1
    raw = <object>found  # a new reference; the cache's own is dropped next
    Py_DECREF(raw)
    return raw


def cache_set_limit(Py_ssize_t limit):
    """Set the limit in bytes (freeing what no longer fits); return the previous one."""
    global _cache_limit
    previous = _cache_limit
    _cache_limit = limit
    _cache_drop_oldest(limit)
    return previous


def cache_info():
    """(hits, misses, limit, cached bytes, cached buffers)."""
    return _cache_hits, _cache_misses, _cache_limit, _cache_bytes, _cache_n


@cython.no_gc
cdef class CachedBlock:
    """The owner of one cacheable output buffer.

    ``numpy.frombuffer(block)`` gives a writeable uint8 array over ``nbytes`` of ``raw``
    (a 1-D uint8 array of at least ``nbytes + 64`` bytes) starting on a 64-byte line. The
    arrays keep the block alive; when the last of them dies the block gives ``raw`` back to
    the cache instead of freeing it. It holds one array only, so it is in no cycle.
    """
    cdef object raw
    cdef Py_ssize_t cap
    cdef uint8_t *data
    cdef Py_ssize_t shape[1]
    cdef Py_ssize_t strides[1]

    def __cinit__(self, raw, Py_ssize_t nbytes):
        cdef uint8_t[::1] view = raw
        if raw.base is not None or nbytes < 0 or nbytes + 64 > view.shape[0]:
            raise ValueError("raw must own at least nbytes + 64 bytes")
        self.raw = raw
        self.cap = view.shape[0] - 64
        self.data = &view[0]
        self.data += (-<size_t>self.data) % 64
        self.shape[0] = nbytes
        self.strides[0] = 1

    def __getbuffer__(self, Py_buffer *buffer, int flags):
        buffer.buf = <void *>self.data
        buffer.len = self.shape[0]
        buffer.readonly = 0
        buffer.itemsize = 1
        buffer.format = b"B"
        buffer.ndim = 1
        buffer.shape = self.shape
        buffer.strides = self.strides
        buffer.suboffsets = NULL
        buffer.internal = NULL
        buffer.obj = self

    def __releasebuffer__(self, Py_buffer *buffer):
        pass

    def __dealloc__(self):
        if self.raw is not None:
            _cache_give(self.raw, self.cap)
