"""Private NumPy stand-ins for the low-bit kernels of :mod:`qtoolkit.bitops`.

Used only when the installed :mod:`qtoolkit.bitops` does not provide them. They
have the same names, arguments and exact integer results, but no SIMD kernel:
integer products are float64 BLAS products of small integers (exact: every
partial sum stays below 2**53), and ternary products are sums of xnor GEMMs.
"""

from typing import NamedTuple

import numpy as np

from qtoolkit.bitops import PackedBits, pack_bits, pack_codes, unpack_codes, xnor_gemm

_CONTAINER = {1: 1, 2: 2, 3: 4, 4: 4, 8: 8}


class QuantizedActivations(NamedTuple):
    codes: np.ndarray
    scales: np.ndarray
    zero_points: np.ndarray


class LowBitWeights:
    """Unsigned codes densely packed with ``pack_codes``, per-row or per-group scales."""

    def __init__(self, kind, bits, u, scales, zero_points, group_size):
        self.kind = kind
        self.bits = bits
        self.shape = tuple(u.shape)
        self.group_size = group_size
        k = self.shape[1]
        self.n_groups = 1 if group_size is None else -(-k // group_size)
        self._packed = pack_codes(u.astype(np.int64), _CONTAINER[bits])
        self.scales = np.array(scales, dtype=np.float32).reshape(self.shape[0], self.n_groups)
        self.zero_points = np.array(zero_points, dtype=np.int32).reshape(self.scales.shape)
        self.codebook = None
        self.nbytes = self._packed.nbytes + self.scales.nbytes + self.zero_points.nbytes
        n = self.shape[0] * self.shape[1]
        self.bits_per_weight = 8.0 * self.nbytes / n if n else 0.0

    def codes(self):
        n = self.shape[0] * self.shape[1]
        u = unpack_codes(self._packed, _CONTAINER[self.bits], n)
        return u.astype(np.uint8).reshape(self.shape)

    def _values(self):
        """The integer values v (int32, (N, K)) the products use."""
        u = self.codes().astype(np.int32)
        if self.kind == "binary":
            return 2 * u - 1
        return u - self._expand(self.zero_points)

    def _expand(self, per_group):
        if self.group_size is None:
            return per_group[:, :1]
        return np.repeat(per_group, self.group_size, axis=1)[:, : self.shape[1]]

    def dequantize(self):
        return (self._values() * self._expand(self.scales)).astype(np.float32)


def _as_scales(scales, n, n_groups):
    return np.broadcast_to(np.asarray(scales, dtype=np.float32).reshape(n, -1), (n, n_groups))


def pack_weights(codes, bits, *, scales=None, zero_points=None, group_size=None):
    """Unsigned codes only (the layers always pass ``u`` in [0, 2**bits) and its zero points)."""
    u = np.asarray(codes)
    n, k = u.shape
    g = 1 if group_size is None else -(-k // group_size)
    scales = _as_scales(1.0 if scales is None else scales, n, g)
    z = _as_scales(0 if zero_points is None else zero_points, n, g)
    return LowBitWeights("uniform", bits, u, scales, z, group_size)


def pack_ternary(t, *, scales=None, group_size=None):
    t = np.sign(np.asarray(t)).astype(np.int64)
    n, k = t.shape
    g = 1 if group_size is None else -(-k // group_size)
    return LowBitWeights("ternary", 2, t + 1, _as_scales(scales, n, g), np.ones((n, g)), group_size)


def pack_binary(b, *, scales=None, group_size=None):
    u = (np.asarray(b) >= 0).astype(np.int64)
    n, k = u.shape
    g = 1 if group_size is None else -(-k // group_size)
    return LowBitWeights("binary", 1, u, _as_scales(scales, n, g), np.zeros((n, g)), group_size)


def quantize_activations(x, *, symmetric=True, n_threads=None):
    x = np.asarray(x, dtype=np.float32)
    if not np.all(np.isfinite(x)):
        raise ValueError("x contains NaN or Inf")
    s = np.abs(x).max(axis=1, initial=0.0) / np.float32(127)
    s = np.where(s > 0, s, np.float32(1)).astype(np.float32)
    q = np.clip(np.rint(x / s[:, None]), -127, 127).astype(np.int8)
    return QuantizedActivations(q, s, np.zeros(x.shape[0], np.int32))


def lowbit_gemm_int(a, w, *, n_threads=None):
    codes = a.codes if isinstance(a, QuantizedActivations) else a
    za = a.zero_points if isinstance(a, QuantizedActivations) else np.zeros(codes.shape[0])
    x = codes.astype(np.float64) - np.asarray(za, dtype=np.float64)[:, None]
    v = w._values().astype(np.float64)
    m, (n, k) = x.shape[0], w.shape
    out = np.empty((m, n, w.n_groups), dtype=np.int32)
    size = k if w.group_size is None else w.group_size
    for g in range(w.n_groups):
        sl = slice(g * size, (g + 1) * size)
        out[:, :, g] = x[:, sl] @ v[:, sl].T
    return out


def lowbit_matmul(x, w, *, symmetric=True, out=None, n_threads=None):
    a = quantize_activations(x)
    acc = lowbit_gemm_int(a, w)
    y = np.einsum("mng,ng->mn", acc.astype(np.float64), w.scales.astype(np.float64))
    y *= a.scales[:, None]
    return y.astype(np.float32)


class TernaryBits:
    """Sign and non-zero planes, here as two +-1 planes for the xnor GEMM: t = (p + q) / 2."""

    def __init__(self, t, n_threads=None):
        self.shape = tuple(t.shape)
        self.n_bits = self.shape[1]
        self.ndim = 2
        self._p = pack_bits(t >= 0, n_threads=n_threads)
        self._q = pack_bits(t > 0, n_threads=n_threads)
        self.sign = self._q.words
        self.nonzero = pack_bits(t != 0, n_threads=n_threads).words


def pack_ternary_bits(x, *, n_threads=None):
    return TernaryBits(np.sign(np.asarray(x)), n_threads=n_threads)


def ternary_gemm(a, b, *, out=None, n_threads=None):
    planes_b = (b._p, b._q) if isinstance(b, TernaryBits) else (b,)
    acc = np.zeros((a.shape[0], b.shape[0]), dtype=np.int64)
    for pa in (a._p, a._q):
        for pb in planes_b:
            acc += xnor_gemm(pa, pb, n_threads=n_threads)
    acc //= 2 * len(planes_b)
    return acc.astype(np.int32)


__all__ = [
    "LowBitWeights",
    "PackedBits",
    "QuantizedActivations",
    "TernaryBits",
    "lowbit_gemm_int",
    "lowbit_matmul",
    "pack_binary",
    "pack_ternary",
    "pack_ternary_bits",
    "pack_weights",
    "quantize_activations",
    "ternary_gemm",
]
