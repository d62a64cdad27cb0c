/* The ternary popcount GEMM (ternary x ternary, and ternary x binary with the
 * binary operand's non-zero plane all ones): packing and threading written once.
 *
 * C[i, j] = sum_k a_ik b_jk for a, b in {-1, 0, +1}. B is repacked once into
 * micro-panels of NR rows (per word: NR sign words, then NR non-zero words);
 * threads take chunks of rows of A from a shared queue, repack them into
 * micro-panels of MR rows and run the micro-kernel against every B panel (which
 * stays in L1 for K up to 16k values). */
#ifndef QT_TERN_H
#define QT_TERN_H

#include <stdlib.h>
#include <string.h>

#include "qt_cpu.h"
#include "qt_tern_common.h"
#include "qt_tern_scalar.h"
#include "qt_tern_avx2.h"
#include "qt_tern_avx512.h"
#include "qt_tern_neon.h"

#ifdef QT_HAVE_OPENMP
#include <omp.h>
#endif

#define QT_TERN_MAX_TILE 64
#define QT_TERN_CHUNK_BYTES (192 * 1024)

/* Kernel of a level; kernel NULL if it cannot run. */
static qt_tern_isa_t qt_tern_select(int level, const char **name)
{
    qt_tern_isa_t none = {0, 0, NULL, 0};
    qt_cpu_init();
#ifdef QT_LB_EMULATED_VNNI
    if (level == QT_LEVEL_AVX512) {
        qt_tern_isa_t t = {QT_TERN_AVX512_MR, QT_TERN_AVX512_NR, qt_tern_ukernel_avx512, 0};
        *name = "avx512-vpopcntdq (emulated)";
        return t;
    }
#endif
    if (level < 0 || level >= QT_N_LEVELS || !qt_cpu_has(level)) return none;
#ifdef QT_X86
    if (level == QT_LEVEL_AVX512) {
        qt_tern_isa_t t = {QT_TERN_AVX512_MR, QT_TERN_AVX512_NR, qt_tern_ukernel_avx512, 0};
        *name = "avx512-vpopcntdq";
        return t;
    }
    if (level == QT_LEVEL_AVX2) {
        qt_tern_isa_t t = {QT_TERN_AVX2_MR, QT_TERN_AVX2_NR, qt_tern_ukernel_avx2, 1};
        *name = "avx2-nibble-lut";
        return t;
    }
    if (level == QT_LEVEL_POPCNT) {
        qt_tern_isa_t t = {QT_TERN_SCALAR_MR, QT_TERN_SCALAR_NR, qt_tern_ukernel_popcnt, 0};
        *name = "popcnt";
        return t;
    }
#endif
#ifdef QT_ARM64
    if (level == QT_LEVEL_NEON) {
        qt_tern_isa_t t = {QT_TERN_NEON_MR, QT_TERN_NEON_NR, qt_tern_ukernel_neon, 0};
        *name = "neon";
        return t;
    }
#endif
    if (level == QT_LEVEL_GENERIC) {
        qt_tern_isa_t t = {QT_TERN_SCALAR_MR, QT_TERN_SCALAR_NR, qt_tern_ukernel_generic, 0};
        *name = "generic";
        return t;
    }
    return none;
}

static const char *qt_tern_kernel_name(int level)
{
    const char *name = NULL;
    return qt_tern_select(level, &name).kernel ? name : NULL;
}

/* Interleave `rows` rows (the first `valid` real) of planes s, z (stride ld). */
static void qt_tern_pack_panel(const uint64_t *s, const uint64_t *z, size_t ld, size_t valid,
                               size_t rows, size_t nw, uint64_t *dst)
{
    for (size_t w = 0; w < nw; ++w)
        for (size_t r = 0; r < rows; ++r) {
            dst[w * 2 * rows + r] = r < valid ? s[r * ld + w] : 0;
            dst[w * 2 * rows + rows + r] = r < valid ? z[r * ld + w] : 0;
        }
}

/* The same as nibble planes (layout in qt_tern_common.h). */
static void qt_tern_pack_panel_nib(const uint64_t *s, const uint64_t *z, size_t ld, size_t valid,
                                   size_t rows, size_t nw, uint64_t *dst)
{
    const uint64_t lo = 0x0f0f0f0f0f0f0f0fULL;
    for (size_t w = 0; w < nw; ++w)
        for (size_t r = 0; r < rows; ++r) {
            const uint64_t sv = r < valid ? s[r * ld + w] : 0, zv = r < valid ? z[r * ld + w] : 0;
            uint64_t *d = dst + w * 4 * rows + r;
            d[0] = sv & lo;
            d[rows] = (sv >> 4) & lo;
            d[2 * rows] = zv & lo;
            d[3 * rows] = (zv >> 4) & lo;
        }
}

static void qt_tern_pack(const qt_tern_isa_t *isa, const uint64_t *s, const uint64_t *z,
                         size_t ld, size_t valid, size_t rows, size_t nw, uint64_t *dst)
{
    if (isa->nib)
        qt_tern_pack_panel_nib(s, z, ld, valid, rows, nw, dst);
    else
        qt_tern_pack_panel(s, z, ld, valid, rows, nw, dst);
}

static void *qt_tern_alloc(size_t bytes)
{
    bytes = (bytes + 63) / 64 * 64;
    return aligned_alloc(64, bytes == 0 ? 64 : bytes);
}

/* c (m x n int32, stride ldc) = ternary products of rows of (as, az) (m rows,
 * stride lda) and (bs, bz) (n rows, stride ldb) over nw words.
 * Returns 0, -1 (out of memory), -2 (level cannot run). */
static int qt_tern_gemm(const uint64_t *as, const uint64_t *az, size_t m, size_t lda,
                        const uint64_t *bs, const uint64_t *bz, size_t n, size_t ldb, size_t nw,
                        int32_t *c, size_t ldc, int level, int n_threads)
{
    const char *name = NULL;
    const qt_tern_isa_t isa = qt_tern_select(level, &name);
    if (isa.kernel == NULL) return -2;
    if (m == 0 || n == 0) return 0;
    if (nw == 0) {
        for (size_t i = 0; i < m; ++i) memset(c + i * ldc, 0, n * sizeof(int32_t));
        return 0;
    }
    const size_t MR = (size_t)isa.mr, NR = (size_t)isa.nr, PW = isa.nib ? 4 : 2;
    const size_t npan = (n + NR - 1) / NR, mtiles = (m + MR - 1) / MR;
    size_t chunk = QT_TERN_CHUNK_BYTES / (nw * 8 * PW) / MR * MR;
    if (chunk < MR) chunk = MR;
    int nt = n_threads < 1 ? 1 : n_threads;
    if ((size_t)nt > mtiles) nt = (int)mtiles;
    {
        size_t fair = (mtiles + 4 * (size_t)nt - 1) / (4 * (size_t)nt) * MR;
        if (nt > 1 && fair < chunk) chunk = fair;
    }
    const size_t nchunks = (m + chunk - 1) / chunk;
    uint64_t *bbuf = (uint64_t *)qt_tern_alloc(npan * nw * PW * NR * sizeof(uint64_t));
    if (bbuf == NULL) return -1;
    int status = 0;
#ifdef QT_HAVE_OPENMP
#pragma omp parallel num_threads(nt)
#endif
    {
        uint64_t *abuf = (uint64_t *)qt_tern_alloc(chunk * nw * PW * sizeof(uint64_t));
        int64_t cnt[QT_TERN_MAX_TILE];
        if (abuf == NULL) {
#ifdef QT_HAVE_OPENMP
#pragma omp atomic write
#endif
            status = -1;
        }
#ifdef QT_HAVE_OPENMP
#pragma omp for schedule(dynamic, 4)
#endif
        for (long p = 0; p < (long)npan; ++p) {
            const size_t j0 = (size_t)p * NR, valid = (n - j0 < NR) ? n - j0 : NR;
            qt_tern_pack(&isa, bs + j0 * ldb, bz + j0 * ldb, ldb, valid, NR, nw,
                         bbuf + (size_t)p * nw * PW * NR);
        }
#ifdef QT_HAVE_OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
        for (long q = 0; q < (long)nchunks; ++q) {
            if (abuf == NULL) continue;
            const size_t r0 = (size_t)q * chunk, r1 = (r0 + chunk < m) ? r0 + chunk : m;
            for (size_t ir = r0; ir < r1; ir += MR) {
                const size_t valid = (r1 - ir < MR) ? r1 - ir : MR;
                qt_tern_pack(&isa, as + ir * lda, az + ir * lda, lda, valid, MR, nw,
                             abuf + (ir - r0) / MR * nw * PW * MR);
            }
            for (size_t p = 0; p < npan; ++p) {
                const uint64_t *bp = bbuf + p * nw * PW * NR;
                const size_t j0 = p * NR, ncols = (n - j0 < NR) ? n - j0 : NR;
                for (size_t ir = r0; ir < r1; ir += MR) {
                    const size_t rows = (r1 - ir < MR) ? r1 - ir : MR;
                    isa.kernel(nw, abuf + (ir - r0) / MR * nw * PW * MR, bp, cnt);
                    for (size_t i = 0; i < rows; ++i)
                        for (size_t j = 0; j < ncols; ++j)
                            c[(ir + i) * ldc + j0 + j] = (int32_t)cnt[i * NR + j];
                }
            }
        }
        free(abuf);
    }
    free(bbuf);
    return status;
}

/* In-cache rate of the ternary micro-kernel: `reps` runs on L1-resident panels
 * of kw words. Returns ternary MACs done (64 per word pair), -1 or -2. */
static int64_t qt_tern_ukernel_repeat(int level, size_t kw, size_t reps)
{
    const char *name = NULL;
    const qt_tern_isa_t isa = qt_tern_select(level, &name);
    if (isa.kernel == NULL) return -2;
    const size_t MR = (size_t)isa.mr, NR = (size_t)isa.nr, PW = isa.nib ? 4 : 2;
    uint64_t *ap = (uint64_t *)qt_tern_alloc(MR * kw * PW * 8);
    uint64_t *bp = (uint64_t *)qt_tern_alloc(NR * kw * PW * 8);
    int64_t cnt[QT_TERN_MAX_TILE];
    if (ap == NULL || bp == NULL) {
        free(ap);
        free(bp);
        return -1;
    }
    uint64_t x = 0x9e3779b97f4a7c15ULL;
    for (size_t i = 0; i < MR * kw * PW; ++i) { x ^= x << 13; x ^= x >> 7; x ^= x << 17; ap[i] = x; }
    for (size_t i = 0; i < NR * kw * PW; ++i) { x ^= x << 13; x ^= x >> 7; x ^= x << 17; bp[i] = x; }
    for (size_t r = 0; r < reps; ++r) isa.kernel(kw, ap, bp, cnt);
    free(ap);
    free(bp);
    return (int64_t)(reps * MR * NR * kw * 64);
}

#endif /* QT_TERN_H */
