"""asv benchmarks of the low-bit kernels of qtoolkit.bitops: lowbit_matmul per weight kind,
group size, SIMD level and thread count (GEMM and GEMV), the ternary popcount GEMM, and the
dynamic activation quantization."""

import time

import numpy as np

from qtoolkit.bitops import (
    available_simd_levels,
    lowbit_matmul,
    pack_ternary,
    pack_ternary_bits,
    pack_weights,
    quantize_activations,
    simd_level,
    ternary_gemm,
)

WEIGHTS = ["ternary", "2bit-g128", "4bit-g32", "4bit-g128", "8bit"]


def _weights(kind, n, k, rng):
    if kind == "ternary":
        return pack_ternary(rng.integers(-1, 2, size=(n, k)))
    bits = int(kind[0])
    group = int(kind.split("-g")[1]) if "-g" in kind else None
    codes = rng.integers(-(2 ** (bits - 1)), 2 ** (bits - 1), size=(n, k))
    g = 1 if group is None else k // group
    return pack_weights(codes, bits, scales=rng.uniform(0.5, 1, (n, g)), group_size=group)


def _best_rate(fn, work):
    fn()
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return work / best / 1e9


class LowbitMatmul:
    params = ([1, 256, 1024], WEIGHTS, list(available_simd_levels()), [1, 2])
    param_names = ("m", "weights", "level", "n_threads")
    timeout = 300

    def setup(self, m, weights, level, n_threads):
        rng = np.random.default_rng(0)
        self.k = self.n = 1024
        self.w = _weights(weights, self.n, self.k, rng)
        self.x = rng.standard_normal((m, self.k)).astype(np.float32)
        self.out = np.empty((m, self.n), np.float32)

    def _run(self, level, n_threads):
        with simd_level(level):
            lowbit_matmul(self.x, self.w, out=self.out, n_threads=n_threads)

    def time_lowbit_matmul(self, m, weights, level, n_threads):
        self._run(level, n_threads)

    def track_gmacs(self, m, weights, level, n_threads):
        return _best_rate(lambda: self._run(level, n_threads), m * self.n * self.k)

    track_gmacs.unit = "GMAC/s"


class TernaryGemm:
    params = ([512, 2048], list(available_simd_levels()), [1, 2])
    param_names = ("n", "level", "n_threads")
    timeout = 300

    def setup(self, n, level, n_threads):
        rng = np.random.default_rng(0)
        self.a = pack_ternary_bits(rng.integers(-1, 2, size=(n, n)))
        self.b = pack_ternary_bits(rng.integers(-1, 2, size=(n, n)))
        self.out = np.empty((n, n), np.int32)

    def _run(self, level, n_threads):
        with simd_level(level):
            ternary_gemm(self.a, self.b, out=self.out, n_threads=n_threads)

    def time_ternary_gemm(self, n, level, n_threads):
        self._run(level, n_threads)

    def track_gmacs(self, n, level, n_threads):
        return _best_rate(lambda: self._run(level, n_threads), n**3)

    track_gmacs.unit = "GMAC/s"


class QuantizeActivations:
    params = ([(1, 4096), (1024, 4096)], [True, False])
    param_names = ("shape", "symmetric")

    def setup(self, shape, symmetric):
        self.x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)

    def time_quantize_activations(self, shape, symmetric):
        quantize_activations(self.x, symmetric=symmetric)
