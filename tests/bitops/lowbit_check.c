/* Check of the low-bit kernels through their shared drivers, outside Python: every
 * level usable on the target, 1 and 2 threads, every weight width and group size,
 * against direct int64 references. Exits non-zero on any mismatch. */
#include <stdio.h>
#include <stdlib.h>
#include "qt_cpu.h"
#include "qt_lowbit.h"
#include "qt_tern.h"

static uint64_t rnd(uint64_t *s) { *s ^= *s << 13; *s ^= *s >> 7; *s ^= *s << 17; return *s; }

static int check_lowbit(uint64_t *seed, size_t m, size_t n, size_t k, int bits, size_t gs,
                        int binary, int lut, int asym, int *runs)
{
    const size_t nsb = (k + 31) / 32, lda = nsb * 32, npan = (n + 31) / 32;
    const size_t spg = gs ? gs / 32 : (nsb ? nsb : 1), G = gs ? (k + gs - 1) / gs : 1;
    const size_t gsk = gs ? gs : lda;
    uint8_t *u = malloc(n * k + 1), *wp = malloc(npan * nsb * 128 * bits + 64);
    int8_t *a = calloc(m * lda + 1, 1);
    float *scale = calloc(npan * G * 32, 4);
    uint8_t *zz = calloc(npan * G * 32, 1), lutb[16];
    int32_t *wsum = calloc(npan * G * 32, 4), *sums = malloc(m * G * 4 + 4), *za = malloc(m * 4 + 4);
    int32_t *gout = malloc(m * n * G * 4 + 4);
    float *out = malloc(m * n * 4 + 4), *sa = malloc(m * 4 + 4);
    for (size_t i = 0; i < m; ++i) sa[i] = 0.5f + (float)(rnd(seed) % 100) / 64.0f;
    int bad = 0;
    const int mul = binary ? 2 : 1;
    for (int e = 0; e < 16; ++e) lutb[e] = (uint8_t)(rnd(seed) & 255);
    for (size_t i = 0; i < n * k; ++i) u[i] = (uint8_t)(rnd(seed) & ((1u << bits) - 1));
    for (size_t i = 0; i < m; ++i) {
        za[i] = asym ? (int32_t)(rnd(seed) % 256) - 128 : 0;
        for (size_t j = 0; j < k; ++j) a[i * lda + j] = (int8_t)(rnd(seed) & 255);
    }
    for (size_t c = 0; c < n; ++c)
        for (size_t g = 0; g < G; ++g) {
            const size_t off = ((c / 32) * G + g) * 32 + c % 32;
            zz[off] = binary ? 1 : (lut ? 128 : (uint8_t)(rnd(seed) & ((1u << bits) - 1)));
            int32_t s = 0;
            for (size_t j = g * gsk; j < k && j < (g + 1) * gsk; ++j)
                s += mul * (lut ? lutb[u[c * k + j]] : u[c * k + j]) - zz[off];
            wsum[off] = s;
            scale[off] = (float)(rnd(seed) % 1000) / 512.0f - 1.0f;
        }
    qt_lb_row_sums(a, m, k, lda, gsk, G, sums);
    qt_lb_pack_weights(u, n, k, k, bits, wp);
    qt_lb_weights w = {wp, scale, zz, wsum, lut ? lutb : NULL, n, k, nsb, spg, G, bits, mul};
    qt_lb_acts x = {a, lda, sums, za, sa, asym};
    for (int run = 0; run < QT_N_LEVELS + 1; ++run) {
        /* the last run is the avx512 level again with the AMX driver switched off */
        const int level = run < QT_N_LEVELS ? run : QT_LEVEL_AVX512;
        if (qt_lb_kernel_name(level) == NULL) continue;
        if (run == QT_N_LEVELS && !qt_lb_amx_available()) continue;
        qt_lb_set_amx(run < QT_N_LEVELS);
        for (int t = 1; t <= 2; ++t) {
            memset(gout, 0x55, m * n * G * 4);
            qt_lb_gemm(&w, &x, m, NULL, 0, gout, level, t);
            ++*runs;
            for (size_t i = 0; i < m; ++i)
                for (size_t c = 0; c < n; ++c)
                    for (size_t g = 0; g < G; ++g) {
                        const size_t off = ((c / 32) * G + g) * 32 + c % 32;
                        int64_t ref = 0;
                        for (size_t j = g * gsk; j < k && j < (g + 1) * gsk; ++j) {
                            const int64_t v = (int64_t)mul * (lut ? lutb[u[c * k + j]] : u[c * k + j]) - zz[off];
                            ref += ((int64_t)a[i * lda + j] - za[i]) * v;
                        }
                        if (gout[(i * n + c) * G + g] != ref) {
                            if (bad < 5)
                                printf("lowbit mismatch level %s bits %d m%zu n%zu k%zu gs%zu: %d vs %lld\n",
                                       qt_level_name(level), bits, m, n, k, gs,
                                       gout[(i * n + c) * G + g], (long long)ref);
                            ++bad;
                        }
                    }
            /* float mode: sa_i * sum_g scale * G, to float32 rounding of the group terms */
            qt_lb_gemm(&w, &x, m, out, n, NULL, level, t);
            for (size_t i = 0; i < m; ++i)
                for (size_t c = 0; c < n; ++c) {
                    double ref = 0, mag = 0;
                    for (size_t g = 0; g < G; ++g) {
                        const double term = (double)scale[((c / 32) * G + g) * 32 + c % 32] * gout[(i * n + c) * G + g];
                        ref += term;
                        mag += term < 0 ? -term : term;
                    }
                    ref *= sa[i];
                    mag *= sa[i];
                    const double err = out[i * n + c] - ref;
                    if ((err < 0 ? -err : err) > 1e-6 * mag * (G + 2) + 1e-30) {
                        if (bad < 5) printf("float mismatch level %s bits %d: %g vs %g\n", qt_level_name(level), bits, out[i * n + c], ref);
                        ++bad;
                    }
                }
        }
    }
    qt_lb_set_amx(1);
    free(u); free(wp); free(a); free(scale); free(zz); free(wsum); free(sums); free(za); free(gout); free(out); free(sa);
    return bad;
}

static int check_tern(uint64_t *seed, size_t m, size_t n, size_t k, int *runs)
{
    const size_t nw = (k + 63) / 64, ld = nw ? nw : 1;
    uint64_t *as = calloc(m * ld, 8), *az = calloc(m * ld, 8), *bs = calloc(n * ld, 8), *bz = calloc(n * ld, 8);
    int32_t *c = malloc(m * n * 4 + 4);
    int bad = 0;
    for (size_t i = 0; i < m * ld; ++i) { az[i] = rnd(seed) | rnd(seed); as[i] = rnd(seed) & az[i]; }
    for (size_t i = 0; i < n * ld; ++i) { bz[i] = rnd(seed) & rnd(seed); bs[i] = rnd(seed) & bz[i]; }
    if (k % 64) {
        const uint64_t mask = (1ULL << (k % 64)) - 1;
        for (size_t i = 0; i < m; ++i) { as[i * ld + nw - 1] &= mask; az[i * ld + nw - 1] &= mask; }
        for (size_t i = 0; i < n; ++i) { bs[i * ld + nw - 1] &= mask; bz[i * ld + nw - 1] &= mask; }
    }
    for (int level = 0; level < QT_N_LEVELS; ++level) {
        if (qt_tern_kernel_name(level) == NULL) continue;
        for (int t = 1; t <= 2; ++t) {
            qt_tern_gemm(as, az, m, ld, bs, bz, n, ld, nw, c, n, level, t);
            ++*runs;
            for (size_t i = 0; i < m; ++i)
                for (size_t j = 0; j < n; ++j) {
                    int64_t ref = 0;
                    for (size_t b = 0; b < k; ++b) {
                        const int va = (az[i * ld + b / 64] >> (b % 64)) & 1 ? (((as[i * ld + b / 64] >> (b % 64)) & 1) ? 1 : -1) : 0;
                        const int vb = (bz[j * ld + b / 64] >> (b % 64)) & 1 ? (((bs[j * ld + b / 64] >> (b % 64)) & 1) ? 1 : -1) : 0;
                        ref += va * vb;
                    }
                    if (c[i * n + j] != ref) ++bad;
                }
        }
    }
    free(as); free(az); free(bs); free(bz); free(c);
    return bad;
}

int main(void)
{
    uint64_t seed = 88172645463325252ULL;
    int bad = 0, runs = 0;
    /* M >= 16 reaches the AMX driver where the CPU has it: full and partial 32-row tiles,
     * odd superblock counts (K = 200, 257) at every group size */
    const size_t shapes[][3] = {{1, 1, 1}, {1, 33, 100}, {3, 5, 31}, {7, 40, 64}, {13, 65, 200}, {2, 31, 257}, {9, 64, 128},
                                {16, 33, 100}, {33, 40, 200}, {64, 65, 257}, {47, 32, 64}};
    const int widths[] = {1, 2, 3, 4, 8};
    const size_t groups[] = {0, 32, 64, 128};
    for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); ++s)
        for (int b = 0; b < 5; ++b)
            for (int g = 0; g < 4; ++g)
                for (int asym = 0; asym < 2; ++asym) {
                    bad += check_lowbit(&seed, shapes[s][0], shapes[s][1], shapes[s][2], widths[b], groups[g], 0, 0, asym, &runs);
                    if (widths[b] == 1) bad += check_lowbit(&seed, shapes[s][0], shapes[s][1], shapes[s][2], 1, groups[g], 1, 0, asym, &runs);
                    if (widths[b] == 4) bad += check_lowbit(&seed, shapes[s][0], shapes[s][1], shapes[s][2], 4, groups[g], 0, 1, asym, &runs);
                }
    const size_t tshapes[][3] = {{1, 1, 1}, {3, 5, 63}, {9, 17, 64}, {17, 9, 130}, {8, 8, 4097}, {20, 35, 1000}};
    for (size_t s = 0; s < sizeof(tshapes) / sizeof(tshapes[0]); ++s)
        bad += check_tern(&seed, tshapes[s][0], tshapes[s][1], tshapes[s][2], &runs);
    printf("lowbit kernels:");
    for (int l = 0; l < QT_N_LEVELS; ++l) if (qt_lb_kernel_name(l)) printf(" %s=%s", qt_level_name(l), qt_lb_kernel_name(l));
    printf("\nternary kernels:");
    for (int l = 0; l < QT_N_LEVELS; ++l) if (qt_tern_kernel_name(l)) printf(" %s=%s", qt_level_name(l), qt_tern_kernel_name(l));
    printf("\namx: %s", qt_lb_amx_available() ? "on" : "off");
    printf("\n%d runs, %d mismatches\n", runs, bad);
    return bad != 0;
}
