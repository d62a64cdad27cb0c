/* Stochastic rounding to a grid: out[i] = step * floor(w[i] / step + u_i).
 *
 * The noise is counter based: u_i comes from SplitMix64 (Steele, Lea and
 * Flood, 2014) applied to the counter of entry i in the stream `key`.
 * float32 takes 24 bits per entry, two entries per 64-bit output (entry 2j
 * the top 24 bits of output j, entry 2j+1 bits 8..31); float64 takes the
 * top 53 bits of one output per entry. qtoolkit.rounding._common computes
 * the same values in NumPy for every other array namespace.
 *
 * The loop is written once; only the floor differs: at the x86-64 baseline
 * (SSE2) floorf is a libm call, so an SSE4.1 copy of the loop (ROUNDSS
 * inline) is compiled under a function-level target attribute. The caller
 * passes the level chosen by qtoolkit's one dispatcher (QT_LEVEL_SSE41 or
 * QT_LEVEL_GENERIC; qt_cpu.h is the only probe). Other architectures inline
 * floor natively.
 */
#ifndef QT_STOCHASTIC_KERNELS_H
#define QT_STOCHASTIC_KERNELS_H

#include <math.h>
#include <stdint.h>

#include "qt_cpu.h"

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define QT_SR_X86 1
#endif

static inline uint64_t qt_splitmix64(uint64_t key, uint64_t counter)
{
    uint64_t z = key + 0x9E3779B97F4A7C15ULL * (counter + 1);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

#define QT_SR_F32_BODY(FLOORF)                                                 \
    {                                                                          \
        const float scale = 5.9604644775390625e-08f; /* 2**-24 */            \
        int64_t i = 0;                                                         \
        for (; i + 1 < n; i += 2) {                                            \
            uint64_t z = qt_splitmix64(key, (uint64_t)(i >> 1));               \
            float u0 = (float)(int32_t)(z >> 40) * scale;                      \
            float u1 = (float)(int32_t)((z >> 8) & 0xFFFFFFu) * scale;         \
            out[i] = FLOORF(w[i] / step + u0) * step;                          \
            out[i + 1] = FLOORF(w[i + 1] / step + u1) * step;                  \
        }                                                                      \
        if (i < n) {                                                           \
            uint64_t z = qt_splitmix64(key, (uint64_t)(i >> 1));               \
            out[i] = FLOORF(w[i] / step + (float)(int32_t)(z >> 40) * scale) * step; \
        }                                                                      \
    }

#define QT_SR_F64_BODY(FLOOR)                                                  \
    {                                                                          \
        const double scale = 1.1102230246251565e-16; /* 2**-53 */             \
        for (int64_t i = 0; i < n; i++) {                                      \
            uint64_t z = qt_splitmix64(key, (uint64_t)i);                      \
            out[i] = FLOOR(w[i] / step + (double)(int64_t)(z >> 11) * scale) * step; \
        }                                                                      \
    }

static void qt_stochastic_grid_f32_generic(const float *w, float *out, int64_t n,
                                           float step, uint64_t key)
QT_SR_F32_BODY(floorf)

static void qt_stochastic_grid_f64_generic(const double *w, double *out, int64_t n,
                                           double step, uint64_t key)
QT_SR_F64_BODY(floor)

#ifdef QT_SR_X86
__attribute__((target("sse4.1")))
static void qt_stochastic_grid_f32_sse41(const float *w, float *out, int64_t n,
                                         float step, uint64_t key)
QT_SR_F32_BODY(__builtin_floorf)

__attribute__((target("sse4.1")))
static void qt_stochastic_grid_f64_sse41(const double *w, double *out, int64_t n,
                                         double step, uint64_t key)
QT_SR_F64_BODY(__builtin_floor)
#endif

static void qt_stochastic_grid_f32(const float *w, float *out, int64_t n, float step,
                                   uint64_t key, int level)
{
#ifdef QT_SR_X86
    if (level == QT_LEVEL_SSE41) {
        qt_stochastic_grid_f32_sse41(w, out, n, step, key);
        return;
    }
#endif
    (void)level;
    qt_stochastic_grid_f32_generic(w, out, n, step, key);
}

static void qt_stochastic_grid_f64(const double *w, double *out, int64_t n, double step,
                                   uint64_t key, int level)
{
#ifdef QT_SR_X86
    if (level == QT_LEVEL_SSE41) {
        qt_stochastic_grid_f64_sse41(w, out, n, step, key);
        return;
    }
#endif
    (void)level;
    qt_stochastic_grid_f64_generic(w, out, n, step, key);
}

#endif /* QT_STOCHASTIC_KERNELS_H */
