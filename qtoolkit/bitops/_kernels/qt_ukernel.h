/* The micro-kernel contract shared by every instruction set.
 *
 * A micro-kernel computes one MR x NR tile of C from two packed micro-panels:
 *
 *   ap : A micro-panel, kw steps of MR words (MR low-nibble words then MR
 *        high-nibble words per step when the ISA uses nibble planes);
 *   bp : B micro-panel, kw steps of NR words (or 2 NR with nibble planes);
 *
 * and counts cnt[i][j] = sum_w popcount(ap[w][i] ^ bp[w][j]). It then writes
 *
 *   c[i*ldc + j] = (mode & QT_ACC ? c[i*ldc + j] : 0) + cnt[i][j]
 *
 * and, when mode & QT_FIN, replaces that value by kbits - 2 * value: the dot
 * product of the +-1 vectors, with the true number of bits K (padding bits are
 * zero in both operands, so they never count as a difference).
 *
 * The blocking, the packing and the threading (qt_gemm.h) are written once;
 * only this function differs per instruction set.
 */
#ifndef QT_UKERNEL_H
#define QT_UKERNEL_H

#include <stddef.h>
#include <stdint.h>

#define QT_ACC 1
#define QT_FIN 2

typedef void (*qt_ukernel_fn)(size_t kw, const uint64_t *ap, const uint64_t *bp,
                              int32_t *c, size_t ldc, int mode, int32_t kbits);

typedef struct {
    int level;           /* QT_LEVEL_* */
    int mr, nr;          /* register tile */
    int nibble;          /* 1: panels hold low and high nibble planes */
    qt_ukernel_fn kernel;
} qt_isa_t;

#define QT_NIB_LO 0x0f0f0f0f0f0f0f0fULL

/* Scalar epilogue used by the scalar kernels (and by tests of the contract). */
static inline void qt_store_tile(int32_t *c, size_t ldc, int mr, int nr, const uint64_t *cnt,
                                 int mode, int32_t kbits)
{
    for (int i = 0; i < mr; ++i) {
        for (int j = 0; j < nr; ++j) {
            int64_t v = (int64_t)cnt[i * nr + j];
            if (mode & QT_ACC) v += c[i * ldc + j];
            if (mode & QT_FIN) v = (int64_t)kbits - 2 * v;
            c[i * ldc + j] = (int32_t)v;
        }
    }
}

#endif /* QT_UKERNEL_H */
