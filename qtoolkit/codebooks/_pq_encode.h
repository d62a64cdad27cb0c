/* Nearest-codeword search of product quantization, one sub-vector at a time.
 *
 * The distance row ||c_k||^2 - 2 <x, c_k> is accumulated one coordinate at a
 * time over all K codewords (a contiguous loop that the compiler vectorises).
 * The loop is written once (QT_PQ_NEAREST) and compiled three times on x86-64
 * with GCC or Clang: at the baseline, and under function-level target
 * attributes for AVX2 and AVX-512F. The caller passes the level id chosen by
 * qtoolkit's one dispatcher (qt_cpu.h is the only probe) to qt_pq_nearest_*_for,
 * which returns the implementation to use. Ties go to the lowest index.
 * Prior validation assumed: cbt is (d_sub, K) row-major, dist holds K values.
 */
#ifndef QT_PQ_ENCODE_H
#define QT_PQ_ENCODE_H

#include <stddef.h>

#include "qt_cpu.h"

#define QT_PQ_NEAREST(NAME, T, ATTR)                                                  \
ATTR static ptrdiff_t NAME(const T *x, const T *cbt, const T *cnorm,                 \
                           ptrdiff_t ds, ptrdiff_t K, T *dist)                       \
{                                                                                     \
    ptrdiff_t d, k, best_k = 0;                                                       \
    T best;                                                                           \
    for (k = 0; k < K; k++)                                                           \
        dist[k] = cnorm[k];                                                           \
    for (d = 0; d < ds; d++) {                                                        \
        const T v = -2 * x[d];                                                        \
        const T *row = cbt + d * K;                                                   \
        for (k = 0; k < K; k++)                                                       \
            dist[k] += v * row[k];                                                    \
    }                                                                                 \
    best = dist[0];                                                                   \
    for (k = 1; k < K; k++) {                                                         \
        if (dist[k] < best) {                                                         \
            best = dist[k];                                                           \
            best_k = k;                                                               \
        }                                                                             \
    }                                                                                 \
    return best_k;                                                                    \
}

typedef ptrdiff_t (*qt_pq_nearest_f32_t)(const float *, const float *, const float *,
                                         ptrdiff_t, ptrdiff_t, float *);
typedef ptrdiff_t (*qt_pq_nearest_f64_t)(const double *, const double *, const double *,
                                         ptrdiff_t, ptrdiff_t, double *);

QT_PQ_NEAREST(qt_pq_nearest_f32_generic, float, )
QT_PQ_NEAREST(qt_pq_nearest_f64_generic, double, )

#ifdef QT_X86
/* no FMA in either target, so every level computes bit-identical distances */
QT_PQ_NEAREST(qt_pq_nearest_f32_avx2, float, __attribute__((target("avx2"))))
QT_PQ_NEAREST(qt_pq_nearest_f64_avx2, double, __attribute__((target("avx2"))))
QT_PQ_NEAREST(qt_pq_nearest_f32_avx512, float, __attribute__((target("avx512f,no-fma"))))
QT_PQ_NEAREST(qt_pq_nearest_f64_avx512, double, __attribute__((target("avx512f,no-fma"))))
#endif

static qt_pq_nearest_f32_t qt_pq_nearest_f32_for(int level)
{
#ifdef QT_X86
    if (level == QT_LEVEL_AVX512 && qt_cpu_has(QT_LEVEL_AVX512)) return qt_pq_nearest_f32_avx512;
    if (level == QT_LEVEL_AVX2 && qt_cpu_has(QT_LEVEL_AVX2)) return qt_pq_nearest_f32_avx2;
#endif
    (void)level;
    return qt_pq_nearest_f32_generic;
}

static qt_pq_nearest_f64_t qt_pq_nearest_f64_for(int level)
{
#ifdef QT_X86
    if (level == QT_LEVEL_AVX512 && qt_cpu_has(QT_LEVEL_AVX512)) return qt_pq_nearest_f64_avx512;
    if (level == QT_LEVEL_AVX2 && qt_cpu_has(QT_LEVEL_AVX2)) return qt_pq_nearest_f64_avx2;
#endif
    (void)level;
    return qt_pq_nearest_f64_generic;
}

#endif
