"""Packed low-bit weights for :func:`lowbit_matmul`: :class:`LowBitWeights` and its builders.

The weights of a linear layer (N outputs x K inputs) are stored as unsigned
codes of 1, 2, 3, 4 or 8 bits in the panel layout of the C kernels (32 output
columns x 32 inputs per block, see ``_kernels/qt_lowbit_common.h``), with one
float scale and one integer zero point per output row or per group of inputs.
"""

from __future__ import annotations

import numbers

import numpy as np

from .._array import describe
from .._npz import NpzReader
from .._typing import ArrayLike, FileLike, NDArray, QuantizedArrayLike
from . import _lowbit
from ._codes import pack_codes, unpack_codes

__all__ = [
    "LOWBIT_BITS",
    "LowBitFormatError",
    "LowBitWeights",
    "load_lowbit_weights",
    "pack_binary",
    "pack_codebook",
    "pack_quantized",
    "pack_ternary",
    "pack_weights",
    "save_lowbit_weights",
]

#: Weight widths the low-bit kernels run.
LOWBIT_BITS = (1, 2, 3, 4, 8)

_NR = 32  # columns per panel
_SB = 32  # K values per superblock
_KINDS = ("uniform", "ternary", "binary", "codebook")
_FORMAT_NAME = "qtoolkit.LowBitWeights"
_FORMAT_VERSION = 1
_INT32_MAX = 2**31 - 1
_FIELDS = (
    *("format", "version", "kind", "bits", "shape", "group_size"),
    *("codes", "scales", "zero_points", "lut", "codebook", "codebook_step"),
)


class LowBitFormatError(ValueError):
    """Raised by :func:`load_lowbit_weights` for a file that is not valid packed low-bit weights.

    See Also
    --------
    load_lowbit_weights

    Examples
    --------
    >>> import io
    >>> from qtoolkit.bitops import LowBitFormatError, load_lowbit_weights
    >>> try:
    ...     load_lowbit_weights(io.BytesIO(b"not a file"))
    ... except LowBitFormatError:
    ...     print("rejected")
    rejected
    """


def _check_group_size(group_size):
    if group_size is None:
        return None
    if isinstance(group_size, bool) or not isinstance(group_size, (numbers.Integral, np.integer)):
        raise TypeError(f"group_size must be None or an integer, got {describe(group_size)}")
    group_size = int(group_size)
    if group_size <= 0 or group_size % _SB:
        raise ValueError(f"group_size must be None or a positive multiple of 32, got {group_size}")
    return group_size


def _per_group(value, name, n, g, dtype):
    """Broadcast a scalar, (N,), (N, 1), (N, G) or (N, G, 1) array to (N, G)."""
    arr = np.asarray(value)
    if arr.dtype.kind not in "fiub":
        raise TypeError(f"{name} must be a real array, got {describe(value)}")
    if arr.size == 1:
        arr = arr.reshape(1, 1)
    elif arr.size == n and (arr.ndim == 1 or arr.shape[0] == n):
        arr = arr.reshape(n, 1)
    elif arr.size == n * g and arr.shape[0] == n:
        arr = arr.reshape(n, g)
    else:
        raise ValueError(
            f"{name} must be a scalar or have shape ({n},), ({n}, 1) or ({n}, {g}), "
            f"got shape {arr.shape}"
        )
    return np.ascontiguousarray(np.broadcast_to(arr, (n, g)), dtype=dtype)


def _codes_2d(codes, name="codes"):
    arr = np.asarray(codes)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D (out_features, in_features), got shape {arr.shape}")
    if arr.dtype.kind not in "iub":
        raise TypeError(f"{name} must be an integer array, got {describe(codes)}")
    return arr


def _real_2d(x, name):
    arr = np.asarray(x)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D (out_features, in_features), got shape {arr.shape}")
    if arr.dtype.kind not in "fiub":
        raise TypeError(f"{name} must be a real array, got {describe(x)}")
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or Inf")
    return arr


class LowBitWeights:
    """Weights of a linear layer packed for the low-bit kernels (k-bit x int8).

    Build one with :func:`pack_weights` (uniform codes), :func:`pack_quantized`
    (a :class:`qtoolkit.rounding.QuantizedArray`), :func:`pack_ternary`,
    :func:`pack_binary` or :func:`pack_codebook`; multiply with
    :func:`lowbit_matmul`. Instances are immutable.

    Attributes
    ----------
    kind : str
        ``"uniform"``, ``"ternary"``, ``"binary"`` or ``"codebook"``.
    bits : int
        Bits per stored code: 1, 2, 3, 4 or 8 (ternary 2, binary 1, codebook 4).
    shape : tuple of int
        ``(N, K)`` = (out_features, in_features).
    group_size : int or None
        Inputs per scale (a multiple of 32), or None for one scale per row.
    n_groups : int
        Scales per row.
    scales : ndarray of float32, shape (N, n_groups)
        Scale of each row and group.
    zero_points : ndarray of int32, shape (N, n_groups)
        Zero point on the unsigned codes (0 for binary and codebook weights).
    codebook : ndarray of float32, shape (16,) or None
        The codebook the kernel computes with (codebook kind).
    nbytes : int
        Bytes of the packed codes, scales and zero points (and codebook).
    bits_per_weight : float
        ``8 * nbytes / (N * K)``.

    See Also
    --------
    pack_weights, lowbit_matmul, save_lowbit_weights

    Notes
    -----
    A weight is :math:`w_{nk} = s_{ng} (u_{nk} - z_{ng})` for uniform and
    ternary weights, :math:`s_{ng} (2 u_{nk} - 1)` for binary ones and
    :math:`s_{ng}\\, c[u_{nk}]` for codebook ones, with :math:`g = k //`
    ``group_size``; :meth:`dequantize` returns exactly these values.

    Examples
    --------
    >>> import numpy as np
    >>> from qtoolkit.bitops import pack_weights
    >>> w = pack_weights(np.array([[-2, 1, 0, 1]]), bits=2, scales=0.5)
    >>> w.shape, w.bits
    ((1, 4), 2)
    >>> w.dequantize()
    array([[-1. ,  0.5,  0. ,  0.5]], dtype=float32)
    """

    __slots__ = (
        "_bits",
        "_c_view",
        "_codebook",
        "_group_size",
        "_kind",
        "_lut",
        "_mul",
        "_panels",
        "_pscale",
        "_pwsum",
        "_pzz",
        "_scales",
        "_shape",
        "_step",
        "_zero_points",
        "_zz_uniform",
    )

    def __init__(self) -> None:
        raise TypeError(
            "LowBitWeights is built by pack_weights, pack_quantized, pack_ternary, pack_binary "
            "or pack_codebook"
        )

    @classmethod
    def _build(cls, u, bits, kind, scales, zero_points, group_size, codebook=None, lut=None):
        """u: uint8 (N, K) unsigned codes (validated); scales (N, G) f32; zero_points (N, G) i32."""
        self = object.__new__(cls)
        n, k = u.shape
        g = scales.shape[1]
        self._bits = bits
        self._kind = kind
        self._shape = (n, k)
        self._group_size = group_size
        self._mul = 2 if kind == "binary" else 1
        self._codebook = codebook
        self._lut = lut
        self._step = 1.0
        nsb = -(-k // _SB)
        npan = -(-n // _NR)
        panels = np.zeros(npan * nsb * 128 * bits, dtype=np.uint8)
        _lowbit.pack_weights(np.ascontiguousarray(u, dtype=np.uint8), bits, panels)
        # per (row, group): the kernel's zero point zz, the sum of the signed values
        zz = np.zeros((n, g), dtype=np.int64)
        if kind in ("uniform", "ternary"):
            zz = zero_points.astype(np.int64)
        elif kind == "binary":
            zz[:] = 1
        else:
            zz[:] = 128
        vals = lut[u] if lut is not None else u  # uint8; the sums run in int64
        gsz = group_size if group_size is not None else max(k, 1)
        full = k // gsz
        vsum = np.zeros((n, g), dtype=np.int64)
        if full:
            vsum[:, :full] = vals[:, : full * gsz].reshape(n, full, gsz).sum(axis=2, dtype=np.int64)
        if full < g:
            vsum[:, full] = vals[:, full * gsz :].sum(axis=1, dtype=np.int64)
        if lut is None:
            vsum *= self._mul
        counts = np.minimum(gsz, k - np.arange(g) * gsz)
        wsum = vsum - zz * counts[None, :]
        kscale = scales.astype(np.float32)
        self._pscale = _to_panels(kscale, npan, np.float32)
        self._pzz = _to_panels(zz.astype(np.uint8), npan, np.uint8)
        # one zero point for every row and group (symmetric codes, ternary, binary, codebooks):
        # the one-row kernel then reads no zero-point bytes
        self._zz_uniform = bool(zz.size == 0 or (zz == zz.flat[0]).all())
        self._pwsum = _to_panels(wsum.astype(np.int32), npan, np.int32)
        self._panels = panels
        self._scales = _readonly(scales.astype(np.float32))
        self._zero_points = _readonly(zero_points.astype(np.int32))
        for arr in (self._panels, self._pscale, self._pzz, self._pwsum):
            arr.flags.writeable = False
        return self

    kind = property(lambda self: self._kind, doc="Kind of weights.")
    bits = property(lambda self: self._bits, doc="Bits per stored code.")
    shape = property(lambda self: self._shape, doc="(N, K).")
    group_size = property(lambda self: self._group_size, doc="Inputs per scale, or None.")
    scales = property(lambda self: self._scales, doc="Scales, (N, n_groups) float32.")
    zero_points = property(lambda self: self._zero_points, doc="Zero points, (N, n_groups) int32.")

    @property
    def codebook(self) -> NDArray[np.float32] | None:
        """The float32 codebook the kernel computes with (codebook kind), else None."""
        return self._codebook

    @property
    def n_groups(self) -> int:
        """Scales per row."""
        return self._scales.shape[1]

    @property
    def nbytes(self) -> int:
        """Bytes of the packed codes, scales and zero points (and codebook)."""
        n, k = self._shape
        codes = -(-n * k * self._bits // 8)
        meta = self._scales.size * 4
        if self._kind == "uniform":
            meta += self._zero_points.size  # one byte each
        if self._codebook is not None:
            meta += 16 * 4
        return codes + meta

    @property
    def bits_per_weight(self) -> float:
        """``8 * nbytes / (N * K)`` (0.0 for an empty matrix)."""
        n, k = self._shape
        return 8.0 * self.nbytes / (n * k) if n * k else 0.0

    def codes(self) -> NDArray[np.uint8]:
        """Return the unsigned codes (codebook kind: the indices).

        Returns
        -------
        u : ndarray of uint8, shape (N, K)

        Examples
        --------
        >>> import numpy as np
        >>> from qtoolkit.bitops import pack_weights
        >>> pack_weights(np.array([[-2, 1]]), bits=2).codes()
        array([[0, 3]], dtype=uint8)
        """
        return _unpack_panels(self._panels, self._shape, self._bits)

    def dequantize(self) -> NDArray[np.float32]:
        """Return the float32 weights the kernels compute with, shape (N, K).

        Returns
        -------
        w : ndarray of float32, shape (N, K)

        Examples
        --------
        >>> import numpy as np
        >>> from qtoolkit.bitops import pack_ternary
        >>> pack_ternary(np.array([[0.5, -0.5, 0.0]])).dequantize()
        array([[ 0.5, -0.5,  0. ]], dtype=float32)
        """
        k = self._shape[1]
        u = self.codes().astype(np.float32)
        if self._kind == "codebook":
            v = self._codebook[u.astype(np.intp)]
        elif self._kind == "binary":
            v = 2.0 * u - 1.0
        else:
            v = None
        gsz = self._group_size if self._group_size is not None else max(k, 1)
        idx = np.arange(k) // gsz
        if v is None:
            v = u - self._zero_points[:, idx].astype(np.float32)
        return (v * self._scales[:, idx]).astype(np.float32)

    def __repr__(self) -> str:
        n, k = self._shape
        return (
            f"LowBitWeights(kind={self._kind!r}, bits={self._bits}, shape=({n}, {k}), "
            f"group_size={self._group_size})"
        )


def _readonly(arr):
    arr = np.ascontiguousarray(arr)
    arr.flags.writeable = False
    return arr


def _to_panels(a, npan, dtype):
    """(N, G) -> (npan, G, 32), zero-padded columns."""
    n, g = a.shape
    out = np.zeros((npan * _NR, g), dtype=dtype)
    out[:n] = a
    return np.ascontiguousarray(out.reshape(npan, _NR, g).transpose(0, 2, 1))


def _unpack_panels(panels, shape, bits):
    """Inverse of the C packing (see qt_lowbit_common.h), in NumPy."""
    n, k = shape
    nsb, npan = -(-k // _SB), -(-n // _NR)
    if n == 0 or k == 0:
        return np.zeros((n, k), dtype=np.uint8)
    v = panels.reshape(npan, nsb, 2, bits, 64)
    if bits == 8:
        u = v
    elif bits == 3:
        lo = np.stack([(v[:, :, :, q // 4] >> (2 * (q % 4))) & 3 for q in range(8)], axis=3)
        hi = np.stack([(v[:, :, :, 2] >> q) & 1 for q in range(8)], axis=3)
        u = lo | (hi << 2)
    else:
        per = 8 // bits
        mask = (1 << bits) - 1
        u = np.stack(
            [(v[:, :, :, q // per] >> (bits * (q % per))) & mask for q in range(8)], axis=3
        )
    # u: (npan, nsb, half, q, 64 = 16 c x 4 b) -> (npan, half, c, nsb, q, b)
    u = u.reshape(npan, nsb, 2, 8, 16, 4).transpose(0, 2, 4, 1, 3, 5)
    return np.ascontiguousarray(u.reshape(npan * _NR, nsb * _SB)[:n, :k], dtype=np.uint8)


def _check_int32_range(k, group_size, max_code):
    """Every group sum of the kernel must fit int32: len * max_code * 128 * 3 < 2**31."""
    length = group_size if group_size is not None else k
    if length * max_code * 128 * 3 > _INT32_MAX:
        limit = _INT32_MAX // (max_code * 128 * 3)
        raise ValueError(
            f"a group of {length} inputs at this code range can overflow the int32 accumulators; "
            f"use group_size <= {limit // _SB * _SB}"
        )


def _n_groups(k, group_size):
    return 1 if group_size is None else max(1, -(-k // group_size))


def pack_weights(
    codes: ArrayLike,
    bits: int,
    *,
    scales: ArrayLike | None = None,
    zero_points: ArrayLike | None = None,
    group_size: int | None = None,
) -> LowBitWeights:
    r"""Pack uniform integer weight codes for :func:`lowbit_matmul`.

    Parameters
    ----------
    codes : array_like of int, shape (N, K)
        Weight codes of a linear layer (out_features, in_features): signed in
        :math:`[-2^{b-1}, 2^{b-1})` or unsigned in :math:`[0, 2^b)`.
    bits : int
        Code width :math:`b`, one of 1, 2, 3, 4, 8.
    scales : array_like, optional
        Scalar, (N,), (N, 1) or (N, n_groups) scales; default 1.
    zero_points : array_like of int, optional
        Same shapes as ``scales``; default 0.
    group_size : int, optional
        Inputs per scale, a multiple of 32 (the last group may be shorter);
        None for one scale per row.

    Returns
    -------
    w : LowBitWeights
        Kind ``"uniform"``, with :math:`w = s\,(q - z)`.

    Raises
    ------
    TypeError
        If ``codes`` is not an integer array or ``bits`` not an integer.
    ValueError
        If ``codes`` is not 2-D, ``bits`` is not supported, a code is out of
        range, ``group_size`` is not a positive multiple of 32, the scales or
        zero points have the wrong shape, a scale is not finite or a zero
        point does not fit the codes.

    See Also
    --------
    pack_quantized : from a :class:`qtoolkit.rounding.QuantizedArray`.
    lowbit_matmul : the product.

    Notes
    -----
    Signed codes are stored as :math:`u = q + 2^{b-1}` with the zero point
    shifted by the same amount, so the values do not change. The zero point on
    the unsigned codes must lie in [0, 255].

    References
    ----------
    .. [1] B. Jacob et al., "Quantization and Training of Neural Networks for
       Efficient Integer-Arithmetic-Only Inference", CVPR 2018.

    Examples
    --------
    >>> import numpy as np
    >>> from qtoolkit.bitops import pack_weights
    >>> w = pack_weights(np.array([[3, -4], [0, 1]]), bits=3, scales=[1.0, 2.0])
    >>> w.dequantize()
    array([[ 3., -4.],
           [ 0.,  2.]], dtype=float32)
    """
    if isinstance(bits, bool) or not isinstance(bits, (numbers.Integral, np.integer)):
        raise TypeError(f"bits must be an integer, got {describe(bits)}")
    bits = int(bits)
    if bits not in LOWBIT_BITS:
        raise ValueError(f"bits must be one of {LOWBIT_BITS}, got {bits}")
    q = _codes_2d(codes)
    group_size = _check_group_size(group_size)
    n, k = q.shape
    g = _n_groups(k, group_size)
    lo, hi = (int(q.min()), int(q.max())) if q.size else (0, 0)
    offset = 0
    if lo < 0:
        if lo < -(2 ** (bits - 1)) or hi >= 2 ** (bits - 1):
            raise ValueError(
                f"signed codes must lie in [{-(2 ** (bits - 1))}, {2 ** (bits - 1) - 1}] "
                f"for bits={bits}, got [{lo}, {hi}]"
            )
        offset = 2 ** (bits - 1)
    elif hi >= 2**bits:
        raise ValueError(f"codes must lie in [0, {2**bits - 1}] for bits={bits}, got max {hi}")
    sc = _per_group(1.0 if scales is None else scales, "scales", n, g, np.float64)
    if not np.all(np.isfinite(sc)):
        raise ValueError("scales contains NaN or Inf")
    zp = _per_group(0 if zero_points is None else zero_points, "zero_points", n, g, np.float64)
    if not np.all(zp == np.round(zp)):
        raise ValueError("zero_points must be integer-valued")
    zu = zp.astype(np.int64) + offset
    if zu.size and (zu.min() < 0 or zu.max() > 255):
        raise ValueError(
            f"zero_points shifted to the unsigned codes must lie in [0, 255], got "
            f"[{int(zu.min())}, {int(zu.max())}]"
        )
    _check_int32_range(k, group_size, 2**bits - 1)
    u = (q.astype(np.int16) + offset).astype(np.uint8)
    return LowBitWeights._build(u, bits, "uniform", sc.astype(np.float32), zu, group_size)


def _default_scales(absw, n, k, group_size, how):
    g = _n_groups(k, group_size)
    gsz = group_size if group_size is not None else max(k, 1)
    padded = np.pad(absw.astype(np.float64), ((0, 0), (0, g * gsz - k))).reshape(n, g, gsz)
    if how == "max":
        s = padded.max(axis=2) if gsz else np.zeros((n, g))
    else:
        counts = np.minimum(gsz, k - np.arange(g) * gsz)
        s = padded.sum(axis=2) / np.maximum(counts, 1)
    return np.where(s > 0, s, 1.0)


def pack_ternary(
    t: ArrayLike, *, scales: ArrayLike | None = None, group_size: int | None = None
) -> LowBitWeights:
    r"""Pack ternary weights (TWN, TTQ with one scale, BitNet b1.58) for :func:`lowbit_matmul`.

    Parameters
    ----------
    t : array_like, shape (N, K)
        Real weights whose signs are the trits, e.g. the output of
        :func:`qtoolkit.rounding.ternarize` (values in :math:`\{-a, 0, a\}`)
        or integers in {-1, 0, 1}.
    scales : array_like, optional
        Scalar, (N,), (N, 1) or (N, n_groups) scales; by default the largest
        :math:`|t|` of each row (or group), which is :math:`a` for ternarized
        weights and 1 for integer trits.
    group_size : int, optional
        Inputs per scale, a multiple of 32; None for one scale per row.

    Returns
    -------
    w : LowBitWeights
        Kind ``"ternary"``, 2 bits per weight: :math:`u = \mathrm{sign}(t) + 1`,
        zero point 1.

    Raises
    ------
    TypeError
        If ``t`` is not a real array.
    ValueError
        If ``t`` is not 2-D or not finite, or the scales or ``group_size`` are invalid.

    See Also
    --------
    qtoolkit.rounding.ternarize, lowbit_matmul, pack_ternary_bits

    Notes
    -----
    The layout is that of bitnet.cpp's I2_S: codes :math:`t + 1 \in \{0, 1, 2\}`;
    the offset is removed with the activations' group sums.

    References
    ----------
    .. [1] F. Li, B. Zhang, B. Liu, "Ternary Weight Networks", arXiv:1605.04711, 2016.
    .. [2] S. Ma et al., "The Era of 1-bit LLMs: All Large Language Models are in
       1.58 Bits", arXiv:2402.17764, 2024.

    Examples
    --------
    >>> import numpy as np
    >>> from qtoolkit.bitops import pack_ternary
    >>> w = pack_ternary(np.array([[0.7, 0.0, -0.7]]))
    >>> w.codes(), w.scales
    (array([[2, 1, 0]], dtype=uint8), array([[0.7]], dtype=float32))
    """
    arr = _real_2d(t, "t")
    group_size = _check_group_size(group_size)
    n, k = arr.shape
    g = _n_groups(k, group_size)
    sign = np.sign(arr).astype(np.int64)
    if scales is None:
        sc = _default_scales(np.abs(arr), n, k, group_size, "max")
    else:
        sc = _per_group(scales, "scales", n, g, np.float64)
        if not np.all(np.isfinite(sc)):
            raise ValueError("scales contains NaN or Inf")
    u = (sign + 1).astype(np.uint8)
    _check_int32_range(k, group_size, 2)
    return LowBitWeights._build(
        u, 2, "ternary", sc.astype(np.float32), np.ones((n, g), np.int64), group_size
    )


def pack_binary(
    b: ArrayLike, *, scales: ArrayLike | None = None, group_size: int | None = None
) -> LowBitWeights:
    r"""Pack binary weights (BinaryConnect, XNOR-Net) for :func:`lowbit_matmul`.

    Parameters
    ----------
    b : array_like, shape (N, K)
        Real weights; their signs are kept, sign(0) = +1.
    scales : array_like, optional
        Scalar, (N,), (N, 1) or (N, n_groups) scales; by default the mean
        :math:`|b|` of each row (or group), XNOR-Net's :math:`\alpha`.
    group_size : int, optional
        Inputs per scale, a multiple of 32; None for one scale per row.

    Returns
    -------
    w : LowBitWeights
        Kind ``"binary"``, 1 bit per weight, value :math:`s\,(2u - 1)`.

    Raises
    ------
    TypeError
        If ``b`` is not a real array.
    ValueError
        If ``b`` is not 2-D or not finite, or the scales or ``group_size`` are invalid.

    See Also
    --------
    pack_bits, xnor_gemm : binary weights with binary activations.

    References
    ----------
    .. [1] M. Courbariaux, Y. Bengio, J.-P. David, "BinaryConnect: Training Deep
       Neural Networks with binary weights during propagations", NeurIPS 2015.
    .. [2] M. Rastegari, V. Ordonez, J. Redmon, A. Farhadi, "XNOR-Net", ECCV 2016.

    Examples
    --------
    >>> import numpy as np
    >>> from qtoolkit.bitops import pack_binary
    >>> pack_binary(np.array([[0.5, -1.5]])).dequantize()
    array([[ 1., -1.]], dtype=float32)
    """
    arr = _real_2d(b, "b")
    group_size = _check_group_size(group_size)
    n, k = arr.shape
    g = _n_groups(k, group_size)
    if scales is None:
        sc = _default_scales(np.abs(arr), n, k, group_size, "mean")
    else:
        sc = _per_group(scales, "scales", n, g, np.float64)
        if not np.all(np.isfinite(sc)):
            raise ValueError("scales contains NaN or Inf")
    u = (arr >= 0).astype(np.uint8)
    _check_int32_range(k, group_size, 2)
    return LowBitWeights._build(
        u, 1, "binary", sc.astype(np.float32), np.zeros((n, g), np.int64), group_size
    )


def pack_codebook(
    indices: ArrayLike,
    codebook: ArrayLike,
    *,
    scales: ArrayLike | None = None,
    group_size: int | None = None,
) -> LowBitWeights:
    r"""Pack codebook weights (k-means weight sharing, <= 16 codewords) for :func:`lowbit_matmul`.

    Parameters
    ----------
    indices : array_like of int, shape (N, K)
        Codeword index of each weight, in ``[0, len(codebook))``.
    codebook : array_like of float, shape (C,)
        The codewords, :math:`C \le 16`.
    scales : array_like, optional
        Scalar, (N,), (N, 1) or (N, n_groups) scales on top of the codebook; default 1.
    group_size : int, optional
        Inputs per scale, a multiple of 32; None for one scale per row.

    Returns
    -------
    w : LowBitWeights
        Kind ``"codebook"``, 4-bit indices; :attr:`LowBitWeights.codebook` holds
        the codebook rounded to int8 steps, which the kernel computes with.

    Raises
    ------
    TypeError
        If ``indices`` is not an integer array or ``codebook`` not real.
    ValueError
        If an index is out of range, the codebook is not 1-D with 1 to 16
        finite entries, or the scales or ``group_size`` are invalid.

    See Also
    --------
    qtoolkit.codebooks : the k-means codebook learners.

    Notes
    -----
    The codebook is rounded to :math:`c_q = \mathrm{round}(127\, c / \max|c|)`
    with scale :math:`\max|c| / 127`; the kernel looks the 4-bit indices up in
    a 16-byte table (``vpshufb`` / ``tbl``) and multiplies the int8 values
    with the int8 activations.

    References
    ----------
    .. [1] S. Han, H. Mao, W. J. Dally, "Deep Compression", ICLR 2016.

    Examples
    --------
    >>> import numpy as np
    >>> from qtoolkit.bitops import pack_codebook
    >>> w = pack_codebook(np.array([[0, 2, 1]]), np.array([-1.0, 0.0, 0.5]))
    >>> w.dequantize()
    array([[-1.      ,  0.503937,  0.      ]], dtype=float32)
    """
    idx = _codes_2d(indices, "indices")
    cb = np.asarray(codebook)
    if cb.dtype.kind not in "fiu":
        raise TypeError(f"codebook must be a real array, got {describe(codebook)}")
    if cb.ndim != 1 or not 1 <= cb.size <= 16:
        raise ValueError(f"codebook must be 1-D with 1 to 16 entries, got shape {cb.shape}")
    if not np.all(np.isfinite(cb)):
        raise ValueError("codebook contains NaN or Inf")
    if idx.size and (idx.min() < 0 or idx.max() >= cb.size):
        raise ValueError(
            f"indices must lie in [0, {cb.size - 1}], got [{int(idx.min())}, {int(idx.max())}]"
        )
    group_size = _check_group_size(group_size)
    n, k = idx.shape
    g = _n_groups(k, group_size)
    sc = _per_group(1.0 if scales is None else scales, "scales", n, g, np.float64)
    if not np.all(np.isfinite(sc)):
        raise ValueError("scales contains NaN or Inf")
    cmax = float(np.abs(cb).max())
    step = cmax / 127.0 if cmax > 0 else 1.0
    cq = np.zeros(16, dtype=np.int64)
    cq[: cb.size] = np.clip(np.rint(cb.astype(np.float64) / step), -127, 127)
    lut = (cq + 128).astype(np.uint8)
    eff = (cq * step).astype(np.float32)
    return _codebook_weights(idx.astype(np.uint8), lut, eff, step, sc, group_size)


def _codebook_weights(u, lut, codebook, step, scales, group_size):
    """Codebook weights from the int8 table (+128) ``lut``, its float codebook and step."""
    n, k = u.shape
    g = _n_groups(k, group_size)
    _check_int32_range(k, group_size, 255)
    w = LowBitWeights._build(
        u,
        4,
        "codebook",
        (scales.astype(np.float32).astype(np.float64) * step).astype(np.float32),
        np.zeros((n, g), np.int64),
        group_size,
        codebook=_readonly(codebook.astype(np.float32)),
        lut=lut.copy(),
    )
    # the public scales exclude the codebook step: dequantize() = scales * codebook[u]
    w._scales = _readonly(scales.astype(np.float32))
    w._step = float(step)
    return w


def pack_quantized(q: QuantizedArrayLike) -> LowBitWeights:
    """Pack a :class:`qtoolkit.rounding.QuantizedArray` of a 2-D weight for :func:`lowbit_matmul`.

    Parameters
    ----------
    q : QuantizedArray
        Codes of shape (N, K) with a scale per tensor, per row (``axis=(0,)``)
        or per group along the last axis (``group_size`` a multiple of 32), and
        optional zero points; or a codebook of at most 16 entries.

    Returns
    -------
    w : LowBitWeights
        ``w.dequantize()`` equals ``decode(q)`` up to float32 rounding.

    Raises
    ------
    TypeError
        If ``q`` does not look like a QuantizedArray.
    ValueError
        If its codes are not 2-D, it has separate negative scales, its bit
        width is not supported or its scales cannot be laid out per row/group.

    See Also
    --------
    pack_weights, qtoolkit.rounding.encode

    Examples
    --------
    >>> import numpy as np
    >>> from qtoolkit.rounding import encode, decode
    >>> from qtoolkit.bitops import pack_quantized
    >>> w = np.linspace(-1, 1, 64, dtype=np.float32).reshape(2, 32)
    >>> q = encode(w, bits=4, axis=0)
    >>> np.allclose(pack_quantized(q).dequantize(), decode(q))
    True
    """
    for attr in ("codes", "scale", "zero_point", "codebook", "bits", "group_size", "scale_neg"):
        if not hasattr(q, attr):
            raise TypeError(f"q must be a QuantizedArray, got {describe(q)}")
    codes = np.asarray(q.codes)
    if codes.ndim != 2:
        raise ValueError(f"q must hold a 2-D weight (N, K), got codes of shape {codes.shape}")
    if q.scale_neg is not None:
        raise ValueError("q has separate negative scales (scale_neg), which the kernels do not run")
    scale = None if q.scale is None else np.asarray(q.scale, dtype=np.float64)
    if q.codebook is not None:
        return pack_codebook(codes, np.asarray(q.codebook), scales=scale, group_size=q.group_size)
    bits = int(q.bits)
    width = next((b for b in LOWBIT_BITS if b >= bits), None)
    if width is None:
        raise ValueError(f"q has {bits}-bit codes; the kernels run at most 8 bits")
    zp = None if q.zero_point is None else np.asarray(q.zero_point)
    return pack_weights(codes, width, scales=scale, zero_points=zp, group_size=q.group_size)


def save_lowbit_weights(file: FileLike, w: LowBitWeights) -> None:
    """Save :class:`LowBitWeights` to a versioned ``.npz`` file.

    Parameters
    ----------
    file : str, os.PathLike or file object
        Destination (``numpy.savez`` adds ``.npz`` to a name without it).
    w : LowBitWeights
        The packed weights.

    Returns
    -------
    None

    Raises
    ------
    TypeError
        If ``w`` is not a LowBitWeights.

    See Also
    --------
    load_lowbit_weights

    Notes
    -----
    The file holds the format name and version, kind, bits, shape, group
    size, the codes densely packed with :func:`pack_codes` (3-bit codes at 4
    bits), the scales, zero points and, for codebook weights, the int8
    codebook and its step. It is read with ``allow_pickle=False``.

    Examples
    --------
    >>> import io
    >>> import numpy as np
    >>> from qtoolkit.bitops import pack_ternary, save_lowbit_weights, load_lowbit_weights
    >>> buf = io.BytesIO()
    >>> save_lowbit_weights(buf, pack_ternary(np.array([[1, 0, -1]])))
    >>> _ = buf.seek(0)
    >>> load_lowbit_weights(buf).codes()
    array([[2, 1, 0]], dtype=uint8)
    """
    if not isinstance(w, LowBitWeights):
        raise TypeError(f"w must be a LowBitWeights, got {describe(w)}")
    n, k = w.shape
    width = 4 if w.bits == 3 else w.bits
    fields = {
        "format": np.array(_FORMAT_NAME),
        "version": np.array(_FORMAT_VERSION, dtype=np.int64),
        "kind": np.array(w.kind),
        "bits": np.array(w.bits, dtype=np.int64),
        "shape": np.array((n, k), dtype=np.int64),
        "group_size": np.array(0 if w.group_size is None else w.group_size, dtype=np.int64),
        "codes": pack_codes(w.codes().reshape(-1), width),
        "scales": np.asarray(w.scales, dtype=np.float32),
        "zero_points": np.asarray(w.zero_points, dtype=np.int32),
    }
    if w.kind == "codebook":
        fields["lut"] = np.asarray(w._lut, dtype=np.uint8)
        fields["codebook"] = np.asarray(w.codebook, dtype=np.float32)
        fields["codebook_step"] = np.array(w._step, dtype=np.float64)
    np.savez(file, **fields)


def load_lowbit_weights(file: FileLike) -> LowBitWeights:
    """Load :class:`LowBitWeights` written by :func:`save_lowbit_weights`.

    Parameters
    ----------
    file : str, os.PathLike or file object
        The ``.npz`` file.

    Returns
    -------
    w : LowBitWeights
        Equal, code for code and scale for scale, to the saved weights.

    Raises
    ------
    LowBitFormatError
        (a ValueError) If the file is not readable, not this format, has
        another version, has an unexpected member, or any field is missing,
        of the wrong type or shape, or out of range.
    OSError
        If a path cannot be opened.

    See Also
    --------
    save_lowbit_weights

    Notes
    -----
    Every member's ``.npy`` header is checked against the shape and dtype the
    fields before it require before its data is read (the code array must
    hold exactly the bytes its shape and width need), so a file cannot make
    the loader allocate more than its own contents justify.

    Examples
    --------
    >>> import io
    >>> import numpy as np
    >>> from qtoolkit.bitops import pack_weights, save_lowbit_weights, load_lowbit_weights
    >>> buf = io.BytesIO()
    >>> save_lowbit_weights(buf, pack_weights(np.array([[1, -2]]), bits=2, scales=0.5))
    >>> _ = buf.seek(0)
    >>> load_lowbit_weights(buf).dequantize()
    array([[ 0.5, -1. ]], dtype=float32)
    """
    with NpzReader(file, LowBitFormatError) as r:
        fail = r.fail
        if "format" not in r:
            raise fail("is not a low-bit weights file: field 'format' is missing")
        fmt = r.scalar("format", "U", "a format name")
        if fmt != _FORMAT_NAME:
            raise fail(f"has format {fmt[:60]!r}, expected {_FORMAT_NAME!r}")
        for key in r.members:
            if key not in _FIELDS:
                raise fail(f"has an unexpected member {key[:60]!r}")
        for key in _FIELDS[:6]:
            if key not in r:
                raise fail(f"is not a low-bit weights file: field {key!r} is missing")
        version = r.scalar("version", "iu", "an integer version")
        if version != _FORMAT_VERSION:
            raise fail(
                f"has format version {version}; this qtoolkit reads version {_FORMAT_VERSION}"
            )
        kind = r.scalar("kind", "U", "a kind name")
        if kind not in _KINDS:
            raise fail(f"has unknown kind {kind[:40]!r}")
        bits = r.scalar("bits", "iu", "an integer")
        expected_bits = {"ternary": 2, "binary": 1, "codebook": 4}.get(kind)
        if bits not in LOWBIT_BITS or (expected_bits is not None and bits != expected_bits):
            raise fail(f"has bits={bits}, invalid for kind {kind!r}")

        def check_shape(shape, dtype):
            if shape != (2,) or dtype.kind not in "iu":
                raise fail(f"has a shape field of shape {shape} and dtype {dtype}")

        n, k = (int(v) for v in r.read("shape", check_shape))
        if n < 0 or k < 0 or n * k > 1 << 40:
            raise fail(f"has an invalid shape ({n}, {k})")
        gs = r.scalar("group_size", "iu", "an integer")
        if gs < 0 or gs % _SB or gs > 1 << 40:
            raise fail(f"has an invalid group_size {gs}")
        group_size = None if gs == 0 else gs
        g = _n_groups(k, group_size)
        width = 4 if bits == 3 else bits
        nbytes = -(-n * k * width // 8)

        def expect(key, shape, dtype):
            def check(s, dt):
                if s != shape or dt.newbyteorder("=") != np.dtype(dtype):
                    raise fail(f"has {key} of shape {s} and dtype {dt}, expected {shape} {dtype}")

            return r.read(key, check)

        for key in ("codes", "scales", "zero_points"):
            if key not in r:
                raise fail(f"is not a low-bit weights file: field {key!r} is missing")
        codes = expect("codes", (nbytes,), "uint8")
        scales = expect("scales", (n, g), "float32")
        zps = expect("zero_points", (n, g), "int32")
        if not np.all(np.isfinite(scales)):
            raise fail("has NaN or Inf in scales")
        u = unpack_codes(codes, width, n * k).reshape(n, k)
        if u.size and int(u.max()) >= 2**bits:
            raise fail(f"has codes that exceed {bits} bits")
        extra = {}
        if kind == "codebook":
            for key, shape, dtype in (
                ("lut", (16,), "uint8"),
                ("codebook", (16,), "float32"),
                ("codebook_step", (), "float64"),
            ):
                if key not in r:
                    raise fail(f"is not a low-bit weights file: field {key!r} is missing")
                extra[key] = expect(key, shape, dtype)
    try:
        if kind == "uniform":
            return pack_weights(u, bits, scales=scales, zero_points=zps, group_size=group_size)
        if kind == "ternary":
            if u.size and u.max() > 2:
                raise LowBitFormatError(f"{r.name} has ternary codes outside [0, 2]")
            if np.any(zps != 1):
                raise LowBitFormatError(f"{r.name} has ternary zero points other than 1")
            return pack_ternary(u.astype(np.int8) - 1, scales=scales, group_size=group_size)
        if kind == "binary":
            return pack_binary(2.0 * u - 1.0, scales=scales, group_size=group_size)
        return _codebook_from_parts(
            u, extra["lut"], extra["codebook"], float(extra["codebook_step"]), scales, group_size
        )
    except LowBitFormatError:
        raise
    except (TypeError, ValueError) as exc:
        raise LowBitFormatError(f"{r.name} has inconsistent fields: {exc}") from exc


def _codebook_from_parts(u, lut, cbf, step, scales, group_size):
    """Rebuild codebook weights from a file's int8 table, float codebook and step (validated)."""
    cq = lut.astype(np.int64) - 128
    if not (np.isfinite(step) and step > 0) or np.any(cq < -127):
        raise LowBitFormatError("codebook step or table out of range")
    if not np.array_equal((cq * step).astype(np.float32), cbf):
        raise LowBitFormatError("codebook is not its int8 table times its step")
    return _codebook_weights(u.astype(np.uint8), lut, cbf, step, scales, group_size)
