/* NEON micro-kernel (aarch64): tile 4 x 4, vcnt byte popcount.
 *
 * vcntq_u8 counts bits per byte; vpadalq_u8 adds byte pairs into 16-bit lanes
 * (at most 16 a step, so 4095 steps cannot overflow; the kernel folds them into
 * 64-bit totals every 2048 steps). Lanes are outputs: 16-bit lanes 0-3 belong to
 * the first 64-bit word (row j of B), lanes 4-7 to the second.
 */
#ifndef QT_XNOR_NEON_H
#define QT_XNOR_NEON_H

#include "qt_cpu.h"
#include "qt_ukernel.h"

#ifdef QT_ARM64
#include <arm_neon.h>

#define QT_NEON_MR 4
#define QT_NEON_NR 4

static void qt_ukernel_neon(size_t kw, const uint64_t *ap, const uint64_t *bp,
                            int32_t *c, size_t ldc, int mode, int32_t kbits)
{
    uint64x2_t tot[4][2];
    for (int i = 0; i < 4; ++i) tot[i][0] = tot[i][1] = vdupq_n_u64(0);
    size_t w = 0;
    while (w < kw) {
        const size_t end = (kw - w > 2048) ? w + 2048 : kw;
        uint16x8_t acc[4][2];
        for (int i = 0; i < 4; ++i) acc[i][0] = acc[i][1] = vdupq_n_u16(0);
        for (; w < end; ++w) {
            const uint64x2_t b0 = vld1q_u64(bp + 4 * w), b1 = vld1q_u64(bp + 4 * w + 2);
            for (int i = 0; i < 4; ++i) {
                const uint64x2_t av = vdupq_n_u64(ap[4 * w + i]);
                acc[i][0] = vpadalq_u8(acc[i][0], vcntq_u8(vreinterpretq_u8_u64(veorq_u64(av, b0))));
                acc[i][1] = vpadalq_u8(acc[i][1], vcntq_u8(vreinterpretq_u8_u64(veorq_u64(av, b1))));
            }
        }
        for (int i = 0; i < 4; ++i) {
            tot[i][0] = vaddq_u64(tot[i][0], vpaddlq_u32(vpaddlq_u16(acc[i][0])));
            tot[i][1] = vaddq_u64(tot[i][1], vpaddlq_u32(vpaddlq_u16(acc[i][1])));
        }
    }
    uint64_t cnt[16];
    for (int i = 0; i < 4; ++i) {
        vst1q_u64(cnt + 4 * i, tot[i][0]);
        vst1q_u64(cnt + 4 * i + 2, tot[i][1]);
    }
    qt_store_tile(c, ldc, 4, 4, cnt, mode, kbits);
}
#endif /* QT_ARM64 */
#endif /* QT_XNOR_NEON_H */
