/* k-bit weights x int8 activations: the packed formats and the micro-kernel contract.
 *
 * Weights W (N x K, linear-layer layout) hold unsigned codes u in [0, 2^bits).
 * They are stored in panels of QT_LB_NR = 32 columns; K is split into
 * superblocks of 32 values. For one panel, one superblock and one half
 * h in {0, 1} (columns 16h .. 16h + 15) the 512 codes take `bits` vectors of 64
 * bytes. Define the unpacked quad vectors U_q, q = 0..7, by
 *
 *     byte 4c + b of U_q = u[column 16h + c][32s + 4q + b]      (c < 16, b < 4)
 *
 * (the operand layout of vpdpbusd: four consecutive K values of one column per
 * 32-bit lane). The stored vectors V are
 *
 *     bits 8: V_q = U_q                         (8 vectors)
 *     bits 4: V_i = U_2i | U_2i+1 << 4          (4 vectors)
 *     bits 2: V_i = sum_j U_4i+j << 2j          (2 vectors)
 *     bits 1: V_0 = sum_q U_q << q              (1 vector)
 *     bits 3: the low two bits as for bits 2 (V_0, V_1), the high bit as for
 *             bits 1 (V_2)
 *
 * so every unpack is a 16-bit shift and a byte mask. A panel is superblock
 * major: superblock s of panel p starts at byte (p * S + s) * 128 * bits, half 1
 * at + 64 * bits. Codes past N or K are 0.
 *
 * Activations A (M x K) are int8 rows zero-padded to S * 32 bytes. For row i
 * and group g the kernel computes D = sum_{k in g} u[n][k] * a[i][k] exactly in
 * int32 and turns it into the exact signed dot product
 *
 *     G[i][n][g] = mul * D - zz[n][g] * Sa[i][g] - za[i] * Ws[n][g]
 *
 * with Sa the sum of the activation codes of the group, za the activation zero
 * point, zz the weight zero point (mul = 1) or 1 for binary weights (value
 * 2u - 1, mul = 2), Ws = sum_{k in g} (mul u - zz). That is
 * sum_k (a - za) (mul u - zz). In float mode the tile accumulates
 * sum_g scale[n][g] * G[i][n][g]; in integer mode G itself is written.
 *
 * Codebook weights: u are 4-bit indices into a 16-entry table of byte values
 * (the int8 codebook + 128, zero point 128) looked up after unpacking.
 */
#ifndef QT_LOWBIT_COMMON_H
#define QT_LOWBIT_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define QT_LB_NR 32          /* columns per weight panel */
#define QT_LB_SB 32          /* K values per superblock */
#define QT_LB_MAX_MR 8

typedef struct {
    const uint8_t *w;        /* packed panels */
    const float *scale;      /* (npan, G, 32) */
    const uint8_t *zz;       /* (npan, G, 32) */
    const int32_t *wsum;     /* (npan, G, 32), used when asym or int mode */
    const uint8_t *lut;      /* 16 bytes (codebook) or NULL */
    size_t n, k;             /* true sizes */
    size_t nsb;              /* superblocks S = ceil(K / 32) */
    size_t sb_per_group;     /* superblocks per group */
    size_t n_groups;         /* G */
    int bits;                /* 1, 2, 3, 4, 8 */
    int mul;                 /* 1, or 2 for binary weights */
    int zz_uniform;          /* 1 if every zz of the valid columns equals zz[0]: a kernel may
                                then use zz[0] instead of reading zz (0 is always correct) */
    int signed_ok;           /* qt_lb_signed_fits, computed once per weights (0 is always
                                correct): float products may then run on signed tiles */
} qt_lb_weights;

typedef struct {
    const int8_t *a;         /* (M, lda) */
    size_t lda;              /* S * 32 */
    const int32_t *sums;     /* (M, G) */
    const int32_t *za;       /* (M,) */
    const float *sa;         /* (M,) */
    int asym;                /* any za != 0 */
} qt_lb_acts;

/* One tile: rows [0, mr) starting at activation row pointer `a` (row stride
 * lda), sums at `sums` (row stride G), zero points `za`; weight panel `p`.
 * Float mode (gout == NULL): tile[i * 32 + c] = sum_g scale * G (not yet times
 * the activation scale). Integer mode: gout[i * ldg + c * G + g] = G for the
 * `ncols` valid columns. */
typedef void (*qt_lb_kernel_fn)(const qt_lb_weights *w, size_t p, int mr, const int8_t *a,
                                size_t lda, const int32_t *sums, const int32_t *za, int asym,
                                float *tile, int32_t *gout, size_t ldg, size_t ncols);

/* The one-row product (GEMV) reads the weight panels as one sequential stream
 * (panel after panel, superblock after superblock) and does too little work per
 * byte for the out-of-order core alone to keep enough cache misses in flight: the
 * kernels with one activation row prefetch the stream this many bytes ahead, one
 * prefetch per 64-byte line. Past the last panel the prefetches are harmless. */
#ifndef QT_LB_PREFETCH_BYTES
#define QT_LB_PREFETCH_BYTES 2048
#endif

static inline void qt_lb_prefetch_ahead(const uint8_t *v, size_t bytes)
{
    for (size_t b = 0; b < bytes; b += 64) __builtin_prefetch(v + QT_LB_PREFETCH_BYTES + b, 0, 3);
}

/* Round to nearest, ties to even, for |x| < 2^22 (no libm call, vectorizable). */
static inline float qt_lb_rint(float x)
{
    const float magic = 12582912.0f; /* 1.5 * 2^23 */
    return (x + magic) - magic;
}

/* A row's range (lo = min(min x, 0), hi = max(max x, 0)) from the lane-wise minima l and
 * maxima h of a vector loop, with the compares of qt_lb_quantize_row. */
static inline void qt_lb_lane_range(const float *l, const float *h, int lanes, float *lo,
                                    float *hi)
{
    float a = 0.0f, b = 0.0f;
    for (int i = 0; i < lanes; ++i) {
        a = l[i] < a ? l[i] : a;
        b = h[i] > b ? h[i] : b;
    }
    *lo = a;
    *hi = b;
}

/* The int8 code parameters of a row from its range (lo = min(min x, 0), hi = max(max x, 0)):
 * the scale s, the multiplier inv, the zero point z (and as float zf). Returns 0 for a row
 * quantized as zeros (s = 1). The formulas are those of qt_lb_quantize_row. */
static inline int qt_lb_row_params(float lo, float hi, int asym, float *s, float *inv, float *zf,
                                   int32_t *z)
{
    const float amax = -lo > hi ? -lo : hi;
    *s = 1.0f;
    *inv = 0.0f;
    *zf = 0.0f;
    *z = 0;
    if (!asym && amax > 0.0f) {
        *inv = 127.0f / amax;
        *s = amax / 127.0f;
        return 1;
    }
    if (asym && hi > lo) {
        const float range = hi - lo;
        *inv = 255.0f / range;
        *s = range / 255.0f;
        *z = -128 - (int32_t)qt_lb_rint(lo * *inv);
        *zf = (float)*z;
        return 1;
    }
    return 0;
}

/* Whether every unpacked weight value, made signed as mul q - zz (q a code or codebook
 * entry, zz a zero point of the valid columns), fits int8: then the AMX float product can
 * run on signed tiles (qt_lb_amx_unpack_panel with sgn), whose sums already are
 * mul D - zz Sa, and its epilogue needs neither the activation group sums nor zz. It reads
 * every zero point, so it is computed once per weights (qt_lb_weights.signed_ok). */
static inline int qt_lb_signed_fits(const qt_lb_weights *w)
{
    int qmax = w->bits >= 8 ? 255 : (1 << w->bits) - 1;
    if (w->lut != NULL) {
        qmax = 0;
        for (int i = 0; i < 16; ++i) qmax = w->lut[i] > qmax ? w->lut[i] : qmax;
    }
    const size_t npan = (w->n + QT_LB_NR - 1) / QT_LB_NR, G = w->n_groups;
    int zmin = 255, zmax = 0;
    for (size_t p = 0; p < npan; ++p) {
        const size_t nc = (w->n - p * QT_LB_NR < QT_LB_NR) ? w->n - p * QT_LB_NR : QT_LB_NR;
        for (size_t g = 0; g < G; ++g)
            for (size_t c = 0; c < nc; ++c) {
                const int z = w->zz[(p * G + g) * QT_LB_NR + c];
                zmin = z < zmin ? z : zmin;
                zmax = z > zmax ? z : zmax;
            }
    }
    return zmax <= 128 && w->mul * qmax - zmin <= 127;
}

/* Bytes of one packed panel. */
static inline size_t qt_lb_panel_bytes(size_t nsb, int bits)
{
    return nsb * 128 * (size_t)bits;
}

/* Group g's superblock range [s0, s1). */
static inline void qt_lb_group_range(const qt_lb_weights *w, size_t g, size_t *s0, size_t *s1)
{
    *s0 = g * w->sb_per_group;
    *s1 = *s0 + w->sb_per_group;
    if (*s1 > w->nsb) *s1 = w->nsb;
}

/* Fixed pseudo-random operands of the in-cache rate runs: weight bytes, and activation
 * bytes in [0, 127]. */
static inline void qt_lb_fill_repeat_operands(uint8_t *w, size_t wn, int8_t *a, size_t an)
{
    uint64_t st = 0x9e3779b97f4a7c15ULL;
    for (size_t i = 0; i < wn; ++i) {
        st ^= st << 13; st ^= st >> 7; st ^= st << 17;
        w[i] = (uint8_t)st;
    }
    for (size_t i = 0; i < an; ++i) {
        st ^= st << 13; st ^= st >> 7; st ^= st << 17;
        a[i] = (int8_t)(st & 0x7f);
    }
}

/* Work split of a product, shared by the drivers: row blocks of mc rows (a multiple of
 * mr, about block_bytes of activations) and chunks of ppc weight panels; a work item is one
 * (row block, chunk) pair. Threads get about per_thread items each (per_thread_blocks when
 * there are several row blocks); max_ppc, when not 0, caps the panels of a chunk. */
typedef struct {
    size_t mc, mblocks, ppc, nchunks, items;
    int nt;
} qt_lb_split;

static inline qt_lb_split qt_lb_split_work(size_t m, size_t lda, size_t npan, size_t mr,
                                           size_t block_bytes, size_t per_thread,
                                           size_t per_thread_blocks, size_t max_ppc,
                                           int n_threads)
{
    qt_lb_split sp;
    size_t mc = block_bytes / (lda ? lda : 1);
    mc = mc < mr ? mr : mc / mr * mr;
    if (mc > m) mc = (m + mr - 1) / mr * mr;
    sp.mc = mc;
    sp.mblocks = (m + mc - 1) / mc;
    int nt = n_threads < 1 ? 1 : n_threads;
    const size_t per = sp.mblocks > 1 ? per_thread_blocks : per_thread;
    size_t nchunks = (per * (size_t)nt + sp.mblocks - 1) / sp.mblocks;
    if (nt == 1) nchunks = 1;
    if (max_ppc && nchunks < (npan + max_ppc - 1) / max_ppc) nchunks = (npan + max_ppc - 1) / max_ppc;
    if (nchunks > npan) nchunks = npan;
    sp.ppc = (npan + nchunks - 1) / nchunks;
    sp.nchunks = (npan + sp.ppc - 1) / sp.ppc;
    sp.items = sp.mblocks * sp.nchunks;
    if ((size_t)nt > sp.items) nt = (int)sp.items;
    sp.nt = nt;
    return sp;
}

/* Shared integer epilogue: G from D (mr x 32, row stride 32) for group g. */
static inline void qt_lb_store_int(const qt_lb_weights *w, size_t p, size_t g, int mr,
                                   const int32_t *d, const int32_t *sums, const int32_t *za,
                                   int32_t *gout, size_t ldg, size_t ncols)
{
    const size_t G = w->n_groups;
    const uint8_t *zz = w->zz + (p * G + g) * QT_LB_NR;
    const int32_t *ws = w->wsum + (p * G + g) * QT_LB_NR;
    for (int i = 0; i < mr; ++i) {
        const int32_t s = sums[(size_t)i * G + g], z = za[i];
        for (size_t c = 0; c < ncols; ++c)
            gout[(size_t)i * ldg + c * G + g] =
                w->mul * d[i * QT_LB_NR + c] - (int32_t)zz[c] * s - z * ws[c];
    }
}

/* Shared float epilogue (scalar): tile += scale * G. */
static inline void qt_lb_store_float(const qt_lb_weights *w, size_t p, size_t g, int mr,
                                     const int32_t *d, const int32_t *sums, const int32_t *za,
                                     int asym, float *tile)
{
    const size_t G = w->n_groups;
    const float *sc = w->scale + (p * G + g) * QT_LB_NR;
    const uint8_t *zz = w->zz + (p * G + g) * QT_LB_NR;
    const int32_t *ws = w->wsum + (p * G + g) * QT_LB_NR;
    for (int i = 0; i < mr; ++i) {
        const int32_t s = sums[(size_t)i * G + g], z = asym ? za[i] : 0;
        for (int c = 0; c < QT_LB_NR; ++c) {
            const int32_t v = w->mul * d[i * QT_LB_NR + c] - (int32_t)zz[c] * s - z * ws[c];
            tile[i * QT_LB_NR + c] += sc[c] * (float)v;
        }
    }
}

#endif /* QT_LOWBIT_COMMON_H */
