/* Scalar micro-kernels for the ternary popcount GEMM: portable C and x86-64 POPCNT.
 * Tile 2 x 4; per word pair two popcounts: of m = za & zb and of (sa ^ sb) & m. */
#ifndef QT_TERN_SCALAR_H
#define QT_TERN_SCALAR_H

#include "qt_tern_common.h"
#include "qt_xnor_scalar.h"

#define QT_TERN_SCALAR_MR 2
#define QT_TERN_SCALAR_NR 4

#define QT_DEFINE_TERN_SCALAR(NAME, ATTR, POPCOUNT)                                        \
    ATTR static void NAME(size_t kw, const uint64_t *ap, const uint64_t *bp, int64_t *cnt) \
    {                                                                                       \
        int64_t m[8] = {0}, d[8] = {0};                                                     \
        for (size_t w = 0; w < kw; ++w) {                                                   \
            const uint64_t *a = ap + 4 * w, *b = bp + 8 * w;                                \
            for (int i = 0; i < 2; ++i)                                                     \
                for (int j = 0; j < 4; ++j) {                                               \
                    const uint64_t mm = a[2 + i] & b[4 + j];                                \
                    m[4 * i + j] += (int64_t)POPCOUNT(mm);                                  \
                    d[4 * i + j] += (int64_t)POPCOUNT((a[i] ^ b[j]) & mm);                  \
                }                                                                           \
        }                                                                                   \
        for (int t = 0; t < 8; ++t) cnt[t] = m[t] - 2 * d[t];                               \
    }

QT_DEFINE_TERN_SCALAR(qt_tern_ukernel_generic, , qt_popcount64_swar)
#ifdef QT_X86
QT_DEFINE_TERN_SCALAR(qt_tern_ukernel_popcnt, __attribute__((target("popcnt"))), QT_POPCNT64)
#endif

#endif /* QT_TERN_SCALAR_H */
