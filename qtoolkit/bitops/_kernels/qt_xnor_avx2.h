/* AVX2 micro-kernel: tile 3 x 8, nibble-LUT popcount with vpshufb.
 *
 * Both panels hold nibble planes (low nibbles, then high nibbles, of every
 * byte), so a 4-bit difference is lo(a) ^ lo(b) with no shift or mask in the
 * loop: per 256 pair-bits the kernel spends two xors, two vpshufb and two byte
 * adds. Byte counters grow by at most 8 a step, so they are folded into 64-bit
 * totals with vpsadbw every 31 steps, before they can overflow.
 *
 * Lanes are outputs: lane j of accumulator (i, v) counts row i of A against
 * row 4 v + j of B, so no horizontal reduction is needed at the end.
 *
 * Three rows, not four: six byte accumulators, the table, four B planes, two
 * broadcast A words and a temporary fit the 16 ymm registers, where a 4 x 8
 * tile made gcc spill three accumulators to the stack in the inner loop (about
 * 7% slower in cache). The op count per pair is the same either way: the A
 * words are broadcast once per row for both B vectors.
 */
#ifndef QT_XNOR_AVX2_H
#define QT_XNOR_AVX2_H

#include "qt_cpu.h"
#include "qt_ukernel.h"

#ifdef QT_X86
#include <immintrin.h>

#define QT_AVX2_MR 3
#define QT_AVX2_NR 8

#define QT_AVX2_TARGET __attribute__((target("avx2,popcnt")))

QT_AVX2_TARGET static inline __m256i qt_avx2_to_i32x8(__m256i q0, __m256i q1)
{
    /* low dwords of two vectors of 4 int64 -> 8 int32 in order */
    __m256 s = _mm256_shuffle_ps(_mm256_castsi256_ps(q0), _mm256_castsi256_ps(q1),
                                 _MM_SHUFFLE(2, 0, 2, 0));
    return _mm256_permute4x64_epi64(_mm256_castps_si256(s), _MM_SHUFFLE(3, 1, 2, 0));
}

QT_AVX2_TARGET static void qt_ukernel_avx2(size_t kw, const uint64_t *ap, const uint64_t *bp,
                                           int32_t *c, size_t ldc, int mode, int32_t kbits)
{
    const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,
                                         0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
    const __m256i zero = _mm256_setzero_si256();
    __m256i t00 = zero, t01 = zero, t10 = zero, t11 = zero, t20 = zero, t21 = zero;
    size_t w = 0;
    while (w < kw) {
        const size_t end = (kw - w > 31) ? w + 31 : kw;
        __m256i c00 = zero, c01 = zero, c10 = zero, c11 = zero, c20 = zero, c21 = zero;
        for (; w < end; ++w) {
            const uint64_t *a = ap + 2 * QT_AVX2_MR * w;
            const __m256i *b = (const __m256i *)(bp + 16 * w);
            const __m256i bl0 = _mm256_load_si256(b), bl1 = _mm256_load_si256(b + 1);
            const __m256i bh0 = _mm256_load_si256(b + 2), bh1 = _mm256_load_si256(b + 3);
#define QT_AVX2_ROW(I, C0, C1)                                                                 \
    do {                                                                                       \
        const __m256i al = _mm256_set1_epi64x((long long)a[I]);                                \
        const __m256i ah = _mm256_set1_epi64x((long long)a[QT_AVX2_MR + I]);                   \
        C0 = _mm256_add_epi8(C0, _mm256_shuffle_epi8(lut, _mm256_xor_si256(al, bl0)));         \
        C0 = _mm256_add_epi8(C0, _mm256_shuffle_epi8(lut, _mm256_xor_si256(ah, bh0)));         \
        C1 = _mm256_add_epi8(C1, _mm256_shuffle_epi8(lut, _mm256_xor_si256(al, bl1)));         \
        C1 = _mm256_add_epi8(C1, _mm256_shuffle_epi8(lut, _mm256_xor_si256(ah, bh1)));         \
    } while (0)
            QT_AVX2_ROW(0, c00, c01);
            QT_AVX2_ROW(1, c10, c11);
            QT_AVX2_ROW(2, c20, c21);
#undef QT_AVX2_ROW
        }
        t00 = _mm256_add_epi64(t00, _mm256_sad_epu8(c00, zero));
        t01 = _mm256_add_epi64(t01, _mm256_sad_epu8(c01, zero));
        t10 = _mm256_add_epi64(t10, _mm256_sad_epu8(c10, zero));
        t11 = _mm256_add_epi64(t11, _mm256_sad_epu8(c11, zero));
        t20 = _mm256_add_epi64(t20, _mm256_sad_epu8(c20, zero));
        t21 = _mm256_add_epi64(t21, _mm256_sad_epu8(c21, zero));
    }
    __m256i r[QT_AVX2_MR] = {qt_avx2_to_i32x8(t00, t01), qt_avx2_to_i32x8(t10, t11),
                             qt_avx2_to_i32x8(t20, t21)};
    const __m256i kv = _mm256_set1_epi32(kbits);
    for (int i = 0; i < QT_AVX2_MR; ++i) {
        __m256i v = r[i];
        __m256i *dst = (__m256i *)(c + (size_t)i * ldc);
        if (mode & QT_ACC) v = _mm256_add_epi32(v, _mm256_loadu_si256(dst));
        if (mode & QT_FIN) v = _mm256_sub_epi32(kv, _mm256_add_epi32(v, v));
        _mm256_storeu_si256(dst, v);
    }
}
#endif /* QT_X86 */
#endif /* QT_XNOR_AVX2_H */
