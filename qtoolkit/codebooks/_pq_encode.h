/* Nearest-codeword search of product quantization, one sub-vector at a time.
 *
 * The distance row ||c_k||^2 - 2 <x, c_k> is accumulated one coordinate at a
 * time over all K codewords (a contiguous loop that the compiler vectorises).
 * On x86-64 with GCC or Clang the function is compiled for AVX-512, AVX2 and
 * the baseline, and the loader picks the best one the CPU has
 * (`target_clones`); elsewhere it is compiled once for the baseline.
 * Prior validation assumed: cbt is (d_sub, K) row-major, dist holds K values.
 */
#ifndef QT_PQ_ENCODE_H
#define QT_PQ_ENCODE_H

#include <stddef.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && defined(__has_attribute)
#  if __has_attribute(target_clones)
#    define QT_PQ_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#  endif
#endif
#ifndef QT_PQ_CLONES
#  define QT_PQ_CLONES
#endif

#define QT_PQ_NEAREST(NAME, T)                                                        \
QT_PQ_CLONES static ptrdiff_t NAME(const T *x, const T *cbt, const T *cnorm,         \
                                   ptrdiff_t ds, ptrdiff_t K, T *dist)               \
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

QT_PQ_NEAREST(qt_pq_nearest_f32, float)
QT_PQ_NEAREST(qt_pq_nearest_f64, double)

#endif
