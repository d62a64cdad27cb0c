"""Fused loops behind the NumPy paths of qtoolkit.rounding.

Prior validation of data is assumed: the callers in ``_codebook.py`` and
``_ternary.py`` check dtypes, shapes and contiguity and allocate the outputs.
Each function only computes, with the GIL released.
"""
from libc.stdint cimport int64_t, uint64_t

ctypedef fused real_t:
    float
    double


cdef extern from "_stochastic_kernels.h" nogil:
    void qt_stochastic_grid_f32(const float *w, float *out, int64_t n, float step,
                                uint64_t key, int level)
    void qt_stochastic_grid_f64(const double *w, double *out, int64_t n, double step,
                                uint64_t key, int level)


def stochastic_grid_f32(const float[::1] w,     # IN
                        float[::1] out,         # OUT
                        float step,
                        uint64_t key,
                        int level):
    """out = step * floor(w / step + u_i) with the counter-based noise of stream ``key``.

    ``level`` is the id of the level chosen by ``qtoolkit._dispatch`` (the SSE4.1
    loop for QT_LEVEL_SSE41, the generic loop otherwise).
    """
    cdef int64_t n = w.shape[0]
    if n == 0:
        return
    with nogil:
        qt_stochastic_grid_f32(&w[0], &out[0], n, step, key, level)


def stochastic_grid_f64(const double[::1] w,    # IN
                        double[::1] out,        # OUT
                        double step,
                        uint64_t key,
                        int level):
    """out = step * floor(w / step + u_i) with the counter-based noise of stream ``key``."""
    cdef int64_t n = w.shape[0]
    if n == 0:
        return
    with nogil:
        qt_stochastic_grid_f64(&w[0], &out[0], n, step, key, level)


def ternary_scan(const real_t[:, ::1] a,   # IN, each row sorted ascending, non-negative
                 double[::1] delta,        # OUT, threshold per row
                 double[::1] alpha):       # OUT, scale per row
    """Exact ternary optimum of each sorted row: argmax over thresholds of S^2 / count."""
    cdef Py_ssize_t m = a.shape[0], n = a.shape[1]
    cdef Py_ssize_t r, i, best_i
    cdef double s, obj, best, best_s, cur
    with nogil:
        for r in range(m):
            s = 0.0
            best = -1.0
            best_i = -1
            best_s = 0.0
            # Select a[i:], i from n - 1 down to 0; the suffix sum grows.
            for i in range(n - 1, -1, -1):
                cur = a[r, i]
                s = s + cur
                if cur <= 0:
                    break
                if i > 0 and a[r, i - 1] >= cur:
                    continue
                obj = s * s / <double>(n - i)
                if obj >= best:
                    best = obj
                    best_i = i
                    best_s = s
            if best_i < 0:
                delta[r] = 0.0
                alpha[r] = 0.0
            else:
                delta[r] = a[r, best_i - 1] if best_i > 0 else 0.0
                alpha[r] = best_s / <double>(n - best_i)
