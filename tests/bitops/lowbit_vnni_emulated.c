/* The AVX-512 low-bit kernels (VNNI k-bit, VPOPCNTDQ ternary) on portable emulations of its intrinsics (SIMDe), so that
 * its arithmetic is checked on a CPU without AVX-512: the same checks as lowbit_check.c. */
#include "qt_cpu.h"
#define SIMDE_ENABLE_NATIVE_ALIASES
#include <simde/x86/avx512.h>
#include <string.h>
/* two conversions this SIMDe version lacks, written lane by lane */
static inline __m512i qt_emu_cvtepu8_epi32(__m128i x)
{
    uint8_t b[16];
    int32_t v[16];
    _mm_storeu_si128((__m128i *)b, x);
    for (int i = 0; i < 16; ++i) v[i] = b[i];
    return _mm512_loadu_si512((const void *)v);
}
static inline __m512 qt_emu_cvtepi32_ps(__m512i x)
{
    int32_t v[16];
    float f[16];
    _mm512_storeu_si512((void *)v, x);
    for (int i = 0; i < 16; ++i) f[i] = (float)v[i];
    return _mm512_loadu_ps(f);
}
#define _mm512_cvtepu8_epi32 qt_emu_cvtepu8_epi32
#define _mm512_cvtepi32_ps qt_emu_cvtepi32_ps
#define QT_LB_NO_IMMINTRIN
#define QT_LB_VNNI_TARGET
#define QT_LB_VNNI_INLINE static inline
#define QT_LB_EMULATED_VNNI
#define QT_TERN_AVX512_TARGET
#include "qt_lowbit_avx512.h"
#include "qt_tern_avx512.h"
#undef QT_X86
#include "lowbit_check.c"
