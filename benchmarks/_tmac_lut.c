/* Table-lookup (T-MAC style) product of 1- and 2-bit weights with int8 activations,
 * exact, AVX2: the candidate that `bench_lowbit.py lut` measures against the unpack
 * kernels of qtoolkit.bitops. Compiled by the benchmark at run time (cc -O3 -mavx2);
 * not part of the package.
 *
 * Weights: unsigned codes u[n][k] in [0, 2^bits), bits in {1, 2}, taken as bit planes
 * u = sum_b 2^b u_b. For a quad of four consecutive K values (quad g: k = 4g .. 4g + 3)
 * and a column n, the 4-bit index of plane b is sum_i u_b[n][4g + i] << i.
 *
 * Activations: for each row of int8 activations a and each quad g, the 16-entry table
 *     T_g[idx] = sum_{i < 4, bit i of idx} a[4g + i]          (in [-512, 508])
 * so that sum_{k in quad g} u_b[n][k] a[k] = T_g[idx_b(n, g)]. T is split into its low
 * byte (unsigned) and its high byte (signed), T = 256 hi + lo; one vpshufb per byte
 * table looks up 32 columns at once, vpunpck{l,h}bw rebuilds the int16 values, which are
 * added in int16 for at most 32 quads (|sum| <= 32 * 512 = 16384) and widened to int32.
 *
 * Packed weight layout (made by tmac_pack): panels of 32 columns; within a panel, for
 * each plane b and each pair of quads j (K values 8j .. 8j + 7), 32 bytes, byte c =
 * idx_b(32p + c, 2j) | idx_b(32p + c, 2j + 1) << 4. Panel p, pair j, plane b starts at
 * ((p * J + j) * bits + b) * 32, J = ceil(K / 8). Codes past N or K are 0.
 *
 * Result: out[m][n] = sum_k u[n][k] a[m][k] exactly (int32).
 */
#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* codes: (N, K) uint8 row-major; dst: npan * J * bits * 32 bytes, zeroed by the caller */
void tmac_pack(const uint8_t *codes, size_t n, size_t k, int bits, uint8_t *dst)
{
    const size_t J = (k + 7) / 8, npan = (n + 31) / 32;
    for (size_t p = 0; p < npan; ++p)
        for (size_t j = 0; j < J; ++j)
            for (int b = 0; b < bits; ++b) {
                uint8_t *v = dst + ((p * J + j) * (size_t)bits + (size_t)b) * 32;
                for (size_t c = 0; c < 32 && 32 * p + c < n; ++c) {
                    const uint8_t *row = codes + (32 * p + c) * k;
                    unsigned byte = 0;
                    for (int i = 0; i < 8 && 8 * j + (size_t)i < k; ++i)
                        byte |= (unsigned)((row[8 * j + (size_t)i] >> b) & 1) << i;
                    v[c] = (uint8_t)byte;
                }
            }
}

/* lo/hi: (ceil(K/4) rounded up to even) * 16 bytes each, tables of one activation row */
static void tmac_tables(const int8_t *a, size_t k, uint8_t *lo, int8_t *hi)
{
    const size_t nq = 2 * ((k + 7) / 8);
    for (size_t g = 0; g < nq; ++g) {
        int v[4];
        for (int i = 0; i < 4; ++i) v[i] = 4 * g + (size_t)i < k ? a[4 * g + (size_t)i] : 0;
        for (int idx = 0; idx < 16; ++idx) {
            int t = 0;
            for (int i = 0; i < 4; ++i)
                if (idx >> i & 1) t += v[i];
            lo[16 * g + (size_t)idx] = (uint8_t)(t & 255);
            hi[16 * g + (size_t)idx] = (int8_t)((t - (t & 255)) / 256);
        }
    }
}

/* int16 accumulators of 32 columns: a[0] columns 0-7 | 16-23, a[1] columns 8-15 | 24-31 */
static inline __attribute__((always_inline)) void tmac_quad(__m256i *acc, __m256i idx,
                                                            const uint8_t *lo, const int8_t *hi)
{
    const __m256i tl = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)lo));
    const __m256i th = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)hi));
    const __m256i l = _mm256_shuffle_epi8(tl, idx), h = _mm256_shuffle_epi8(th, idx);
    acc[0] = _mm256_add_epi16(acc[0], _mm256_unpacklo_epi8(l, h));
    acc[1] = _mm256_add_epi16(acc[1], _mm256_unpackhi_epi8(l, h));
}

static inline void tmac_flush(int32_t *d, const __m256i *acc, int weight)
{
    /* acc[0]: lane 0 columns 0-7, lane 1 columns 16-23; acc[1]: 8-15, 24-31 */
    for (int h = 0; h < 2; ++h) {
        const __m256i lo0 = _mm256_cvtepi16_epi32(_mm256_castsi256_si128(acc[h]));
        const __m256i hi0 = _mm256_cvtepi16_epi32(_mm256_extracti128_si256(acc[h], 1));
        const __m256i w = _mm256_set1_epi32(weight);
        __m256i *d0 = (__m256i *)(d + 8 * h), *d1 = (__m256i *)(d + 16 + 8 * h);
        _mm256_storeu_si256(d0, _mm256_add_epi32(_mm256_loadu_si256(d0), _mm256_mullo_epi32(lo0, w)));
        _mm256_storeu_si256(d1, _mm256_add_epi32(_mm256_loadu_si256(d1), _mm256_mullo_epi32(hi0, w)));
    }
}

/* out (M, N) int32. Panels in pairs (64 columns) share each table load. */
int tmac_gemm(const uint8_t *w, size_t n, size_t k, int bits, const int8_t *a, size_t m,
              int32_t *out)
{
    const size_t J = (k + 7) / 8, npan = (n + 31) / 32, nq = 2 * J;
    uint8_t *lo = aligned_alloc(64, nq * 16 + 64);
    int8_t *hi = aligned_alloc(64, nq * 16 + 64);
    if (lo == NULL || hi == NULL) {
        free(lo);
        free(hi);
        return -1;
    }
    const __m256i nib = _mm256_set1_epi8(15);
    for (size_t r = 0; r < m; ++r) {
        tmac_tables(a + r * k, k, lo, hi);
        for (size_t p = 0; p < npan; p += 2) {
            const int two = p + 1 < npan;
            int32_t d[2][32];
            memset(d, 0, sizeof d);
            for (size_t j0 = 0; j0 < J; j0 += 16) { /* 32 quads per int16 flush */
                const size_t j1 = j0 + 16 < J ? j0 + 16 : J;
                for (int b = 0; b < bits; ++b) {
                    __m256i acc[2][2] = {{_mm256_setzero_si256(), _mm256_setzero_si256()},
                                         {_mm256_setzero_si256(), _mm256_setzero_si256()}};
                    for (size_t j = j0; j < j1; ++j) {
                        const uint8_t *tl = lo + 32 * j;
                        const int8_t *th = hi + 32 * j;
                        const __m256i v0 = _mm256_loadu_si256(
                            (const __m256i *)(w + ((p * J + j) * (size_t)bits + (size_t)b) * 32));
                        tmac_quad(acc[0], _mm256_and_si256(v0, nib), tl, th);
                        tmac_quad(acc[0], _mm256_and_si256(_mm256_srli_epi16(v0, 4), nib), tl + 16,
                                  th + 16);
                        if (two) {
                            const __m256i v1 = _mm256_loadu_si256(
                                (const __m256i *)(w + (((p + 1) * J + j) * (size_t)bits + (size_t)b) * 32));
                            tmac_quad(acc[1], _mm256_and_si256(v1, nib), tl, th);
                            tmac_quad(acc[1], _mm256_and_si256(_mm256_srli_epi16(v1, 4), nib),
                                      tl + 16, th + 16);
                        }
                    }
                    tmac_flush(d[0], acc[0], 1 << b);
                    if (two) tmac_flush(d[1], acc[1], 1 << b);
                }
            }
            for (int t = 0; t < 1 + two; ++t)
                for (size_t c = 0; c < 32 && 32 * (p + (size_t)t) + c < n; ++c)
                    out[r * n + 32 * (p + (size_t)t) + c] = d[t][c];
        }
    }
    free(lo);
    free(hi);
    return 0;
}
