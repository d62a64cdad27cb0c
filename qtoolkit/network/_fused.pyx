"""Fused uniform min-max quantization of one tensor: scales, codes packed on the fly, errors.

Prior validation is assumed: the caller in ``_methods.py`` checks dtypes, shapes, contiguity and
parameters and allocates the outputs; each function only computes, with the GIL released.
"""
from libc.stdint cimport int64_t, uint8_t

cdef extern from "_fused_kernels.h" nogil:
    int qt_uniform_stats_f32(const float *w, int64_t rows, int64_t k, int64_t g, int qmin,
                             int qmax, int mode, float *scale, float *zero, int64_t *cmin,
                             int64_t *cmax)
    int qt_uniform_stats_f64(const double *w, int64_t rows, int64_t k, int64_t g, int qmin,
                             int qmax, int mode, double *scale, double *zero, int64_t *cmin,
                             int64_t *cmax)
    int qt_uniform_codes_f32(const float *w, int64_t rows, int64_t k, int64_t g, int qmin,
                              int qmax, int mode, const float *scale, const float *zero,
                              int64_t offset, int bits, uint8_t *out, double *sq, double *ref)
    int qt_uniform_codes_f64(const double *w, int64_t rows, int64_t k, int64_t g, int qmin,
                              int qmax, int mode, const double *scale, const double *zero,
                              int64_t offset, int bits, uint8_t *out, double *sq, double *ref)

ctypedef fused real_t:
    float
    double


def uniform_stats(const real_t[:, ::1] w,     # IN (rows, k)
                  int64_t g, int qmin, int qmax, int mode,
                  real_t[:, ::1] scale,       # OUT (rows, k // g)
                  real_t[:, ::1] zero):       # OUT (rows, k // g), used when mode == 1
    """Scales (and zero points) per group; returns (all finite, smallest code, largest code)."""
    cdef int64_t rows = w.shape[0], k = w.shape[1], cmin = 0, cmax = 0
    cdef int bad = 0
    if rows == 0 or k == 0:
        return True, 0, 0
    with nogil:
        if real_t is float:
            bad = qt_uniform_stats_f32(&w[0, 0], rows, k, g, qmin, qmax, mode, &scale[0, 0],
                                       &zero[0, 0], &cmin, &cmax)
        else:
            bad = qt_uniform_stats_f64(&w[0, 0], rows, k, g, qmin, qmax, mode, &scale[0, 0],
                                       &zero[0, 0], &cmin, &cmax)
    return bad == 0, cmin, cmax


def uniform_codes(const real_t[:, ::1] w,     # IN (rows, k)
                  int64_t g, int qmin, int qmax, int mode,
                  const real_t[:, ::1] scale,  # IN (rows, k // g)
                  const real_t[:, ::1] zero,   # IN (rows, k // g)
                  int64_t offset, int bits,
                  uint8_t[::1] out):           # OUT ceil(rows * k * bits / 8) bytes
    """Pack the codes minus ``offset`` at ``bits`` bits.

    Returns (every reconstruction finite, sum (w - w_hat)^2, sum w^2).
    """
    cdef int64_t rows = w.shape[0], k = w.shape[1]
    cdef double sq = 0.0, ref = 0.0
    cdef int bad = 0
    if rows == 0 or k == 0:
        return True, 0.0, 0.0
    with nogil:
        if real_t is float:
            bad = qt_uniform_codes_f32(&w[0, 0], rows, k, g, qmin, qmax, mode, &scale[0, 0],
                                 &zero[0, 0], offset, bits, &out[0], &sq, &ref)
        else:
            bad = qt_uniform_codes_f64(&w[0, 0], rows, k, g, qmin, qmax, mode, &scale[0, 0],
                                 &zero[0, 0], offset, bits, &out[0], &sq, &ref)
    return bad == 0, sq, ref
