/* The ternary popcount GEMM: micro-kernel contract.
 *
 * A ternary row is two bit planes, s (1 = +1) and z (1 = non-zero), with every
 * bit at a position >= K zero in z and s. A micro-panel of R rows holds, for
 * each of kw words, the R sign words then the R non-zero words. The kernel
 * writes the MR x NR dot products, row-major, into cnt:
 *
 *   a . b = popcount(za & zb) - 2 popcount((sa ^ sb) & za & zb).
 *
 * A kernel with `nib` set takes nibble panels instead: for each word, the R
 * words of the low nibbles of the sign plane (w & 0x0f..0f), the R of its high
 * nibbles ((w >> 4) & 0x0f..0f), then the same two for the non-zero plane.
 */
#ifndef QT_TERN_COMMON_H
#define QT_TERN_COMMON_H

#include <stddef.h>
#include <stdint.h>

typedef void (*qt_tern_ukernel_fn)(size_t kw, const uint64_t *ap, const uint64_t *bp,
                                   int64_t *cnt);

typedef struct {
    int mr, nr;
    qt_tern_ukernel_fn kernel;
    int nib; /* panels of nibble planes (4 words per row and word) */
} qt_tern_isa_t;

#endif /* QT_TERN_COMMON_H */
