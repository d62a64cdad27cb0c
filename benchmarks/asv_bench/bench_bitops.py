"""asv benchmarks of qtoolkit.bitops: packing, xnor_gemm per SIMD level and thread count,
binary_matmul end to end, and the float32 matmul it replaces (as a track of the ratio)."""

import time
from typing import ClassVar

import numpy as np

from qtoolkit.bitops import available_simd_levels, binary_matmul, pack_bits, simd_level, xnor_gemm


class XnorGemm:
    params: ClassVar[list] = ([512, 1024, 2048], list(available_simd_levels()), [1, 2])
    param_names: ClassVar[list] = ["n", "level", "n_threads"]
    timeout = 300

    def setup(self, n, level, n_threads):
        rng = np.random.default_rng(0)
        self.a = pack_bits(rng.standard_normal((n, n), dtype=np.float32))
        self.b = pack_bits(rng.standard_normal((n, n), dtype=np.float32))
        self.out = np.empty((n, n), np.int32)

    def time_xnor_gemm(self, n, level, n_threads):
        with simd_level(level):
            xnor_gemm(self.a, self.b, out=self.out, n_threads=n_threads)

    def track_gmacs(self, n, level, n_threads):
        with simd_level(level):
            xnor_gemm(self.a, self.b, out=self.out, n_threads=n_threads)
            best = float("inf")
            for _ in range(5):
                t0 = time.perf_counter()
                xnor_gemm(self.a, self.b, out=self.out, n_threads=n_threads)
                best = min(best, time.perf_counter() - t0)
        return n**3 / best / 1e9

    track_gmacs.unit = "GMAC/s"


class Packing:
    params: ClassVar[list] = ([(512, 512), (4096, 4096)], ["float32", "float64", "bool"])
    param_names: ClassVar[list] = ["shape", "dtype"]

    def setup(self, shape, dtype):
        x = np.random.default_rng(0).standard_normal(shape)
        self.x = x > 0 if dtype == "bool" else x.astype(dtype)

    def time_pack_bits(self, shape, dtype):
        pack_bits(self.x)

    def peakmem_pack_bits(self, shape, dtype):
        pack_bits(self.x)


class BinaryMatmul:
    params: ClassVar[list] = [1024, 4096]
    param_names: ClassVar[list] = ["n"]
    timeout = 300

    def setup(self, n):
        rng = np.random.default_rng(0)
        self.A = rng.standard_normal((n, n), dtype=np.float32)
        self.B = rng.standard_normal((n, n), dtype=np.float32)

    def time_binary_matmul(self, n):
        binary_matmul(self.A, self.B)

    def time_binary_matmul_xnor_scaled(self, n):
        binary_matmul(self.A, self.B, scale="mean")

    def time_float32_matmul(self, n):
        np.matmul(np.sign(self.A), np.sign(self.B).T)
