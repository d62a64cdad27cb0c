/* The binary convolution around the xnor GEMM: sign packing per pixel,
 * im2col on packed words and the fused epilogue.
 *
 * Layout of the packed input: (N, P, G, cw) words, P = H * W pixels, G channel
 * groups of cg channels, cw = ceil(cg / 64) words per group; channel c of a
 * group is bit c % 64 of word c / 64 (1 where x >= 0), bits >= cg are 0.
 *
 * From NHWC input each group's channels are contiguous and are packed as the
 * rows of qt_pack.h. From NCHW input a pixel's channels are H * W floats
 * apart: eight channels of eight neighbouring pixels are compared (one
 * movemask each gives the eight pixels' signs of one channel), the 8 x 8 bit
 * matrix is transposed in a register, and each pixel receives one byte (eight
 * channels) of its words. No per-bit work, no transposed float copy.
 */
#ifndef QT_CONV_H
#define QT_CONV_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "qt_cpu.h"
#include "qt_pack.h"

#ifdef QT_HAVE_OPENMP
#include <omp.h>
#endif

/* Transpose the 8 x 8 bit matrix whose row r is byte r (bit c of the byte is column c). */
static inline uint64_t qt_transpose8(uint64_t x)
{
    uint64_t t;
    t = (x ^ (x >> 7)) & 0x00AA00AA00AA00AAULL;
    x = x ^ t ^ (t << 7);
    t = (x ^ (x >> 14)) & 0x0000CCCC0000CCCCULL;
    x = x ^ t ^ (t << 14);
    t = (x ^ (x >> 28)) & 0x00000000F0F0F0F0ULL;
    x = x ^ t ^ (t << 28);
    return x;
}

/* Signs of 8 channels (rows of x, `ld` floats apart; `nc` <= 8 of them real) at
 * pixels [0, np) (np <= 8): byte j of the result holds pixel j's 8 channel bits. */
static inline uint64_t qt_conv_block_scalar(const float *x, size_t ld, int nc, int np,
                                            size_t *nan)
{
    uint64_t m = 0;
    for (int i = 0; i < nc; ++i) {
        const float *row = x + (size_t)i * ld;
        unsigned bits = 0;
        for (int j = 0; j < np; ++j) {
            const float v = row[j];
            *nan += (v != v);
            bits |= (unsigned)(v >= 0.0f) << j;
        }
        m |= (uint64_t)bits << (8 * i);
    }
    return qt_transpose8(m);
}

#ifdef QT_X86
/* Signs of `nc` <= 32 channels (rows of x, `ld` floats apart) at 8 pixels, as the
 * low `nc` bits of 8 int32 lanes (lane j: pixel j): per channel a compare, an and
 * with the channel's bit, an or. */
QT_PACK_TARGET static inline void qt_conv_block32_avx2(const float *x, size_t ld, int nc,
                                                       uint8_t *ob, size_t ldb,
                                                       __m256 *nanacc)
{
    const __m256 zero = _mm256_setzero_ps();
    __m256i acc = _mm256_setzero_si256();
    __m256 nm = *nanacc;
    for (int i = 0; i < nc; ++i) {
        const __m256 v = _mm256_loadu_ps(x + (size_t)i * ld);
        const __m256i ge = _mm256_castps_si256(_mm256_cmp_ps(v, zero, _CMP_GE_OQ));
        acc = _mm256_or_si256(acc, _mm256_and_si256(ge, _mm256_set1_epi32((int)(1u << i))));
        nm = _mm256_or_ps(nm, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
    }
    *nanacc = nm;
    uint32_t lanes[8];
    _mm256_storeu_si256((__m256i *)lanes, acc);
    for (int j = 0; j < 8; ++j) memcpy(ob + (size_t)j * ldb, &lanes[j], 4);
}

/* The whole blocks of 8 pixels of one group; returns 1 if a NaN was seen. */
QT_PACK_TARGET static size_t qt_conv_pack_nchw_avx2(const float *x, size_t cg, size_t P,
                                                    uint8_t *ob, size_t ldb)
{
    __m256 nanacc = _mm256_setzero_ps();
    for (size_t p0 = 0; p0 + 8 <= P; p0 += 8)
        for (size_t c0 = 0; c0 < cg; c0 += 32) {
            const int nc = (cg - c0 < 32) ? (int)(cg - c0) : 32;
            qt_conv_block32_avx2(x + c0 * P + p0, P, nc, ob + p0 * ldb + c0 / 8, ldb, &nanacc);
        }
    return _mm256_movemask_ps(nanacc) != 0;
}
#endif

/* One sample of NCHW input, one group: x points at the group's first channel plane. */
static size_t qt_conv_pack_nchw_group(const float *x, size_t cg, size_t P, uint64_t *out,
                                      size_t ldo, int use_simd)
{
    size_t nan = 0;
    uint8_t *ob = (uint8_t *)out;
    const size_t ldb = ldo * 8;
    size_t p0 = 0;
#ifdef QT_X86
    if (use_simd) {
        nan += qt_conv_pack_nchw_avx2(x, cg, P, ob, ldb);
        p0 = P / 8 * 8;
    }
#else
    (void)use_simd;
#endif
    for (; p0 < P; p0 += 8) {
        const int np = (P - p0 < 8) ? (int)(P - p0) : 8;
        for (size_t c0 = 0; c0 < cg; c0 += 8) {
            const int nc = (cg - c0 < 8) ? (int)(cg - c0) : 8;
            const uint64_t t = qt_conv_block_scalar(x + c0 * P + p0, P, nc, np, &nan);
            for (int j = 0; j < np; ++j) ob[(p0 + (size_t)j) * ldb + c0 / 8] = (uint8_t)(t >> (8 * j));
        }
    }
    return nan;
}

/* Pack the signs of x (NCHW: N x C x P, or NHWC: N x P x C floats, C = G cg)
 * into out (N, P, G, cw) words. Returns the number of NaNs seen (0 if none;
 * NaNs caught by the SIMD path are counted once per block). */
static size_t qt_conv_pack(const float *x, int nchw, size_t n, size_t P, size_t groups,
                           size_t cg, size_t cw, uint64_t *out, int use_simd, int n_threads)
{
    size_t nan = 0;
    const size_t ldo = groups * cw; /* words per pixel */
    (void)n_threads;
    if (nchw) {
        const long items = (long)(n * groups);
#ifdef QT_HAVE_OPENMP
#pragma omp parallel for num_threads(n_threads) reduction(+ : nan) schedule(static) if (n_threads > 1)
#endif
        for (long it = 0; it < items; ++it) {
            const size_t s = (size_t)it / groups, g = (size_t)it % groups;
            uint64_t *o = out + s * P * ldo + g * cw;
            for (size_t p = 0; p < P; ++p) memset(o + p * ldo, 0, cw * sizeof(uint64_t));
            nan += qt_conv_pack_nchw_group(x + (s * groups + g) * cg * P, cg, P, o, ldo, use_simd);
        }
        return nan;
    }
    const size_t full = cg / 64, rows = n * P;
#ifdef QT_HAVE_OPENMP
#pragma omp parallel for num_threads(n_threads) reduction(+ : nan) schedule(static) if (n_threads > 1)
#endif
    for (long r = 0; r < (long)rows; ++r) {
        for (size_t g = 0; g < groups; ++g) {
            const float *xr = x + (size_t)r * groups * cg + g * cg;
            uint64_t *o = out + (size_t)r * ldo + g * cw;
            memset(o, 0, cw * sizeof(uint64_t));
            size_t start = 0;
#ifdef QT_X86
            if (use_simd && full > 0) {
                nan += qt_pack_words_f32_avx2(xr, full, o);
                start = full * 64;
            }
#endif
            nan += qt_pack_tail_f32(xr, cg, o, start);
        }
    }
    (void)full;
    return nan;
}

/* im2col on packed pixels: row (s, oy, ox) of dst (taps * cw words, tap-major)
 * takes, for tap (i, j), the cw words at word offset `off` of input pixel
 * (oy sh - ph + i dh, ox sw - pw + j dw) of src (N, H, W, ldp words), or zero
 * words where that pixel is in the padding. */
static void qt_conv_im2col_words(const uint64_t *src, size_t n, size_t h, size_t w, size_t ldp,
                                 size_t off, size_t cw, size_t kh, size_t kw, size_t sh,
                                 size_t sw, size_t ph, size_t pw, size_t dh, size_t dw,
                                 size_t oh, size_t ow, uint64_t *dst, int n_threads)
{
    const size_t taps = kh * kw, ldd = taps * cw;
    const long items = (long)(n * oh);
    (void)n_threads;
#ifdef QT_HAVE_OPENMP
#pragma omp parallel for num_threads(n_threads) schedule(static) if (n_threads > 1)
#endif
    for (long it = 0; it < items; ++it) {
        const size_t s = (size_t)it / oh, oy = (size_t)it % oh;
        const uint64_t *img = src + s * h * w * ldp + off;
        for (size_t ox = 0; ox < ow; ++ox) {
            uint64_t *d = dst + ((s * oh + oy) * ow + ox) * ldd;
            for (size_t i = 0; i < kh; ++i) {
                const long y = (long)(oy * sh + i * dh) - (long)ph;
                for (size_t j = 0; j < kw; ++j, d += cw) {
                    const long xx = (long)(ox * sw + j * dw) - (long)pw;
                    if (y < 0 || y >= (long)h || xx < 0 || xx >= (long)w) {
                        memset(d, 0, cw * sizeof(uint64_t));
                    } else {
                        const uint64_t *sp = img + ((size_t)y * w + (size_t)xx) * ldp;
                        for (size_t q = 0; q < cw; ++q) d[q] = sp[q];
                    }
                }
            }
        }
    }
}

/* The epilogue of one group: for sample s, output channel o < og, position p < P,
 *
 *     y = (float)(acc[o * aso + (s P + p) * asr] + fix[o * fso + p * fsp]) * alpha[o]
 *         (+ bias[o])
 *
 * in float32, a product then a sum, each rounded (as NumPy computes them: the
 * extensions are built with -std=c11, so no contraction into an FMA), stored at
 * y[(s * yc + o0 + o) * P + p] (NCHW) or y[(s * P + p) * yc + o0 + o] (NHWC),
 * yc the layer's output channels. fix and bias may be NULL. */
static void qt_conv_epilogue(const int32_t *acc, size_t aso, size_t asr, const int32_t *fix,
                             size_t fso, size_t fsp, const float *alpha, const float *bias,
                             size_t n, size_t P, size_t og, float *y, size_t yc, size_t o0,
                             int nchw, int n_threads)
{
    (void)n_threads;
    if (nchw) {
        const long items = (long)(n * og);
#ifdef QT_HAVE_OPENMP
#pragma omp parallel for num_threads(n_threads) schedule(static) if (n_threads > 1)
#endif
        for (long it = 0; it < items; ++it) {
            const size_t s = (size_t)it / og, o = (size_t)it % og;
            const int32_t *a = acc + o * aso + s * P * asr;
            const int32_t *f = fix != NULL ? fix + o * fso : NULL;
            float *yo = y + (s * yc + o0 + o) * P;
            const float al = alpha[o], b = bias != NULL ? bias[o] : 0.0f;
            if (asr == 1 && (f == NULL || fsp == 1)) {
                /* the common cases, contiguous and vectorized */
                if (f != NULL && bias != NULL)
                    for (size_t p = 0; p < P; ++p) yo[p] = (float)(a[p] + f[p]) * al + b;
                else if (f != NULL)
                    for (size_t p = 0; p < P; ++p) yo[p] = (float)(a[p] + f[p]) * al;
                else if (bias != NULL)
                    for (size_t p = 0; p < P; ++p) yo[p] = (float)a[p] * al + b;
                else
                    for (size_t p = 0; p < P; ++p) yo[p] = (float)a[p] * al;
            } else {
                for (size_t p = 0; p < P; ++p) {
                    const float v = (float)(a[p * asr] + (f != NULL ? f[p * fsp] : 0)) * al;
                    yo[p] = bias != NULL ? v + b : v;
                }
            }
        }
        return;
    }
    const long rows = (long)(n * P);
#ifdef QT_HAVE_OPENMP
#pragma omp parallel for num_threads(n_threads) schedule(static) if (n_threads > 1)
#endif
    for (long r = 0; r < rows; ++r) {
        const size_t p = (size_t)r % P;
        const int32_t *a = acc + (size_t)r * asr;
        const int32_t *f = fix != NULL ? fix + p * fsp : NULL;
        float *yr = y + (size_t)r * yc + o0;
        if (aso == 1 && (f == NULL || fso == 1)) {
            if (f != NULL && bias != NULL)
                for (size_t o = 0; o < og; ++o) yr[o] = (float)(a[o] + f[o]) * alpha[o] + bias[o];
            else if (f != NULL)
                for (size_t o = 0; o < og; ++o) yr[o] = (float)(a[o] + f[o]) * alpha[o];
            else if (bias != NULL)
                for (size_t o = 0; o < og; ++o) yr[o] = (float)a[o] * alpha[o] + bias[o];
            else
                for (size_t o = 0; o < og; ++o) yr[o] = (float)a[o] * alpha[o];
        } else {
            for (size_t o = 0; o < og; ++o) {
                const float v = (float)(a[o * aso] + (f != NULL ? f[o * fso] : 0)) * alpha[o];
                yr[o] = bias != NULL ? v + bias[o] : v;
            }
        }
    }
}

#endif /* QT_CONV_H */
