/* Portable C micro-kernel for k-bit weights x int8 activations (any mr <= QT_LB_MAX_MR).
 *
 * Unpacks one superblock of the panel (32 columns x 32 K values) into bytes and
 * accumulates the products in int32; the reference every SIMD kernel must match. */
#ifndef QT_LOWBIT_SCALAR_H
#define QT_LOWBIT_SCALAR_H

#include "qt_lowbit_common.h"

/* Codes u[c][kk] (c < 32, kk < 32) of superblock s of panel p. */
static void qt_lb_unpack_sb(const qt_lb_weights *w, size_t p, size_t s, uint8_t u[32][32])
{
    const int bits = w->bits;
    const uint8_t *base = w->w + (p * w->nsb + s) * 128 * (size_t)bits;
    for (int h = 0; h < 2; ++h) {
        const uint8_t *v = base + (size_t)h * 64 * (size_t)bits;
        for (int q = 0; q < 8; ++q) {
            for (int byte = 0; byte < 64; ++byte) {
                const int c = 16 * h + byte / 4, kk = 4 * q + byte % 4;
                unsigned x;
                switch (bits) {
                case 8: x = v[64 * q + byte]; break;
                case 4: x = (v[64 * (q / 2) + byte] >> (4 * (q % 2))) & 15u; break;
                case 2: x = (v[64 * (q / 4) + byte] >> (2 * (q % 4))) & 3u; break;
                case 1: x = (v[byte] >> q) & 1u; break;
                default: /* 3 */
                    x = ((v[64 * (q / 4) + byte] >> (2 * (q % 4))) & 3u) |
                        (((v[128 + byte] >> q) & 1u) << 2);
                    break;
                }
                u[c][kk] = w->lut ? w->lut[x & 15u] : (uint8_t)x;
            }
        }
    }
}

static void qt_lb_kernel_scalar(const qt_lb_weights *w, size_t p, int mr, const int8_t *a,
                                size_t lda, const int32_t *sums, const int32_t *za, int asym,
                                float *tile, int32_t *gout, size_t ldg, size_t ncols)
{
    int32_t d[QT_LB_MAX_MR * QT_LB_NR];
    uint8_t u[32][32];
    if (gout == NULL) memset(tile, 0, sizeof(float) * (size_t)mr * QT_LB_NR);
    for (size_t g = 0; g < w->n_groups; ++g) {
        size_t s0, s1;
        qt_lb_group_range(w, g, &s0, &s1);
        memset(d, 0, sizeof(d));
        for (size_t s = s0; s < s1; ++s) {
            qt_lb_unpack_sb(w, p, s, u);
            for (int i = 0; i < mr; ++i) {
                const int8_t *ar = a + (size_t)i * lda + s * QT_LB_SB;
                for (int c = 0; c < QT_LB_NR; ++c) {
                    int32_t acc = 0;
                    for (int kk = 0; kk < QT_LB_SB; ++kk) acc += (int32_t)u[c][kk] * ar[kk];
                    d[i * QT_LB_NR + c] += acc;
                }
            }
        }
        if (gout != NULL)
            qt_lb_store_int(w, p, g, mr, d, sums, za, gout, ldg, ncols);
        else
            qt_lb_store_float(w, p, g, mr, d, sums, za, asym, tile);
    }
}

#endif /* QT_LOWBIT_SCALAR_H */
