"""Quantized weight matrices as the layers hold them, built from floats or from codes.

Prior validation of the arguments is done by the layers (``_check_*`` here are
the shared validators they call).
"""

import numbers

import numpy as np

from qtoolkit._array import check_n_threads, describe
from qtoolkit.bitops import (
    PackedBits,
    pack_binary,
    pack_bits,
    pack_codebook,
    pack_ternary,
    pack_ternary_bits,
    pack_weights,
    unpack_bits,
)
from qtoolkit.rounding import QuantizedArray, encode

WEIGHT_MODES = ("binary", "ternary", 2, 3, 4, 8)
ACTIVATION_MODES = (None, "binary", "ternary", 8)
_KBITS = (2, 3, 4, 8)


def _check_weights_mode(weights):
    if isinstance(weights, str) and weights in ("binary", "ternary"):
        return weights
    if (
        isinstance(weights, (numbers.Integral, np.integer))
        and not isinstance(weights, bool)
        and int(weights) in _KBITS
    ):
        return int(weights)
    raise ValueError(f"weights must be one of {WEIGHT_MODES}, got {weights!r}")


def _check_activations(activations):
    if activations is None or (isinstance(activations, str) and activations in ACTIVATION_MODES):
        return activations
    if (
        isinstance(activations, (numbers.Integral, np.integer))
        and not isinstance(activations, bool)
        and int(activations) == 8
    ):
        return 8
    raise ValueError(f"activations must be one of {ACTIVATION_MODES}, got {activations!r}")


def _check_n_threads(n_threads):
    if n_threads is not None:
        check_n_threads(n_threads)
    return n_threads


def _check_float_weight(weight, ndim, name="weight", expected="a real array"):
    w = np.asarray(weight)
    if w.dtype.kind not in "fiu" or w.dtype.kind == "b":
        raise TypeError(f"{name} must be {expected}, got {describe(weight)}")
    if w.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {w.shape}")
    w = w.astype(np.float32)
    if not np.all(np.isfinite(w)):
        raise ValueError(f"{name} contains NaN or Inf")
    return w


def _check_bias(bias, n_out):
    if bias is None:
        return None
    b = np.asarray(bias)
    if b.dtype.kind not in "fiu":
        raise TypeError(f"bias must be a real array, got {describe(bias)}")
    if b.shape != (n_out,):
        raise ValueError(f"bias must have shape ({n_out},), got {b.shape}")
    b = b.astype(np.float32)
    if not np.all(np.isfinite(b)):
        raise ValueError("bias contains NaN or Inf")
    return b


def _check_group_size(group_size, k, weights):
    if group_size is None:
        return None
    if isinstance(group_size, bool) or not isinstance(group_size, (numbers.Integral, np.integer)):
        raise TypeError(f"group_size must be None or an int, got {describe(group_size)}")
    g = int(group_size)
    if g < 32 or g % 32:
        raise ValueError(f"group_size must be a positive multiple of 32, got {g}")
    if k % g:
        raise ValueError(f"group_size={g} must divide in_features={k}")
    return g


def _grouped(w, group_size):
    """``w`` (N, K) as (N, G, g) with G = K // g (G = 1, g = K without groups)."""
    n, k = w.shape
    g = k if group_size is None else group_size
    return w.reshape(n, k // g if g else 1, g)


def quantize_float(w, weights, group_size):
    """Default rule of each weight mode: ``(kind, bits, codes, scales, zero_points)``.

    binary: sign(w), alpha = mean |w| (XNOR-Net); ternary: absmean (BitNet b1.58),
    t = clip(round(w / gamma), -1, 1) with gamma = mean |w|; k bits: symmetric
    uniform codes of :func:`qtoolkit.rounding.encode`. Statistics per row or per
    (row, group).
    """
    n, k = w.shape
    if weights in ("binary", "ternary"):
        view = _grouped(w, group_size)
        gamma = np.abs(view).mean(axis=2, dtype=np.float64) if k else np.zeros(view.shape[:2])
        gamma = gamma.astype(np.float32)
        if weights == "binary":
            codes = np.where(w >= 0, 1, -1).astype(np.int8)
            return "binary", 1, codes, gamma, None
        safe = np.where(gamma > 0, gamma, np.float32(1))[:, :, None]
        t = np.clip(np.rint(view / safe), -1, 1) * (gamma[:, :, None] > 0)
        return "ternary", 2, t.reshape(n, k).astype(np.int8), gamma, None
    if n * k == 0:
        return "uniform", weights, np.zeros((n, k), np.int8), np.ones((n, 1), np.float32), None
    q = encode(w, bits=weights, mode="symmetric", axis=0, group_size=group_size)
    return from_quantized_array(q, 2, "weight")


def from_quantized_array(q, ndim, name):
    """``(kind, bits, codes, scales, zero_points)`` of a QuantizedArray of ``ndim`` axes.

    codes are flattened to (N, K) (C order over the trailing axes); scales and
    zero points are (N, G) with G the number of groups of the last axis. For
    kind ``"codebook"`` the codes are indices and the last item is the codebook
    (C,) instead of zero points.
    """
    if not isinstance(q, QuantizedArray):
        raise TypeError(f"{name} must be a QuantizedArray or a real array, got {describe(q)}")
    codes = np.asarray(q.codes)
    if codes.ndim != ndim:
        raise ValueError(f"{name}.codes must be {ndim}-D, got shape {codes.shape}")
    if codes.dtype.kind not in "iu":
        raise TypeError(f"{name}.codes must be integers, got {describe(codes)}")
    n = codes.shape[0]
    k = int(np.prod(codes.shape[1:], dtype=np.int64))
    g = q.group_size
    if g is not None and ndim != 2:
        raise ValueError(f"{name}: per-group scales are supported for Linear weights only")
    n_groups = 1 if g is None else codes.shape[-1] // g
    target = (n, n_groups, 1) if g is not None else (n,) + (1,) * (ndim - 1)

    def per_row(a, what, dtype):
        if a is None:
            return None
        a = np.asarray(a)
        try:
            a = np.broadcast_to(a, target)
        except ValueError:
            raise ValueError(
                f"{name}.{what} of shape {a.shape} is not one value per output row"
                + (" and group" if g is not None else "")
                + f" (expected a shape broadcastable to {target})"
            ) from None
        return np.ascontiguousarray(a.reshape(n, n_groups)).astype(dtype)

    scale = per_row(q.scale, "scale", np.float32)
    if scale is None:
        scale = np.ones((n, n_groups), np.float32)
    if not np.all(np.isfinite(scale)):
        raise ValueError(f"{name}.scale contains NaN or Inf")
    flat = codes.reshape(n, k).astype(np.int64)
    if q.codebook is not None:
        book = np.asarray(q.codebook, dtype=np.float64).ravel()
        if np.array_equal(book, [-1.0, 1.0]):
            kind, values = "binary", book
        elif np.array_equal(book, [-1.0, 0.0, 1.0]):
            kind, values = "ternary", book
        elif 1 <= book.size <= 16 and np.all(np.isfinite(book)) and q.scale_neg is None:
            # weight sharing with a small codebook: 4-bit indices, table lookup in the kernel
            if flat.size and (flat.min() < 0 or flat.max() >= book.size):
                raise ValueError(f"{name}.codes index outside the codebook of {book.size} entries")
            return "codebook", 4, flat.astype(np.uint8), scale, book
        else:
            raise ValueError(
                f"{name}: the integer kernels run the binary codebook [-1, 1], the ternary "
                f"codebook [-1, 0, 1] and finite codebooks of at most 16 entries, got a "
                f"codebook of {book.size} entries"
            )
        if flat.size and (flat.min() < 0 or flat.max() >= values.size):
            raise ValueError(f"{name}.codes index outside the codebook of {values.size} entries")
        if q.scale_neg is not None:
            neg = per_row(q.scale_neg, "scale_neg", np.float32)
            if not np.array_equal(neg, scale):
                raise ValueError(
                    f"{name}: separate positive and negative scales (trained ternary "
                    "quantization) are not supported; the integer kernels need one scale per row"
                )
        v = values[flat].astype(np.int8) if flat.size else np.zeros((n, k), np.int8)
        return kind, 1 if kind == "binary" else 2, v, scale, None
    bits = q.bits
    if bits not in _KBITS:
        raise ValueError(f"{name}.bits must be one of {_KBITS} for uniform codes, got {bits}")
    z = per_row(q.zero_point, "zero_point", np.float64)
    if z is not None and not np.array_equal(z, np.rint(z)):
        raise ValueError(f"{name}.zero_point must be integer-valued")
    z = np.zeros((n, n_groups), np.int64) if z is None else z.astype(np.int64)
    # unsigned codes u = c - lo in [0, 2**bits), zero point moved by the same offset
    lo = -(1 << (bits - 1)) if flat.size and flat.min() < 0 else 0
    u = flat - lo
    if u.size and (u.min() < 0 or u.max() >= 1 << bits):
        raise ValueError(f"{name}.codes do not fit {bits} bits")
    return "uniform", bits, u.astype(np.uint8), scale, z - lo


def _ternary_values(tb):
    """Integer values in {-1, 0, 1} (int8, (R, n_bits)) of a TernaryBits."""
    words = [
        np.ascontiguousarray(p).astype("<u8", copy=False).view(np.uint8)
        for p in (tb.sign, tb.nonzero)
    ]
    sign, nz = (np.unpackbits(w, axis=-1, count=tb.n_bits, bitorder="little") for w in words)
    return (nz.astype(np.int8) * (2 * sign.astype(np.int8) - 1)).astype(np.int8)


class QuantizedWeights:
    """A quantized weight matrix (N, taps * C) in the form one activation mode needs.

    ``taps`` is kh * kw for a convolution (rows ordered tap-major, channel-minor)
    and 1 for a linear layer. For binary or ternary activations a convolution
    stores each tap's C channels padded to whole 64-bit words (``padded``); the
    pad bits are -1 (binary) or 0 (ternary) in the weights.
    """

    def __init__(
        self,
        kind,
        bits,
        codes,
        scales,
        zero_points,
        group_size,
        activations,
        taps=1,
        padded=False,
        n_threads=None,
    ):
        n, k = codes.shape
        self.kind, self.bits, self.group_size = kind, bits, group_size
        self.n_out, self.taps, self.channels = n, taps, (k // taps if taps else 0)
        self.padded = padded
        self.activations = activations
        self.scales = np.ascontiguousarray(scales, dtype=np.float32)
        self.zero_points = zero_points
        self.planes = None  # PackedBits or TernaryBits for the popcount paths
        self.lowbit = None  # LowBitWeights for the int8 and float paths
        self.codebook = zero_points if kind == "codebook" else None
        if activations in ("binary", "ternary"):
            if kind in ("uniform", "codebook"):
                what = f"{bits}-bit" if kind == "uniform" else "codebook"
                raise ValueError(
                    f"{what} weights need activations None or 8; binary and ternary "
                    "activations run only with binary or ternary weights"
                )
            if group_size is not None:
                raise ValueError(
                    "group_size needs activations None or 8: the popcount kernels of binary "
                    "and ternary activations keep one scale per output row"
                )
            c = self.channels
            if padded and c % 64:
                cw = -(-c // 64) * 64
                pad = -1 if kind == "binary" else 0
                full = np.full((n, taps, cw), pad, np.int8)
                full[:, :, :c] = codes.reshape(n, taps, c)
                codes_p = full.reshape(n, taps * cw)
            else:
                codes_p = codes
            if kind == "binary":
                self.planes = pack_bits(codes_p, n_threads=n_threads)
            else:
                self.planes = pack_ternary_bits(codes_p, n_threads=n_threads)
            # integer sum of the codes of each tap, for the border of a +-1 padded input
            self.tap_sums = codes.reshape(n, taps, self.channels).sum(axis=2, dtype=np.int64)
        elif kind == "binary":
            self.lowbit = pack_binary(codes, scales=self.scales, group_size=group_size)
        elif kind == "ternary":
            self.lowbit = pack_ternary(codes, scales=self.scales, group_size=group_size)
        elif kind == "codebook":
            self.lowbit = pack_codebook(
                codes, self.codebook, scales=self.scales, group_size=group_size
            )
        else:
            self.lowbit = pack_weights(
                codes, bits, scales=self.scales, zero_points=zero_points, group_size=group_size
            )

    @property
    def int_scales(self):
        """Scales (N, G) of the exact sums of ``lowbit_gemm_int``.

        For a codebook these include the step of its int8 rounding,
        ``max|c| / 127`` (:func:`qtoolkit.bitops.pack_codebook`).
        """
        if self.kind != "codebook":
            return self.scales
        cmax = float(np.abs(self.codebook).max())
        step = cmax / 127.0 if cmax > 0 else 1.0
        return (self.scales.astype(np.float64) * step).astype(np.float32)

    @property
    def shape(self):
        return (self.n_out, self.taps * self.channels)

    def int_values(self):
        """Signed integer values (N, taps * C) of the codes (before scales)."""
        if self.lowbit is not None:
            u = self.lowbit.codes().astype(np.int32)
            if self.kind == "binary":
                return 2 * u - 1
            z = self.lowbit.zero_points
            if self.group_size is not None:
                z = np.repeat(z, self.group_size, axis=1)
            return u - z[:, : u.shape[1]]
        if isinstance(self.planes, PackedBits):
            v = unpack_bits(self.planes, dtype=np.int32)
        else:
            v = _ternary_values(self.planes).astype(np.int32)
        if self.padded:
            v = v.reshape(self.n_out, self.taps, -1)[:, :, : self.channels]
        return v.reshape(self.shape)

    def dequantize(self):
        """The float32 weight (N, taps * C) the layer computes with."""
        if self.lowbit is not None:
            return np.asarray(self.lowbit.dequantize(), dtype=np.float32).reshape(self.shape)
        return (self.int_values() * self.scales[:, :1]).astype(np.float32)

    @property
    def nbytes(self):
        if self.lowbit is not None:
            return int(self.lowbit.nbytes)
        if isinstance(self.planes, PackedBits):
            held = self.planes.words.nbytes
        else:
            held = self.planes.sign.nbytes + self.planes.nonzero.nbytes
        return int(held + self.scales.nbytes)

    def scaled_rows(self, factor, n_threads=None):
        """The same codes with every output row's scales multiplied by ``factor`` (N,)."""
        if self.lowbit is not None:
            u = self.lowbit.codes()
            if self.kind == "codebook":
                codes, z = u, self.codebook
            elif self.kind in ("binary", "ternary"):
                codes = self.int_values().astype(np.int8)
                z = None
            else:
                codes, z = u, self.lowbit.zero_points
        else:
            codes, z = self.int_values().astype(np.int8), None
        scales = (self.scales * factor[:, None]).astype(np.float32)
        return QuantizedWeights(
            self.kind,
            self.bits,
            codes,
            scales,
            z,
            self.group_size,
            self.activations,
            self.taps,
            self.padded,
            n_threads,
        )
