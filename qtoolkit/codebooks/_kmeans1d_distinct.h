/* Distinct values of (value, weight) pairs for weighted 1-D k-means, read in the
 * input's own dtype (float32 or float64).
 *
 * One pass counts the digits of the keys of the pairs with positive weight, the
 * next ones sort (key, weight) records by a stable LSD radix sort (11-bit digits;
 * digits on which every key agrees are skipped; the first pass reads the inputs
 * directly, so zero weights are dropped on the way), and a last pass merges equal
 * values, summing their weights in input order. The key of a value is its IEEE
 * bits made monotone (negative values complemented, the sign bit of the others
 * set), with -0 and +0 one value. The scratch space is the caller's: the output
 * buffers of 2 n doubles hold the intermediate records, and one buffer of n
 * records the final ones.
 *
 * Prior validation is assumed: finite values, finite non-negative weights.
 */
#ifndef QT_KMEANS1D_DISTINCT_H
#define QT_KMEANS1D_DISTINCT_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define QT_KD_BITS 11
#define QT_KD_BUCKETS (1 << QT_KD_BITS)
#define QT_KD_MASK (QT_KD_BUCKETS - 1)

/* records: 12 bytes for float32 keys (the weight 4-byte aligned), 16 for float64 */
#pragma pack(push, 4)
typedef struct {
    uint32_t key;
    double w;
} qt_kd_rec32;
#pragma pack(pop)

typedef struct {
    uint64_t key;
    double w;
} qt_kd_rec64;

/* bytes of the final-record buffer the kernels need for n pairs */
#define QT_KD_SCRATCH_F32(n) ((size_t)((n) > 0 ? (n) : 1) * sizeof(qt_kd_rec32))
#define QT_KD_SCRATCH_F64(n) ((size_t)((n) > 0 ? (n) : 1) * sizeof(qt_kd_rec64))

/* branch-free: the signs of the values are random */
static inline uint32_t qt_kd_key32(float v)
{
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    u = (u & 0x7fffffffu) ? u : 0u; /* -0 is +0 */
    return u ^ ((uint32_t)((int32_t)u >> 31) | 0x80000000u);
}

static inline double qt_kd_unkey32(uint32_t u)
{
    float v;
    u ^= ((u >> 31) - 1u) | 0x80000000u;
    memcpy(&v, &u, sizeof v);
    return (double)v;
}

static inline uint64_t qt_kd_key64(double v)
{
    uint64_t u;
    memcpy(&u, &v, sizeof u);
    u = (u & 0x7fffffffffffffffULL) ? u : 0u;
    return u ^ ((uint64_t)((int64_t)u >> 63) | 0x8000000000000000ULL);
}

static inline double qt_kd_unkey64(uint64_t u)
{
    double v;
    u ^= ((u >> 63) - 1u) | 0x8000000000000000ULL;
    memcpy(&v, &u, sizeof v);
    return v;
}

/* 1 when every positive weight equals the first positive one (stops at the first
 * that differs), else 0; *w0 receives that weight (0 when none is positive). */
static int qt_kd_equal_weights(const double *w, ptrdiff_t n, double *w0)
{
    ptrdiff_t i = 0;
    double first;
    while (i < n && !(w[i] > 0.0))
        i++;
    if (i == n) {
        *w0 = 0.0;
        return 1;
    }
    first = w[i];
    *w0 = first;
    for (; i < n; i++)
        if (w[i] > 0.0 && w[i] != first)
            return 0;
    return 1;
}

/* Turn counts into starting offsets; 0 when every key has the same digit (the
 * pass is skipped), else 1. */
static int qt_kd_offsets(uint32_t *h, uint32_t c)
{
    uint32_t sum = 0, t;
    int d;
    for (d = 0; d < QT_KD_BUCKETS; d++)
        if (h[d] == c)
            return 0;
    for (d = 0; d < QT_KD_BUCKETS; d++) {
        t = h[d];
        h[d] = sum;
        sum += t;
    }
    return 1;
}

/* The kernel for one key width: NAME(x, w, n, out, fin). x, w: the n values and
 * weights; out: 2 n doubles, the distinct values out[0..m) (sorted) and their
 * summed weights out[n..n + m) (its 16 n bytes also hold intermediate records);
 * fin: a scratch of QT_KD_SCRATCH_*(n) bytes. Returns the number m of distinct
 * values with positive weight, or -1 when out of memory. */
#define QT_KD_DEFINE(NAME, VT, KT, REC, KEY, UNKEY, NPASS)                                     \
    static ptrdiff_t NAME(const VT *x, const double *w, ptrdiff_t n, double *out, void *fin)    \
    {                                                                                          \
        uint32_t *hist = (uint32_t *)calloc((size_t)(NPASS)*QT_KD_BUCKETS, sizeof(uint32_t)); \
        int active[NPASS], np = 0, p, q;                                                       \
        uint32_t c = 0;                                                                        \
        ptrdiff_t i, m = 0;                                                                    \
        REC *bufs[2], *src, *dst;                                                              \
        if (hist == NULL)                                                                      \
            return -1;                                                                         \
        for (i = 0; i < n; i++) {                                                              \
            if (w[i] > 0.0) {                                                                  \
                const KT k = KEY(x[i]);                                                        \
                for (p = 0; p < (NPASS); p++)                                                  \
                    hist[(p << QT_KD_BITS) + (int)((k >> (p * QT_KD_BITS)) & QT_KD_MASK)]++;   \
                c++;                                                                           \
            }                                                                                  \
        }                                                                                      \
        if (c == 0) {                                                                          \
            free(hist);                                                                        \
            return 0;                                                                          \
        }                                                                                      \
        for (p = 0; p < (NPASS); p++)                                                          \
            if (qt_kd_offsets(hist + (p << QT_KD_BITS), c))                                    \
                active[np++] = p;                                                              \
        /* the last pass must land in fin (ux/uw are written by the merge) */                 \
        bufs[0] = (REC *)fin;                                                                  \
        bufs[1] = (REC *)(void *)out;                                                          \
        dst = bufs[(np + 1) % 2];                                                              \
        if (np == 0) {                                                                         \
            dst = bufs[0];                                                                     \
            for (i = 0, c = 0; i < n; i++)                                                     \
                if (w[i] > 0.0) {                                                              \
                    dst[c].key = KEY(x[i]);                                                    \
                    dst[c].w = w[i];                                                           \
                    c++;                                                                       \
                }                                                                              \
        } else {                                                                               \
            uint32_t *h = hist + (active[0] << QT_KD_BITS);                                    \
            const int sh = active[0] * QT_KD_BITS;                                             \
            for (i = 0; i < n; i++) {                                                          \
                const double wi = w[i];                                                        \
                if (wi > 0.0) {                                                                \
                    const KT k = KEY(x[i]);                                                    \
                    REC *r = dst + h[(int)((k >> sh) & QT_KD_MASK)]++;                         \
                    r->key = k;                                                                \
                    r->w = wi;                                                                 \
                }                                                                              \
            }                                                                                  \
            for (q = 1; q < np; q++) {                                                         \
                uint32_t *hq = hist + (active[q] << QT_KD_BITS);                               \
                const int shq = active[q] * QT_KD_BITS;                                        \
                src = dst;                                                                     \
                dst = (src == bufs[0]) ? bufs[1] : bufs[0];                                    \
                for (i = 0; i < (ptrdiff_t)c; i++)                                             \
                    dst[hq[(int)((src[i].key >> shq) & QT_KD_MASK)]++] = src[i];               \
            }                                                                                  \
        }                                                                                      \
        free(hist);                                                                            \
        src = dst; /* == fin */                                                                \
        {                                                                                      \
            double *ox = out, *ow = out + n;                                                   \
            KT prev = src[0].key;                                                              \
            double acc = src[0].w;                                                             \
            for (i = 1; i < (ptrdiff_t)c; i++) {                                               \
                const KT k = src[i].key;                                                       \
                if (k == prev) {                                                               \
                    acc += src[i].w;                                                           \
                } else {                                                                       \
                    ox[m] = UNKEY(prev);                                                       \
                    ow[m] = acc;                                                               \
                    m++;                                                                       \
                    prev = k;                                                                  \
                    acc = src[i].w;                                                            \
                }                                                                              \
            }                                                                                  \
            ox[m] = UNKEY(prev);                                                               \
            ow[m] = acc;                                                                       \
            m++;                                                                               \
        }                                                                                      \
        return m;                                                                              \
    }

QT_KD_DEFINE(qt_kd_distinct_f32, float, uint32_t, qt_kd_rec32, qt_kd_key32, qt_kd_unkey32, 3)
QT_KD_DEFINE(qt_kd_distinct_f64, double, uint64_t, qt_kd_rec64, qt_kd_key64, qt_kd_unkey64, 6)

/* ---- float32 values: (key, index) pairs sorted as 64-bit integers ----
 *
 * The key of a float32 value in the high 32 bits and its index in the low 32
 * make every pair distinct and order equal values by index, so any sort of the
 * 64-bit integers (the caller's; NumPy's is vectorised) gives the order of a
 * stable sort. Needs n <= 2^32. */

/* distance (in keys) at which the merge prefetches a weight */
#define QT_KD_PREFETCH 16

/* keys[0..c) for the c pairs with positive weight; returns c. */
static ptrdiff_t qt_kd_pair_keys_f32(const float *x, const double *w, ptrdiff_t n,
                                     uint64_t *keys)
{
    ptrdiff_t i, c = 0;
    for (i = 0; i < n; i++) { /* written always, kept for a positive weight (no branch) */
        keys[c] = ((uint64_t)qt_kd_key32(x[i]) << 32) | (uint64_t)(uint32_t)i;
        c += w[i] > 0.0;
    }
    return c;
}

/* Merge the c sorted keys: the distinct values into keys' own memory (as
 * doubles; value t is written after key t is read) and their summed weights
 * (gathered from w, in index order within a value) into uw. Returns m. */
static ptrdiff_t qt_kd_merge_keys(uint64_t *keys, ptrdiff_t c, const double *w, double *uw)
{
    ptrdiff_t i, m = 0;
    uint32_t prev;
    double acc, v;
    uint64_t bits;
    if (c == 0)
        return 0;
    prev = (uint32_t)(keys[0] >> 32);
    acc = w[(uint32_t)keys[0]];
    for (i = 1; i < c; i++) {
        const uint64_t k = keys[i];
        const uint32_t hi = (uint32_t)(k >> 32);
#if defined(__GNUC__) || defined(__clang__)
        if (i + QT_KD_PREFETCH < c) /* the weights are gathered in random order */
            __builtin_prefetch(&w[(uint32_t)keys[i + QT_KD_PREFETCH]]);
#endif
        const double wi = w[(uint32_t)k];
        if (hi == prev) {
            acc += wi;
        } else {
            v = qt_kd_unkey32(prev);
            memcpy(&bits, &v, sizeof bits);
            keys[m] = bits;
            uw[m] = acc;
            m++;
            prev = hi;
            acc = wi;
        }
    }
    v = qt_kd_unkey32(prev);
    memcpy(&bits, &v, sizeof bits);
    keys[m] = bits;
    uw[m] = acc;
    return m + 1;
}

#endif
