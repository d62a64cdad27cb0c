/* NEON micro-kernel (aarch64) for k-bit weights x int8 activations, one row at a time.
 *
 * A 16-byte chunk holds 4 columns x 4 K values. Codes (<= 255) and activations
 * are widened to int16, multiplied (|u a| <= 255 * 128 fits int16) and added
 * pairwise into int32 lanes with vpadalq_s16; two lanes per column are folded
 * at the end of each group with vpaddq_s32. Baseline Advanced SIMD only.
 *
 * Where the CPU has the dot-product instructions (Armv8.2 FEAT_DotProd, HWCAP_ASIMDDP),
 * qt_lb_kernel_neon_dot runs instead: one sdot per 16-byte chunk adds the four
 * products of each column into its int32 lane (the chunk layout is sdot's), two rows at a
 * time. Codes of at most 4 bits are valid signed bytes; 8-bit codes and codebook bytes
 * (0..255) are taken as u - 128 (the byte with its top bit flipped) and the group then
 * adds 128 Sa back, Sa the group's activation sum, so D is exact either way. */
#ifndef QT_LOWBIT_NEON_H
#define QT_LOWBIT_NEON_H

#include "qt_lowbit_common.h"

#ifdef QT_ARM64
#include <arm_neon.h>

#define QT_LB_NEON_MR 1

static inline uint8x16_t qt_lb_neon_unpack(const uint8_t *v, int bits, int q, const uint8_t *lut)
{
    uint8x16_t x;
    switch (bits) {
    case 8:
        x = vld1q_u8(v + 64 * q);
        break;
    case 4:
        x = vandq_u8(vshlq_u8(vld1q_u8(v + 64 * (q / 2)), vdupq_n_s8((int8_t)(-4 * (q % 2)))),
                     vdupq_n_u8(15));
        break;
    case 2:
        x = vandq_u8(vshlq_u8(vld1q_u8(v + 64 * (q / 4)), vdupq_n_s8((int8_t)(-2 * (q % 4)))),
                     vdupq_n_u8(3));
        break;
    case 1:
        x = vandq_u8(vshlq_u8(vld1q_u8(v), vdupq_n_s8((int8_t)(-q))), vdupq_n_u8(1));
        break;
    default: { /* 3 */
        const uint8x16_t lo =
            vandq_u8(vshlq_u8(vld1q_u8(v + 64 * (q / 4)), vdupq_n_s8((int8_t)(-2 * (q % 4)))),
                     vdupq_n_u8(3));
        const uint8x16_t hi =
            vandq_u8(vshlq_u8(vld1q_u8(v + 128), vdupq_n_s8((int8_t)(-q))), vdupq_n_u8(1));
        x = vorrq_u8(lo, vshlq_n_u8(hi, 2));
        break;
    }
    }
    if (lut != NULL) x = vqtbl1q_u8(vld1q_u8(lut), x);
    return x;
}

static void qt_lb_kernel_neon(const qt_lb_weights *w, size_t p, int mr, const int8_t *a,
                              size_t lda, const int32_t *sums, const int32_t *za, int asym,
                              float *tile, int32_t *gout, size_t ldg, size_t ncols)
{
    const size_t G = w->n_groups;
    const size_t vb = 64 * (size_t)w->bits;
    const uint8_t *panel = w->w + p * w->nsb * 2 * vb;
    int32_t d[QT_LB_MAX_MR * QT_LB_NR];
    if (gout == NULL) memset(tile, 0, sizeof(float) * (size_t)mr * QT_LB_NR);
    for (size_t g = 0; g < G; ++g) {
        size_t s0, s1;
        qt_lb_group_range(w, g, &s0, &s1);
        for (int i = 0; i < mr; ++i) {
            int32x4_t acc[8][2];
            for (int j = 0; j < 8; ++j) acc[j][0] = acc[j][1] = vdupq_n_s32(0);
            for (size_t s = s0; s < s1; ++s) {
                const uint8_t *v0 = panel + s * 2 * vb;
                const int8_t *as = a + (size_t)i * lda + s * QT_LB_SB;
                for (int q = 0; q < 8; ++q) {
                    int32_t four;
                    memcpy(&four, as + 4 * q, 4);
                    const int8x16_t b = vreinterpretq_s8_s32(vdupq_n_s32(four));
                    const int16x8_t bl = vmovl_s8(vget_low_s8(b)), bh = vmovl_s8(vget_high_s8(b));
                    for (int j = 0; j < 8; ++j) {
                        const uint8_t *v = v0 + (size_t)(j / 4) * vb + 16 * (j % 4);
                        const uint8x16_t u = qt_lb_neon_unpack(v, w->bits, q, w->lut);
                        const int16x8_t ul = vreinterpretq_s16_u16(vmovl_u8(vget_low_u8(u)));
                        const int16x8_t uh = vreinterpretq_s16_u16(vmovl_u8(vget_high_u8(u)));
                        acc[j][0] = vpadalq_s16(acc[j][0], vmulq_s16(ul, bl));
                        acc[j][1] = vpadalq_s16(acc[j][1], vmulq_s16(uh, bh));
                    }
                }
            }
            for (int j = 0; j < 8; ++j) vst1q_s32(d + i * QT_LB_NR + 4 * j, vpaddq_s32(acc[j][0], acc[j][1]));
        }
        if (gout != NULL)
            qt_lb_store_int(w, p, g, mr, d, sums, za, gout, ldg, ncols);
        else
            qt_lb_store_float(w, p, g, mr, d, sums, za, asym, tile);
    }
}

#if defined(__linux__)
#include <sys/auxv.h>
#endif

#define QT_LB_NEON_DOT_MR 2

static int qt_lb_neon_has_dot(void)
{
#if defined(__linux__) && defined(AT_HWCAP)
    return (getauxval(AT_HWCAP) & (1UL << 20)) != 0; /* HWCAP_ASIMDDP */
#else
    return 0;
#endif
}

__attribute__((target("arch=armv8.2-a+dotprod"))) static void
qt_lb_kernel_neon_dot(const qt_lb_weights *w, size_t p, int mr, const int8_t *a, size_t lda,
                      const int32_t *sums, const int32_t *za, int asym, float *tile,
                      int32_t *gout, size_t ldg, size_t ncols)
{
    const size_t G = w->n_groups;
    const size_t vb = 64 * (size_t)w->bits;
    const uint8_t *panel = w->w + p * w->nsb * 2 * vb;
    /* bytes above 127: flip the top bit (u - 128) and add 128 Sa back per group */
    const int wide = w->bits == 8 || w->lut != NULL;
    const uint8x16_t flip = vdupq_n_u8(wide ? 0x80 : 0);
    int32_t d[QT_LB_MAX_MR * QT_LB_NR];
    if (gout == NULL) memset(tile, 0, sizeof(float) * (size_t)mr * QT_LB_NR);
    for (size_t g = 0; g < G; ++g) {
        size_t s0, s1;
        qt_lb_group_range(w, g, &s0, &s1);
        for (int i0 = 0; i0 < mr; i0 += QT_LB_NEON_DOT_MR) {
            const int rows = mr - i0 < QT_LB_NEON_DOT_MR ? mr - i0 : QT_LB_NEON_DOT_MR;
            int32x4_t acc[QT_LB_NEON_DOT_MR][8];
            for (int i = 0; i < QT_LB_NEON_DOT_MR; ++i)
                for (int j = 0; j < 8; ++j) acc[i][j] = vdupq_n_s32(0);
            for (size_t s = s0; s < s1; ++s) {
                const uint8_t *v0 = panel + s * 2 * vb;
                for (int q = 0; q < 8; ++q) {
                    int8x16_t b[QT_LB_NEON_DOT_MR];
                    for (int i = 0; i < rows; ++i) {
                        int32_t four;
                        memcpy(&four, a + (size_t)(i0 + i) * lda + s * QT_LB_SB + 4 * q, 4);
                        b[i] = vreinterpretq_s8_s32(vdupq_n_s32(four));
                    }
                    for (int j = 0; j < 8; ++j) {
                        const uint8_t *v = v0 + (size_t)(j / 4) * vb + 16 * (j % 4);
                        const int8x16_t u = vreinterpretq_s8_u8(
                            veorq_u8(qt_lb_neon_unpack(v, w->bits, q, w->lut), flip));
                        acc[0][j] = vdotq_s32(acc[0][j], u, b[0]);
                        if (rows > 1) acc[1][j] = vdotq_s32(acc[1][j], u, b[1]);
                    }
                }
            }
            for (int i = 0; i < rows; ++i) {
                const int32x4_t back = vdupq_n_s32(wide ? 128 * sums[(size_t)(i0 + i) * G + g] : 0);
                for (int j = 0; j < 8; ++j)
                    vst1q_s32(d + (i0 + i) * QT_LB_NR + 4 * j, vaddq_s32(acc[i][j], back));
            }
        }
        if (gout != NULL)
            qt_lb_store_int(w, p, g, mr, d, sums, za, gout, ldg, ncols);
        else
            qt_lb_store_float(w, p, g, mr, d, sums, za, asym, tile);
    }
}

#endif /* QT_ARM64 */
#endif /* QT_LOWBIT_NEON_H */
