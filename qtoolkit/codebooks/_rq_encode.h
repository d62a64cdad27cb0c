/* Beam-search encoding of residual quantization.
 *
 * For every vector x and stage s the search keeps the B partial codes of
 * smallest error. A kept code with residual r and error e = ||r||^2 is
 * extended by every codeword c_k of stage s, with the candidate error
 *
 *     (e - 2 <r, c_k>) + ||c_k||^2        (evaluated in this order, in T)
 *
 * and the B smallest candidates (over beam j and codeword k, flat index
 * j K + k) are kept; ties go to the lower flat index. The residual of a kept
 * candidate is r - c_k and its error is recomputed from that residual (a sum
 * over the coordinates in order). After the last stage the code of smallest
 * error is returned (ties: the first kept one, i.e. the lowest candidate).
 *
 * The dot products <r, c_k> of a block of residual rows against a stage
 * codebook are the only loop that depends on the instruction set: one
 * micro-tile (4 rows by NC codewords, NC a multiple of the vector width) is
 * written for the baseline, for AVX2 and for AVX-512F (intrinsics under
 * function-level target attributes); the blocking, the selection and the
 * residual updates are written once. Every tile accumulates each dot product
 * as ((r_0 c_0 + r_1 c_1) + r_2 c_2) + ..., one multiply and one add per
 * term (the extension is built with -std=c11, so no multiply-add is fused),
 * hence every level computes bit-identical codes and errors.
 *
 * Layouts (prior validation assumed): X (n, d) row-major; books (S, K, d);
 * cbt (S, d, Kp), the transposed codebooks with K <= Kp, Kp a multiple of
 * QT_RQ_KPAD (the padding columns are read, their products never used);
 * cnorm (S, K); codes (n, S) int32 out; err (n) out.
 * Points are independent, so the result does not depend on the thread count.
 */
#ifndef QT_RQ_ENCODE_H
#define QT_RQ_ENCODE_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "qt_cpu.h"

#ifdef QT_X86
#include <immintrin.h>
#endif
#ifdef _OPENMP
#include <omp.h>
#endif

#define QT_RQ_KPAD 32 /* the transposed codebooks are padded to a multiple of this */
#define QT_RQ_MR 4    /* residual rows of one micro-tile */
#define QT_RQ_ROWS 256 /* residual rows per block of points (at least one point) */
#define QT_RQ_SUB 64  /* rows whose dot products are held at once (a multiple of QT_RQ_MR) */

/* dots(R, rows, ldr, d, cbt, Kp, out): out[r Kp + k] = <R[r ldr ..], cbt[.. k]> for
 * r < rows (a multiple of QT_RQ_MR) and k < Kp. */
typedef void (*qt_rq_dots_f32_t)(const float *, ptrdiff_t, ptrdiff_t, ptrdiff_t, const float *,
                                 ptrdiff_t, float *);
typedef void (*qt_rq_dots_f64_t)(const double *, ptrdiff_t, ptrdiff_t, ptrdiff_t,
                                 const double *, ptrdiff_t, double *);

/* ---- the baseline tile: 4 rows x 8 codewords, plain C ---- */
#define QT_RQ_DOTS_GENERIC(NAME, T)                                                        \
static void NAME(const T *R, ptrdiff_t rows, ptrdiff_t ldr, ptrdiff_t d, const T *cbt,    \
                 ptrdiff_t Kp, T *out)                                                     \
{                                                                                          \
    ptrdiff_t k0, r0, j, r, c;                                                             \
    for (k0 = 0; k0 < Kp; k0 += 8) {                                                       \
        for (r0 = 0; r0 < rows; r0 += QT_RQ_MR) {                                          \
            T acc[QT_RQ_MR][8];                                                            \
            for (r = 0; r < QT_RQ_MR; r++)                                                 \
                for (c = 0; c < 8; c++) acc[r][c] = 0;                                     \
            for (j = 0; j < d; j++) {                                                      \
                const T *b = cbt + j * Kp + k0;                                            \
                for (r = 0; r < QT_RQ_MR; r++) {                                           \
                    const T v = R[(r0 + r) * ldr + j];                                     \
                    for (c = 0; c < 8; c++) acc[r][c] = acc[r][c] + v * b[c];              \
                }                                                                          \
            }                                                                              \
            for (r = 0; r < QT_RQ_MR; r++)                                                 \
                for (c = 0; c < 8; c++) out[(r0 + r) * Kp + k0 + c] = acc[r][c];           \
        }                                                                                  \
    }                                                                                      \
}

QT_RQ_DOTS_GENERIC(qt_rq_dots_f32_generic, float)
QT_RQ_DOTS_GENERIC(qt_rq_dots_f64_generic, double)

#ifdef QT_X86
/* ---- SIMD tiles: 4 rows x 2 vectors; VT/W the vector type and width ---- */
#define QT_RQ_DOTS_SIMD(NAME, T, ATTR, VT, W, ZERO, LOAD, SET1, MUL, ADD, STORE)          \
ATTR static void NAME(const T *R, ptrdiff_t rows, ptrdiff_t ldr, ptrdiff_t d,             \
                      const T *cbt, ptrdiff_t Kp, T *out)                                  \
{                                                                                          \
    ptrdiff_t k0, r0, j;                                                                   \
    for (k0 = 0; k0 < Kp; k0 += 2 * (W)) {                                                 \
        for (r0 = 0; r0 < rows; r0 += QT_RQ_MR) {                                          \
            const T *r_0 = R + r0 * ldr, *r_1 = r_0 + ldr, *r_2 = r_1 + ldr,               \
                    *r_3 = r_2 + ldr;                                                      \
            VT a00 = ZERO(), a01 = ZERO(), a10 = ZERO(), a11 = ZERO();                     \
            VT a20 = ZERO(), a21 = ZERO(), a30 = ZERO(), a31 = ZERO();                     \
            T *o = out + r0 * Kp + k0;                                                     \
            for (j = 0; j < d; j++) {                                                      \
                const T *b = cbt + j * Kp + k0;                                            \
                const VT b0 = LOAD(b), b1 = LOAD(b + (W));                                 \
                VT v = SET1(r_0[j]);                                                       \
                a00 = ADD(a00, MUL(v, b0));                                                \
                a01 = ADD(a01, MUL(v, b1));                                                \
                v = SET1(r_1[j]);                                                          \
                a10 = ADD(a10, MUL(v, b0));                                                \
                a11 = ADD(a11, MUL(v, b1));                                                \
                v = SET1(r_2[j]);                                                          \
                a20 = ADD(a20, MUL(v, b0));                                                \
                a21 = ADD(a21, MUL(v, b1));                                                \
                v = SET1(r_3[j]);                                                          \
                a30 = ADD(a30, MUL(v, b0));                                                \
                a31 = ADD(a31, MUL(v, b1));                                                \
            }                                                                              \
            STORE(o, a00);                                                                 \
            STORE(o + (W), a01);                                                           \
            STORE(o + Kp, a10);                                                            \
            STORE(o + Kp + (W), a11);                                                      \
            STORE(o + 2 * Kp, a20);                                                        \
            STORE(o + 2 * Kp + (W), a21);                                                  \
            STORE(o + 3 * Kp, a30);                                                        \
            STORE(o + 3 * Kp + (W), a31);                                                  \
        }                                                                                  \
    }                                                                                      \
}

QT_RQ_DOTS_SIMD(qt_rq_dots_f32_avx2, float, __attribute__((target("avx2"))), __m256, 8,
                _mm256_setzero_ps, _mm256_loadu_ps, _mm256_set1_ps, _mm256_mul_ps,
                _mm256_add_ps, _mm256_storeu_ps)
QT_RQ_DOTS_SIMD(qt_rq_dots_f64_avx2, double, __attribute__((target("avx2"))), __m256d, 4,
                _mm256_setzero_pd, _mm256_loadu_pd, _mm256_set1_pd, _mm256_mul_pd,
                _mm256_add_pd, _mm256_storeu_pd)
QT_RQ_DOTS_SIMD(qt_rq_dots_f32_avx512, float, __attribute__((target("avx512f"))), __m512, 16,
                _mm512_setzero_ps, _mm512_loadu_ps, _mm512_set1_ps, _mm512_mul_ps,
                _mm512_add_ps, _mm512_storeu_ps)
QT_RQ_DOTS_SIMD(qt_rq_dots_f64_avx512, double, __attribute__((target("avx512f"))), __m512d, 8,
                _mm512_setzero_pd, _mm512_loadu_pd, _mm512_set1_pd, _mm512_mul_pd,
                _mm512_add_pd, _mm512_storeu_pd)
#endif

static qt_rq_dots_f32_t qt_rq_dots_f32_for(int level)
{
#ifdef QT_X86
    if (level == QT_LEVEL_AVX512 && qt_cpu_has(QT_LEVEL_AVX512)) return qt_rq_dots_f32_avx512;
    if (level == QT_LEVEL_AVX2 && qt_cpu_has(QT_LEVEL_AVX2)) return qt_rq_dots_f32_avx2;
#endif
    (void)level;
    return qt_rq_dots_f32_generic;
}

static qt_rq_dots_f64_t qt_rq_dots_f64_for(int level)
{
#ifdef QT_X86
    if (level == QT_LEVEL_AVX512 && qt_cpu_has(QT_LEVEL_AVX512)) return qt_rq_dots_f64_avx512;
    if (level == QT_LEVEL_AVX2 && qt_cpu_has(QT_LEVEL_AVX2)) return qt_rq_dots_f64_avx2;
#endif
    (void)level;
    return qt_rq_dots_f64_generic;
}

/* ---- the search, written once per element type ----
 * Returns 0, or -1 when a thread could not allocate its work space. */
#define QT_RQ_BEAM(NAME, T, DOTS_T, DOTS_FOR)                                                \
static int NAME(const T *X, ptrdiff_t n, ptrdiff_t d, const T *books, const T *cbt,         \
                const T *cnorm, ptrdiff_t S, ptrdiff_t K, ptrdiff_t Kp, ptrdiff_t B,         \
                int32_t *codes, T *err_out, int n_threads, int level)                        \
{                                                                                            \
    const DOTS_T dots = DOTS_FOR(level);                                                     \
    ptrdiff_t P, n_blocks, b_max = 1, st;                                                    \
    int failed = 0;                                                                          \
    if (n <= 0 || S <= 0) return 0;                                                          \
    /* the widest beam: min(B, K^s) after stage s (B, K <= 2^16: no overflow) */             \
    for (st = 0; st < S && b_max < B; st++) b_max = (b_max * K < B) ? b_max * K : B;         \
    P = QT_RQ_ROWS / b_max;                                                                  \
    if (P < 1) P = 1;                                                                        \
    n_blocks = (n + P - 1) / P;                                                              \
    (void)n_threads;                                                                         \
    _Pragma("omp parallel num_threads(n_threads) if(n_threads > 1)")                         \
    {                                                                                        \
        const ptrdiff_t rows_max = P * b_max + QT_RQ_MR; /* + tile padding */                \
        T *res = (T *)calloc((size_t)(2 * rows_max * d), sizeof(T));                         \
        T *dist = (T *)calloc((size_t)(QT_RQ_SUB * Kp), sizeof(T));                          \
        T *err = (T *)malloc((size_t)(2 * rows_max) * sizeof(T));                            \
        T *top_v = (T *)malloc((size_t)(P * b_max) * sizeof(T));                             \
        ptrdiff_t *top_i = (ptrdiff_t *)malloc((size_t)(P * b_max) * sizeof(ptrdiff_t));     \
        ptrdiff_t *cnt = (ptrdiff_t *)malloc((size_t)P * sizeof(ptrdiff_t));                 \
        int32_t *path = (int32_t *)malloc((size_t)(2 * rows_max * S) * sizeof(int32_t));     \
        ptrdiff_t blk;                                                                       \
        if (!res || !dist || !err || !top_v || !top_i || !cnt || !path) {                    \
            _Pragma("omp atomic write")                                                      \
            failed = 1;                                                                      \
        }                                                                                    \
        _Pragma("omp for schedule(dynamic, 1)")                                              \
        for (blk = 0; blk < n_blocks; blk++) {                                               \
            const ptrdiff_t p0 = blk * P;                                                    \
            const ptrdiff_t m = (n - p0 < P) ? n - p0 : P;                                   \
            T *cur = res, *nxt = res + rows_max * d;                                         \
            T *ecur = err, *enxt = err + rows_max;                                           \
            int32_t *pcur = path, *pnxt = path + rows_max * S;                               \
            ptrdiff_t nb = 1, p, j, k, t, q, r0, s;                                          \
            if (!res || !dist || !err || !top_v || !top_i || !cnt || !path) continue;        \
            for (p = 0; p < m; p++) {                                                        \
                const T *x = X + (p0 + p) * d;                                               \
                T e = 0;                                                                     \
                for (q = 0; q < d; q++) {                                                    \
                    cur[p * d + q] = x[q];                                                   \
                    e = e + x[q] * x[q];                                                     \
                }                                                                            \
                ecur[p] = e;                                                                 \
            }                                                                                \
            for (s = 0; s < S; s++) {                                                        \
                const T *cn = cnorm + s * K, *bk = books + s * K * d;                        \
                const ptrdiff_t rows = m * nb;                                               \
                const ptrdiff_t keep = (nb * K < B) ? nb * K : B;                            \
                for (p = 0; p < m; p++) cnt[p] = 0;                                          \
                for (r0 = 0; r0 < rows; r0 += QT_RQ_SUB) {                                   \
                    const ptrdiff_t r1 = (rows - r0 < QT_RQ_SUB) ? rows : r0 + QT_RQ_SUB;    \
                    const ptrdiff_t padded = (r1 - r0 + QT_RQ_MR - 1) / QT_RQ_MR * QT_RQ_MR; \
                    ptrdiff_t r;                                                             \
                    dots(cur + r0 * d, padded, d, d, cbt + s * d * Kp, Kp, dist);            \
                    for (r = r0; r < r1; r++) {                                              \
                        const ptrdiff_t pp = r / nb, jj = r - pp * nb;                       \
                        const T e = ecur[r];                                                 \
                        const T *dr = dist + (r - r0) * Kp;                                  \
                        T *tv = top_v + pp * keep;                                           \
                        ptrdiff_t *ti = top_i + pp * keep;                                   \
                        ptrdiff_t c = cnt[pp];                                               \
                        for (k = 0; k < K; k++) {                                            \
                            const T v = (e - 2 * dr[k]) + cn[k];                             \
                            if (c < keep || v < tv[keep - 1]) {                              \
                                ptrdiff_t pos = (c < keep) ? c++ : keep - 1;                 \
                                while (pos > 0 && tv[pos - 1] > v) {                         \
                                    tv[pos] = tv[pos - 1];                                   \
                                    ti[pos] = ti[pos - 1];                                   \
                                    pos--;                                                   \
                                }                                                            \
                                tv[pos] = v;                                                 \
                                ti[pos] = jj * K + k;                                        \
                            }                                                                \
                        }                                                                    \
                        cnt[pp] = c;                                                         \
                    }                                                                        \
                }                                                                            \
                for (p = 0; p < m; p++) {                                                    \
                    for (t = 0; t < keep; t++) {                                             \
                        const ptrdiff_t idx = top_i[p * keep + t];                           \
                        const ptrdiff_t src = p * nb + idx / K, dst = p * keep + t;          \
                        const T *rs = cur + src * d, *c = bk + (idx % K) * d;                \
                        T *rd = nxt + dst * d;                                               \
                        T e = 0;                                                             \
                        for (q = 0; q < d; q++) {                                            \
                            const T u = rs[q] - c[q];                                        \
                            rd[q] = u;                                                       \
                            e = e + u * u;                                                   \
                        }                                                                    \
                        enxt[dst] = e;                                                       \
                        for (j = 0; j < s; j++) pnxt[dst * S + j] = pcur[src * S + j];       \
                        pnxt[dst * S + s] = (int32_t)(idx % K);                              \
                    }                                                                        \
                }                                                                            \
                { T *tmp = cur; cur = nxt; nxt = tmp; }                                      \
                { T *tmp = ecur; ecur = enxt; enxt = tmp; }                                  \
                { int32_t *tmp = pcur; pcur = pnxt; pnxt = tmp; }                            \
                nb = keep;                                                                   \
            }                                                                                \
            for (p = 0; p < m; p++) {                                                        \
                ptrdiff_t best = 0;                                                          \
                for (t = 1; t < nb; t++)                                                     \
                    if (ecur[p * nb + t] < ecur[p * nb + best]) best = t;                    \
                memcpy(codes + (p0 + p) * S, pcur + (p * nb + best) * S,                     \
                       (size_t)S * sizeof(int32_t));                                         \
                err_out[p0 + p] = ecur[p * nb + best];                                       \
            }                                                                                \
        }                                                                                    \
        free(res);                                                                           \
        free(dist);                                                                          \
        free(err);                                                                           \
        free(top_v);                                                                         \
        free(top_i);                                                                         \
        free(cnt);                                                                           \
        free(path);                                                                          \
    }                                                                                        \
    return failed ? -1 : 0;                                                                  \
}

QT_RQ_BEAM(qt_rq_beam_f32, float, qt_rq_dots_f32_t, qt_rq_dots_f32_for)
QT_RQ_BEAM(qt_rq_beam_f64, double, qt_rq_dots_f64_t, qt_rq_dots_f64_for)

#endif
