/* Sign packing: rows of real (or boolean) values -> rows of 64-bit words.
 *
 * Bit k of a row is bit k % 64 of word k / 64; it is 1 where x >= 0 (so
 * sign(0) = sign(-0) = +1) or, for bytes, where x != 0. Words past the last
 * one holding data are zeroed up to the output stride, as are the bits >= K of
 * the last word. The AVX2 path compares and gathers the sign bits with
 * movemask, with no boolean temporary; both paths count NaNs so that the
 * caller can reject them.
 */
#ifndef QT_PACK_H
#define QT_PACK_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "qt_cpu.h"

#ifdef QT_HAVE_OPENMP
#include <omp.h>
#endif

#define QT_DEFINE_PACK_SCALAR(NAME, T, BIT, ISNAN)                                          \
    static size_t NAME(const T *x, size_t k, uint64_t *out, size_t start)                   \
    {                                                                                       \
        /* bits [start, k) of one row; out points at the row's first word */                \
        size_t nan = 0;                                                                     \
        for (size_t i = start; i < k; ++i) {                                                \
            const T v = x[i];                                                               \
            nan += (ISNAN(v)) ? 1 : 0;                                                      \
            out[i >> 6] |= (uint64_t)(BIT(v) ? 1 : 0) << (i & 63);                          \
        }                                                                                   \
        return nan;                                                                         \
    }

#define QT_GE0(v) ((v) >= 0)
#define QT_NE0(v) ((v) != 0)
#define QT_ISNAN(v) ((v) != (v))
#define QT_NEVER(v) 0

QT_DEFINE_PACK_SCALAR(qt_pack_tail_f32, float, QT_GE0, QT_ISNAN)
QT_DEFINE_PACK_SCALAR(qt_pack_tail_f64, double, QT_GE0, QT_ISNAN)
QT_DEFINE_PACK_SCALAR(qt_pack_tail_u8, uint8_t, QT_NE0, QT_NEVER)

#ifdef QT_X86
#include <immintrin.h>
#define QT_PACK_TARGET __attribute__((target("avx2")))

QT_PACK_TARGET static size_t qt_pack_words_f32_avx2(const float *x, size_t nwords, uint64_t *out)
{
    const __m256 zero = _mm256_setzero_ps();
    unsigned nanmask = 0;
    for (size_t w = 0; w < nwords; ++w) {
        uint64_t word = 0;
        const float *p = x + 64 * w;
        for (int t = 0; t < 8; ++t) {
            const __m256 v = _mm256_loadu_ps(p + 8 * t);
            word |= (uint64_t)(unsigned)_mm256_movemask_ps(_mm256_cmp_ps(v, zero, _CMP_GE_OQ)) << (8 * t);
            nanmask |= (unsigned)_mm256_movemask_ps(_mm256_cmp_ps(v, v, _CMP_UNORD_Q));
        }
        out[w] = word;
    }
    return nanmask != 0;
}

QT_PACK_TARGET static size_t qt_pack_words_f64_avx2(const double *x, size_t nwords, uint64_t *out)
{
    const __m256d zero = _mm256_setzero_pd();
    unsigned nanmask = 0;
    for (size_t w = 0; w < nwords; ++w) {
        uint64_t word = 0;
        const double *p = x + 64 * w;
        for (int t = 0; t < 16; ++t) {
            const __m256d v = _mm256_loadu_pd(p + 4 * t);
            word |= (uint64_t)(unsigned)_mm256_movemask_pd(_mm256_cmp_pd(v, zero, _CMP_GE_OQ)) << (4 * t);
            nanmask |= (unsigned)_mm256_movemask_pd(_mm256_cmp_pd(v, v, _CMP_UNORD_Q));
        }
        out[w] = word;
    }
    return nanmask != 0;
}

QT_PACK_TARGET static size_t qt_pack_words_u8_avx2(const uint8_t *x, size_t nwords, uint64_t *out)
{
    const __m256i zero = _mm256_setzero_si256();
    for (size_t w = 0; w < nwords; ++w) {
        const __m256i v0 = _mm256_loadu_si256((const __m256i *)(x + 64 * w));
        const __m256i v1 = _mm256_loadu_si256((const __m256i *)(x + 64 * w + 32));
        const uint64_t z0 = (uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(v0, zero));
        const uint64_t z1 = (uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(v1, zero));
        out[w] = ~(z0 | (z1 << 32));
    }
    return 0;
}
#endif /* QT_X86 */

#ifdef QT_HAVE_OPENMP
#define QT_PRAGMA(x) _Pragma(#x)
#define QT_PACK_OMP QT_PRAGMA(omp parallel for num_threads(n_threads) reduction(+ : nan) schedule(static) if (n_threads > 1))
#else
#define QT_PACK_OMP
#endif

/* Pack `rows` rows of k values (row stride ldx) into rows of ldo words. Rows are
 * split between n_threads OpenMP threads. Returns the number of NaNs seen (a
 * row with a NaN may be counted once per SIMD word rather than per value). */
#define QT_DEFINE_PACK_ROWS(NAME, T, TAIL, AVX2WORDS)                                        \
    static size_t NAME(const T *x, size_t rows, size_t k, size_t ldx, uint64_t *out,         \
                       size_t ldo, int use_simd, int n_threads)                              \
    {                                                                                        \
        size_t nan = 0;                                                                      \
        (void)n_threads;                                                                     \
        const size_t full = k / 64;                                                          \
        QT_PACK_OMP                                                                          \
        for (long r = 0; r < (long)rows; ++r) {                                              \
            const T *xr = x + (size_t)r * ldx;                                               \
            uint64_t *o = out + (size_t)r * ldo;                                             \
            memset(o, 0, ldo * sizeof(uint64_t));                                            \
            size_t start = 0;                                                                \
            if (use_simd && full > 0) {                                                      \
                nan += AVX2WORDS(xr, full, o);                                               \
                start = full * 64;                                                           \
            }                                                                                \
            nan += TAIL(xr, k, o, start);                                                    \
        }                                                                                    \
        return nan;                                                                          \
    }

#ifdef QT_X86
QT_DEFINE_PACK_ROWS(qt_pack_rows_f32, float, qt_pack_tail_f32, qt_pack_words_f32_avx2)
QT_DEFINE_PACK_ROWS(qt_pack_rows_f64, double, qt_pack_tail_f64, qt_pack_words_f64_avx2)
QT_DEFINE_PACK_ROWS(qt_pack_rows_u8, uint8_t, qt_pack_tail_u8, qt_pack_words_u8_avx2)
#else
#define QT_NO_SIMD_WORDS(x, n, o) 0
QT_DEFINE_PACK_ROWS(qt_pack_rows_f32, float, qt_pack_tail_f32, QT_NO_SIMD_WORDS)
QT_DEFINE_PACK_ROWS(qt_pack_rows_f64, double, qt_pack_tail_f64, QT_NO_SIMD_WORDS)
QT_DEFINE_PACK_ROWS(qt_pack_rows_u8, uint8_t, qt_pack_tail_u8, QT_NO_SIMD_WORDS)
#endif

#endif /* QT_PACK_H */
