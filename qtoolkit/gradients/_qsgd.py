"""QSGD: unbiased stochastic quantization of a gradient to s levels, with a wire encoding."""

from __future__ import annotations

import math
import struct
from typing import Any, Literal

import numpy as np
from array_api_compat import device as _device

from .._array import is_lazy
from .._typing import Array, ArrayT, NDArray, RNGLike
from .._validation import (
    check_array,
    check_int,
    check_random_state,
    renamed_parameters,
    warn_renamed,
)
from ..rounding import stochastic_round
from . import _wire
from ._common import numel, work_dtype

_CODINGS = ("elias", "packed")


def _check_levels(n_levels):
    return check_int(n_levels, "n_levels", low=1, high=2**31 - 1)


def _check_bucket(bucket_size):
    return check_int(bucket_size, "bucket_size", low=1, allow_none=True)


def _layout(n, bucket):
    """Bucket length ``d`` and bucket count for ``n`` elements (one bucket if None)."""
    d = n if bucket is None else min(bucket, n)
    return d, -(-n // d)


def _as_rows(xp, flat, d, nb):
    """``flat`` (n,) zero-padded to ``(nb, d)``."""
    pad = nb * d - flat.shape[0]
    if pad:
        flat = xp.concat([flat, xp.zeros((pad,), dtype=flat.dtype, device=_device(flat))])
    return xp.reshape(flat, (nb, d))


def _qsgd_levels(xp, g, s, rng, bucket):
    """Bucket norms ``(n_buckets,)`` and signed integer levels (shape of ``g``), work dtype.

    The level is the unbiased stochastic rounding of ``s |g_i| / ||g_bucket||`` to
    the integers, :func:`qtoolkit.rounding.stochastic_round` with ``step=1``.
    Norms are computed as ``m sqrt(sum((g/m)^2))``, ``m`` the bucket's max |g|.
    """
    wd = work_dtype(xp, g)
    v = xp.astype(g, wd)
    n = numel(v)
    if n == 0:
        return xp.zeros((0,), dtype=wd, device=_device(v)), v
    d, nb = _layout(n, bucket)
    rows = _as_rows(xp, xp.reshape(v, (-1,)), d, nb)
    a = xp.abs(rows)
    m = xp.max(a, axis=1, keepdims=True)
    one = xp.ones_like(m)
    with np.errstate(over="ignore"):
        norms = m * xp.sqrt(xp.sum((rows / xp.where(m > 0, m, one)) ** 2, axis=1, keepdims=True))
    if not is_lazy(norms) and not bool(xp.all(xp.isfinite(norms))):
        raise ValueError(
            f"the norm of g overflows {wd}: QSGD sends it, so pass the gradient as float64"
        )
    ratio = xp.where(norms > 0, a / xp.where(norms > 0, norms, one), xp.zeros_like(a))  # <= 1
    r = xp.reshape(xp.reshape(ratio * s, (-1,))[:n], tuple(g.shape))
    level = stochastic_round(r, step=1.0, rng=rng)  # one rng draw per call
    level = xp.minimum(level, xp.asarray(s, dtype=wd))
    return xp.reshape(norms, (nb,)), xp.where(v < 0, -level, level)


def _dequantize(xp, norms, signed, s, out_dtype, bucket):
    n = numel(signed)
    if n == 0:
        return xp.astype(signed, out_dtype)
    d, nb = _layout(n, bucket)
    rows = _as_rows(xp, xp.reshape(signed, (-1,)), d, nb) * (xp.reshape(norms, (nb, 1)) / s)
    return xp.astype(xp.reshape(xp.reshape(rows, (-1,))[:n], tuple(signed.shape)), out_dtype)


@renamed_parameters({"levels": "n_levels"})
def qsgd(
    g: ArrayT, n_levels: int, *, bucket_size: int | None = None, rng: RNGLike = None
) -> ArrayT:
    r"""Quantize a gradient with QSGD: norm, sign and a stochastic level out of ``n_levels``.

    Parameters
    ----------
    g : array of shape (...)
        Gradient, real floating, finite; any Array API array (NumPy, PyTorch,
        array-api-strict, ...).
    n_levels : int
        Number of quantization levels ``s >= 1`` on ``[0, 1]``.
    bucket_size : int or None, default=None
        Quantize consecutive buckets of this many elements (C order) each
        with its own norm (the paper's bucketing, e.g. 512), which lowers the
        variance bound to :math:`\min(d/s^2, \sqrt d/s)\|g\|^2`; None: one
        norm for the whole array.
    rng : numpy.random.Generator, int or None, default=None
        Seed of the rounding noise (one draw is taken from it); the noise is
        that of :func:`qtoolkit.rounding.stochastic_round`, the same in every
        namespace for the same seed.

    Returns
    -------
    q : array of the same shape, dtype, namespace and device as ``g``
        ``Q_s(g)``, an unbiased estimate of ``g``.

    Raises
    ------
    TypeError
        If ``g`` is not a real floating array or ``n_levels`` is not an integer.
    ValueError
        If ``g`` holds NaN or Inf or ``n_levels < 1``.

    See Also
    --------
    QSGDCompressor : the same map with an Elias-gamma or bit-packed wire encoding.
    terngrad : three levels scaled by the max norm.

    Notes
    -----
    With :math:`r_i = s|g_i| / \|g\|_2` and :math:`\ell_i = \lfloor r_i \rfloor`,

    .. math::

        Q_s(g)_i = \|g\|_2 \,\operatorname{sign}(g_i)\, \xi_i / s, \qquad
        \xi_i = \begin{cases} \ell_i + 1 & \text{with probability } r_i - \ell_i \\
                              \ell_i & \text{otherwise,} \end{cases}

    so :math:`E[Q_s(g)] = g` and
    :math:`E\|Q_s(g) - g\|^2 = \frac{\|g\|^2}{s^2}\sum_i (r_i - \ell_i)(1 - r_i + \ell_i)
    \le \min(n/s^2, \sqrt{n}/s)\,\|g\|_2^2`.
    float16 input is quantized in float32 (the probabilities need the precision)
    and returned as float16.

    References
    ----------
    .. [1] D. Alistarh, D. Grubic, J. Li, R. Tomioka, M. Vojnovic, "QSGD:
       Communication-Efficient SGD via Gradient Quantization and Encoding",
       NeurIPS 2017.

    Examples
    --------
    >>> import numpy as np
    >>> from qtoolkit.gradients import qsgd
    >>> g = np.array([0.3, -0.4, 0.0, 1.2])
    >>> float(np.linalg.norm(g)) / 4            # the level spacing
    0.325
    >>> qsgd(g, n_levels=4, rng=0)
    array([ 0.325, -0.325,  0.   ,  0.975])
    """
    g, xp = check_array(g, "g", allow_empty=True, finite=True)
    s = _check_levels(n_levels)
    bucket = _check_bucket(bucket_size)
    norms, signed = _qsgd_levels(xp, g, s, check_random_state(rng), bucket)
    return _dequantize(xp, norms, signed, s, g.dtype, bucket)


class QSGDCompressor(_wire.WireCompressor):
    r"""QSGD gradient compressor with a lossless wire encoding of the quantized gradient.

    Parameters
    ----------
    n_levels : int, default=7
        Number of levels ``s`` (see :func:`qsgd`).
    coding : {"elias", "packed"}, default="elias"
        ``"elias"``: the positions of the non-zero levels as Elias-gamma coded
        gaps, their levels Elias-gamma coded, then one sign bit each (the
        paper's scheme; small for sparse outputs, about ``2.8 n`` bits at
        ``s = sqrt(n)``). ``"packed"``: each element as a fixed-width level of
        ``ceil(log2(s + 1))`` bits plus a sign bit.
    bucket_size : int or None, default=None
        Elements per bucket, each with its own norm (see :func:`qsgd`).
    rng : numpy.random.Generator, int or None, default=None
        Source of the rounding draws; one generator is kept for the life of
        the compressor.

    Attributes
    ----------
    bits_per_element_ : float
        Measured size of the last message from :meth:`encode`, header
        included, in bits per gradient element.

    Raises
    ------
    TypeError
        If ``n_levels`` is not an integer.
    ValueError
        If ``n_levels < 1`` or ``coding`` is unknown.

    See Also
    --------
    qsgd : the stateless quantizer.
    TernGradCompressor, SignErrorFeedback

    Notes
    -----
    The message holds a header (shape, dtype), ``s``, the bucket length, the
    bucket norms (in the work dtype: float32 for float16 gradients, else the
    gradient's dtype) and the coded levels; :meth:`decode` recomputes
    :math:`\|g_b\|_2\,\operatorname{sign}_i\,\xi_i / s` with the same arithmetic,
    so ``decode(encode(g))`` equals :meth:`compress` with the same generator
    state bit for bit. The variance bound is
    :math:`E\|Q_s(g)-g\|^2 \le \min(d/s^2, \sqrt d/s)\|g\|^2` [1]_, ``d`` the
    bucket length (``n`` without buckets). The Elias-gamma stream stores all
    unary prefixes first and then all mantissas: the same length as the
    interleaved code, but decodable with vectorised NumPy operations.

    References
    ----------
    .. [1] D. Alistarh et al., "QSGD: Communication-Efficient SGD via Gradient
       Quantization and Encoding", NeurIPS 2017.

    Examples
    --------
    >>> import numpy as np
    >>> from qtoolkit.gradients import QSGDCompressor
    >>> g = np.random.default_rng(0).normal(size=1000)
    >>> comp = QSGDCompressor(n_levels=32, rng=0)
    >>> data = comp.encode(g)
    >>> q = comp.decode(data)
    >>> bool(np.array_equal(q, QSGDCompressor(n_levels=32, rng=0).compress(g)))
    True
    >>> comp.bits_per_element_ < 8
    True
    """

    _scheme = _wire.SCHEME_QSGD
    _wire_name = "QSGD"

    @renamed_parameters({"levels": "n_levels"})
    def __init__(
        self,
        n_levels: int = 7,
        coding: Literal["elias", "packed"] = "elias",
        bucket_size: int | None = None,
        rng: RNGLike = None,
    ) -> None:
        self.n_levels = _check_levels(n_levels)
        self.coding = coding
        self.bucket_size = _check_bucket(bucket_size)
        self.rng = rng
        if coding not in _CODINGS:
            raise ValueError(f"coding must be one of {_CODINGS}, got {coding!r}")
        self._rng = check_random_state(rng)

    @property
    def levels(self) -> int:
        """Deprecated alias of ``n_levels`` (removed in the next release)."""
        warn_renamed("QSGDCompressor.levels", "QSGDCompressor.n_levels", stacklevel=2)
        return self.n_levels

    def compress(self, g: ArrayT) -> ArrayT:
        """Quantized gradient ``Q_s(g)``, as :func:`qsgd`, with the compressor's generator.

        Parameters
        ----------
        g : array of shape (...)
            Gradient, real floating, finite, any Array API array.

        Returns
        -------
        q : array like ``g``
            The quantized gradient.

        Examples
        --------
        >>> import numpy as np
        >>> from qtoolkit.gradients import QSGDCompressor
        >>> QSGDCompressor(n_levels=4, rng=0).compress(np.array([0.3, -0.4, 0.0, 1.2]))
        array([ 0.325, -0.325,  0.   ,  0.975])
        """
        g, xp = check_array(g, "g", allow_empty=True, finite=True)
        norms, signed = _qsgd_levels(xp, g, self.n_levels, self._rng, self.bucket_size)
        return _dequantize(xp, norms, signed, self.n_levels, g.dtype, self.bucket_size)

    def encode(self, g: Array) -> bytes:
        """Quantize ``g`` and serialize the result.

        Parameters
        ----------
        g : array of shape (...)
            Gradient, real floating, finite, any Array API array (copied to
            the host for encoding).

        Returns
        -------
        data : bytes
            The message; :meth:`decode` restores the quantized gradient exactly.

        Examples
        --------
        >>> import numpy as np
        >>> from qtoolkit.gradients import QSGDCompressor
        >>> len(QSGDCompressor(n_levels=4, rng=0).encode(np.array([0.3, -0.4, 0.0, 1.2])))
        44
        """
        g, _ = check_array(g, "g", allow_empty=True, finite=True)
        g = _wire.wire_array(g)
        s = self.n_levels
        norms, signed = _qsgd_levels(np, g, s, self._rng, self.bucket_size)
        wd = np.dtype(work_dtype(np, g))
        mags = np.abs(signed).astype(np.uint64).ravel()
        neg = np.signbit(signed).ravel()
        head = struct.pack("<IBQ", s, _CODINGS.index(self.coding), self.bucket_size or 0)
        head += np.asarray(norms, dtype=wd).tobytes()
        if self.coding == "elias":
            nz = np.flatnonzero(mags)
            gaps = np.diff(np.concatenate([[-1], nz])).astype(np.uint64)
            bits = np.concatenate(
                [_wire.elias_gamma_bits(np.concatenate([gaps, mags[nz]])), neg[nz].astype(np.uint8)]
            )
            head += struct.pack("<Q", nz.size)
        else:
            width = int(_wire.bit_length(np.array([s]))[0])
            fields = (mags << np.uint64(1)) | neg.astype(np.uint64)
            bits = _wire.uint_bits(fields, width + 1)
        return self._message(g.dtype, g.shape, head, np.packbits(bits).tobytes())

    def decode(self, data: bytes, *, max_elements: int | None = None) -> NDArray[Any]:
        """Restore the quantized gradient from a message of :meth:`encode`.

        Parameters
        ----------
        data : bytes
            A QSGD message.
        max_elements : int, optional
            Largest number of values the message may decode to (default
            ``2**26``); larger shapes are refused before anything is allocated,
            since an Elias-coded message of a zero gradient is a few bytes
            whatever its shape.

        Returns
        -------
        q : numpy.ndarray
            The quantized gradient, with the shape and dtype of the encoded one.

        Raises
        ------
        TypeError
            If ``data`` is not bytes.
        ValueError
            If ``data`` is not a complete, consistent QSGD message: truncated,
            with trailing bytes, ``s = 0``, a non-finite or negative norm, a
            level above ``s``, a position outside the array, or more than
            ``max_elements`` values.

        Examples
        --------
        >>> import numpy as np
        >>> from qtoolkit.gradients import QSGDCompressor
        >>> comp = QSGDCompressor(n_levels=4, rng=0)
        >>> comp.decode(comp.encode(np.array([0.3, -0.4, 0.0, 1.2])))
        array([ 0.325, -0.325,  0.   ,  0.975])
        """
        data, dtype, shape, n, off = self._open(data, max_elements)
        wd = np.dtype(np.float32) if dtype == np.float16 else dtype
        if len(data) < off + 13:
            raise ValueError(
                f"data is truncated (QSGD parameters need {off + 13} bytes, got {len(data)})"
            )
        s, coding, bucket = struct.unpack_from("<IBQ", data, off)
        off += 13
        if not 1 <= s <= 2**31 - 1:
            raise ValueError(f"data is corrupt (QSGD levels s={s}, expected 1 <= s < 2**31)")
        bucket = bucket or None
        nb = _layout(n, bucket)[1] if n else 0
        if len(data) < off + nb * wd.itemsize:
            raise ValueError(
                f"data is truncated (QSGD norms need {off + nb * wd.itemsize} "
                f"bytes, got {len(data)})"
            )
        norms = np.frombuffer(data, dtype=wd, count=nb, offset=off)
        if not np.all(np.isfinite(norms)) or np.any(norms < 0):
            raise ValueError("data is corrupt (a QSGD bucket norm is negative, NaN or Inf)")
        off += nb * wd.itemsize
        if coding == 0:
            if len(data) < off + 8:
                raise ValueError("data is truncated (QSGD count of non-zeros missing)")
            (nnz,) = struct.unpack_from("<Q", data, off)
            off += 8
            if nnz > n:
                raise ValueError(f"data is corrupt ({nnz} QSGD non-zeros in {n} values)")
            if 8 * (len(data) - off) < 3 * nnz:  # every non-zero takes >= 3 bits
                raise ValueError("data is truncated (QSGD stream shorter than its non-zeros)")
            bits = _wire.unpack_body(data, off, 0)
            vals, used = _wire.elias_gamma_decode(bits, 2 * nnz)
            if bits.size < used + nnz:
                raise ValueError("data is truncated (QSGD sign bits missing)")
            if len(data) - off != -(-(used + nnz) // 8):
                raise ValueError("data is corrupt (bytes after the QSGD stream)")
            gaps, levels = vals[:nnz], vals[nnz:]
            if nnz and (gaps.max() > n or levels.max() > s):
                raise ValueError(
                    "data is corrupt (a QSGD gap exceeds the array or a level exceeds s)"
                )
            pos = np.cumsum(gaps.astype(np.int64)) - 1
            if nnz and pos[-1] >= n:
                raise ValueError("data is corrupt (QSGD position beyond the array)")
            signed = np.zeros(n, dtype=wd)
            neg = bits[used : used + nnz].astype(bool)
            signed[pos] = np.where(neg, -1.0, 1.0) * levels.astype(wd)
        elif coding == 1:
            width = int(_wire.bit_length(np.array([s]))[0]) + 1
            if len(data) - off != -(-n * width // 8):
                raise ValueError(
                    f"data is corrupt or truncated (QSGD packed body of {len(data) - off} "
                    f"bytes, expected {-(-n * width // 8)})"
                )
            fields = _wire.read_fields(data, off, width, n)
            mags = fields >> np.uint64(1)
            if n and mags.max() > s:
                raise ValueError("data is corrupt (a QSGD level exceeds s)")
            mags = mags.astype(wd)
            signed = np.where((fields & np.uint64(1)).astype(bool), -mags, mags)
        else:
            raise ValueError(f"data has an unknown QSGD coding {coding}")
        return _dequantize(np, norms, signed.reshape(shape), s, dtype, bucket)

    def variance_bound(self, g: Array) -> float:
        r"""Bound on :math:`E\|Q_s(g) - g\|^2`: :math:`\min(d/s^2, \sqrt d / s)\,\|g\|^2`.

        Parameters
        ----------
        g : array of shape (...)
            Gradient.

        Returns
        -------
        bound : float
            The bound of [1]_ (Lemma 3.1), with ``d`` the bucket length
            (``n`` without buckets).

        Examples
        --------
        >>> import numpy as np
        >>> from qtoolkit.gradients import QSGDCompressor
        >>> QSGDCompressor(n_levels=2).variance_bound(np.array([3.0, 4.0]))
        12.5
        """
        g, xp = check_array(g, "g", allow_empty=True, finite=True)
        n, s = numel(g), self.n_levels
        n = _layout(n, self.bucket_size)[0] if n else 0
        sq = float(xp.sum(xp.astype(g, xp.float64) ** 2)) if n else 0.0
        return min(n / s**2, math.sqrt(n) / s) * sq
