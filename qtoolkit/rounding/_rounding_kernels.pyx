"""Fused loops behind the NumPy paths of qtoolkit.rounding.

Prior validation of data is assumed: the callers in ``_codebook.py`` and
``_ternary.py`` check dtypes, shapes and contiguity and allocate the outputs.
Each function only computes, with the GIL released.
"""
from libc.stdint cimport int64_t, uint64_t

ctypedef fused real_t:
    float
    double


cdef inline uint64_t _splitmix(uint64_t key, Py_ssize_t i) noexcept nogil:
    # SplitMix64 output for counter i + 1 of the stream ``key`` (Steele et al. 2014).
    cdef uint64_t z = key + (<uint64_t>0x9E3779B97F4A7C15ULL) * (<uint64_t>i + 1)
    z = (z ^ (z >> 30)) * (<uint64_t>0xBF58476D1CE4E5B9ULL)
    z = (z ^ (z >> 27)) * (<uint64_t>0x94D049BB133111EBULL)
    return z ^ (z >> 31)


def stochastic_grid_f32(const float[::1] w,     # IN
                        float[::1] out,         # OUT
                        float step,
                        uint64_t key):
    """out = w / step + u_i, u_i = top 24 bits of SplitMix64(key, i) * 2**-24.

    The caller floors and rescales in place with NumPy's SIMD ufuncs, which
    is faster than a libm floor call per entry at the baseline ISA.
    """
    cdef Py_ssize_t i, n = w.shape[0]
    cdef float u
    if n == 0:
        return
    with nogil:
        for i in range(n):
            u = <float>(<int64_t>(_splitmix(key, i) >> 40)) * <float>5.9604644775390625e-08
            out[i] = w[i] / step + u


def stochastic_grid_f64(const double[::1] w,    # IN
                        double[::1] out,        # OUT
                        double step,
                        uint64_t key):
    """out = w / step + u_i, u_i = top 53 bits of SplitMix64(key, i) * 2**-53."""
    cdef Py_ssize_t i, n = w.shape[0]
    cdef double u
    if n == 0:
        return
    with nogil:
        for i in range(n):
            u = <double>(<int64_t>(_splitmix(key, i) >> 11)) * 1.1102230246251565e-16
            out[i] = w[i] / step + u


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
