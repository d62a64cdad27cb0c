/* AVX2 micro-kernel for k-bit weights x int8 activations: tile mr x 32 (mr <= 4).
 *
 * vpmaddubsw multiplies the unsigned codes by the signed activations and adds
 * neighbouring pairs into int16 (at most 2 * 15 * 128 for codes of <= 4 bits,
 * so it cannot saturate); the eight products of a superblock are added in
 * int16 (|sum| <= 30720) and widened to int32 once with vpmaddwd by ones. Codes of 8 bits
 * (and codebook bytes) are split into nibbles, each multiplied this way, the
 * high one weighted by 16 in vpmaddwd.
 *
 * Codes of at most 4 bits run four rows over two passes of 16 columns (one unpacked
 * code vector feeds four vpmaddubsw); the group epilogue of the last superblock of a
 * group widens, corrects and scales straight from the int16 registers. */
#ifndef QT_LOWBIT_AVX2_H
#define QT_LOWBIT_AVX2_H

#include "qt_lowbit_common.h"

#ifdef QT_X86
#include <immintrin.h>

#define QT_LB_AVX2_MR 4
/* An empty asm that takes and returns the accumulator in a register: without it gcc
 * reassociates the chains of int16 adds (integer adds are associative), computes
 * every product of a superblock first and spills them to the stack. */
#define QT_LB_AVX2_KEEP(x) __asm__("" : "+x"(x))
#define QT_LB_AVX2_TARGET __attribute__((target("avx2")))
#define QT_LB_AVX2_INLINE static inline __attribute__((always_inline, target("avx2")))

QT_LB_AVX2_INLINE __m256i qt_lb_avx2_unpack(const uint8_t *v, const int bits, const int q,
                                            const int lut, const __m256i table)
{
    __m256i x;
    switch (bits) {
    case 8:
        x = _mm256_loadu_si256((const __m256i *)(v + 64 * q));
        break;
    case 4:
        x = _mm256_loadu_si256((const __m256i *)(v + 64 * (q / 2)));
        if (q % 2) x = _mm256_srli_epi16(x, 4);
        x = _mm256_and_si256(x, _mm256_set1_epi8(15));
        break;
    case 2:
        x = _mm256_loadu_si256((const __m256i *)(v + 64 * (q / 4)));
        if (q % 4) x = _mm256_srli_epi16(x, 2 * (q % 4));
        x = _mm256_and_si256(x, _mm256_set1_epi8(3));
        break;
    case 1:
        x = _mm256_loadu_si256((const __m256i *)v);
        if (q) x = _mm256_srli_epi16(x, q);
        x = _mm256_and_si256(x, _mm256_set1_epi8(1));
        break;
    default: { /* 3 */
        __m256i lo = _mm256_loadu_si256((const __m256i *)(v + 64 * (q / 4)));
        __m256i hi = _mm256_loadu_si256((const __m256i *)(v + 128));
        if (q % 4) lo = _mm256_srli_epi16(lo, 2 * (q % 4));
        if (q > 2) hi = _mm256_srli_epi16(hi, q - 2);
        if (q < 2) hi = _mm256_slli_epi16(hi, 2 - q);
        x = _mm256_or_si256(_mm256_and_si256(lo, _mm256_set1_epi8(3)),
                            _mm256_and_si256(hi, _mm256_set1_epi8(4)));
        break;
    }
    }
    if (lut) x = _mm256_shuffle_epi8(table, x);
    return x;
}

/* acc += sum over each 4-byte lane of u (unsigned) * b (signed) */
QT_LB_AVX2_INLINE __m256i qt_lb_avx2_dot(__m256i acc, __m256i u, __m256i b, const int wide)
{
    const __m256i ones = _mm256_set1_epi16(1);
    if (!wide) return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, b), ones));
    const __m256i nib = _mm256_set1_epi8(15);
    const __m256i lo = _mm256_and_si256(u, nib);
    const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(u, 4), nib);
    acc = _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(lo, b), ones));
    return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(hi, b),
                                                   _mm256_set1_epi16(16)));
}

/* tile += scale * (mul D - zz Sa - za Ws) for one group, 8 columns at a time */
QT_LB_AVX2_INLINE void qt_lb_avx2_store_float(const qt_lb_weights *w, size_t p, size_t g,
                                              const int mr, const int32_t *d,
                                              const int32_t *sums, const int32_t *za, int asym,
                                              float *tile)
{
    const size_t G = w->n_groups, off = (p * G + g) * QT_LB_NR;
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) {
        const __m256 sc = _mm256_loadu_ps(w->scale + off + 8 * j);
        const __m256i zz = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(w->zz + off + 8 * j)));
        const __m256i ws = _mm256_loadu_si256((const __m256i *)(w->wsum + off + 8 * j));
        for (int i = 0; i < mr; ++i) {
            __m256i t = _mm256_loadu_si256((const __m256i *)(d + i * QT_LB_NR + 8 * j));
            if (w->mul == 2) t = _mm256_add_epi32(t, t);
            t = _mm256_sub_epi32(t, _mm256_mullo_epi32(zz, _mm256_set1_epi32(sums[(size_t)i * G + g])));
            if (asym) t = _mm256_sub_epi32(t, _mm256_mullo_epi32(ws, _mm256_set1_epi32(za[i])));
            float *tr = tile + i * QT_LB_NR + 8 * j;
            _mm256_storeu_ps(tr, _mm256_add_ps(_mm256_loadu_ps(tr),
                                               _mm256_mul_ps(sc, _mm256_cvtepi32_ps(t))));
        }
    }
}

/* Codes of 8 bits or codebook bytes (mr <= 2): nibble halves, int32 accumulators. */
QT_LB_AVX2_INLINE void qt_lb_avx2_body(const qt_lb_weights *w, size_t p, const int mr,
                                       const int bits, const int lut, const int8_t *a, size_t lda,
                                       const int32_t *sums, const int32_t *za, int asym,
                                       float *tile, int32_t *gout, size_t ldg, size_t ncols)
{
    const size_t G = w->n_groups;
    const size_t vb = 64 * (size_t)bits;
    const uint8_t *panel = w->w + p * w->nsb * 2 * vb;
    __m256i table = _mm256_setzero_si256();
    if (lut) table = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)w->lut));
    if (gout == NULL) memset(tile, 0, sizeof(float) * (size_t)mr * QT_LB_NR);
    for (size_t g = 0; g < G; ++g) {
        size_t s0, s1;
        qt_lb_group_range(w, g, &s0, &s1);
        /* int32 group sums in registers */
        int32_t d[2 * QT_LB_NR];
        __m256i acc[2][4];
#pragma GCC unroll 4
        for (int i = 0; i < mr; ++i)
            acc[i][0] = acc[i][1] = acc[i][2] = acc[i][3] = _mm256_setzero_si256();
        for (size_t s = s0; s < s1; ++s) {
            const uint8_t *v0 = panel + s * 2 * vb;
            const int8_t *as = a + s * QT_LB_SB;
            if (mr == 1) qt_lb_prefetch_ahead(v0, 2 * vb);
#pragma GCC unroll 8
            for (int q = 0; q < 8; ++q) {
#pragma GCC unroll 4
                for (int j = 0; j < 4; ++j) {
                    const __m256i u = qt_lb_avx2_unpack(v0 + (size_t)(j / 2) * vb + 32 * (j % 2),
                                                        bits, q, lut, table);
#pragma GCC unroll 4
                    for (int i = 0; i < mr; ++i) {
                        int32_t four;
                        memcpy(&four, as + (size_t)i * lda + 4 * q, 4);
                        acc[i][j] = qt_lb_avx2_dot(acc[i][j], u, _mm256_set1_epi32(four), 1);
                        QT_LB_AVX2_KEEP(acc[i][j]);
                    }
                }
            }
        }
        for (int i = 0; i < mr; ++i)
            for (int j = 0; j < 4; ++j)
                _mm256_storeu_si256((__m256i *)(d + i * QT_LB_NR + 8 * j), acc[i][j]);
        if (gout != NULL)
            qt_lb_store_int(w, p, g, mr, d, sums, za, gout, ldg, ncols);
        else
            qt_lb_avx2_store_float(w, p, g, mr, d, sums, za, asym, tile);
    }
}

/* Codes of at most 4 bits: vpmaddubsw sums of a superblock in int16 (each pair sum is
 * within +-3840, so eight of them cannot overflow), widened once per superblock.
 * With more than two rows the panel is done in two passes of 16 columns, so that one
 * unpacked code vector serves four rows from the 16 registers. */
QT_LB_AVX2_INLINE void qt_lb_avx2_narrow(const qt_lb_weights *w, size_t p, const int mr,
                                         const int jn, const int bits, const int8_t *a,
                                         size_t lda, const int32_t *sums, const int32_t *za,
                                         int asym, float *tile, int32_t *gout, size_t ldg,
                                         size_t ncols)
{
    const size_t G = w->n_groups;
    const size_t vb = 64 * (size_t)bits;
    const uint8_t *panel = w->w + p * w->nsb * 2 * vb;
    const __m256i ones = _mm256_set1_epi16(1), table = _mm256_setzero_si256();
    if (gout == NULL) memset(tile, 0, sizeof(float) * (size_t)mr * QT_LB_NR);
    for (size_t g = 0; g < G; ++g) {
        size_t s0, s1;
        qt_lb_group_range(w, g, &s0, &s1);
        /* int32 sums of a group of several superblocks (and of every group in integer
         * mode) wait in d (L1) */
        int32_t d[QT_LB_AVX2_MR * QT_LB_NR];
        if (gout != NULL || s1 - s0 > 1) memset(d, 0, sizeof(int32_t) * (size_t)mr * QT_LB_NR);
        for (int j0 = 0; j0 < 4; j0 += jn)
        for (size_t s = s0; s < s1; ++s) {
            const uint8_t *v0 = panel + s * 2 * vb;
            const int8_t *as = a + s * QT_LB_SB;
            if (mr == 1) qt_lb_prefetch_ahead(v0, 2 * vb);
            __m256i h16[QT_LB_AVX2_MR][4];
#pragma GCC unroll 4
            for (int i = 0; i < mr; ++i)
                h16[i][0] = h16[i][1] = h16[i][2] = h16[i][3] = _mm256_setzero_si256();
#pragma GCC unroll 8
            for (int q = 0; q < 8; ++q) {
                __m256i b[QT_LB_AVX2_MR];
#pragma GCC unroll 4
                for (int i = 0; i < mr; ++i) {
                    int32_t four;
                    memcpy(&four, as + (size_t)i * lda + 4 * q, 4);
                    b[i] = _mm256_set1_epi32(four);
                }
#pragma GCC unroll 4
                for (int jj = 0; jj < jn; ++jj) {
                    const int j = j0 + jj;
                    const __m256i u = qt_lb_avx2_unpack(v0 + (size_t)(j / 2) * vb + 32 * (j % 2),
                                                        bits, q, 0, table);
#pragma GCC unroll 4
                    for (int i = 0; i < mr; ++i) {
                        h16[i][jj] = _mm256_add_epi16(h16[i][jj], _mm256_maddubs_epi16(u, b[i]));
                        QT_LB_AVX2_KEEP(h16[i][jj]);
                    }
                }
            }
            if (s + 1 < s1 || gout != NULL) {
#pragma GCC unroll 4
                for (int i = 0; i < mr; ++i)
#pragma GCC unroll 4
                    for (int jj = 0; jj < jn; ++jj) {
                        __m256i *dj = (__m256i *)(d + i * QT_LB_NR + 8 * (j0 + jj));
                        _mm256_storeu_si256(dj, _mm256_add_epi32(_mm256_loadu_si256(dj),
                                                                 _mm256_madd_epi16(h16[i][jj], ones)));
                    }
                continue;
            }
            /* last superblock of the group, float mode: widen, correct and scale straight
             * from the registers (groups of one superblock never touch d) */
            const size_t off = (p * G + g) * QT_LB_NR;
#pragma GCC unroll 4
            for (int jj = 0; jj < jn; ++jj) {
                const int j = j0 + jj;
                const __m256 sc = _mm256_loadu_ps(w->scale + off + 8 * j);
                const __m256i zz =
                    _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(w->zz + off + 8 * j)));
                const __m256i ws = _mm256_loadu_si256((const __m256i *)(w->wsum + off + 8 * j));
#pragma GCC unroll 4
                for (int i = 0; i < mr; ++i) {
                    __m256i t = _mm256_madd_epi16(h16[i][jj], ones);
                    if (s1 - s0 > 1)
                        t = _mm256_add_epi32(
                            t, _mm256_loadu_si256((const __m256i *)(d + i * QT_LB_NR + 8 * j)));
                    if (w->mul == 2) t = _mm256_add_epi32(t, t);
                    t = _mm256_sub_epi32(
                        t, _mm256_mullo_epi32(zz, _mm256_set1_epi32(sums[(size_t)i * G + g])));
                    if (asym) t = _mm256_sub_epi32(t, _mm256_mullo_epi32(ws, _mm256_set1_epi32(za[i])));
                    float *tr = tile + i * QT_LB_NR + 8 * j;
                    _mm256_storeu_ps(tr, _mm256_add_ps(_mm256_loadu_ps(tr),
                                                       _mm256_mul_ps(sc, _mm256_cvtepi32_ps(t))));
                }
            }
        }
        if (gout != NULL) qt_lb_store_int(w, p, g, mr, d, sums, za, gout, ldg, ncols);
    }
}

/* One row of the dynamic int8 quantization of qt_lowbit.h (qt_lb_quantize_row), 32 values at
 * a time: the same float32 operations in the same order per value (multiply, round half to
 * even, add the zero point, clip), so the codes are identical. Group sums need gs % 32 == 0 or
 * one group. Returns 0, or 1 if the row holds a non-finite value (nothing written then). */
QT_LB_AVX2_TARGET static int qt_lb_quantize_row_avx2(const float *xr, size_t k, int asym,
                                                     int8_t *qr, size_t lda, size_t gs, size_t G,
                                                     int32_t *sums, int32_t *za, float *sa)
{
    const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    __m256 vlo = _mm256_setzero_ps(), vhi = _mm256_setzero_ps();
    __m256 bad = _mm256_setzero_ps();
    size_t j = 0;
    for (; j + 8 <= k; j += 8) {
        const __m256 v = _mm256_loadu_ps(xr + j);
        bad = _mm256_or_ps(bad, _mm256_cmp_ps(_mm256_sub_ps(v, v), _mm256_setzero_ps(), _CMP_NEQ_UQ));
        vlo = _mm256_min_ps(v, vlo); /* v < lo ? v : lo */
        vhi = _mm256_max_ps(v, vhi); /* v > hi ? v : hi */
    }
    if (j < k) {
        const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(k - j)), iota);
        const __m256 v = _mm256_maskload_ps(xr + j, mask);
        bad = _mm256_or_ps(bad, _mm256_cmp_ps(_mm256_sub_ps(v, v), _mm256_setzero_ps(), _CMP_NEQ_UQ));
        vlo = _mm256_min_ps(v, vlo);
        vhi = _mm256_max_ps(v, vhi);
    }
    if (_mm256_movemask_ps(bad)) return 1;
    float l8[8], h8[8];
    _mm256_storeu_ps(l8, vlo);
    _mm256_storeu_ps(h8, vhi);
    float lo, hi;
    qt_lb_lane_range(l8, h8, 8, &lo, &hi);
    float s, inv, zf;
    int32_t z;
    const int zero = !qt_lb_row_params(lo, hi, asym, &s, &inv, &zf, &z);
    const float qlo = asym ? -128.0f : -127.0f, qhi = 127.0f;
    sa[0] = s;
    za[0] = z;
    memset(sums, 0, sizeof(int32_t) * G);
    if (zero) {
        memset(qr, 0, lda);
        return 0;
    }
    const __m256 vinv = _mm256_set1_ps(inv), vz = _mm256_set1_ps(zf);
    const __m256 vqlo = _mm256_set1_ps(qlo), vqhi = _mm256_set1_ps(qhi);
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (j = 0; j < k; j += 32) {
        __m256i c[4];
        for (int t = 0; t < 4; ++t) {
            const size_t jt = j + 8 * (size_t)t;
            const __m256i mask = _mm256_cmpgt_epi32(
                _mm256_set1_epi32(jt < k ? (int)(k - jt < 8 ? k - jt : 8) : 0), iota);
            const __m256 v = (jt + 8 <= k) ? _mm256_loadu_ps(xr + jt) : _mm256_maskload_ps(xr + jt, mask);
            __m256 r = _mm256_round_ps(_mm256_mul_ps(v, vinv), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
            r = _mm256_add_ps(r, vz);
            r = _mm256_max_ps(_mm256_min_ps(r, vqhi), vqlo);
            c[t] = _mm256_and_si256(_mm256_cvttps_epi32(r), mask);
        }
        const __m256i t32 = _mm256_add_epi32(_mm256_add_epi32(c[0], c[1]), _mm256_add_epi32(c[2], c[3]));
        __m128i h = _mm_add_epi32(_mm256_castsi256_si128(t32), _mm256_extracti128_si256(t32, 1));
        h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0x4e));
        h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0xb1));
        sums[G > 1 ? j / gs : 0] += _mm_cvtsi128_si32(h);
        /* int32 -> int8 (values within [-128, 127], no saturation), in order */
        const __m256i p16 = _mm256_packs_epi32(c[0], c[1]), p16b = _mm256_packs_epi32(c[2], c[3]);
        const __m256i p8 = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(p16, p16b), order);
        if (j + 32 <= lda) {
            _mm256_storeu_si256((__m256i *)(qr + j), p8);
        } else {
            int8_t tmp[32];
            _mm256_storeu_si256((__m256i *)tmp, p8);
            memcpy(qr + j, tmp, lda - j);
        }
    }
    if (j < lda) memset(qr + j, 0, lda - j);
    return 0;
}

QT_LB_AVX2_TARGET static void qt_lb_kernel_avx2(const qt_lb_weights *w, size_t p, int mr,
                                                const int8_t *a, size_t lda, const int32_t *sums,
                                                const int32_t *za, int asym, float *tile,
                                                int32_t *gout, size_t ldg, size_t ncols)
{
#define QT_LB_AVX2_NARROW(BITS)                                                                \
    switch (mr) {                                                                              \
    case 1: qt_lb_avx2_narrow(w, p, 1, 4, BITS, a, lda, sums, za, asym, tile, gout, ldg, ncols); break; \
    case 2: qt_lb_avx2_narrow(w, p, 2, 4, BITS, a, lda, sums, za, asym, tile, gout, ldg, ncols); break; \
    case 3: qt_lb_avx2_narrow(w, p, 3, 2, BITS, a, lda, sums, za, asym, tile, gout, ldg, ncols); break; \
    default: qt_lb_avx2_narrow(w, p, 4, 2, BITS, a, lda, sums, za, asym, tile, gout, ldg, ncols); break; \
    }
    if (w->lut == NULL && w->bits != 8) {
        switch (w->bits) {
        case 1: QT_LB_AVX2_NARROW(1) break;
        case 2: QT_LB_AVX2_NARROW(2) break;
        case 3: QT_LB_AVX2_NARROW(3) break;
        default: QT_LB_AVX2_NARROW(4) break;
        }
        return;
    }
#undef QT_LB_AVX2_NARROW
    /* 8-bit codes and codebook bytes: two rows at a time */
    for (int r = 0; r < mr; r += 2) {
        const int rows = mr - r < 2 ? mr - r : 2;
        const size_t G = w->n_groups;
        float *t = tile + (size_t)r * QT_LB_NR;
        int32_t *go = gout != NULL ? gout + (size_t)r * ldg : NULL;
        const int8_t *ar = a + (size_t)r * lda;
        if (rows == 1 && w->lut)
            qt_lb_avx2_body(w, p, 1, 4, 1, ar, lda, sums + r * G, za + r, asym, t, go, ldg, ncols);
        else if (w->lut)
            qt_lb_avx2_body(w, p, 2, 4, 1, ar, lda, sums + r * G, za + r, asym, t, go, ldg, ncols);
        else if (rows == 1)
            qt_lb_avx2_body(w, p, 1, 8, 0, ar, lda, sums + r * G, za + r, asym, t, go, ldg, ncols);
        else
            qt_lb_avx2_body(w, p, 2, 8, 0, ar, lda, sums + r * G, za + r, asym, t, go, ldg, ncols);
    }
}

#endif /* QT_X86 */
#endif /* QT_LOWBIT_AVX2_H */
