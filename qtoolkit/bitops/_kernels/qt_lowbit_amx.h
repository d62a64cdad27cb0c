/* AMX (Intel Advanced Matrix Extensions, AMX-INT8) driver for k-bit weights x int8
 * activations, used at the avx512 level when the CPU and the OS allow the tile
 * registers and the product has at least QT_LB_AMX_MIN_M rows.
 *
 * The packed layout of qt_lowbit_common.h already is the tile layout of the second
 * operand of TDPBSUD: the unpacked quad vector U_q of a superblock half (16 columns
 * x 4 K values, 64 bytes) is row q of a B tile. For each weight panel (32 columns)
 * the driver unpacks every superblock once into a per-thread buffer
 *
 *     buf[h][s][q][64] = U_q of superblock s, half h     (s < nsb + 1; the extra
 *                                                           superblock is zero)
 *
 * and then, for 32 activation rows at a time, accumulates four 16 x 16 int32 tiles
 * (2 row tiles x 2 column halves) over each group with TDPBSUD (signed activations
 * times unsigned codes, exact int32 sums: |D| <= K * 255 * 128 < 2^31 for K < 65536),
 * K = 64 per step (32 for groups of one superblock). A group of an odd number of
 * superblocks ends on a step whose second half meets the zero superblock of the
 * buffer; its activation bytes are read from the next superblock of the row, which
 * the last row block makes valid by copying its rows into a padded buffer. The tiles
 * are stored to a 32 x 32 int32 block and turned into the exact signed products G
 * (and, in float mode, scaled and summed over the groups) by the AVX-512 epilogue.
 *
 * Signed tiles: in float mode, when every value mul q - zz fits int8 (codes of up to
 * 7 bits with zero points in their range, ternary, binary, symmetric 8-bit;
 * qt_lb_signed_fits), the panel is unpacked as those signed values instead and
 * multiplied with TDPBSSD (|D| <= K * 128 * 128): the tile sums then already are
 * mul D - zz Sa, and the epilogue needs neither the activation group sums nor the
 * zero points.
 *
 * The result is bit for bit the one of the other kernels (the int32 sums are exact). */
#ifndef QT_LOWBIT_AMX_H
#define QT_LOWBIT_AMX_H

#include "qt_lowbit_common.h"

#if defined(QT_X86) && !defined(QT_LB_NO_IMMINTRIN) && defined(__linux__)
#define QT_LB_HAVE_AMX 1
#include <immintrin.h>
#include <sys/syscall.h>
/* (declared here: <unistd.h> hides it under strict -std=c11) */
extern long syscall(long number, ...);

#ifdef QT_HAVE_OPENMP
#include <omp.h>
#endif

#define QT_LB_AMX_MIN_M 16
#define QT_LB_AMX_MR 32
#define QT_LB_AMX_PPC 8 /* panels unpacked together (8 x 66 KiB at K = 2048) */
#ifndef QT_LB_AMX_A_BLOCK_BYTES
#define QT_LB_AMX_A_BLOCK_BYTES ((size_t)1 << 20) /* activation bytes per row block */
#endif
#define QT_LB_AMX_TARGET \
    __attribute__((target("avx512f,avx512bw,avx512vnni,amx-tile,amx-int8")))

/* -1: not probed; 0: unusable; 1: usable. qt_lb_amx_enabled: the switch the tests flip. */
static int qt_lb_amx_state = -1;
static int qt_lb_amx_enabled = 1;

/* CPUID leaf 7: AMX-TILE (EDX bit 24), AMX-INT8 (EDX bit 25); XCR0 bits 17 and 18 (the
 * OS saves the tile state); then the Linux permission for the tile data (arch_prctl
 * ARCH_REQ_XCOMP_PERM for XFEATURE_XTILEDATA, once per process). */
static int qt_lb_amx_usable(void)
{
    if (qt_lb_amx_state >= 0) return qt_lb_amx_state;
    int ok = 0;
    unsigned a = 0, b = 0, c = 0, d = 0;
    __asm__ __volatile__("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(0), "c"(0));
    if (a >= 7) {
        __asm__ __volatile__("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(7), "c"(0));
        const unsigned edx7 = d;
        __asm__ __volatile__("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(1), "c"(0));
        const int osxsave = (c >> 27) & 1;
        if (((edx7 >> 24) & 1) && ((edx7 >> 25) & 1) && osxsave) {
            unsigned lo, hi;
            __asm__ __volatile__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
            const unsigned long long xcr0 = ((unsigned long long)hi << 32) | lo;
            if (((xcr0 >> 17) & 3) == 3 && ((xcr0 >> 5) & 7) == 7) {
                /* ARCH_REQ_XCOMP_PERM = 0x1023, XFEATURE_XTILEDATA = 18 */
                ok = syscall(SYS_arch_prctl, 0x1023, 18) == 0;
            }
        }
    }
    qt_lb_amx_state = ok;
    return ok;
}

/* 1 if the AMX driver would run a product of m rows now. */
static int qt_lb_amx_active(size_t m)
{
    return qt_lb_amx_enabled && m >= QT_LB_AMX_MIN_M && qt_lb_amx_usable();
}

typedef struct {
    uint8_t palette_id, start_row;
    uint8_t reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} qt_lb_amx_config;

/* tiles 0-3: C (rows 0-15 / 16-31 x columns 0-15 / 16-31); 4, 5: A; 6, 7: B */
QT_LB_AMX_TARGET static void qt_lb_amx_configure(int kbytes)
{
    qt_lb_amx_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette_id = 1;
    for (int t = 0; t < 4; ++t) { cfg.rows[t] = 16; cfg.colsb[t] = 64; }
    for (int t = 4; t < 6; ++t) { cfg.rows[t] = 16; cfg.colsb[t] = (uint16_t)kbytes; }
    for (int t = 6; t < 8; ++t) { cfg.rows[t] = (uint8_t)(kbytes / 4); cfg.colsb[t] = 64; }
    /* the compiler does not always see that LDTILECFG reads cfg: without this barrier it
     * may drop the stores above as dead (seen with GCC 12 on a plain local struct) */
    __asm__ volatile("" : : "r"(&cfg) : "memory");
    _tile_loadconfig(&cfg);
}

/* Unpack panel p into buf (layout above); the extra superblock stays zero. With sgn, each
 * value becomes mul q - zz of its column and group (int8, qt_lb_signed_fits). */
QT_LB_AMX_TARGET static void qt_lb_amx_unpack_panel(const qt_lb_weights *w, size_t p,
                                                    uint8_t *buf, int sgn)
{
    const size_t nsb = w->nsb, vb = 64 * (size_t)w->bits, G = w->n_groups;
    const size_t spg = w->sb_per_group;
    const uint8_t *panel = w->w + p * nsb * 2 * vb;
    const int lut = w->lut != NULL;
    __m512i table = _mm512_setzero_si512();
    if (lut) table = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)w->lut));
    for (int h = 0; h < 2; ++h) {
        __m512i zrep = _mm512_setzero_si512(); /* the 16 columns' zz, each in 4 bytes */
        for (size_t s = 0; s < nsb; ++s) {
            const uint8_t *v = panel + (s * 2 + (size_t)h) * vb;
            uint8_t *dst = buf + (((size_t)h * (nsb + 1) + s) * 8) * 64;
            if (sgn && s % spg == 0) {
                const uint8_t *z = w->zz + (p * G + s / spg) * QT_LB_NR + 16 * (size_t)h;
                zrep = _mm512_mullo_epi32(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)z)),
                                          _mm512_set1_epi32(0x01010101));
            }
            switch (w->bits) {
#define QT_LB_AMX_UNPACK(BITS)                                                              \
    for (int q = 0; q < 8; ++q) {                                                           \
        __m512i u = qt_lb_vnni_unpack(v, BITS, q, lut, table);                              \
        if (sgn) {                                                                          \
            if (w->mul == 2) u = _mm512_add_epi8(u, u);                                     \
            u = _mm512_sub_epi8(u, zrep);                                                   \
        }                                                                                   \
        _mm512_storeu_si512((void *)(dst + 64 * q), u);                                     \
    }                                                                                       \
    break;
            case 1: QT_LB_AMX_UNPACK(1)
            case 2: QT_LB_AMX_UNPACK(2)
            case 3: QT_LB_AMX_UNPACK(3)
            case 4: QT_LB_AMX_UNPACK(4)
            default: QT_LB_AMX_UNPACK(8)
#undef QT_LB_AMX_UNPACK
            }
        }
    }
}

/* The float epilogue of one (panel, group) step, a row at a time so that the tile loop of
 * the next step can run it in slices between its tile instructions (qt_lb_amx_rows). Row i
 * of the exact products is G = mul D - zz Sa - za Ws, as the VNNI kernel computes it; the
 * row's sum over the groups is kept in tile, and after the last group out = sa * tile. */
typedef struct {
    const int32_t *d;              /* the step's D, 32 x 32, row stride 32 */
    const int32_t *sums, *za;      /* of the tile's rows (sums: row stride G) */
    const float *sa;
    float *tile, *out;             /* out: the panel's first column of the tile's first row */
    size_t ldo, g, G;
    __m512 sc[2], zf[2], wf[2];    /* per column half: scale; zz and Ws as float */
    __m512i zz[2], ws[2];          /* the same as int32 */
    __mmask16 k0, k1;
    int32_t zz0;                   /* the one zz of every column (zz_uniform), else -1 */
    int mul, asym, exact_float, first, last, stream, full;
    int sgn;                       /* D from signed tiles: already mul D - zz Sa */
} qt_lb_amx_epi;

QT_LB_AMX_TARGET static void qt_lb_amx_epi_init(qt_lb_amx_epi *e, const qt_lb_weights *w,
                                                size_t p, size_t g, const int32_t *d,
                                                const int32_t *sums, const int32_t *za,
                                                const float *sa, int asym, float *tile,
                                                float *out, size_t ldo, int stream, int sgn)
{
    const size_t G = w->n_groups, off = (p * G + g) * QT_LB_NR, c0 = p * QT_LB_NR;
    const size_t ncols = (w->n - c0 < QT_LB_NR) ? w->n - c0 : QT_LB_NR;
    e->d = d;
    e->sums = sums;
    e->za = za;
    e->sa = sa;
    e->tile = tile;
    e->out = out == NULL ? NULL : out + c0;
    e->ldo = ldo;
    e->g = g;
    e->G = G;
    for (int j = 0; j < 2; ++j) {
        e->sc[j] = _mm512_loadu_ps(w->scale + off + 16 * j);
        e->zz[j] = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(w->zz + off + 16 * j)));
        e->ws[j] = _mm512_loadu_si512((const void *)(w->wsum + off + 16 * j));
        e->zf[j] = _mm512_cvtepi32_ps(e->zz[j]);
        e->wf[j] = _mm512_cvtepi32_ps(e->ws[j]);
    }
    e->k0 = ncols >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << ncols) - 1);
    e->k1 = ncols >= 32   ? (__mmask16)0xFFFF
            : ncols <= 16 ? (__mmask16)0
                          : (__mmask16)((1u << (ncols - 16)) - 1);
    e->zz0 = w->zz_uniform ? (int32_t)w->zz[0] : -1;
    e->mul = w->mul;
    e->asym = asym;
    /* groups of at most 128 values: |D|, |zz Sa|, |za Ws| <= 128 * 255 * 128 < 2^22, and so
     * is G: every integer operation is exact in float32, in fewer instructions */
    e->exact_float = w->sb_per_group * QT_LB_SB <= 128;
    e->first = g == 0;
    e->last = g + 1 == G && out != NULL;
    e->stream = stream;
    e->full = ncols == QT_LB_NR;
    e->sgn = sgn;
}

/* Rows r0..r1-1 of the epilogue e. The fields are first copied to locals: the stores to
 * tile and out could otherwise alias e (the build has no strict aliasing), and every field
 * would be read again after each store. EXACT, FIRST, LAST, MUL2 and ASYM are constants at
 * every call (always inlined), so each combination gets a loop without those branches: the
 * generic loop with the flags as variables measured 1.25x slower on 4-bit g32 weights. */
QT_LB_AMX_TARGET static inline __attribute__((always_inline)) void
qt_lb_amx_epi_loop(const qt_lb_amx_epi *e, int r0, int r1, const int EXACT, const int FIRST,
                   const int LAST, const int MUL2, const int ASYM, const int SGN)
{
    const int32_t *d = e->d, *sums = e->sums, *za = e->za;
    const float *sa = e->sa;
    float *tile = e->tile, *out = e->out;
    const size_t ldo = e->ldo, g = e->g, G = e->G;
    const __m512 sc0 = e->sc[0], sc1 = e->sc[1], zf0 = e->zf[0], zf1 = e->zf[1];
    const __m512 wf0 = e->wf[0], wf1 = e->wf[1];
    const __m512i zz0v = e->zz[0], zz1v = e->zz[1], ws0 = e->ws[0], ws1 = e->ws[1];
    const __mmask16 k0 = e->k0, k1 = e->k1;
    const int32_t zz0 = e->zz0;
    const int stream = e->stream && e->full;
    for (int i = r0; i < r1; ++i) {
        const __m512i d0 = _mm512_loadu_si512((const void *)(d + i * QT_LB_NR));
        const __m512i d1 = _mm512_loadu_si512((const void *)(d + i * QT_LB_NR + 16));
        __m512 t0, t1;
        if (SGN) { /* G = D - za Ws */
            if (ASYM && !EXACT) {
                const __m512i zv = _mm512_set1_epi32(za[i]);
                t0 = _mm512_cvtepi32_ps(_mm512_sub_epi32(d0, _mm512_mullo_epi32(ws0, zv)));
                t1 = _mm512_cvtepi32_ps(_mm512_sub_epi32(d1, _mm512_mullo_epi32(ws1, zv)));
            } else {
                t0 = _mm512_cvtepi32_ps(d0);
                t1 = _mm512_cvtepi32_ps(d1);
                if (ASYM) {
                    const __m512 zv = _mm512_set1_ps((float)za[i]);
                    t0 = _mm512_fnmadd_ps(wf0, zv, t0);
                    t1 = _mm512_fnmadd_ps(wf1, zv, t1);
                }
            }
        } else if (EXACT) {
            const int32_t s = sums[(size_t)i * G + g];
            t0 = _mm512_cvtepi32_ps(d0);
            t1 = _mm512_cvtepi32_ps(d1);
            if (MUL2) {
                t0 = _mm512_add_ps(t0, t0);
                t1 = _mm512_add_ps(t1, t1);
            }
            const __m512 sv = _mm512_set1_ps((float)s);
            t0 = _mm512_fnmadd_ps(zf0, sv, t0);
            t1 = _mm512_fnmadd_ps(zf1, sv, t1);
            if (ASYM) {
                const __m512 zv = _mm512_set1_ps((float)za[i]);
                t0 = _mm512_fnmadd_ps(wf0, zv, t0);
                t1 = _mm512_fnmadd_ps(wf1, zv, t1);
            }
        } else {
            const int32_t s = sums[(size_t)i * G + g];
            __m512i i0 = MUL2 ? _mm512_add_epi32(d0, d0) : d0;
            __m512i i1 = MUL2 ? _mm512_add_epi32(d1, d1) : d1;
            if (zz0 >= 0) {
                const __m512i zs = _mm512_set1_epi32((int32_t)((int64_t)zz0 * s));
                i0 = _mm512_sub_epi32(i0, zs);
                i1 = _mm512_sub_epi32(i1, zs);
            } else {
                const __m512i sv = _mm512_set1_epi32(s);
                i0 = _mm512_sub_epi32(i0, _mm512_mullo_epi32(zz0v, sv));
                i1 = _mm512_sub_epi32(i1, _mm512_mullo_epi32(zz1v, sv));
            }
            if (ASYM) {
                const __m512i zv = _mm512_set1_epi32(za[i]);
                i0 = _mm512_sub_epi32(i0, _mm512_mullo_epi32(ws0, zv));
                i1 = _mm512_sub_epi32(i1, _mm512_mullo_epi32(ws1, zv));
            }
            t0 = _mm512_cvtepi32_ps(i0);
            t1 = _mm512_cvtepi32_ps(i1);
        }
        float *tr = tile + i * QT_LB_NR;
        __m512 y0, y1;
        if (FIRST) {
            y0 = _mm512_mul_ps(t0, sc0);
            y1 = _mm512_mul_ps(t1, sc1);
        } else {
            y0 = _mm512_fmadd_ps(t0, sc0, _mm512_loadu_ps(tr));
            y1 = _mm512_fmadd_ps(t1, sc1, _mm512_loadu_ps(tr + 16));
        }
        if (!LAST) {
            _mm512_storeu_ps(tr, y0);
            _mm512_storeu_ps(tr + 16, y1);
            continue;
        }
        const __m512 av = _mm512_set1_ps(sa[i]);
        y0 = _mm512_mul_ps(y0, av);
        y1 = _mm512_mul_ps(y1, av);
        float *o = out + (size_t)i * ldo;
        if (stream && ((uintptr_t)o & 63) == 0) { /* whole aligned lines: no read for ownership */
            _mm512_stream_ps(o, y0);
            _mm512_stream_ps(o + 16, y1);
        } else {
            _mm512_mask_storeu_ps(o, k0, y0);
            _mm512_mask_storeu_ps(o + 16, k1, y1);
        }
    }
}

/* Rows r0..r1-1 of the epilogue e, through the loop for its flags. */
QT_LB_AMX_TARGET static void qt_lb_amx_epi_run(const qt_lb_amx_epi *e, int r0, int r1)
{
    const int x = e->exact_float, f = e->first, l = e->last;
    if (e->sgn) {
        if (e->asym) { /* asymmetric activations: one loop per exactness */
            if (x) qt_lb_amx_epi_loop(e, r0, r1, 1, f, l, 0, 1, 1);
            else qt_lb_amx_epi_loop(e, r0, r1, 0, f, l, 0, 1, 1);
            return;
        }
        switch (f * 2 + l) {
        case 0: qt_lb_amx_epi_loop(e, r0, r1, 1, 0, 0, 0, 0, 1); break;
        case 1: qt_lb_amx_epi_loop(e, r0, r1, 1, 0, 1, 0, 0, 1); break;
        case 2: qt_lb_amx_epi_loop(e, r0, r1, 1, 1, 0, 0, 0, 1); break;
        default: qt_lb_amx_epi_loop(e, r0, r1, 1, 1, 1, 0, 0, 1); break;
        }
        return;
    }
    if (e->asym || e->mul == 2) { /* asymmetric activations, binary weights: one loop */
        const int m2 = e->mul == 2, as = e->asym;
        if (x) qt_lb_amx_epi_loop(e, r0, r1, 1, f, l, m2, as, 0);
        else qt_lb_amx_epi_loop(e, r0, r1, 0, f, l, m2, as, 0);
        return;
    }
    switch (x * 4 + f * 2 + l) {
    case 0: qt_lb_amx_epi_loop(e, r0, r1, 0, 0, 0, 0, 0, 0); break;
    case 1: qt_lb_amx_epi_loop(e, r0, r1, 0, 0, 1, 0, 0, 0); break;
    case 2: qt_lb_amx_epi_loop(e, r0, r1, 0, 1, 0, 0, 0, 0); break;
    case 3: qt_lb_amx_epi_loop(e, r0, r1, 0, 1, 1, 0, 0, 0); break;
    case 4: qt_lb_amx_epi_loop(e, r0, r1, 1, 0, 0, 0, 0, 0); break;
    case 5: qt_lb_amx_epi_loop(e, r0, r1, 1, 0, 1, 0, 0, 0); break;
    case 6: qt_lb_amx_epi_loop(e, r0, r1, 1, 1, 0, 0, 0, 0); break;
    default: qt_lb_amx_epi_loop(e, r0, r1, 1, 1, 1, 0, 0, 0); break;
    }
}

/* 32 rows (a, row stride lda; sums, za and sa of those rows) x panels p0..p1-1 (unpacked
 * in bufs, bufbytes apart): every (panel, group) step through the tiles, then its epilogue:
 * the float sum over the groups (in tile), written to out scaled by sa after the panel's
 * last group; or, in integer mode, G into gout (pointing at the rows' first element). The
 * float epilogue of each step is spread over the tile loop of the next step, a few rows
 * after each K step, so that the vector units work while the tile unit does and the
 * tile instructions never wait behind a whole epilogue (two d buffers). With out == NULL
 * in float mode the last panel's sum is left in tile. */
QT_LB_AMX_TARGET static void qt_lb_amx_rows(const qt_lb_weights *w, size_t p0, size_t p1,
                                            int mr, const uint8_t *bufs, size_t bufbytes,
                                            int kstep, const int8_t *a, size_t lda,
                                            const int32_t *sums, const int32_t *za,
                                            const float *sa, int asym, float *tile,
                                            int32_t *gout, size_t ldg, float *out,
                                            size_t ldo, int stream, int sgn)
{
    const size_t G = w->n_groups, nsb = w->nsb, n = w->n, spg = w->sb_per_group;
    const size_t sstep = (size_t)kstep / QT_LB_SB, steps = (p1 - p0) * G;
    int32_t d[2][QT_LB_AMX_MR * QT_LB_NR];
    qt_lb_amx_epi e;
    int pending = 0;   /* rows of e's epilogue still to run */
    size_t pi = 0, g = 0; /* the step's panel (from p0) and group, kept without divisions */
    for (size_t i = 0; i <= steps; ++i) {
        int row = 0;
        if (i < steps) {
            const uint8_t *b0 = bufs + pi * bufbytes, *b1 = b0 + (nsb + 1) * 8 * 64;
            int32_t *dg = d[i & 1];
            const size_t s0 = g * spg, s1 = (s0 + spg < nsb) ? s0 + spg : nsb;
            const int nk = (int)(sstep == 1 ? s1 - s0 : (s1 - s0 + 1) / 2); /* K steps */
            const int per = nk > 1 ? (pending + nk - 1) / nk : pending;
            _tile_zero(0);
            _tile_zero(1);
            _tile_zero(2);
            _tile_zero(3);
            for (size_t s = s0; s < s1; s += sstep) {
                const int8_t *as = a + s * QT_LB_SB;
                _tile_loadd(4, as, (long)lda);
                _tile_loadd(5, as + 16 * lda, (long)lda);
                _tile_loadd(6, b0 + s * 512, 64);
                _tile_loadd(7, b1 + s * 512, 64);
                if (sgn) {
                    _tile_dpbssd(0, 4, 6);
                    _tile_dpbssd(1, 4, 7);
                    _tile_dpbssd(2, 5, 6);
                    _tile_dpbssd(3, 5, 7);
                } else {
                    _tile_dpbsud(0, 4, 6);
                    _tile_dpbsud(1, 4, 7);
                    _tile_dpbsud(2, 5, 6);
                    _tile_dpbsud(3, 5, 7);
                }
                if (row < pending) {
                    const int r1 = row + per < pending ? row + per : pending;
                    qt_lb_amx_epi_run(&e, row, r1);
                    row = r1;
                }
            }
            if (row < pending) qt_lb_amx_epi_run(&e, row, pending);
            _tile_stored(0, dg, 4 * QT_LB_NR);
            _tile_stored(1, dg + 16, 4 * QT_LB_NR);
            _tile_stored(2, dg + 16 * QT_LB_NR, 4 * QT_LB_NR);
            _tile_stored(3, dg + 16 * QT_LB_NR + 16, 4 * QT_LB_NR);
        } else if (row < pending) {
            qt_lb_amx_epi_run(&e, row, pending);
        }
        pending = 0;
        if (i == steps) break;
        const size_t p = p0 + pi, c0 = p * QT_LB_NR;
        if (gout != NULL) {
            const size_t ncols = (n - c0 < QT_LB_NR) ? n - c0 : QT_LB_NR;
            qt_lb_store_int(w, p, g, mr, d[i & 1], sums, za, gout + c0 * G, ldg, ncols);
        } else {
            qt_lb_amx_epi_init(&e, w, p, g, d[i & 1], sums, za, sa, asym, tile, out, ldo, stream,
                               sgn);
            pending = mr;
        }
        if (++g == G) {
            g = 0;
            ++pi;
        }
    }
}

/* The whole product with AMX (same contract as qt_lb_gemm). Returns 0, or -1 when a
 * work buffer cannot be allocated. */
QT_LB_AMX_TARGET static int qt_lb_gemm_amx(const qt_lb_weights *w, const qt_lb_acts *x,
                                           size_t m, float *out, size_t ldo, int32_t *gout,
                                           int n_threads)
{
    const size_t n = w->n, G = w->n_groups, nsb = w->nsb, MR = QT_LB_AMX_MR;
    const size_t npan = (n + QT_LB_NR - 1) / QT_LB_NR, lda = x->lda;
    /* K = 64 per step unless a group that is not the last could end on an odd superblock */
    const int kstep = (w->sb_per_group % 2 == 0 || G == 1) ? 64 : 32;
    /* row blocks: a multiple of 32 rows, about 1 MiB of activations (L2); panel chunks: at
     * most QT_LB_AMX_PPC panels, unpacked together into L2, so that each 32-row activation
     * tile serves all of them while it is in cache and the output is written in rows of up
     * to QT_LB_AMX_PPC * 32 columns */
    const qt_lb_split sp =
        qt_lb_split_work(m, lda, npan, MR, QT_LB_AMX_A_BLOCK_BYTES, 4, 4, QT_LB_AMX_PPC, n_threads);
    const size_t mc = sp.mc, ppc = sp.ppc, nchunks = sp.nchunks, items = sp.items;
    const size_t ldg = n * G;
    const size_t bufbytes = 2 * (nsb + 1) * 8 * 64; /* one unpacked panel */
    /* the rows of the last, partial or odd-ended, 32-row tile: zero padded copy */
    const size_t padlda = lda + 64;
    const int stream = gout == NULL && m * n * sizeof(float) >= ((size_t)4 << 20);
    const int sgn = gout == NULL && w->signed_ok;
    int failed = 0;

#ifdef QT_HAVE_OPENMP
#pragma omp parallel num_threads(sp.nt) reduction(| : failed)
#endif
    {
        uint8_t *buf = (uint8_t *)aligned_alloc(64, ppc * bufbytes);
        int8_t *pad = (int8_t *)aligned_alloc(64, (MR * padlda + 63) / 64 * 64);
        float tile[QT_LB_AMX_MR * QT_LB_NR];
        const int ok = buf != NULL && pad != NULL;
        if (ok) {
            memset(buf, 0, ppc * bufbytes);
            qt_lb_amx_configure(kstep);
        }
        /* every thread meets the work-sharing loop; one without buffers only marks failure */
#ifdef QT_HAVE_OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
        for (long it = 0; it < (long)items; ++it) {
            if (!ok) {
                failed = 1;
                continue;
            }
            const size_t mb = (size_t)it / nchunks, ch = (size_t)it % nchunks;
            const size_t r0 = mb * mc, r1 = (r0 + mc < m) ? r0 + mc : m;
            const size_t p0 = ch * ppc, p1 = (p0 + ppc < npan) ? p0 + ppc : npan;
            for (size_t p = p0; p < p1; ++p)
                qt_lb_amx_unpack_panel(w, p, buf + (p - p0) * bufbytes, sgn);
            for (size_t r = r0; r < r1; r += MR) {
                const int mr = (int)((r1 - r < MR) ? r1 - r : MR);
                const int8_t *ar = x->a + r * lda;
                size_t ld = lda;
                if (r + MR >= m) { /* the last tile of rows: read from the zero-padded copy */
                    memset(pad, 0, MR * padlda);
                    for (int i = 0; i < mr; ++i)
                        memcpy(pad + (size_t)i * padlda, ar + (size_t)i * lda, lda);
                    ar = pad;
                    ld = padlda;
                }
                qt_lb_amx_rows(w, p0, p1, mr, buf, bufbytes, kstep, ar, ld, x->sums + r * G,
                               x->za + r, x->sa == NULL ? NULL : x->sa + r, x->asym, tile,
                               gout == NULL ? NULL : gout + r * ldg, ldg,
                               gout == NULL ? out + r * ldo : NULL, ldo, stream, sgn);
            }
        }
        _mm_sfence(); /* the streamed output is visible before the threads join */
        if (ok) _tile_release();
        free(buf);
        free(pad);
    }
    return failed ? -1 : 0;
}

/* The in-cache rate of the tile loop: qt_lb_amx_block `reps` times on one unpacked panel of
 * `nsb` superblocks (one group) and one 32-row activation tile, both L1/L2-resident. Returns
 * MACs done, -1 (memory) or -2 (no AMX). */
QT_LB_AMX_TARGET static int64_t qt_lb_amx_ukernel_repeat(int bits, size_t nsb, size_t reps)
{
    if (!qt_lb_amx_usable()) return -2;
    const size_t lda = nsb * QT_LB_SB, bufbytes = 2 * (nsb + 1) * 8 * 64;
    const size_t wbytes = qt_lb_panel_bytes(nsb, bits);
    uint8_t *wbuf = (uint8_t *)calloc(wbytes + 64, 1), *buf = (uint8_t *)calloc(bufbytes, 1);
    int8_t *abuf = (int8_t *)calloc(QT_LB_AMX_MR * lda + 64, 1);
    float scale[QT_LB_NR], tile[QT_LB_AMX_MR * QT_LB_NR];
    uint8_t zz[QT_LB_NR];
    int32_t wsum[QT_LB_NR], sums[QT_LB_AMX_MR], za[QT_LB_AMX_MR];
    if (wbuf == NULL || buf == NULL || abuf == NULL) {
        free(wbuf);
        free(buf);
        free(abuf);
        return -1;
    }
    qt_lb_fill_repeat_operands(wbuf, wbytes, abuf, QT_LB_AMX_MR * lda);
    for (int c = 0; c < QT_LB_NR; ++c) { scale[c] = 1.0f; zz[c] = 1; wsum[c] = 0; }
    for (int i = 0; i < QT_LB_AMX_MR; ++i) { sums[i] = 0; za[i] = 0; }
    qt_lb_weights w = {wbuf, scale, zz, wsum, NULL, QT_LB_NR, lda, nsb, nsb, 1, bits, 1};
    qt_lb_amx_unpack_panel(&w, 0, buf, 0);
    qt_lb_amx_configure(64);
    for (size_t r = 0; r < reps; ++r)
        qt_lb_amx_rows(&w, 0, 1, QT_LB_AMX_MR, buf, bufbytes, 64, abuf, lda, sums, za, NULL, 0,
                       tile, NULL, 0, NULL, 0, 0, 0);
    _tile_release();
    free(wbuf);
    free(buf);
    free(abuf);
    return (int64_t)(reps * QT_LB_AMX_MR * QT_LB_NR * lda);
}

#endif /* QT_X86 && !QT_LB_NO_IMMINTRIN && __linux__ */
#endif /* QT_LOWBIT_AMX_H */
