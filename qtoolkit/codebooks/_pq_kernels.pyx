# Kernels for product quantization: nearest-codeword encoding and
# asymmetric-distance (lookup table) scans.
#
# Prior validation of data is assumed: C-contiguous buffers of matching
# shapes, codes in range, every output allocated by the caller.
from cython cimport floating
from cython.parallel cimport prange, threadid


def pq_encode(const floating[:, ::1] X,         # IN  (n, M * d_sub)
              const floating[:, :, ::1] cbt,    # IN  (M, d_sub, K) codebooks, transposed
              const floating[:, ::1] cnorm,     # IN  (M, K) squared norms of the codewords
              int[:, ::1] codes,                # OUT (n, M) index of the nearest codeword
              floating[:, ::1] work,            # WORK (n_threads, K)
              int n_threads):
    """Nearest codeword of every sub-vector: ``argmin_k ||c_k||^2 - 2 <x, c_k>``.

    The distance row of one sub-vector is accumulated one coordinate at a
    time over all ``K`` codewords (a contiguous, vectorisable loop); ties go
    to the lowest index. Rows are split among threads; the result does not
    depend on their number.
    """
    cdef Py_ssize_t n = X.shape[0], M = cbt.shape[0], ds = cbt.shape[1], K = cbt.shape[2]
    cdef Py_ssize_t i, m, d, kk, best_k
    cdef floating v, best
    cdef floating* dist
    cdef const floating* row
    if n == 0 or M == 0:
        return
    with nogil:
        for i in prange(n, num_threads=n_threads, schedule="static"):
            dist = &work[threadid(), 0]
            for m in range(M):
                for kk in range(K):
                    dist[kk] = cnorm[m, kk]
                for d in range(ds):
                    v = -2 * X[i, m * ds + d]
                    row = &cbt[m, d, 0]
                    for kk in range(K):
                        dist[kk] = dist[kk] + v * row[kk]
                best = dist[0]
                best_k = 0
                for kk in range(1, K):
                    if dist[kk] < best:
                        best = dist[kk]
                        best_k = kk
                codes[i, m] = <int>best_k


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
