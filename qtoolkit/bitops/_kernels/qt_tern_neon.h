/* NEON micro-kernel (aarch64) for the ternary popcount GEMM: tile 2 x 2 (vcnt).
 * Byte counts are added pairwise into 16-bit lanes (<= 16 per step), folded into
 * 64-bit totals every 2048 words. */
#ifndef QT_TERN_NEON_H
#define QT_TERN_NEON_H

#include "qt_tern_common.h"

#ifdef QT_ARM64
#include <arm_neon.h>

#define QT_TERN_NEON_MR 2
#define QT_TERN_NEON_NR 2

static void qt_tern_ukernel_neon(size_t kw, const uint64_t *ap, const uint64_t *bp, int64_t *cnt)
{
    /* lanes: word pair (row i of A against rows 0, 1 of B) */
    uint64x2_t tm[2] = {vdupq_n_u64(0), vdupq_n_u64(0)}, td[2] = {vdupq_n_u64(0), vdupq_n_u64(0)};
    size_t w = 0;
    while (w < kw) {
        const size_t end = (kw - w > 2048) ? w + 2048 : kw;
        uint16x8_t cm[2] = {vdupq_n_u16(0), vdupq_n_u16(0)}, cd[2] = {vdupq_n_u16(0), vdupq_n_u16(0)};
        for (; w < end; ++w) {
            const uint64x2_t bs = vld1q_u64(bp + 4 * w), bz = vld1q_u64(bp + 4 * w + 2);
            for (int i = 0; i < 2; ++i) {
                const uint64x2_t as = vdupq_n_u64(ap[4 * w + i]), az = vdupq_n_u64(ap[4 * w + 2 + i]);
                const uint64x2_t m = vandq_u64(az, bz);
                const uint64x2_t d = vandq_u64(veorq_u64(as, bs), m);
                cm[i] = vpadalq_u8(cm[i], vcntq_u8(vreinterpretq_u8_u64(m)));
                cd[i] = vpadalq_u8(cd[i], vcntq_u8(vreinterpretq_u8_u64(d)));
            }
        }
        for (int i = 0; i < 2; ++i) {
            tm[i] = vaddq_u64(tm[i], vpaddlq_u32(vpaddlq_u16(cm[i])));
            td[i] = vaddq_u64(td[i], vpaddlq_u32(vpaddlq_u16(cd[i])));
        }
    }
    for (int i = 0; i < 2; ++i) {
        uint64_t m2[2], d2[2];
        vst1q_u64(m2, tm[i]);
        vst1q_u64(d2, td[i]);
        cnt[2 * i] = (int64_t)m2[0] - 2 * (int64_t)d2[0];
        cnt[2 * i + 1] = (int64_t)m2[1] - 2 * (int64_t)d2[1];
    }
}
#endif /* QT_ARM64 */
#endif /* QT_TERN_NEON_H */
