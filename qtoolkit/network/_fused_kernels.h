/* Uniform min-max quantization of a whole tensor in two streaming passes, codes packed on the fly.
 *
 * The tensor is `rows` rows of `k` values, each row split into groups of `g` contiguous values
 * (g = k: one group per row). For every group the scale s and zero point z are those of
 * qtoolkit.rounding.encode(w, bits, mode, axis=0, group_size=g) with range="minmax" and
 * rounding="half_even", computed with the same operations in the tensor's precision:
 *
 *   symmetric:   s = max|w| / qmax                                          (z absent)
 *   unsigned:    s = max(max w, 0) / qmax                                   (z absent)
 *   asymmetric:  hi = max(max w, 0), lo = min(min w, 0), t = 2 if the range is wider than half
 *                the dtype's max else 1, s = ((hi / t - lo / t) / (qmax - qmin)) * t,
 *                z = clip(rint(qmin - lo / s), qmin, qmax)
 *   s <= 0 (an all-zero group) becomes 1.
 *
 * and the code of w is q = clip(rint(w / s) [+ z], qmin, qmax) (rint: ties to even). Pass 1
 * (qt_uniform_stats_*) computes s and z per group, and the smallest and largest code of the
 * tensor: the code is monotone in w, so they are the codes of each group's min and max. Pass 2
 * (qt_uniform_codes_*) writes q - offset as one little-endian bit stream of `bits` bits per code
 * (code i at bits bits*i ... bits*i + bits - 1: the layout of qtoolkit.bitops.pack_codes for 1, 2,
 * 4 and 8 bits) and sums, in double, (w - s (q - z))^2 and w^2 (the reconstruction computed in
 * the tensor's precision, as rounding.decode does); it returns 1 when a reconstruction overflows.
 *
 * rint is the add-and-subtract of 1.5 * 2^(p-1) (p the mantissa width), exact with ties to even
 * for |x| < 2^(p-2) in the default rounding mode; |w / s| is clamped to 2^(p-2) first, which the
 * clip to [qmin, qmax] makes invisible. Pass 1 also reports whether every value is finite. The
 * loops are written so that the compiler vectorizes them at the baseline instruction set.
 */
#ifndef QT_FUSED_KERNELS_H
#define QT_FUSED_KERNELS_H

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#define QT_MODE_SYMMETRIC 0
#define QT_MODE_ASYMMETRIC 1
#define QT_MODE_UNSIGNED 2

#define QT_FUSED_BLOCK 1024

/* A little-endian bit stream of codes of `bits` bits (the layout of bitops.pack_codes). */
typedef struct {
    uint8_t *out;
    uint64_t acc;
    int nacc;
} qt_stream;

static inline void qt_stream_put(qt_stream *st, const uint8_t *q, int64_t n, int bits)
{
    int64_t i = 0;
    uint8_t *o = st->out;
    if (st->nacc == 0) { /* byte aligned: whole bytes at a time for 8, 4, 2 and 1 bits */
        if (bits == 8) {
            memcpy(o, q, (size_t)n);
            st->out = o + n;
            return;
        }
        if (bits == 4)
            for (; i + 2 <= n; i += 2) *o++ = (uint8_t)(q[i] | (q[i + 1] << 4));
        else if (bits == 2)
            for (; i + 4 <= n; i += 4)
                *o++ = (uint8_t)(q[i] | (q[i + 1] << 2) | (q[i + 2] << 4) | (q[i + 3] << 6));
        else if (bits == 1)
            for (; i + 8 <= n; i += 8)
                *o++ = (uint8_t)(q[i] | (q[i + 1] << 1) | (q[i + 2] << 2) | (q[i + 3] << 3) |
                                 (q[i + 4] << 4) | (q[i + 5] << 5) | (q[i + 6] << 6) |
                                 (q[i + 7] << 7));
    }
    uint64_t acc = st->acc;
    int nacc = st->nacc;
    for (; i < n; i++) {
        acc |= (uint64_t)q[i] << nacc;
        nacc += bits;
        while (nacc >= 8) {
            *o++ = (uint8_t)acc;
            acc >>= 8;
            nacc -= 8;
        }
    }
    st->out = o;
    st->acc = acc;
    st->nacc = nacc;
}

static inline void qt_stream_flush(qt_stream *st)
{
    if (st->nacc > 0) *st->out++ = (uint8_t)st->acc;
    st->acc = 0;
    st->nacc = 0;
}

#if defined(__SSE2__)
#include <emmintrin.h>

/* SSE2 (the x86-64 baseline) blocks for float32: the same operations as the scalar ones of
 * _fused_body.h, four values at a time (IEEE division, addition and min/max on finite values
 * give the same bits); the tails run the scalar code. */
static inline int qt_minmax_sse2_f32(const float *p, int64_t n, float *mn_out, float *mx_out)
{
    __m128 mn = _mm_set1_ps(p[0]), mx = mn, badm = _mm_setzero_ps();
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        __m128 v = _mm_loadu_ps(p + i), d = _mm_sub_ps(v, v);
        badm = _mm_or_ps(badm, _mm_cmpunord_ps(d, d));
        mn = _mm_min_ps(mn, v);
        mx = _mm_max_ps(mx, v);
    }
    float a[4], b[4];
    _mm_storeu_ps(a, mn);
    _mm_storeu_ps(b, mx);
    int bad = _mm_movemask_ps(badm) != 0;
    float lo = a[0], hi = b[0];
    for (int l = 1; l < 4; l++) {
        lo = a[l] < lo ? a[l] : lo;
        hi = b[l] > hi ? b[l] : hi;
    }
    for (; i < n; i++) {
        float v = p[i];
        bad |= !(v - v == 0);
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
    }
    *mn_out = lo;
    *mx_out = hi;
    return bad;
}

static inline __m128 qt_code_sse2_f32(__m128 v, __m128 s, __m128 z, __m128 qmin, __m128 qmax)
{
    const __m128 lim = _mm_set1_ps(4194304.0f), magic = _mm_set1_ps(12582912.0f);
    __m128 x = _mm_div_ps(v, s);
    x = _mm_min_ps(_mm_max_ps(x, _mm_sub_ps(_mm_setzero_ps(), lim)), lim);
    __m128 c = _mm_add_ps(_mm_sub_ps(_mm_add_ps(x, magic), magic), z);
    return _mm_min_ps(_mm_max_ps(c, qmin), qmax);
}

static int qt_codes_block_f32(const float *p, int64_t n, float s, float z, float fqmin,
                              float fqmax, float fo, float *rec, uint8_t *q8);

static inline int qt_codes_block_sse2_f32(const float *p, int64_t n, float s, float z,
                                          float fqmin, float fqmax, float fo, float *rec,
                                          uint8_t *q8)
{
    const __m128 vs = _mm_set1_ps(s), vz = _mm_set1_ps(z), lo = _mm_set1_ps(fqmin);
    const __m128 hi = _mm_set1_ps(fqmax), vo = _mm_set1_ps(fo);
    __m128 badm = _mm_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m128i q[4];
        for (int u = 0; u < 4; u++) {
            __m128 c = qt_code_sse2_f32(_mm_loadu_ps(p + i + 4 * u), vs, vz, lo, hi);
            __m128 v = _mm_mul_ps(_mm_sub_ps(c, vz), vs), d = _mm_sub_ps(v, v);
            badm = _mm_or_ps(badm, _mm_cmpunord_ps(d, d));
            _mm_storeu_ps(rec + i + 4 * u, v);
            q[u] = _mm_cvttps_epi32(_mm_sub_ps(c, vo));
        }
        __m128i a = _mm_packs_epi32(q[0], q[1]), b = _mm_packs_epi32(q[2], q[3]);
        _mm_storeu_si128((__m128i *)(q8 + i), _mm_packus_epi16(a, b));
    }
    int bad = _mm_movemask_ps(badm) != 0;
    if (i < n) bad |= qt_codes_block_f32(p + i, n - i, s, z, fqmin, fqmax, fo, rec + i, q8 + i);
    return bad;
}

static void qt_errors_block_f32(const float *p, const float *rec, int64_t n, double *e,
                                double *f);

static inline void qt_errors_block_sse2_f32(const float *p, const float *rec, int64_t n,
                                            double *e, double *f)
{
    __m128d e0 = _mm_setzero_pd(), e1 = e0, f0 = e0, f1 = e0;
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        __m128 v = _mm_loadu_ps(p + i), r = _mm_loadu_ps(rec + i);
        __m128d a0 = _mm_cvtps_pd(v), a1 = _mm_cvtps_pd(_mm_movehl_ps(v, v));
        __m128d d0 = _mm_sub_pd(a0, _mm_cvtps_pd(r));
        __m128d d1 = _mm_sub_pd(a1, _mm_cvtps_pd(_mm_movehl_ps(r, r)));
        e0 = _mm_add_pd(e0, _mm_mul_pd(d0, d0));
        e1 = _mm_add_pd(e1, _mm_mul_pd(d1, d1));
        f0 = _mm_add_pd(f0, _mm_mul_pd(a0, a0));
        f1 = _mm_add_pd(f1, _mm_mul_pd(a1, a1));
    }
    double t[8];
    _mm_storeu_pd(t, e0);
    _mm_storeu_pd(t + 2, e1);
    _mm_storeu_pd(t + 4, f0);
    _mm_storeu_pd(t + 6, f1);
    for (int l = 0; l < 4; l++) {
        e[l] += t[l];
        f[l] += t[4 + l];
    }
    if (i < n) qt_errors_block_f32(p + i, rec + i, n - i, e, f);
}

#define QT_MINMAX qt_minmax_sse2_f32
#define QT_CODES_BLOCK qt_codes_block_sse2_f32
#define QT_ERRORS_BLOCK qt_errors_block_sse2_f32
#endif

#define QT_T float
#define QT_SUF f32
#define QT_MAGIC 12582912.0f
#define QT_LIMIT 4194304.0f
#define QT_TMAX FLT_MAX
#define QT_RINT rintf
#include "_fused_body.h"
#undef QT_T
#undef QT_SUF
#undef QT_MAGIC
#undef QT_LIMIT
#undef QT_TMAX
#undef QT_RINT

#define QT_T double
#define QT_SUF f64
#define QT_MAGIC 6755399441055744.0
#define QT_LIMIT 2251799813685248.0
#define QT_TMAX DBL_MAX
#define QT_RINT rint
#include "_fused_body.h"
#undef QT_T
#undef QT_SUF
#undef QT_MAGIC
#undef QT_LIMIT
#undef QT_TMAX
#undef QT_RINT

#endif
