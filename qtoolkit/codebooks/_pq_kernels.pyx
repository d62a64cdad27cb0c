# Kernels for product quantization: nearest-codeword encoding and
# asymmetric-distance (lookup table) scans.
#
# Prior validation of data is assumed: C-contiguous buffers of matching
# shapes, codes in range, every output allocated by the caller.
from cython cimport floating
from cython.parallel cimport prange, threadid


cdef extern from *:
    """
    #ifdef QT_HAVE_OPENMP
    #define QT_PQ_OPENMP 1
    #else
    #define QT_PQ_OPENMP 0
    #endif
    """
    int QT_PQ_OPENMP


def openmp_enabled():
    """True if the extension was built with OpenMP."""
    return bool(QT_PQ_OPENMP)


cdef extern from "_pq_encode.h" nogil:
    ctypedef Py_ssize_t (*qt_pq_nearest_f32_t)(const float* x, const float* cbt,
                                               const float* cnorm, Py_ssize_t ds,
                                               Py_ssize_t K, float* dist) noexcept nogil
    ctypedef Py_ssize_t (*qt_pq_nearest_f64_t)(const double* x, const double* cbt,
                                               const double* cnorm, Py_ssize_t ds,
                                               Py_ssize_t K, double* dist) noexcept nogil
    qt_pq_nearest_f32_t qt_pq_nearest_f32_for(int level)
    qt_pq_nearest_f64_t qt_pq_nearest_f64_for(int level)


def pq_encode(const floating[:, ::1] X,         # IN  (n, M * d_sub)
              const floating[:, :, ::1] cbt,    # IN  (M, d_sub, K) codebooks, transposed
              const floating[:, ::1] cnorm,     # IN  (M, K) squared norms of the codewords
              int[:, ::1] codes,                # OUT (n, M) index of the nearest codeword
              floating[:, ::1] work,            # WORK (n_threads, K)
              int n_threads,
              int level):                       # C level id chosen by qtoolkit._dispatch
    """Nearest codeword of every sub-vector: ``argmin_k ||c_k||^2 - 2 <x, c_k>``.

    The per-sub-vector search is the C function of ``_pq_encode.h`` (compiled
    for AVX-512, AVX2 and the baseline on x86-64) of SIMD level ``level``; ties
    go to the lowest index. Rows are split among threads; the result does not
    depend on their number.
    """
    cdef Py_ssize_t n = X.shape[0], M = cbt.shape[0], ds = cbt.shape[1], K = cbt.shape[2]
    cdef Py_ssize_t i, m
    cdef qt_pq_nearest_f32_t near32 = qt_pq_nearest_f32_for(level)
    cdef qt_pq_nearest_f64_t near64 = qt_pq_nearest_f64_for(level)
    if n == 0 or M == 0:
        return
    with nogil:
        for i in prange(n, num_threads=n_threads, schedule="static"):
            for m in range(M):
                if floating is float:
                    codes[i, m] = <int>near32(&X[i, m * ds], &cbt[m, 0, 0], &cnorm[m, 0],
                                              ds, K, &work[threadid(), 0])
                else:
                    codes[i, m] = <int>near64(&X[i, m * ds], &cbt[m, 0, 0], &cnorm[m, 0],
                                              ds, K, &work[threadid(), 0])


def adc_scan(const floating[:, :, ::1] tables,   # IN  (nq, M, K) distances of each query part to each codeword
             const int[:, ::1] codes,           # IN  (n, M) database codes
             floating[:, ::1] out,              # OUT (nq, n) approximate squared distances
             int n_threads):
    """Asymmetric distances: ``out[q, i] = sum_m tables[q, m, codes[i, m]]``."""
    cdef Py_ssize_t nq = tables.shape[0], M = tables.shape[1], n = codes.shape[0]
    cdef Py_ssize_t q, i, m
    cdef floating s
    if nq == 0 or n == 0:
        return
    with nogil:
        for i in prange(n, num_threads=n_threads, schedule="static"):
            for q in range(nq):
                s = 0
                for m in range(M):
                    s = s + tables[q, m, codes[i, m]]
                out[q, i] = s


cdef extern from "_rq_encode.h" nogil:
    int QT_RQ_KPAD
    int qt_rq_beam_f32(const float* X, Py_ssize_t n, Py_ssize_t d, const float* books,
                       const float* cbt, const float* cnorm, Py_ssize_t S, Py_ssize_t K,
                       Py_ssize_t Kp, Py_ssize_t B, int* codes, float* err,
                       int n_threads, int level)
    int qt_rq_beam_f64(const double* X, Py_ssize_t n, Py_ssize_t d, const double* books,
                       const double* cbt, const double* cnorm, Py_ssize_t S, Py_ssize_t K,
                       Py_ssize_t Kp, Py_ssize_t B, int* codes, double* err,
                       int n_threads, int level)


def rq_kpad():
    """The multiple to which ``rq_beam_encode`` wants the codebooks' K padded."""
    return QT_RQ_KPAD


def rq_beam_encode(const floating[:, ::1] X,         # IN  (n, d)
                   const floating[:, :, ::1] books,  # IN  (S, K, d) stage codebooks
                   const floating[:, :, ::1] cbt,    # IN  (S, d, Kp) transposed, zero-padded
                   const floating[:, ::1] cnorm,     # IN  (S, K) squared norms of the codewords
                   Py_ssize_t beam_size,
                   int[:, ::1] codes,                # OUT (n, S)
                   floating[::1] err,                # OUT (n,) squared error of the code
                   int n_threads,
                   int level):                       # C level id chosen by qtoolkit._dispatch
    """Beam search of residual quantization (``_rq_encode.h``), GIL released.

    Returns 0, or -1 if a thread could not allocate its work space.
    """
    cdef Py_ssize_t n = X.shape[0], d = X.shape[1], S = books.shape[0], K = books.shape[1]
    cdef Py_ssize_t Kp = cbt.shape[2]
    cdef int rc = 0
    if n == 0 or S == 0:
        return 0
    with nogil:
        if floating is float:
            rc = qt_rq_beam_f32(&X[0, 0], n, d, &books[0, 0, 0], &cbt[0, 0, 0], &cnorm[0, 0],
                                S, K, Kp, beam_size, &codes[0, 0], &err[0], n_threads, level)
        else:
            rc = qt_rq_beam_f64(&X[0, 0], n, d, &books[0, 0, 0], &cbt[0, 0, 0], &cnorm[0, 0],
                                S, K, Kp, beam_size, &codes[0, 0], &err[0], n_threads, level)
    return rc
