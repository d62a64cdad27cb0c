/* Check of the C kernels through the shared driver, outside Python:
 * every level usable on the target against a direct popcount reference. */
#include <stdio.h>
#include <stdlib.h>
#include "qt_bitops.h"

static uint64_t rnd(uint64_t *s) { *s ^= *s << 13; *s ^= *s >> 7; *s ^= *s << 17; return *s; }

int main(void)
{
    uint64_t seed = 88172645463325252ULL;
    size_t shapes[][3] = {{1,1,1},{3,5,63},{7,9,64},{17,33,65},{9,4,257},{13,21,1000},{5,7,4097},{18,35,20000},{40,40,8192+69}};
    int bad = 0, runs = 0;
    for (size_t s = 0; s < sizeof(shapes)/sizeof(shapes[0]); ++s) {
        size_t m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
        size_t nw = (k + 63) / 64, ld = (nw + 7) / 8 * 8;
        uint64_t *a = calloc(m * ld, 8), *b = calloc(n * ld, 8);
        for (size_t i = 0; i < m * ld; ++i) a[i] = (i % ld) < nw ? rnd(&seed) : 0;
        for (size_t i = 0; i < n * ld; ++i) b[i] = (i % ld) < nw ? rnd(&seed) : 0;
        if (k % 64) {
            uint64_t mask = (1ULL << (k % 64)) - 1;
            for (size_t i = 0; i < m; ++i) a[i * ld + nw - 1] &= mask;
            for (size_t i = 0; i < n; ++i) b[i * ld + nw - 1] &= mask;
        }
        int32_t *c = malloc(m * n * 4);
        for (int level = 0; level < QT_N_LEVELS; ++level) {
            if (!qt_level_usable(level)) continue;
            for (int t = 1; t <= 2; ++t) {
                qt_xnor_gemm(a, m, ld, b, n, ld, nw, (int32_t)k, c, n, level, t);
                ++runs;
                for (size_t i = 0; i < m; ++i)
                    for (size_t j = 0; j < n; ++j) {
                        int64_t cnt = 0;
                        for (size_t w = 0; w < nw; ++w) cnt += __builtin_popcountll(a[i*ld+w] ^ b[j*ld+w]);
                        if (c[i*n+j] != (int32_t)((int64_t)k - 2*cnt)) { ++bad; }
                    }
            }
        }
        free(a); free(b); free(c);
    }
    printf("levels usable:");
    for (int l = 0; l < QT_N_LEVELS; ++l) if (qt_level_usable(l)) printf(" %s", qt_level_name(l));
    printf("\n%d runs, %d mismatches\n", runs, bad);
    return bad != 0;
}
