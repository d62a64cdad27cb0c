/* Scalar micro-kernels: portable C (SWAR popcount) and x86-64 POPCNT.
 * Tile 2 x 4: eight 64-bit accumulators and six operands fit the 16 GPRs. */
#ifndef QT_XNOR_SCALAR_H
#define QT_XNOR_SCALAR_H

#include "qt_cpu.h"
#include "qt_ukernel.h"

#define QT_SCALAR_MR 2
#define QT_SCALAR_NR 4

/* Population count without any special instruction (Hacker's Delight, 5-2). */
static inline uint64_t qt_popcount64_swar(uint64_t x)
{
    x = x - ((x >> 1) & 0x5555555555555555ULL);
    x = (x & 0x3333333333333333ULL) + ((x >> 2) & 0x3333333333333333ULL);
    x = (x + (x >> 4)) & QT_NIB_LO;
    return (x * 0x0101010101010101ULL) >> 56;
}

#define QT_DEFINE_SCALAR_UKERNEL(NAME, ATTR, POPCOUNT)                                   \
    ATTR static void NAME(size_t kw, const uint64_t *ap, const uint64_t *bp, int32_t *c,  \
                          size_t ldc, int mode, int32_t kbits)                            \
    {                                                                                     \
        uint64_t s00 = 0, s01 = 0, s02 = 0, s03 = 0, s10 = 0, s11 = 0, s12 = 0, s13 = 0;  \
        for (size_t w = 0; w < kw; ++w) {                                                 \
            const uint64_t a0 = ap[2 * w], a1 = ap[2 * w + 1];                            \
            const uint64_t *b = bp + 4 * w;                                               \
            s00 += POPCOUNT(a0 ^ b[0]); s01 += POPCOUNT(a0 ^ b[1]);                       \
            s02 += POPCOUNT(a0 ^ b[2]); s03 += POPCOUNT(a0 ^ b[3]);                       \
            s10 += POPCOUNT(a1 ^ b[0]); s11 += POPCOUNT(a1 ^ b[1]);                       \
            s12 += POPCOUNT(a1 ^ b[2]); s13 += POPCOUNT(a1 ^ b[3]);                       \
        }                                                                                 \
        const uint64_t cnt[8] = {s00, s01, s02, s03, s10, s11, s12, s13};                 \
        qt_store_tile(c, ldc, 2, 4, cnt, mode, kbits);                                    \
    }

QT_DEFINE_SCALAR_UKERNEL(qt_ukernel_generic, , qt_popcount64_swar)

#ifdef QT_X86
#define QT_POPCNT64(x) ((uint64_t)__builtin_popcountll(x))
QT_DEFINE_SCALAR_UKERNEL(qt_ukernel_popcnt, __attribute__((target("popcnt"))), QT_POPCNT64)
#endif

#endif /* QT_XNOR_SCALAR_H */
