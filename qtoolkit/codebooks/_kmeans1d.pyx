# Kernels for weighted 1-D k-means: prefix sums, one layer of the optimal
# dynamic programme, and Lloyd iterations on sorted data.
#
# Prior validation of data is assumed: values sorted ascending and distinct,
# weights strictly positive and finite, every output buffer allocated by the
# caller. The kernels only compute; the GIL is released around them.
from cython.parallel cimport prange
from libc.math cimport INFINITY
from libc.stdint cimport int64_t, uint64_t
from libc.stdlib cimport free, malloc

import numpy as np


cdef inline double _seg_cost(const double* pw, const double* p1, const double* p2,
                             Py_ssize_t j, Py_ssize_t i) noexcept nogil:
    """Weighted squared error of the cluster of sorted values ``j..i`` (inclusive)."""
    cdef double w = pw[i + 1] - pw[j]
    cdef double s = p1[i + 1] - p1[j]
    cdef double c = (p2[i + 1] - p2[j]) - s * s / w
    return c if c > 0.0 else 0.0


def prefix_sums(const double[::1] x,    # IN  (n,) sorted distinct values
                const double[::1] w,    # IN  (n,) positive weights
                double shift,           # IN  value subtracted from x (the weighted mean)
                double[::1] pw,         # OUT (n + 1,) prefix sums of w
                double[::1] p1,         # OUT (n + 1,) prefix sums of w * (x - shift)
                double[::1] p2):        # OUT (n + 1,) prefix sums of w * (x - shift)**2
    """Compensated (Kahan) prefix sums of the weights and the centred moments."""
    cdef Py_ssize_t n = x.shape[0], i
    cdef double sw = 0.0, s1 = 0.0, s2 = 0.0
    cdef double cw = 0.0, c1 = 0.0, c2 = 0.0
    cdef double d, y, t
    with nogil:
        pw[0] = 0.0
        p1[0] = 0.0
        p2[0] = 0.0
        for i in range(n):
            d = x[i] - shift
            y = w[i] - cw
            t = sw + y
            cw = (t - sw) - y
            sw = t
            y = w[i] * d - c1
            t = s1 + y
            c1 = (t - s1) - y
            s1 = t
            y = w[i] * d * d - c2
            t = s2 + y
            c2 = (t - s2) - y
            s2 = t
            pw[i + 1] = sw
            p1[i + 1] = s1
            p2[i + 1] = s2


def dp_first_layer(const double[::1] pw, const double[::1] p1, const double[::1] p2,
                   double[::1] d_out):   # OUT (n,) cost of one cluster over 0..i
    """Row of the programme for a single cluster: ``D_1(i) = cost(0, i)``."""
    cdef Py_ssize_t n = d_out.shape[0], i
    with nogil:
        for i in range(n):
            d_out[i] = _seg_cost(&pw[0], &p1[0], &p2[0], 0, i)


cdef enum:
    _BLOCK = 64       # values of one row evaluated per vectorisable block
    _MAX_CHUNKS = 64  # independent chunks of a layer (fixed: results never depend on threads)
    _MIN_ROWS_PER_THREAD = 65536  # smaller layers run on one thread


cdef inline void _solve_row(const double* pw, const double* p1, const double* p2,
                            const double* d_prev, Py_ssize_t i, Py_ssize_t lo, Py_ssize_t hi,
                            double* best_out, int* arg_out) noexcept nogil:
    """Leftmost ``argmin_{lo <= j <= hi} D_prev(j - 1) + cost(j, i)``.

    ``cost(j, i) = max(0, (p2[i + 1] - p2[j]) - (S_i - p1[j])^2 / (W_i - pw[j]))``,
    clamped at zero as ``_seg_cost`` is: a cluster whose weight is below the
    rounding of the weight prefix sums has a garbage difference ``W_i - pw[j]``
    (even zero or negative), and an unclamped quotient would make it look far
    better than any real cluster. Values are computed in blocks (a loop
    without dependencies, so the divisions vectorise) and then scanned.
    """
    cdef double buf[_BLOCK]
    cdef double wi = pw[i + 1], si = p1[i + 1], qi = p2[i + 1]
    cdef double best = INFINITY, s, v
    cdef Py_ssize_t j0 = lo, cnt, t, bj = lo
    while j0 <= hi:
        cnt = hi - j0 + 1
        if cnt > _BLOCK:
            cnt = _BLOCK
        for t in range(cnt):
            s = si - p1[j0 + t]
            v = (qi - p2[j0 + t]) - s * s / (wi - pw[j0 + t])
            buf[t] = d_prev[j0 + t - 1] + (v if v > 0.0 else 0.0)
        for t in range(cnt):
            if buf[t] < best:
                best = buf[t]
                bj = j0 + t
        j0 += cnt
    best_out[0] = best
    arg_out[0] = <int>bj


cdef void _solve_range(const double* pw, const double* p1, const double* p2,
                       const double* d_prev, const double* a, const int* lower,
                       Py_ssize_t lower_off, Py_ssize_t lower_len,
                       double* d_out, int* arg, Py_ssize_t ilo,
                       Py_ssize_t r0, Py_ssize_t r1, Py_ssize_t lo0, Py_ssize_t hi0) noexcept nogil:
    """Solve rows ``r0 .. r1`` (offsets from ``ilo``) coarse to fine.

    ``lo0`` and ``hi0`` bound the argmins of the whole range (from the
    neighbouring rows already solved). A row at stride ``h`` searches between
    the argmins of the rows ``h`` before and after it; the argmin of the
    previous layer at the same row is a further lower bound.
    """
    cdef Py_ssize_t nrows = r1 - r0 + 1, h = 1, r, i, lo, hi, lb, q
    cdef double v
    if nrows <= 0:
        return
    while h * 2 <= nrows:
        h *= 2
    while h >= 1:
        q = h - 1
        while q < nrows:
            r = r0 + q
            i = ilo + r
            lo = lo0
            if q - h >= 0:
                lo = arg[r - h]
            if lower_len > 0 and i - lower_off < lower_len:
                lb = lower[i - lower_off]
                if lb > lo:
                    lo = lb
            hi = hi0
            if q + h < nrows:
                hi = arg[r + h]
            if hi > i:
                hi = i
            _solve_row(pw, p1, p2, d_prev, i, lo, hi, &v, &arg[r])
            d_out[i] = v
            q += 2 * h
        h //= 2


def dp_layer(const double[::1] pw, const double[::1] p1, const double[::1] p2,
             const double[::1] d_prev,   # IN  (n,) D_{m}(i): best error of m clusters on 0..i
             const int[::1] lower,       # IN  argmins of the previous layer (lower bounds), or empty
             Py_ssize_t lower_off,       # IN  row i of the previous layer is lower[i - lower_off]
             double[::1] d_out,          # OUT (n,) D_{m+1}(i) for i in [ilo, ihi]
             int[::1] arg_out,           # OUT (ihi - ilo + 1,) start of the last cluster for row i
             double[::1] work,           # WORK (n,)
             Py_ssize_t m,               # IN  number of clusters already placed (>= 1)
             Py_ssize_t ilo, Py_ssize_t ihi,
             int n_threads):
    """One layer of the optimal 1-D k-means programme.

    ``D_{m+1}(i) = min_{m <= j <= i} D_m(j - 1) + cost(j, i)``. The leftmost
    argmin is monotone in ``i`` (the cost is a Monge array). The rows are cut
    into at most 64 chunks by pivot rows; the pivots are solved first (coarse
    to fine among themselves), then the chunks, independently and in
    parallel, each coarse to fine inside the argmins of its two pivots. The
    chunking does not depend on the thread count, so neither does the result.
    """
    cdef Py_ssize_t nrows = ihi - ilo + 1, n = pw.shape[0] - 1
    cdef Py_ssize_t nchunks, c, j, t, h, q, r, i, lo, hi, lb, r0, r1, lo0, hi0
    cdef Py_ssize_t piv[_MAX_CHUNKS]
    cdef Py_ssize_t lower_len = lower.shape[0]
    cdef const double* ppw = &pw[0]
    cdef const double* pp1 = &p1[0]
    cdef const double* pp2 = &p2[0]
    cdef const double* pdp = &d_prev[0]
    cdef const int* plow = &lower[0] if lower_len > 0 else NULL
    cdef double* pa = &work[0]
    cdef double* pd = &d_out[0]
    cdef int* parg = &arg_out[0]
    cdef double v
    if nrows <= 0:
        return
    if nrows < _MIN_ROWS_PER_THREAD * n_threads:
        # a barrier per layer costs more than small layers gain, above all on a busy machine
        n_threads = 1
    with nogil:
        nchunks = nrows // 4096
        if nchunks > _MAX_CHUNKS:
            nchunks = _MAX_CHUNKS
        if nchunks <= 1:
            _solve_range(ppw, pp1, pp2, pdp, pa, plow, lower_off, lower_len, pd, parg, ilo,
                         0, nrows - 1, m, ihi)
        else:
            # pivot t ends chunk t; pivots are solved coarse to fine among themselves
            for t in range(nchunks - 1):
                piv[t] = (t + 1) * nrows // nchunks - 1
            h = 1
            while h * 2 <= nchunks - 1:
                h *= 2
            while h >= 1:
                q = h - 1
                while q < nchunks - 1:
                    r = piv[q]
                    i = ilo + r
                    lo = m
                    if q - h >= 0:
                        lo = parg[piv[q - h]]
                    if lower_len > 0 and i - lower_off < lower_len:
                        lb = plow[i - lower_off]
                        if lb > lo:
                            lo = lb
                    hi = i
                    if q + h < nchunks - 1 and parg[piv[q + h]] < hi:
                        hi = parg[piv[q + h]]
                    _solve_row(ppw, pp1, pp2, pdp, i, lo, hi, &v, &parg[r])
                    pd[i] = v
                    q += 2 * h
                h //= 2
            for c in prange(nchunks, num_threads=n_threads, schedule="dynamic"):
                r0 = 0 if c == 0 else piv[c - 1] + 1
                r1 = nrows - 1 if c == nchunks - 1 else piv[c] - 1
                lo0 = m if c == 0 else parg[piv[c - 1]]
                hi0 = ihi if c == nchunks - 1 else parg[piv[c]]
                _solve_range(ppw, pp1, pp2, pdp, pa, plow, lower_off, lower_len, pd, parg,
                             ilo, r0, r1, lo0, hi0)


def lloyd(const double[::1] x,       # IN  (n,) sorted distinct values
          const double[::1] pw,      # IN  (n + 1,) prefix sums of the weights
          const double[::1] p1,      # IN  (n + 1,) prefix sums of w * (x - shift)
          const double[::1] p2,      # IN  (n + 1,) prefix sums of w * (x - shift)**2
          double shift,
          double[::1] centers,       # IN/OUT (k,) sorted centres, in units of x
          long[::1] starts,          # OUT (k + 1,) cluster t holds x[starts[t]:starts[t+1]]
          int max_iter, double tol):
    """Weighted 1-D Lloyd on sorted data; returns the number of iterations run.

    One iteration costs ``O(k log n)``: the boundaries between consecutive
    centres are located by binary search and the new centres are read off the
    prefix sums. A value exactly on a boundary goes to the lower centre.
    Empty clusters are moved to split the cluster of largest error (at its
    mean). Stops when the assignment no longer changes, when the squared
    centre shift falls to ``tol`` or below, or after ``max_iter`` iterations.
    """
    cdef Py_ssize_t n = x.shape[0], k = centers.shape[0]
    cdef Py_ssize_t t, lo, hi, mid, s, e, best_t, a
    cdef int it = 0
    cdef bint changed
    cdef double bnd, shift2, cnew, wsum, worst, cst, cmean, tmp
    cdef long prev_start
    with nogil:
        starts[0] = 0
        starts[k] = n
        while it < max_iter:
            it += 1
            changed = False
            # assignment: starts[t] = first index with x > boundary(t - 1, t)
            for t in range(1, k):
                bnd = 0.5 * (centers[t - 1] + centers[t])
                lo = starts[t - 1]
                hi = n
                while lo < hi:
                    mid = (lo + hi) // 2
                    if x[mid] <= bnd:
                        lo = mid + 1
                    else:
                        hi = mid
                prev_start = starts[t]
                starts[t] = lo
                if it == 1 or prev_start != lo:
                    changed = True
            # update: weighted means, empty clusters split the worst cluster
            shift2 = 0.0
            for t in range(k):
                s = starts[t]
                e = starts[t + 1]
                if e > s:
                    cnew = shift + (p1[e] - p1[s]) / (pw[e] - pw[s])
                    shift2 += (cnew - centers[t]) * (cnew - centers[t])
                    centers[t] = cnew
            for t in range(k):
                if starts[t + 1] > starts[t]:
                    continue
                worst = -1.0
                best_t = -1
                for a in range(k):
                    s = starts[a]
                    e = starts[a + 1]
                    if e - s >= 2:
                        cst = _seg_cost(&pw[0], &p1[0], &p2[0], s, e - 1)
                        if cst > worst:
                            worst = cst
                            best_t = a
                if best_t < 0:
                    break
                s = starts[best_t]
                e = starts[best_t + 1]
                cmean = centers[best_t]
                lo = s
                hi = e
                while lo < hi:
                    mid = (lo + hi) // 2
                    if x[mid] <= cmean:
                        lo = mid + 1
                    else:
                        hi = mid
                if lo == s:
                    lo = s + 1
                elif lo == e:
                    lo = e - 1
                centers[best_t] = shift + (p1[lo] - p1[s]) / (pw[lo] - pw[s])
                centers[t] = shift + (p1[e] - p1[lo]) / (pw[e] - pw[lo])
                shift2 = INFINITY
                changed = True
                # keep the centres sorted (insertion of the moved centre)
                a = t
                while a > 0 and centers[a - 1] > centers[a]:
                    tmp = centers[a - 1]
                    centers[a - 1] = centers[a]
                    centers[a] = tmp
                    a -= 1
                while a < k - 1 and centers[a + 1] < centers[a]:
                    tmp = centers[a + 1]
                    centers[a + 1] = centers[a]
                    centers[a] = tmp
                    a += 1
                # one relocation per iteration: the sizes are stale after it
                break
            if not changed or shift2 <= tol:
                break
    return it


cdef extern from "_kmeans1d_lambda.h" nogil:
    ctypedef struct qt_km_pref:
        double w, s, q
    void qt_km_prefix(const double* x, const double* w, Py_ssize_t n, double shift,
                      qt_km_pref* P) noexcept
    int qt_km_lambda(const qt_km_pref* P, const double* xc, Py_ssize_t n, Py_ssize_t k,
                     int64_t* out) noexcept
    size_t qt_km_lambda_bytes(Py_ssize_t n, Py_ssize_t k) noexcept
    int qt_km_lambda_in(const qt_km_pref* P, const double* xc, Py_ssize_t n, Py_ssize_t k,
                        int64_t* out, void* buf, double* lam_io) noexcept
    void qt_km_fit_rows(const double* X, const double* W, int shared, int sorted,
                        Py_ssize_t r, Py_ssize_t n, Py_ssize_t k, double* centers,
                        double* inertia, int* status, int n_threads) noexcept
    ctypedef struct qt_km_rec:
        unsigned long long key
        double w
    Py_ssize_t qt_km_distinct(const double* x, const double* w, Py_ssize_t n, double* ux,
                              double* uw, qt_km_rec* recs, unsigned int* hist) noexcept
    size_t QT_KM_RADIX_HIST(int bits)
    int QT_KM_RADIX_BITS(Py_ssize_t n)


#: Work space (bytes) from which optimal_starts takes its buffers from NumPy.
_NUMPY_WORK_BYTES = 1 << 22


def optimal_starts(const double[::1] x,      # IN  (n,) sorted distinct values
                   const double[::1] w,      # IN  (n,) positive weights
                   double shift,             # IN  value subtracted from x (the weighted mean)
                   int64_t[::1] starts):     # OUT (k + 1,) cluster t holds x[starts[t]:starts[t+1]]
    """Optimal partition of ``k = starts.shape[0] - 1`` clusters (Lagrangian search).

    Returns the number of penalised programmes solved. See ``_kmeans1d_lambda.h``.
    """
    cdef Py_ssize_t n = x.shape[0], k = starts.shape[0] - 1
    cdef int it
    cdef Py_ssize_t i
    cdef size_t ws_bytes = qt_km_lambda_bytes(n, k)
    cdef unsigned char[::1] p_buf, ws_buf
    cdef double[::1] xc_buf
    cdef qt_km_pref* P
    cdef double* xc
    if ws_bytes < _NUMPY_WORK_BYTES:
        P = <qt_km_pref*>malloc((n + 1) * sizeof(qt_km_pref))
        xc = <double*>malloc(n * sizeof(double))
        if P == NULL or xc == NULL:
            free(P)
            free(xc)
            raise MemoryError("kmeans_1d: no memory for the prefix sums")
        with nogil:
            qt_km_prefix(&x[0], &w[0], n, shift, P)
            for i in range(n):
                xc[i] = x[i] - shift
            it = qt_km_lambda(P, xc, n, k, &starts[0])
        free(P)
        free(xc)
    else:
        # large problems: NumPy's buffers, which it backs by huge pages where the system
        # offers them on request (the programme's reads of the prefix sums are scattered,
        # and memory from malloc may or may not be backed so, by the history of the heap)
        p_buf = np.empty((n + 1) * sizeof(qt_km_pref), dtype=np.uint8)
        xc_buf = np.empty(n)
        ws_buf = np.empty(ws_bytes, dtype=np.uint8)
        P = <qt_km_pref*>&p_buf[0]
        xc = &xc_buf[0]
        with nogil:
            qt_km_prefix(&x[0], &w[0], n, shift, P)
            for i in range(n):
                xc[i] = x[i] - shift
            it = qt_km_lambda_in(P, xc, n, k, &starts[0], &ws_buf[0], NULL)
    if it < 0:
        raise MemoryError("kmeans_1d: no memory for the work space")
    return it


def fit_rows(const double[:, ::1] xs,        # IN  (r, n) rows (sorted ascending if is_sorted)
             const double[::1] ws,           # IN  (r * n,) weights per entry, (n,) shared, or (0,)
             bint is_sorted,
             double[:, ::1] centers,         # OUT (r, k) sorted optimal codebooks
             double[::1] inertia,            # OUT (r,) their weighted squared errors
             int[::1] status,                # OUT (r,) 0, -1 (no memory), -2 (< k distinct values)
             int n_threads):
    """Optimal codebook of every row, rows split among threads (dynamic schedule).

    Unsorted rows (``is_sorted`` false) are sorted with their weights inside
    (stable radix sort), one work space per thread. Weights of shape ``(n,)``
    are shared by every row (only with unsorted rows).
    """
    cdef Py_ssize_t r = xs.shape[0], n = xs.shape[1], k = centers.shape[1]
    cdef Py_ssize_t nw = ws.shape[0]
    cdef bint shared = nw == n and r * n != n
    if r == 0:
        return
    with nogil:
        qt_km_fit_rows(&xs[0, 0], &ws[0] if nw > 0 else NULL, shared, is_sorted, r, n, k,
                       &centers[0, 0], &inertia[0], &status[0], n_threads)


def distinct_weighted(const double[::1] x,    # IN  (n,) values in any order
                      const double[::1] w,    # IN  (n,) non-negative weights
                      double[::1] ux,         # OUT (n,) sorted distinct values (first m)
                      double[::1] uw):        # OUT (n,) their summed weights (first m)
    """Sort (value, weight) pairs by a stable radix sort and merge equal values.

    Zero weights are dropped. Returns the number ``m`` of distinct values.
    """
    cdef Py_ssize_t n = x.shape[0], m
    cdef int bits = QT_KM_RADIX_BITS(n)
    cdef qt_km_rec* recs = <qt_km_rec*>malloc(2 * (n if n > 0 else 1) * sizeof(qt_km_rec))
    cdef unsigned int* hist = <unsigned int*>malloc(QT_KM_RADIX_HIST(bits) * 4)
    if recs == NULL or hist == NULL:
        free(recs)
        free(hist)
        raise MemoryError("kmeans_1d: no memory to sort the values")
    with nogil:
        m = qt_km_distinct(&x[0], &w[0], n, &ux[0], &uw[0], recs, hist)
    free(recs)
    free(hist)
    return m


cdef extern from "_kmeans1d_distinct.h" nogil:
    int qt_kd_equal_weights(const double* w, Py_ssize_t n, double* w0) noexcept
    Py_ssize_t qt_kd_distinct_f32(const float* x, const double* w, Py_ssize_t n, double* out,
                                  void* fin) noexcept
    Py_ssize_t qt_kd_distinct_f64(const double* x, const double* w, Py_ssize_t n, double* out,
                                  void* fin) noexcept
    size_t QT_KD_SCRATCH_F32(Py_ssize_t n)
    Py_ssize_t qt_kd_pair_keys_f32(const float* x, const double* w, Py_ssize_t n,
                                   uint64_t* keys) noexcept
    Py_ssize_t qt_kd_merge_keys(uint64_t* keys, Py_ssize_t c, const double* w,
                                double* uw) noexcept
    size_t QT_KD_SCRATCH_F64(Py_ssize_t n)


ctypedef fused _real:
    float
    double


def equal_weights(const double[::1] w):   # IN  (n,) non-negative weights
    """``(equal, w0)``: whether every positive weight equals the first one, ``w0``.

    Stops at the first positive weight that differs; ``w0`` is 0.0 when no
    weight is positive.
    """
    cdef double w0 = 0.0
    cdef int eq
    cdef Py_ssize_t n = w.shape[0]
    with nogil:
        eq = qt_kd_equal_weights(&w[0], n, &w0) if n > 0 else 1
    return bool(eq), w0


def distinct_pairs(const _real[::1] x,    # IN  (n,) values in any order, float32 or float64
                   const double[::1] w,   # IN  (n,) non-negative weights
                   double[::1] out):      # OUT (2 n,) distinct values out[:m], weights out[n:n + m]
    """Sort (value, weight) pairs in the values' own dtype and merge equal values.

    A stable radix sort on the bits of the values (32-bit keys for float32);
    zero weights are dropped, the weights of equal values summed in input
    order. Returns the number ``m`` of distinct values with positive weight.
    """
    cdef Py_ssize_t n = x.shape[0], m
    cdef size_t nbytes = QT_KD_SCRATCH_F32(n) if _real is float else QT_KD_SCRATCH_F64(n)
    cdef void* fin
    if n == 0:
        return 0
    fin = malloc(nbytes)
    if fin == NULL:
        raise MemoryError("kmeans_1d: no memory to sort the values")
    with nogil:
        if _real is float:
            m = qt_kd_distinct_f32(&x[0], &w[0], n, &out[0], fin)
        else:
            m = qt_kd_distinct_f64(&x[0], &w[0], n, &out[0], fin)
    free(fin)
    if m < 0:
        raise MemoryError("kmeans_1d: no memory to sort the values")
    return m


def pair_keys(const float[::1] x,      # IN  (n,) float32 values in any order, n <= 2**32
              const double[::1] w,     # IN  (n,) non-negative weights
              uint64_t[::1] keys):     # OUT (n,) keys of the pairs with positive weight (first c)
    """``(monotone bits of x[i]) << 32 | i`` for every ``i`` with ``w[i] > 0``; returns ``c``.

    Sorted as integers, the keys order the values, and equal values by index.
    """
    cdef Py_ssize_t n = x.shape[0], c = 0
    if n > 0:
        with nogil:
            c = qt_kd_pair_keys_f32(&x[0], &w[0], n, &keys[0])
    return c


def merge_keys(uint64_t[::1] keys,     # IN  (c,) sorted keys of pair_keys; OUT the distinct values
               const double[::1] w,    # IN  (n,) the weights given to pair_keys
               double[::1] uw):        # OUT (c,) summed weights (first m)
    """Merge sorted keys: the ``m`` distinct values overwrite ``keys[:m]`` (float64 bits).

    The weights of a value are summed in index order. Returns ``m``.
    """
    cdef Py_ssize_t c = keys.shape[0], m = 0
    if c > 0:
        with nogil:
            m = qt_kd_merge_keys(&keys[0], c, &w[0], &uw[0])
    return m
