/* AVX-512 micro-kernel for the ternary popcount GEMM: tile 8 x 8 with VPOPCNTDQ.
 *
 * Per 512 pair-bits and row: m = za & zb (vpandq with a broadcast operand),
 * d = (sa ^ sb) & m in one vpternlogq, two vpopcntq and two adds into 64-bit
 * lanes (lanes are the 8 rows of B). */
#ifndef QT_TERN_AVX512_H
#define QT_TERN_AVX512_H

#include "qt_tern_common.h"

#ifdef QT_X86
#ifndef QT_LB_NO_IMMINTRIN
#include <immintrin.h>
#endif
/* (overridable only so that a test build can run this kernel on emulated intrinsics) */
#ifndef QT_TERN_AVX512_TARGET
#define QT_TERN_AVX512_TARGET __attribute__((target("avx512f,avx512vpopcntdq")))
#endif

#define QT_TERN_AVX512_MR 8
#define QT_TERN_AVX512_NR 8

QT_TERN_AVX512_TARGET static void
qt_tern_ukernel_avx512(size_t kw, const uint64_t *ap, const uint64_t *bp, int64_t *cnt)
{
    __m512i am[8], ad[8];
#pragma GCC unroll 8
    for (int i = 0; i < 8; ++i) am[i] = ad[i] = _mm512_setzero_si512();
    for (size_t w = 0; w < kw; ++w) {
        const __m512i bs = _mm512_load_si512((const void *)(bp + 16 * w));
        const __m512i bz = _mm512_load_si512((const void *)(bp + 16 * w + 8));
        const uint64_t *a = ap + 16 * w;
#pragma GCC unroll 8
        for (int i = 0; i < 8; ++i) {
            const __m512i m = _mm512_and_si512(bz, _mm512_set1_epi64((long long)a[8 + i]));
            const __m512i d = _mm512_ternarylogic_epi64(_mm512_set1_epi64((long long)a[i]), bs, m, 0x28);
            am[i] = _mm512_add_epi64(am[i], _mm512_popcnt_epi64(m));
            ad[i] = _mm512_add_epi64(ad[i], _mm512_popcnt_epi64(d));
        }
    }
#pragma GCC unroll 8
    for (int i = 0; i < 8; ++i)
        _mm512_storeu_si512((void *)(cnt + 8 * i), _mm512_sub_epi64(am[i], _mm512_add_epi64(ad[i], ad[i])));
}
#endif /* QT_X86 */
#endif /* QT_TERN_AVX512_H */
