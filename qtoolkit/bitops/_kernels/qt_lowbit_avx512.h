/* AVX-512 VNNI micro-kernel for k-bit weights x int8 activations: tile mr x 32.
 *
 * Per quad of K values: the two halves of the panel are unpacked to 64 bytes
 * each (a 16-bit shift and a byte mask, or a vpshufb table lookup for codebook
 * weights) and every activation row adds u8 x s8 products into its int32 lanes
 * with vpdpbusd (no saturation: |D| <= 32 * 255 * 128 per superblock). The four
 * activation bytes of a quad are a broadcast memory operand. The int32 group
 * sums become float in the epilogue. */
#ifndef QT_LOWBIT_AVX512_H
#define QT_LOWBIT_AVX512_H

#include "qt_lowbit_common.h"

#ifdef QT_X86
#ifndef QT_LB_NO_IMMINTRIN
#include <immintrin.h>
#endif

#define QT_LB_VNNI_MR 6
/* (overridable only so that a test build can run this kernel on emulated intrinsics) */
#ifndef QT_LB_VNNI_TARGET
#define QT_LB_VNNI_TARGET __attribute__((target("avx512f,avx512bw,avx512vnni")))
#define QT_LB_VNNI_INLINE static inline __attribute__((always_inline, target("avx512f,avx512bw,avx512vnni")))
#endif

QT_LB_VNNI_INLINE __m512i qt_lb_vnni_unpack(const uint8_t *v, const int bits, const int q,
                                             const int lut, const __m512i table)
{
    __m512i x;
    switch (bits) {
    case 8:
        x = _mm512_loadu_si512((const void *)(v + 64 * q));
        break;
    case 4:
        x = _mm512_loadu_si512((const void *)(v + 64 * (q / 2)));
        if (q % 2) x = _mm512_srli_epi16(x, 4);
        x = _mm512_and_si512(x, _mm512_set1_epi8(15));
        break;
    case 2:
        x = _mm512_loadu_si512((const void *)(v + 64 * (q / 4)));
        if (q % 4) x = _mm512_srli_epi16(x, 2 * (q % 4));
        x = _mm512_and_si512(x, _mm512_set1_epi8(3));
        break;
    case 1:
        x = _mm512_loadu_si512((const void *)v);
        if (q) x = _mm512_srli_epi16(x, q);
        x = _mm512_and_si512(x, _mm512_set1_epi8(1));
        break;
    default: { /* 3 */
        __m512i lo = _mm512_loadu_si512((const void *)(v + 64 * (q / 4)));
        __m512i hi = _mm512_loadu_si512((const void *)(v + 128));
        if (q % 4) lo = _mm512_srli_epi16(lo, 2 * (q % 4));
        if (q > 2) hi = _mm512_srli_epi16(hi, q - 2);
        if (q < 2) hi = _mm512_slli_epi16(hi, 2 - q);
        /* (lo & 3) | (hi & 4) */
        x = _mm512_ternarylogic_epi32(_mm512_and_si512(lo, _mm512_set1_epi8(3)), hi,
                                      _mm512_set1_epi8(4), 0xF8);
        break;
    }
    }
    if (lut) x = _mm512_shuffle_epi8(table, x);
    return x;
}

static inline int32_t qt_lb_load4(const int8_t *p)
{
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

QT_LB_VNNI_INLINE void qt_lb_vnni_body(const qt_lb_weights *w, size_t p, const int mr,
                                       const int bits, const int lut, const int8_t *a, size_t lda,
                                       const int32_t *sums, const int32_t *za, int asym,
                                       float *tile, int32_t *gout, size_t ldg, size_t ncols)
{
    const size_t G = w->n_groups;
    const size_t vb = 64 * (size_t)bits; /* bytes of one half superblock */
    const uint8_t *panel = w->w + p * w->nsb * 2 * vb;
    __m512i table = _mm512_setzero_si512();
    if (lut) table = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)w->lut));
    /* float tile in registers across the groups */
    __m512 ft[QT_LB_VNNI_MR][2];
#pragma GCC unroll 8
    for (int i = 0; i < mr; ++i) ft[i][0] = ft[i][1] = _mm512_setzero_ps();
    /* zero-point correction -zz Sa by vpdpwssd: -Sa = lo + 128 hi (lo in [0, 127], |hi| <=
     * group size, so int16 while groups are under 32768 values) against the int16 pair
     * (zz, 128 zz) of every column; exact in int32 */
    const int pair = w->sb_per_group < 1024;
    for (size_t g = 0; g < G; ++g) {
        size_t s0, s1;
        qt_lb_group_range(w, g, &s0, &s1);
        __m512i acc[QT_LB_VNNI_MR][2];
#pragma GCC unroll 8
        for (int i = 0; i < mr; ++i) acc[i][0] = acc[i][1] = _mm512_setzero_si512();
        if (mr == 1) {
            /* one row (GEMV): four independent vpdpbusd chains per half (quads q mod 4),
             * added at the end of the group, so that the instruction's latency does not
             * bound the weight stream; the int32 sums are the same */
            __m512i c[4][2];
#pragma GCC unroll 4
            for (int j = 0; j < 4; ++j) c[j][0] = c[j][1] = _mm512_setzero_si512();
            for (size_t s = s0; s < s1; ++s) {
                const uint8_t *v0 = panel + s * 2 * vb, *v1 = v0 + vb;
                const int8_t *as = a + s * QT_LB_SB;
                qt_lb_prefetch_ahead(v0, 2 * vb);
#pragma GCC unroll 8
                for (int q = 0; q < 8; ++q) {
                    const __m512i u0 = qt_lb_vnni_unpack(v0, bits, q, lut, table);
                    const __m512i u1 = qt_lb_vnni_unpack(v1, bits, q, lut, table);
                    const __m512i b = _mm512_set1_epi32(qt_lb_load4(as + 4 * q));
                    c[q & 3][0] = _mm512_dpbusd_epi32(c[q & 3][0], u0, b);
                    c[q & 3][1] = _mm512_dpbusd_epi32(c[q & 3][1], u1, b);
                }
            }
            acc[0][0] = _mm512_add_epi32(_mm512_add_epi32(c[0][0], c[1][0]),
                                         _mm512_add_epi32(c[2][0], c[3][0]));
            acc[0][1] = _mm512_add_epi32(_mm512_add_epi32(c[0][1], c[1][1]),
                                         _mm512_add_epi32(c[2][1], c[3][1]));
        }
        for (size_t s = s0; s < s1 && mr > 1; ++s) {
            const uint8_t *v0 = panel + s * 2 * vb, *v1 = v0 + vb;
            const int8_t *as = a + s * QT_LB_SB;
#pragma GCC unroll 8
            for (int q = 0; q < 8; ++q) {
                const __m512i u0 = qt_lb_vnni_unpack(v0, bits, q, lut, table);
                const __m512i u1 = qt_lb_vnni_unpack(v1, bits, q, lut, table);
#pragma GCC unroll 8
                for (int i = 0; i < mr; ++i) {
                    const __m512i b = _mm512_set1_epi32(qt_lb_load4(as + (size_t)i * lda + 4 * q));
                    acc[i][0] = _mm512_dpbusd_epi32(acc[i][0], u0, b);
                    acc[i][1] = _mm512_dpbusd_epi32(acc[i][1], u1, b);
                }
            }
        }
        if (gout != NULL) {
            int32_t d[QT_LB_VNNI_MR * QT_LB_NR];
            for (int i = 0; i < mr; ++i) {
                _mm512_storeu_si512((void *)(d + i * QT_LB_NR), acc[i][0]);
                _mm512_storeu_si512((void *)(d + i * QT_LB_NR + 16), acc[i][1]);
            }
            qt_lb_store_int(w, p, g, mr, d, sums, za, gout, ldg, ncols);
            continue;
        }
        const size_t off = (p * G + g) * QT_LB_NR;
        const __m512 sc0 = _mm512_loadu_ps(w->scale + off), sc1 = _mm512_loadu_ps(w->scale + off + 16);
        /* (one zero point for all: no zero-point bytes streamed, 1/21 of a 4-bit g32 GEMV's) */
        const __m512i zz0 = w->zz_uniform ? _mm512_set1_epi32(w->zz[0])
                            : _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(w->zz + off)));
        const __m512i zz1 = w->zz_uniform ? zz0
                            : _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(w->zz + off + 16)));
        const __m512i zp0 = _mm512_or_si512(zz0, _mm512_slli_epi32(zz0, 23));
        const __m512i zp1 = _mm512_or_si512(zz1, _mm512_slli_epi32(zz1, 23));
#pragma GCC unroll 8
        for (int i = 0; i < mr; ++i) {
            __m512i t0 = acc[i][0], t1 = acc[i][1];
            if (w->mul == 2) {
                t0 = _mm512_add_epi32(t0, t0);
                t1 = _mm512_add_epi32(t1, t1);
            }
            const int32_t sa = sums[(size_t)i * G + g];
            if (pair) {
                const uint32_t ns = (uint32_t)-sa;
                const __m512i sv = _mm512_set1_epi32((int32_t)((ns & 127u) | ((ns >> 7) << 16)));
                t0 = _mm512_dpwssd_epi32(t0, zp0, sv);
                t1 = _mm512_dpwssd_epi32(t1, zp1, sv);
            } else {
                const __m512i sv = _mm512_set1_epi32(sa);
                t0 = _mm512_sub_epi32(t0, _mm512_mullo_epi32(zz0, sv));
                t1 = _mm512_sub_epi32(t1, _mm512_mullo_epi32(zz1, sv));
            }
            if (asym) {
                const __m512i zv = _mm512_set1_epi32(za[i]);
                t0 = _mm512_sub_epi32(t0, _mm512_mullo_epi32(_mm512_loadu_si512((const void *)(w->wsum + off)), zv));
                t1 = _mm512_sub_epi32(t1, _mm512_mullo_epi32(_mm512_loadu_si512((const void *)(w->wsum + off + 16)), zv));
            }
            ft[i][0] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(t0), sc0, ft[i][0]);
            ft[i][1] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(t1), sc1, ft[i][1]);
        }
    }
    if (gout == NULL) {
        for (int i = 0; i < mr; ++i) {
            _mm512_storeu_ps(tile + i * QT_LB_NR, ft[i][0]);
            _mm512_storeu_ps(tile + i * QT_LB_NR + 16, ft[i][1]);
        }
    }
}

#define QT_LB_VNNI_MRS(BITS, LUT)                                                              \
    switch (mr) {                                                                              \
    case 1: qt_lb_vnni_body(w, p, 1, BITS, LUT, a, lda, sums, za, asym, tile, gout, ldg, ncols); break; \
    case 2: qt_lb_vnni_body(w, p, 2, BITS, LUT, a, lda, sums, za, asym, tile, gout, ldg, ncols); break; \
    case 3: qt_lb_vnni_body(w, p, 3, BITS, LUT, a, lda, sums, za, asym, tile, gout, ldg, ncols); break; \
    case 4: qt_lb_vnni_body(w, p, 4, BITS, LUT, a, lda, sums, za, asym, tile, gout, ldg, ncols); break; \
    case 5: qt_lb_vnni_body(w, p, 5, BITS, LUT, a, lda, sums, za, asym, tile, gout, ldg, ncols); break; \
    default: qt_lb_vnni_body(w, p, 6, BITS, LUT, a, lda, sums, za, asym, tile, gout, ldg, ncols); break; \
    }

#ifndef QT_LB_EMULATED_VNNI
#define QT_LB_Q512_TARGET __attribute__((target("avx512f,avx512bw")))
/* The int32 codes of 16 values v (lanes outside m are 0): clip(round(v inv) + zf, -128, 127).
 * Exact: round(v inv) + zf is an integer of magnitude below 2^9. */
QT_LB_Q512_TARGET static inline __m512i qt_lb_q512_codes(__m512 v, __m512 vinv, __m512 vz,
                                                         __mmask16 m)
{
    const __m512 r = _mm512_add_ps(
        _mm512_roundscale_ps(_mm512_mul_ps(v, vinv), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC),
        vz);
    return _mm512_max_epi32(_mm512_min_epi32(_mm512_maskz_cvtps_epi32(m, r), _mm512_set1_epi32(127)),
                            _mm512_set1_epi32(-128));
}

/* Quantize one row on AVX-512 (the formulas of qt_lb_quantize_row; identical codes): 32 values
 * per step for the range; 64 per step for the codes, in one 64-byte store, and 16 at a time,
 * masked, in a group's last 63 values; one group sum reduced per group (round(x inv) lies in
 * [-127, 127] when symmetric, so the one clamp to [-128, 127] serves both forms).
 * Returns 1, writing nothing, for a row with a non-finite value (the caller's scalar loop then
 * counts them). Needs gs % 16 == 0 or one group. */
QT_LB_Q512_TARGET static int qt_lb_quantize_row_avx512(const float *xr, size_t k, int asym,
                                                       int8_t *qr, size_t lda, size_t gs,
                                                       size_t G, int32_t *sums, int32_t *za,
                                                       float *sa)
{
    const __m512 zero = _mm512_setzero_ps();
    __m512 lo0 = zero, hi0 = zero, lo1 = zero, hi1 = zero;
    __mmask16 bad = 0;
    size_t j = 0;
    for (; j + 32 <= k; j += 32) {
        const __m512 v0 = _mm512_loadu_ps(xr + j), v1 = _mm512_loadu_ps(xr + j + 16);
        bad |= _mm512_cmp_ps_mask(_mm512_sub_ps(v0, v0), zero, _CMP_NEQ_UQ);
        bad |= _mm512_cmp_ps_mask(_mm512_sub_ps(v1, v1), zero, _CMP_NEQ_UQ);
        lo0 = _mm512_min_ps(v0, lo0); /* v < lo ? v : lo */
        hi0 = _mm512_max_ps(v0, hi0);
        lo1 = _mm512_min_ps(v1, lo1);
        hi1 = _mm512_max_ps(v1, hi1);
    }
    for (; j < k; j += 16) {
        const __mmask16 m = k - j >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (k - j)) - 1);
        const __m512 v = _mm512_maskz_loadu_ps(m, xr + j);
        bad |= _mm512_cmp_ps_mask(_mm512_sub_ps(v, v), zero, _CMP_NEQ_UQ);
        lo0 = _mm512_min_ps(v, lo0);
        hi0 = _mm512_max_ps(v, hi0);
    }
    if (bad) return 1;
    float l16[16], h16[16];
    _mm512_storeu_ps(l16, _mm512_min_ps(lo1, lo0));
    _mm512_storeu_ps(h16, _mm512_max_ps(hi1, hi0));
    float lo, hi;
    qt_lb_lane_range(l16, h16, 16, &lo, &hi);
    float s, inv, zf;
    int32_t z;
    const int nonzero = qt_lb_row_params(lo, hi, asym, &s, &inv, &zf, &z);
    sa[0] = s;
    za[0] = z;
    memset(sums, 0, sizeof(int32_t) * G);
    if (!nonzero) {
        memset(qr, 0, lda);
        return 0;
    }
    const __m512 vinv = _mm512_set1_ps(inv), vz = _mm512_set1_ps(zf);
    const __m512i order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    for (size_t g = 0; g < G; ++g) {
        const size_t j0 = G > 1 ? g * gs : 0, j1 = (G > 1 && j0 + gs < k) ? j0 + gs : k;
        __m512i acc = _mm512_setzero_si512();
        for (j = j0; j + 64 <= j1; j += 64) {
            __m512i c[4];
            for (int u = 0; u < 4; ++u) {
                c[u] = qt_lb_q512_codes(_mm512_loadu_ps(xr + j + 16 * u), vinv, vz, 0xFFFF);
                acc = _mm512_add_epi32(acc, c[u]);
            }
            /* 64 codes in one store: the packs work within 128-bit lanes, so lane L
             * holds elements 4L..4L+3 of c[0], c[1], c[2], c[3]; `order` puts them back
             * (the values are in [-128, 127] already: the saturation changes nothing) */
            const __m512i b = _mm512_packs_epi16(_mm512_packs_epi32(c[0], c[1]),
                                                 _mm512_packs_epi32(c[2], c[3]));
            _mm512_storeu_si512((void *)(qr + j), _mm512_permutexvar_epi32(order, b));
        }
        for (; j < j1; j += 16) {
            const __mmask16 m =
                j1 - j >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (j1 - j)) - 1);
            const __m512i c = qt_lb_q512_codes(_mm512_maskz_loadu_ps(m, xr + j), vinv, vz, m);
            acc = _mm512_add_epi32(acc, c);
            _mm512_mask_cvtepi32_storeu_epi8(qr + j, m, c);
        }
        sums[g] = _mm512_reduce_add_epi32(acc);
    }
    if (k < lda) memset(qr + k, 0, lda - k);
    return 0;
}
#endif

QT_LB_VNNI_TARGET static void qt_lb_kernel_vnni(const qt_lb_weights *w, size_t p, int mr,
                                                const int8_t *a, size_t lda, const int32_t *sums,
                                                const int32_t *za, int asym, float *tile,
                                                int32_t *gout, size_t ldg, size_t ncols)
{
    if (w->lut) {
        QT_LB_VNNI_MRS(4, 1)
        return;
    }
    switch (w->bits) {
    case 1: QT_LB_VNNI_MRS(1, 0) break;
    case 2: QT_LB_VNNI_MRS(2, 0) break;
    case 3: QT_LB_VNNI_MRS(3, 0) break;
    case 4: QT_LB_VNNI_MRS(4, 0) break;
    default: QT_LB_VNNI_MRS(8, 0) break;
    }
}

#endif /* QT_X86 */
#endif /* QT_LOWBIT_AVX512_H */
