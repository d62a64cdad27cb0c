/* CPU feature detection for every compiled kernel of qtoolkit: the one probe.
 *
 * Features are probed once (qt_cpu_init) and the answers cached. The library is
 * compiled at the baseline ISA; each SIMD kernel lives in a function with a
 * `target` attribute and is called only if the probe says the CPU (and the OS)
 * support it.
 */
#ifndef QT_CPU_H
#define QT_CPU_H

#include <stdint.h>

/* Levels, in increasing order of preference on each architecture. */
enum {
    QT_LEVEL_GENERIC = 0, /* portable C, SWAR popcount */
    QT_LEVEL_POPCNT = 1,  /* x86-64 scalar POPCNT */
    QT_LEVEL_AVX2 = 2,    /* x86-64 AVX2, nibble-LUT vpshufb popcount */
    QT_LEVEL_AVX512 = 3,  /* x86-64 AVX-512F + VPOPCNTDQ */
    QT_LEVEL_NEON = 4,    /* aarch64 Advanced SIMD, vcnt popcount */
    QT_LEVEL_SSE41 = 5,   /* x86-64 SSE4.1 (roundps/roundpd); below POPCNT in the Python chain */
    QT_N_LEVELS = 6
};
/* The ids are stable (kernels index tables by them); the order of preference is
 * the chain of qtoolkit/_dispatch.py: generic < sse41 < popcnt < avx2 < avx512
 * on x86-64, generic < neon on aarch64. */

#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(_M_X64))
#define QT_X86 1
#endif
#if defined(__aarch64__)
#define QT_ARM64 1
#endif

static const char *const qt_level_names[QT_N_LEVELS] = {
    "generic", "popcnt", "avx2", "avx512", "neon", "sse41"};

static int qt_cpu_flags[QT_N_LEVELS];
static int qt_cpu_probed = 0;

static inline void qt_cpu_init(void)
{
    if (qt_cpu_probed) return;
    qt_cpu_flags[QT_LEVEL_GENERIC] = 1;
#ifdef QT_X86
    __builtin_cpu_init();
    qt_cpu_flags[QT_LEVEL_SSE41] = __builtin_cpu_supports("sse4.1") ? 1 : 0;
    qt_cpu_flags[QT_LEVEL_POPCNT] = __builtin_cpu_supports("popcnt") ? 1 : 0;
    qt_cpu_flags[QT_LEVEL_AVX2] = (__builtin_cpu_supports("avx2") && qt_cpu_flags[QT_LEVEL_POPCNT]) ? 1 : 0;
    /* libgcc checks XCR0, so these are false when the OS does not save the zmm state. */
    qt_cpu_flags[QT_LEVEL_AVX512] = (__builtin_cpu_supports("avx512f") &&
                                     __builtin_cpu_supports("avx512vpopcntdq")) ? 1 : 0;
#endif
#ifdef QT_ARM64
    qt_cpu_flags[QT_LEVEL_NEON] = 1; /* Advanced SIMD is mandatory on aarch64 */
#endif
    qt_cpu_probed = 1;
}

static inline int qt_cpu_has(int level)
{
    qt_cpu_init();
    if (level < 0 || level >= QT_N_LEVELS) return 0;
    return qt_cpu_flags[level];
}

static inline const char *qt_level_name(int level)
{
    if (level < 0 || level >= QT_N_LEVELS) return "unknown";
    return qt_level_names[level];
}

#endif /* QT_CPU_H */
