/* The xnor-popcount GEMM: blocking, packing and threading, written once.
 *
 * C[i, j] = K - 2 * popcount(A_i XOR B_j) for bit matrices A (M x K) and
 * B (N x K) stored as rows of 64-bit words (bit k of a row is bit k % 64 of word
 * k / 64; bits >= K are zero).
 *
 * Loop order (GotoBLAS): B is repacked once into micro-panels of NR rows with
 * the words of the NR rows interleaved; each thread owns a contiguous range of
 * rows of A, repacks a block of MC rows x KC words (sized for L2) into
 * micro-panels of MR rows, then for every B micro-panel (which stays in L1)
 * runs the micro-kernel over all A micro-panels of the block. K is split into
 * blocks of KC words; partial counts are accumulated in C itself and the last
 * block turns them into dot products.
 */
#ifndef QT_GEMM_H
#define QT_GEMM_H

#include <stdlib.h>
#include <string.h>

#include "qt_cpu.h"
#include "qt_ukernel.h"
#include "qt_xnor_scalar.h"
#include "qt_xnor_avx2.h"
#include "qt_xnor_avx512.h"
#include "qt_xnor_neon.h"

#ifdef QT_HAVE_OPENMP
#include <omp.h>
#endif

#define QT_KC 64                       /* words of K per block (4096 bits): B micro-panel in L1 */
#define QT_A_BLOCK_BYTES (256 * 1024)  /* packed A block, kept in L2 */
#define QT_MAX_TILE (16 * 16)

static const qt_isa_t qt_isas[QT_N_LEVELS] = {
    {QT_LEVEL_GENERIC, QT_SCALAR_MR, QT_SCALAR_NR, 0, qt_ukernel_generic},
#ifdef QT_X86
    {QT_LEVEL_POPCNT, QT_SCALAR_MR, QT_SCALAR_NR, 0, qt_ukernel_popcnt},
    {QT_LEVEL_AVX2, QT_AVX2_MR, QT_AVX2_NR, 1, qt_ukernel_avx2},
    {QT_LEVEL_AVX512, QT_AVX512_MR, QT_AVX512_NR, 0, qt_ukernel_avx512},
#else
    {QT_LEVEL_POPCNT, 0, 0, 0, NULL},
    {QT_LEVEL_AVX2, 0, 0, 0, NULL},
    {QT_LEVEL_AVX512, 0, 0, 0, NULL},
#endif
#ifdef QT_ARM64
    {QT_LEVEL_NEON, QT_NEON_MR, QT_NEON_NR, 0, qt_ukernel_neon},
#else
    {QT_LEVEL_NEON, 0, 0, 0, NULL},
#endif
};

/* 1 if `level` can run here: compiled in and supported by this CPU. */
static int qt_level_usable(int level)
{
    if (level < 0 || level >= QT_N_LEVELS) return 0;
    return qt_isas[level].kernel != NULL && qt_cpu_has(level);
}

static int qt_openmp_enabled(void)
{
#ifdef QT_HAVE_OPENMP
    return 1;
#else
    return 0;
#endif
}

static void *qt_aligned_alloc(size_t bytes)
{
    /* C11 aligned_alloc wants a size that is a multiple of the alignment */
    bytes = (bytes + 63) / 64 * 64;
    return aligned_alloc(64, bytes == 0 ? 64 : bytes);
}

/* Interleave `rows` rows (of which `valid` are real, the rest zero) into a
 * micro-panel: for each of kw words, R words (or R low-nibble words then R
 * high-nibble words). */
static void qt_pack_panel(const uint64_t *src, size_t ld, size_t valid, size_t rows,
                          size_t kw, int nibble, uint64_t *dst)
{
    const size_t step = nibble ? 2 * rows : rows;
    for (size_t r = 0; r < rows; ++r) {
        if (r < valid) {
            const uint64_t *s = src + r * ld;
            if (nibble) {
                for (size_t w = 0; w < kw; ++w) {
                    dst[w * step + r] = s[w] & QT_NIB_LO;
                    dst[w * step + rows + r] = (s[w] >> 4) & QT_NIB_LO;
                }
            } else {
                for (size_t w = 0; w < kw; ++w) dst[w * step + r] = s[w];
            }
        } else {
            for (size_t w = 0; w < kw; ++w) {
                dst[w * step + r] = 0;
                if (nibble) dst[w * step + rows + r] = 0;
            }
        }
    }
}

/* Rows of the packed A block for K blocks of kc0 words: sized for L2, a multiple of MR. */
static size_t qt_block_rows(const qt_isa_t *isa, size_t kc0)
{
    const size_t MR = (size_t)isa->mr, pf = isa->nibble ? 2 : 1;
    size_t mc = QT_A_BLOCK_BYTES / (kc0 * 8 * pf);
    return mc < MR ? MR : mc / MR * MR;
}

/* Rows [r0, r1) of C (r1 - r0 <= the block size of abuf). */
static void qt_gemm_rows(const qt_isa_t *isa, const uint64_t *a, size_t lda, size_t r0, size_t r1,
                         const uint64_t *bbuf, size_t n, size_t nw, int32_t kbits,
                         int32_t *c, size_t ldc, uint64_t *abuf)
{
    const size_t MR = (size_t)isa->mr, NR = (size_t)isa->nr, pf = isa->nibble ? 2 : 1;
    const size_t npan = (n + NR - 1) / NR;
    const size_t nkb = (nw + QT_KC - 1) / QT_KC;
    const size_t mcb = r1 - r0;
    int32_t tile[QT_MAX_TILE];

    for (size_t kb = 0; kb < nkb; ++kb) {
        const size_t w0 = kb * QT_KC;
        const size_t kw = (nw - w0 < QT_KC) ? nw - w0 : QT_KC;
        const int mode = (kb > 0 ? QT_ACC : 0) | (kb + 1 == nkb ? QT_FIN : 0);
        for (size_t ir = 0; ir < mcb; ir += MR) {
            const size_t valid = (mcb - ir < MR) ? mcb - ir : MR;
            qt_pack_panel(a + (r0 + ir) * lda + w0, lda, valid, MR, kw, isa->nibble,
                          abuf + (ir / MR) * kw * MR * pf);
        }
        for (size_t p = 0; p < npan; ++p) {
            const uint64_t *bp = bbuf + p * nw * NR * pf + w0 * NR * pf;
            const size_t ncols = (n - p * NR < NR) ? n - p * NR : NR;
            for (size_t ir = 0; ir < mcb; ir += MR) {
                const uint64_t *ap = abuf + (ir / MR) * kw * MR * pf;
                const size_t rows = (mcb - ir < MR) ? mcb - ir : MR;
                int32_t *cp = c + (r0 + ir) * ldc + p * NR;
                if (rows == MR && ncols == NR) {
                    isa->kernel(kw, ap, bp, cp, ldc, mode, kbits);
                } else {
                    /* edge tile: compute into a full scratch tile, copy back the valid part */
                    memset(tile, 0, sizeof(tile));
                    if (mode & QT_ACC)
                        for (size_t i = 0; i < rows; ++i)
                            memcpy(tile + i * NR, cp + i * ldc, ncols * sizeof(int32_t));
                    isa->kernel(kw, ap, bp, tile, NR, mode, kbits);
                    for (size_t i = 0; i < rows; ++i)
                        memcpy(cp + i * ldc, tile + i * NR, ncols * sizeof(int32_t));
                }
            }
        }
    }
}

/* C (m x n, row stride ldc) = xnor-popcount product of a (m rows, stride lda
 * words) and b (n rows, stride ldb words), over nw words holding kbits bits.
 * Returns 0, -1 when out of memory, -2 for a level that cannot run here.
 *
 * Threads take chunks of rows of C from a shared queue (dynamic schedule),
 * about four chunks per thread, so that a thread the OS descheduled on a busy
 * machine does not hold back a fixed half of the work. Every element of C is
 * computed by exactly one thread with the same arithmetic, so the result does
 * not depend on the number of threads. */
static int qt_xnor_gemm(const uint64_t *a, size_t m, size_t lda, const uint64_t *b, size_t n,
                        size_t ldb, size_t nw, int32_t kbits, int32_t *c, size_t ldc, int level,
                        int n_threads)
{
    if (!qt_level_usable(level)) return -2;
    if (m == 0 || n == 0) return 0;
    if (nw == 0) {
        for (size_t i = 0; i < m; ++i) memset(c + i * ldc, 0, n * sizeof(int32_t));
        return 0;
    }
    const qt_isa_t *isa = &qt_isas[level];
    const size_t MR = (size_t)isa->mr, NR = (size_t)isa->nr, pf = isa->nibble ? 2 : 1;
    const size_t npan = (n + NR - 1) / NR;
    const size_t mtiles = (m + MR - 1) / MR;
    const size_t kc0 = nw < QT_KC ? nw : QT_KC;
    const size_t mc = qt_block_rows(isa, kc0);
    int nt = n_threads < 1 ? 1 : n_threads;
    if ((size_t)nt > mtiles) nt = (int)mtiles;
    /* rows per chunk: a multiple of MR, at most one L2 block, ~4 chunks per thread */
    size_t chunk = (mtiles + 4 * (size_t)nt - 1) / (4 * (size_t)nt) * MR;
    if (nt == 1 || chunk > mc) chunk = mc;
    const size_t nchunks = (m + chunk - 1) / chunk;

    uint64_t *bbuf = (uint64_t *)qt_aligned_alloc(npan * nw * NR * pf * sizeof(uint64_t));
    if (bbuf == NULL) return -1;
    int status = 0;

#ifdef QT_HAVE_OPENMP
#pragma omp parallel num_threads(nt)
#endif
    {
        uint64_t *abuf = (uint64_t *)qt_aligned_alloc(chunk * kc0 * pf * sizeof(uint64_t));
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
            const size_t valid = (n - (size_t)p * NR < NR) ? n - (size_t)p * NR : NR;
            qt_pack_panel(b + (size_t)p * NR * ldb, ldb, valid, NR, nw, isa->nibble,
                          bbuf + (size_t)p * nw * NR * pf);
        }
        /* (implicit barrier: every panel of B is packed) */
#ifdef QT_HAVE_OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
        for (long q = 0; q < (long)nchunks; ++q) {
            const size_t r0 = (size_t)q * chunk;
            const size_t r1 = (r0 + chunk < m) ? r0 + chunk : m;
            if (abuf != NULL)
                qt_gemm_rows(isa, a, lda, r0, r1, bbuf, n, nw, kbits, c, ldc, abuf);
        }
        free(abuf);
    }
    free(bbuf);
    return status;
}

/* Run the micro-kernel of `level` `reps` times on one pair of micro-panels of
 * kw words that stay in L1: the kernel's own in-cache throughput, for the
 * benchmarks. Returns the number of binary MACs done, or -1 / -2 as above. */
static int64_t qt_ukernel_repeat(int level, size_t kw, size_t reps)
{
    if (!qt_level_usable(level)) return -2;
    const qt_isa_t *isa = &qt_isas[level];
    const size_t MR = (size_t)isa->mr, NR = (size_t)isa->nr, pf = isa->nibble ? 2 : 1;
    uint64_t *ap = (uint64_t *)qt_aligned_alloc(MR * kw * pf * sizeof(uint64_t));
    uint64_t *bp = (uint64_t *)qt_aligned_alloc(NR * kw * pf * sizeof(uint64_t));
    int32_t tile[QT_MAX_TILE];
    if (ap == NULL || bp == NULL) {
        free(ap);
        free(bp);
        return -1;
    }
    uint64_t x = 0x9e3779b97f4a7c15ULL;
    for (size_t i = 0; i < MR * kw * pf; ++i) { x ^= x << 13; x ^= x >> 7; x ^= x << 17; ap[i] = x & (isa->nibble ? QT_NIB_LO : ~0ULL); }
    for (size_t i = 0; i < NR * kw * pf; ++i) { x ^= x << 13; x ^= x >> 7; x ^= x << 17; bp[i] = x & (isa->nibble ? QT_NIB_LO : ~0ULL); }
    for (size_t r = 0; r < reps; ++r) isa->kernel(kw, ap, bp, tile, NR, QT_FIN, (int32_t)(kw * 64));
    free(ap);
    free(bp);
    return (int64_t)(reps * MR * NR * kw * 64);
}

#endif /* QT_GEMM_H */
