/* AVX-512 micro-kernel: tile 8 x 16 with VPOPCNTDQ.
 *
 * Per 512 pair-bits: one xor, one vpopcntq, one add into 64-bit lanes (which
 * cannot overflow). Lanes are outputs (row i of A against 16 rows of B in two
 * vectors), so the epilogue only narrows 64-bit counts to int32 and stores a
 * contiguous row of 16 results.
 */
#ifndef QT_XNOR_AVX512_H
#define QT_XNOR_AVX512_H

#include "qt_cpu.h"
#include "qt_ukernel.h"

#ifdef QT_X86
#include <immintrin.h>

#define QT_AVX512_MR 8
#define QT_AVX512_NR 16

#define QT_AVX512_TARGET __attribute__((target("avx512f,avx512vpopcntdq")))

QT_AVX512_TARGET static void qt_ukernel_avx512(size_t kw, const uint64_t *ap, const uint64_t *bp,
                                               int32_t *c, size_t ldc, int mode, int32_t kbits)
{
    __m512i acc[QT_AVX512_MR][2];
#pragma GCC unroll 8
    for (int i = 0; i < QT_AVX512_MR; ++i) {
        acc[i][0] = _mm512_setzero_si512();
        acc[i][1] = _mm512_setzero_si512();
    }
    for (size_t w = 0; w < kw; ++w) {
        const __m512i b0 = _mm512_load_si512((const void *)(bp + 16 * w));
        const __m512i b1 = _mm512_load_si512((const void *)(bp + 16 * w + 8));
        const uint64_t *a = ap + 8 * w;
#pragma GCC unroll 8
        for (int i = 0; i < QT_AVX512_MR; ++i) {
            const __m512i av = _mm512_set1_epi64((long long)a[i]);
            acc[i][0] = _mm512_add_epi64(acc[i][0], _mm512_popcnt_epi64(_mm512_xor_si512(av, b0)));
            acc[i][1] = _mm512_add_epi64(acc[i][1], _mm512_popcnt_epi64(_mm512_xor_si512(av, b1)));
        }
    }
    const __m512i kv = _mm512_set1_epi32(kbits);
#pragma GCC unroll 8
    for (int i = 0; i < QT_AVX512_MR; ++i) {
        __m512i v = _mm512_inserti64x4(_mm512_castsi256_si512(_mm512_cvtepi64_epi32(acc[i][0])),
                                       _mm512_cvtepi64_epi32(acc[i][1]), 1);
        int32_t *dst = c + (size_t)i * ldc;
        if (mode & QT_ACC) v = _mm512_add_epi32(v, _mm512_loadu_si512((const void *)dst));
        if (mode & QT_FIN) v = _mm512_sub_epi32(kv, _mm512_add_epi32(v, v));
        _mm512_storeu_si512((void *)dst, v);
    }
}
#endif /* QT_X86 */
#endif /* QT_XNOR_AVX512_H */
