/* AVX2 micro-kernel for the ternary popcount GEMM: nibble-LUT popcounts with vpshufb.
 *
 * The panels hold nibble planes (qt_tern_pack_panel_nib): for every word, the
 * low nibbles of each byte of the sign plane, then its high nibbles, then the
 * same two for the non-zero plane. AND and XOR of two nibble planes are again
 * nibble planes, so per 128 pair-bits (one vector of 4 rows of B against one
 * broadcast word of A) the kernel spends
 *
 *     m = za & zb,  d = (sa ^ sb) & m,  acc += lut1[m] + lut2[d]
 *
 * with lut1[x] = popcount(x) and lut2[x] = 4 - 2 popcount(x), seven vector ops
 * (the xnor kernel spends three). A byte lane gains pop(m) - 2 pop(d) + 4, in
 * [0, 8] since d is a subset of m: 16 per word for both halves, so the byte
 * counters are folded into 64-bit totals with vpsadbw every 15 words; the bias
 * of 4 per nibble (64 per word and 64-bit lane) is removed at the end.
 *
 * Tile 4 x 4: four byte accumulators, the four B planes and the two tables fit
 * in the 16 ymm registers beside the broadcast A words; lane j of accumulator
 * i is row i of A against row j of B. */
#ifndef QT_TERN_AVX2_H
#define QT_TERN_AVX2_H

#include "qt_tern_common.h"

#ifdef QT_X86
#include <immintrin.h>

#define QT_TERN_AVX2_MR 4
#define QT_TERN_AVX2_NR 4
#define QT_TERN_AVX2_FLUSH 15

__attribute__((target("avx2"))) static void
qt_tern_ukernel_avx2(size_t kw, const uint64_t *ap, const uint64_t *bp, int64_t *cnt)
{
    const __m256i lut1 = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,
                                          0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
    const __m256i lut2 = _mm256_setr_epi8(4, 2, 2, 0, 2, 0, 0, -2, 2, 0, 0, -2, 0, -2, -2, -4,
                                          4, 2, 2, 0, 2, 0, 0, -2, 2, 0, 0, -2, 0, -2, -2, -4);
    const __m256i zero = _mm256_setzero_si256();
    __m256i t0 = zero, t1 = zero, t2 = zero, t3 = zero;
    size_t w = 0;
    while (w < kw) {
        const size_t end = (kw - w > QT_TERN_AVX2_FLUSH) ? w + QT_TERN_AVX2_FLUSH : kw;
        __m256i c0 = zero, c1 = zero, c2 = zero, c3 = zero;
        for (; w < end; ++w) {
            const uint64_t *a = ap + 4 * QT_TERN_AVX2_MR * w;
            const __m256i *b = (const __m256i *)(bp + 4 * QT_TERN_AVX2_NR * w);
            const __m256i bsl = _mm256_load_si256(b), bsh = _mm256_load_si256(b + 1);
            const __m256i bzl = _mm256_load_si256(b + 2), bzh = _mm256_load_si256(b + 3);
#define QT_TERN_AVX2_HALF(C, S, Z, BS, BZ)                                                   \
    do {                                                                                     \
        const __m256i m_ = _mm256_and_si256(_mm256_set1_epi64x((long long)(Z)), BZ);         \
        const __m256i d_ =                                                                   \
            _mm256_and_si256(_mm256_xor_si256(_mm256_set1_epi64x((long long)(S)), BS), m_);  \
        C = _mm256_add_epi8(C, _mm256_shuffle_epi8(lut1, m_));                               \
        C = _mm256_add_epi8(C, _mm256_shuffle_epi8(lut2, d_));                               \
    } while (0)
#define QT_TERN_AVX2_ROW(I, C)                                                                    \
    do {                                                                                          \
        QT_TERN_AVX2_HALF(C, a[I], a[2 * QT_TERN_AVX2_MR + I], bsl, bzl);                         \
        QT_TERN_AVX2_HALF(C, a[QT_TERN_AVX2_MR + I], a[3 * QT_TERN_AVX2_MR + I], bsh, bzh);       \
    } while (0)
            QT_TERN_AVX2_ROW(0, c0);
            QT_TERN_AVX2_ROW(1, c1);
            QT_TERN_AVX2_ROW(2, c2);
            QT_TERN_AVX2_ROW(3, c3);
#undef QT_TERN_AVX2_ROW
#undef QT_TERN_AVX2_HALF
        }
        t0 = _mm256_add_epi64(t0, _mm256_sad_epu8(c0, zero));
        t1 = _mm256_add_epi64(t1, _mm256_sad_epu8(c1, zero));
        t2 = _mm256_add_epi64(t2, _mm256_sad_epu8(c2, zero));
        t3 = _mm256_add_epi64(t3, _mm256_sad_epu8(c3, zero));
    }
    const __m256i bias = _mm256_set1_epi64x((long long)(64 * kw));
    _mm256_storeu_si256((__m256i *)(cnt + 0), _mm256_sub_epi64(t0, bias));
    _mm256_storeu_si256((__m256i *)(cnt + 4), _mm256_sub_epi64(t1, bias));
    _mm256_storeu_si256((__m256i *)(cnt + 8), _mm256_sub_epi64(t2, bias));
    _mm256_storeu_si256((__m256i *)(cnt + 12), _mm256_sub_epi64(t3, bias));
}
#endif /* QT_X86 */
#endif /* QT_TERN_AVX2_H */
