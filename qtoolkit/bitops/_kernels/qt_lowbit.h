/* k-bit weights x int8 activations: weight packing, dynamic activation
 * quantization and the GEMM / GEMV driver, written once; only the micro-kernel
 * (qt_lowbit_{scalar,avx2,avx512,neon}.h) differs per instruction set.
 *
 * Loop order: the rows of A are split into blocks sized for L2 and the weight
 * panels into chunks; a work item is one (row block, panel chunk) pair and
 * threads take items from a shared queue. Inside an item each weight panel
 * stays in L1/L2 while the micro-kernel runs over the row block. With one row
 * (GEMV) the items are panel chunks, so every weight byte is read once. */
#ifndef QT_LOWBIT_H
#define QT_LOWBIT_H

#include <stdlib.h>
#include <string.h>

#include "qt_cpu.h"
#include "qt_lowbit_common.h"
#include "qt_lowbit_scalar.h"
#include "qt_lowbit_avx2.h"
#include "qt_lowbit_avx512.h"
#include "qt_lowbit_neon.h"
#include "qt_lowbit_amx.h"

#ifdef QT_HAVE_OPENMP
#include <omp.h>
#endif

#ifndef QT_LB_A_BLOCK_BYTES
#define QT_LB_A_BLOCK_BYTES (384 * 1024)
#endif

static int qt_lb_has_vnni(void)
{
#if defined(QT_LB_EMULATED_VNNI)
    return 1;
#elif defined(QT_X86)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vnni");
#else
    return 0;
#endif
}

/* The kernel and its row tile for a SIMD level; NULL kernel if the level cannot run. */
static qt_lb_kernel_fn qt_lb_select(int level, int *mr, const char **name)
{
    qt_cpu_init();
#ifdef QT_LB_EMULATED_VNNI
    if (level == QT_LEVEL_AVX512) {
        *mr = QT_LB_VNNI_MR;
        *name = "avx512-vnni (emulated)";
        return qt_lb_kernel_vnni;
    }
#endif
    if (level < 0 || level >= QT_N_LEVELS || !qt_cpu_has(level)) return NULL;
#ifdef QT_X86
    if (level == QT_LEVEL_AVX512 && qt_lb_has_vnni()) {
        *mr = QT_LB_VNNI_MR;
        *name = "avx512-vnni";
#ifdef QT_LB_HAVE_AMX
        /* products of QT_LB_AMX_MIN_M rows or more run the AMX driver (qt_lowbit_amx.h) */
        if (qt_lb_amx_enabled && qt_lb_amx_usable()) *name = "avx512-vnni+amx";
#endif
        return qt_lb_kernel_vnni;
    }
    if (level == QT_LEVEL_AVX512 || level == QT_LEVEL_AVX2) {
        *mr = QT_LB_AVX2_MR;
        *name = "avx2";
        return qt_lb_kernel_avx2;
    }
#endif
#ifdef QT_ARM64
    if (level == QT_LEVEL_NEON) {
        if (qt_lb_neon_has_dot()) {
            *mr = 4;
            *name = "neon-dotprod";
            return qt_lb_kernel_neon_dot;
        }
        *mr = QT_LB_NEON_MR;
        *name = "neon";
        return qt_lb_kernel_neon;
    }
#endif
    if (level == QT_LEVEL_GENERIC || level == QT_LEVEL_POPCNT) {
        *mr = 4;
        *name = "scalar";
        return qt_lb_kernel_scalar;
    }
    return NULL;
}

/* AMX: 1 if the avx512 level runs products of QT_LB_AMX_MIN_M rows or more on the tile
 * unit; qt_lb_set_amx(0) sends them to the VNNI kernel instead (for tests). */
static int qt_lb_amx_available(void)
{
#ifdef QT_LB_HAVE_AMX
    return qt_cpu_has(QT_LEVEL_AVX512) && qt_lb_has_vnni() && qt_lb_amx_usable();
#else
    return 0;
#endif
}

/* The AMX tile loop's in-cache rate (qt_lb_amx_ukernel_repeat), or -2 without AMX. */
static int64_t qt_lb_amx_repeat(int bits, size_t nsb, size_t reps)
{
#ifdef QT_LB_HAVE_AMX
    if (!qt_lb_amx_available()) return -2;
    return qt_lb_amx_ukernel_repeat(bits, nsb, reps);
#else
    (void)bits;
    (void)nsb;
    (void)reps;
    return -2;
#endif
}

static void qt_lb_set_amx(int enabled)
{
#ifdef QT_LB_HAVE_AMX
    qt_lb_amx_enabled = enabled ? 1 : 0;
#else
    (void)enabled;
#endif
}

/* 1 if the low-bit drivers were built with OpenMP threads. */
static int qt_lb_openmp_enabled(void)
{
#ifdef QT_HAVE_OPENMP
    return 1;
#else
    return 0;
#endif
}

/* Name of the kernel a level runs, or NULL. */
static const char *qt_lb_kernel_name(int level)
{
    int mr = 0;
    const char *name = NULL;
    return qt_lb_select(level, &mr, &name) ? name : NULL;
}

/* Pack unsigned codes u (n x k, row stride ldu, values < 2^bits) into panels
 * (layout in qt_lowbit_common.h). dst holds ceil(n/32) * nsb * 128 * bits bytes. */
static void qt_lb_pack_weights(const uint8_t *u, size_t n, size_t k, size_t ldu, int bits,
                               uint8_t *dst)
{
    const size_t nsb = (k + QT_LB_SB - 1) / QT_LB_SB, npan = (n + QT_LB_NR - 1) / QT_LB_NR;
    const size_t vb = 64 * (size_t)bits;
    memset(dst, 0, npan * nsb * 2 * vb);
    for (size_t p = 0; p < npan; ++p)
        for (size_t s = 0; s < nsb; ++s)
            for (int h = 0; h < 2; ++h) {
                uint8_t *v = dst + ((p * nsb + s) * 2 + (size_t)h) * vb;
                for (int c = 0; c < 16; ++c) {
                    const size_t col = p * QT_LB_NR + 16 * (size_t)h + (size_t)c;
                    if (col >= n) break;
                    for (int q = 0; q < 8; ++q)
                        for (int b = 0; b < 4; ++b) {
                            const size_t kk = s * QT_LB_SB + 4 * (size_t)q + (size_t)b;
                            if (kk >= k) continue;
                            const unsigned x = u[col * ldu + kk];
                            const int byte = 4 * c + b;
                            switch (bits) {
                            case 8: v[64 * q + byte] = (uint8_t)x; break;
                            case 4: v[64 * (q / 2) + byte] |= (uint8_t)((x & 15u) << (4 * (q % 2))); break;
                            case 2: v[64 * (q / 4) + byte] |= (uint8_t)((x & 3u) << (2 * (q % 4))); break;
                            case 1: v[byte] |= (uint8_t)((x & 1u) << q); break;
                            default:
                                v[64 * (q / 4) + byte] |= (uint8_t)((x & 3u) << (2 * (q % 4)));
                                v[128 + byte] |= (uint8_t)(((x >> 2) & 1u) << q);
                                break;
                            }
                        }
                }
            }
}

/* Quantize one row: the reference (portable C) form of the formulas below. Returns the
 * number of non-finite values (the row is then left quantized as zeros). */
static size_t qt_lb_quantize_row(const float *xr, size_t k, int asym, int8_t *qr, size_t lda,
                                 size_t gs, size_t G, int32_t *sums, int32_t *za, float *sa)
{
    float lo = 0.0f, hi = 0.0f;
    size_t nonfinite = 0;
    for (size_t j = 0; j < k; ++j) {
        const float v = xr[j];
        nonfinite += !(v - v == 0.0f);
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
    }
    memset(qr, 0, lda);
    float s, inv, zf;
    int32_t z;
    if (nonfinite) {
        s = 1.0f; /* left as zeros */
        z = 0;
    } else if (qt_lb_row_params(lo, hi, asym, &s, &inv, &zf, &z)) {
        const float qlo = asym ? -128.0f : -127.0f;
        for (size_t j = 0; j < k; ++j) {
            float t = qt_lb_rint(xr[j] * inv) + zf;
            t = t > 127.0f ? 127.0f : (t < qlo ? qlo : t);
            qr[j] = (int8_t)t;
        }
    }
    *sa = s;
    *za = z;
    for (size_t g = 0; g < G; ++g) {
        const size_t j0 = g * gs, j1 = (j0 + gs < k) ? j0 + gs : k;
        int32_t acc = 0;
        for (size_t j = j0; j < j1; ++j) acc += qr[j];
        sums[g] = acc;
    }
    return nonfinite;
}

/* Quantize rows of x (m x k, stride ldx) to int8 codes q (m x lda, zero padded),
 * scales sa, zero points za and group sums (m x G over groups of gs values).
 * Symmetric: inv = 127 / max|x|, q = round(x inv), s = max|x| / 127, z = 0.
 * Asymmetric: lo = min(min x, 0), hi = max(max x, 0), inv = 255 / (hi - lo),
 * z = -128 - round(lo inv), q = clip(round(x inv) + z, -128, 127),
 * s = (hi - lo) / 255. A row of zeros gets s = 1, q = 0. Returns the number of
 * non-finite values seen (their rows are left quantized as zeros). `level` picks
 * the row loop (AVX2 or AVX-512 on x86 at those levels; the results are identical). */
static size_t qt_lb_quantize_rows(const float *x, size_t m, size_t k, size_t ldx, int asym,
                                  int8_t *q, size_t lda, size_t gs, size_t G, int32_t *sums,
                                  int32_t *za, float *sa, int level, int n_threads)
{
    size_t bad = 0;
    int nt = n_threads < 1 ? 1 : n_threads;
    (void)nt;
    qt_cpu_init();
    int vec = 0;
#ifdef QT_X86
    vec = (level == QT_LEVEL_AVX2 || level == QT_LEVEL_AVX512) && level >= 0 &&
          level < QT_N_LEVELS && qt_cpu_has(level) && (G == 1 || gs % 32 == 0);
    /* the AVX-512 row loop packs its codes with AVX512BW (not part of the avx512 level) */
    if (vec && level == QT_LEVEL_AVX512 && __builtin_cpu_supports("avx512bw")) vec = 2;
#else
    (void)level;
#endif
#ifdef QT_HAVE_OPENMP
#pragma omp parallel for schedule(static) num_threads(nt) reduction(+ : bad)
#endif
    for (long r = 0; r < (long)m; ++r) {
        const float *xr = x + (size_t)r * ldx;
        int8_t *qr = q + (size_t)r * lda;
        int32_t *sr = sums + (size_t)r * G;
#ifdef QT_X86
#ifndef QT_LB_EMULATED_VNNI
        if (vec == 2 && qt_lb_quantize_row_avx512(xr, k, asym, qr, lda, gs, G, sr, za + r, sa + r) == 0)
            continue;
#endif
        if (vec == 1 && qt_lb_quantize_row_avx2(xr, k, asym, qr, lda, gs, G, sr, za + r, sa + r) == 0)
            continue;
#endif
        bad += qt_lb_quantize_row(xr, k, asym, qr, lda, gs, G, sr, za + r, sa + r);
    }
    (void)vec;
    return bad;
}

/* Group sums of given int8 codes (m x lda rows), for the integer form. */
static void qt_lb_row_sums(const int8_t *q, size_t m, size_t k, size_t lda, size_t gs, size_t G,
                           int32_t *sums)
{
    for (size_t r = 0; r < m; ++r)
        for (size_t g = 0; g < G; ++g) {
            const size_t j0 = g * gs, j1 = (j0 + gs < k) ? j0 + gs : k;
            int32_t acc = 0;
            for (size_t j = j0; j < j1; ++j) acc += q[r * lda + j];
            sums[r * G + g] = acc;
        }
}

/* out (m x n floats, stride ldo) = sa_i * sum_g scale * G, or, with gout != NULL,
 * gout (m x n x G int32) = G. Returns 0, -2 for a level that cannot run here. */
static int qt_lb_gemm(const qt_lb_weights *w, const qt_lb_acts *x, size_t m, float *out,
                      size_t ldo, int32_t *gout, int level, int n_threads)
{
    int MRi = 1;
    const char *name = NULL;
    const qt_lb_kernel_fn kernel = qt_lb_select(level, &MRi, &name);
    if (kernel == NULL) return -2;
    const size_t n = w->n, G = w->n_groups, MR = (size_t)MRi;
    if (m == 0 || n == 0) return 0;
#ifdef QT_LB_HAVE_AMX
    if (level == QT_LEVEL_AVX512 && kernel == qt_lb_kernel_vnni && qt_lb_amx_active(m) &&
        qt_lb_gemm_amx(w, x, m, out, ldo, gout, n_threads) == 0)
        return 0; /* (on a failed allocation the VNNI path below does the product) */
#endif
    const size_t npan = (n + QT_LB_NR - 1) / QT_LB_NR;
    /* with several row blocks, at least 8 items per thread, so that the last items of the
     * dynamic schedule even out (11 row blocks on 2 threads would end 6 : 5) */
    const qt_lb_split sp =
        qt_lb_split_work(m, x->lda, npan, MR, QT_LB_A_BLOCK_BYTES, 4, 8, 0, n_threads);
    const size_t mc = sp.mc, ppc = sp.ppc, nchunks = sp.nchunks, items = sp.items;
    const size_t ldg = n * G;

#ifdef QT_HAVE_OPENMP
#pragma omp parallel for schedule(dynamic, 1) num_threads(sp.nt)
#endif
    for (long it = 0; it < (long)items; ++it) {
        float tile[QT_LB_MAX_MR * QT_LB_NR];
        const size_t mb = (size_t)it / nchunks, ch = (size_t)it % nchunks;
        const size_t r0 = mb * mc, r1 = (r0 + mc < m) ? r0 + mc : m;
        const size_t p0 = ch * ppc, p1 = (p0 + ppc < npan) ? p0 + ppc : npan;
        for (size_t p = p0; p < p1; ++p) {
            const size_t c0 = p * QT_LB_NR;
            const size_t ncols = (n - c0 < QT_LB_NR) ? n - c0 : QT_LB_NR;
            for (size_t r = r0; r < r1; r += MR) {
                const int mr = (int)((r1 - r < MR) ? r1 - r : MR);
                if (gout != NULL) {
                    kernel(w, p, mr, x->a + r * x->lda, x->lda, x->sums + r * G, x->za + r,
                           x->asym, tile, gout + r * ldg + c0 * G, ldg, ncols);
                    continue;
                }
                kernel(w, p, mr, x->a + r * x->lda, x->lda, x->sums + r * G, x->za + r, x->asym,
                       tile, NULL, 0, ncols);
                for (int i = 0; i < mr; ++i) {
                    const float s = x->sa[r + (size_t)i];
                    float *o = out + (r + (size_t)i) * ldo + c0;
                    const float *t = tile + i * QT_LB_NR;
                    for (size_t c = 0; c < ncols; ++c) o[c] = t[c] * s;
                }
            }
        }
    }
    return 0;
}

/* Run the micro-kernel of `level` `reps` times on one L1-resident panel of
 * `nsb` superblocks at `bits` (one group) and an mr-row activation tile; the
 * in-cache rate for the benchmarks. Returns MACs done, -1 (memory), -2 (level). */
static int64_t qt_lb_ukernel_repeat(int level, int bits, size_t nsb, size_t reps)
{
    int MRi = 1;
    const char *name = NULL;
    const qt_lb_kernel_fn kernel = qt_lb_select(level, &MRi, &name);
    if (kernel == NULL) return -2;
    const size_t lda = nsb * QT_LB_SB;
    uint8_t *wbuf = (uint8_t *)calloc(qt_lb_panel_bytes(nsb, bits) + 64, 1);
    int8_t *abuf = (int8_t *)calloc((size_t)MRi * lda + 64, 1);
    float scale[QT_LB_NR];
    uint8_t zz[QT_LB_NR];
    int32_t wsum[QT_LB_NR], sums[QT_LB_MAX_MR], za[QT_LB_MAX_MR];
    float tile[QT_LB_MAX_MR * QT_LB_NR];
    if (wbuf == NULL || abuf == NULL) {
        free(wbuf);
        free(abuf);
        return -1;
    }
    qt_lb_fill_repeat_operands(wbuf, qt_lb_panel_bytes(nsb, bits), abuf, (size_t)MRi * lda);
    for (int c = 0; c < QT_LB_NR; ++c) { scale[c] = 1.0f; zz[c] = 1; wsum[c] = 0; }
    for (int i = 0; i < QT_LB_MAX_MR; ++i) { sums[i] = 0; za[i] = 0; }
    qt_lb_weights w = {wbuf, scale, zz, wsum, NULL, QT_LB_NR, lda, nsb, nsb, 1, bits, 1};
    for (size_t r = 0; r < reps; ++r)
        kernel(&w, 0, MRi, abuf, lda, sums, za, 0, tile, NULL, 0, QT_LB_NR);
    free(wbuf);
    free(abuf);
    return (int64_t)(reps * (size_t)MRi * QT_LB_NR * lda);
}

#endif /* QT_LOWBIT_H */
