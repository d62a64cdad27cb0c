"""QSGD: unbiased stochastic quantization of a gradient to s levels, with a wire encoding."""
import math
import struct

import numpy as np

from .._array import check_int, check_random_state
from . import _wire
from ..rounding import stochastic_round
from ._common import check_gradient, l2_norm, work_dtype

_CODINGS = ("elias", "packed")


def _check_levels(levels):
    return check_int(levels, "levels", low=1, high=2**31 - 1)


def _qsgd_levels(xp, g, s, rng):
    """Norm (work dtype, 0-d) and signed integer levels (work dtype) of QSGD.

    The level is the unbiased stochastic rounding of ``s |g_i| / ||g||`` to the
    integers, :func:`qtoolkit.rounding.stochastic_round` with ``step=1``.
    """
    wd = work_dtype(xp, g)
    v = xp.astype(g, wd)
    norm = l2_norm(xp, v)
    if v.size == 0:
        return norm, v
    zero = float(norm) == 0.0
    r = xp.abs(v) * (s / norm) if not zero else xp.zeros_like(v)
    level = stochastic_round(r, step=1.0, rng=rng)    # one rng draw, zero gradient included
    level = xp.minimum(level, xp.asarray(s, dtype=wd))
    return norm, xp.where(v < 0, -level, level)


def _dequantize(xp, norm, signed, s, out_dtype):
    return xp.astype(signed * (norm / s), out_dtype)


def qsgd(g, levels, *, rng=None):
    r"""Quantize a gradient with QSGD: norm, sign and a stochastic level out of ``levels``.

    Parameters
    ----------
    g : array of shape (...)
        Gradient, real floating, finite; any Array API array (NumPy, PyTorch,
        array-api-strict, ...). The norm is taken over the whole array.
    levels : int
        Number of quantization levels ``s >= 1`` on ``[0, 1]``.
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
        If ``g`` is not a real floating array or ``levels`` is not an integer.
    ValueError
        If ``g`` holds NaN or Inf or ``levels < 1``.

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
    >>> qsgd(g, levels=4, rng=0)
    array([ 0.325, -0.325,  0.   ,  0.975])
    """
    g, xp = check_gradient(g)
    s = _check_levels(levels)
    norm, signed = _qsgd_levels(xp, g, s, check_random_state(rng))
    return _dequantize(xp, norm, signed, s, g.dtype)


class QSGDCompressor:
    r"""QSGD gradient compressor with a lossless wire encoding of the quantized gradient.

    Parameters
    ----------
    levels : int, default=7
        Number of levels ``s`` (see :func:`qsgd`).
    coding : {"elias", "packed"}, default="elias"
        ``"elias"``: the positions of the non-zero levels as Elias-gamma coded
        gaps, their levels Elias-gamma coded, then one sign bit each (the
        paper's scheme; small for sparse outputs, about ``2.8 n`` bits at
        ``s = sqrt(n)``). ``"packed"``: each element as a fixed-width level of
        ``ceil(log2(s + 1))`` bits plus a sign bit.
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
        If ``levels`` is not an integer.
    ValueError
        If ``levels < 1`` or ``coding`` is unknown.

    See Also
    --------
    qsgd : the stateless quantizer.
    TernGradCompressor, SignErrorFeedback

    Notes
    -----
    The message holds a header (shape, dtype), ``s``, the norm (in the work
    dtype: float32 for float16 gradients, else the gradient's dtype) and the
    coded levels; :meth:`decode` recomputes
    :math:`\|g\|_2\,\operatorname{sign}_i\,\xi_i / s` with the same arithmetic,
    so ``decode(encode(g))`` equals :meth:`compress` with the same generator
    state bit for bit. The variance bound is
    :math:`E\|Q_s(g)-g\|^2 \le \min(n/s^2, \sqrt n/s)\|g\|^2` [1]_.

    References
    ----------
    .. [1] D. Alistarh et al., "QSGD: Communication-Efficient SGD via Gradient
       Quantization and Encoding", NeurIPS 2017.

    Examples
    --------
    >>> import numpy as np
    >>> from qtoolkit.gradients import QSGDCompressor
    >>> g = np.random.default_rng(0).normal(size=1000)
    >>> comp = QSGDCompressor(levels=32, rng=0)
    >>> data = comp.encode(g)
    >>> q = comp.decode(data)
    >>> bool(np.array_equal(q, QSGDCompressor(levels=32, rng=0).compress(g)))
    True
    >>> comp.bits_per_element_ < 8
    True
    """

    def __init__(self, levels=7, coding="elias", rng=None):
        self.levels = levels
        self.coding = coding
        self.rng = rng
        _check_levels(levels)
        if coding not in _CODINGS:
            raise ValueError(f"coding must be one of {_CODINGS}, got {coding!r}")
        self._rng = check_random_state(rng)

    def compress(self, g):
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
        >>> QSGDCompressor(levels=4, rng=0).compress(np.array([0.3, -0.4, 0.0, 1.2]))
        array([ 0.325, -0.325,  0.   ,  0.975])
        """
        g, xp = check_gradient(g)
        norm, signed = _qsgd_levels(xp, g, self.levels, self._rng)
        return _dequantize(xp, norm, signed, self.levels, g.dtype)

    def encode(self, g):
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
        >>> len(QSGDCompressor(levels=4, rng=0).encode(np.array([0.3, -0.4, 0.0, 1.2])))
        36
        """
        g, _ = check_gradient(g)
        g = _wire.to_numpy(g)
        s = self.levels
        norm, signed = _qsgd_levels(np, g, s, self._rng)
        wd = np.dtype(work_dtype(np, g))
        mags = np.abs(signed).astype(np.uint64).ravel()
        neg = np.signbit(signed).ravel()
        head = _wire.write_header(_wire.SCHEME_QSGD, g.dtype, g.shape)
        head += struct.pack("<IB", s, _CODINGS.index(self.coding))
        head += np.asarray(norm, dtype=wd).tobytes()
        if self.coding == "elias":
            nz = np.flatnonzero(mags)
            gaps = np.diff(np.concatenate([[-1], nz])).astype(np.uint64)
            bits = np.concatenate([_wire.elias_gamma_bits(np.concatenate([gaps, mags[nz]])),
                                   neg[nz].astype(np.uint8)])
            head += struct.pack("<Q", nz.size)
        else:
            width = int(_wire.bit_length(np.array([s]))[0])
            fields = (mags << np.uint64(1)) | neg.astype(np.uint64)
            bits = _wire.uint_bits(fields, width + 1)
        data = head + np.packbits(bits).tobytes()
        self.bits_per_element_ = 8 * len(data) / max(g.size, 1)
        return data

    def decode(self, data):
        """Restore the quantized gradient from a message of :meth:`encode`.

        Parameters
        ----------
        data : bytes
            A QSGD message.

        Returns
        -------
        q : numpy.ndarray
            The quantized gradient, with the shape and dtype of the encoded one.

        Raises
        ------
        TypeError
            If ``data`` is not bytes.
        ValueError
            If ``data`` is not a complete QSGD message.

        Examples
        --------
        >>> import numpy as np
        >>> from qtoolkit.gradients import QSGDCompressor
        >>> comp = QSGDCompressor(levels=4, rng=0)
        >>> comp.decode(comp.encode(np.array([0.3, -0.4, 0.0, 1.2])))
        array([ 0.325, -0.325,  0.   ,  0.975])
        """
        dtype, shape, off = _wire.read_header(data, _wire.SCHEME_QSGD)
        data = bytes(data)
        wd = np.dtype(np.float32) if dtype == np.float16 else dtype
        need = off + 5 + wd.itemsize
        if len(data) < need:
            raise ValueError(f"data is truncated (QSGD body needs {need} bytes, got {len(data)})")
        s, coding = struct.unpack_from("<IB", data, off)
        off += 5
        norm = np.frombuffer(data, dtype=wd, count=1, offset=off)[0]
        off += wd.itemsize
        n = math.prod(shape)
        if coding == 0:
            if len(data) < off + 8:
                raise ValueError("data is truncated (QSGD count of non-zeros missing)")
            (nnz,) = struct.unpack_from("<Q", data, off)
            off += 8
            bits = _wire.unpack_body(data, off, 0)
            vals, used = _wire.elias_gamma_decode(bits, 2 * nnz)
            if bits.size < used + nnz:
                raise ValueError("data is truncated (QSGD sign bits missing)")
            pos = np.cumsum(vals[:nnz].astype(np.int64)) - 1
            if nnz and pos[-1] >= n:
                raise ValueError("data is corrupt (QSGD position beyond the array)")
            signed = np.zeros(n, dtype=wd)
            neg = bits[used:used + nnz].astype(bool)
            signed[pos] = np.where(neg, -1.0, 1.0) * vals[nnz:].astype(wd)
        elif coding == 1:
            width = int(_wire.bit_length(np.array([s]))[0]) + 1
            fields = _wire.read_fields(data, off, width, n)
            mags = (fields >> np.uint64(1)).astype(wd)
            signed = np.where((fields & np.uint64(1)).astype(bool), -mags, mags)
        else:
            raise ValueError(f"data has an unknown QSGD coding {coding}")
        return _dequantize(np, norm, signed.reshape(shape), s, dtype)

    def variance_bound(self, g):
        r"""Bound on :math:`E\|Q_s(g) - g\|^2`: :math:`\min(n/s^2, \sqrt n / s)\,\|g\|^2`.

        Parameters
        ----------
        g : array of shape (...)
            Gradient.

        Returns
        -------
        bound : float
            The bound of [1]_ (Lemma 3.1).

        Examples
        --------
        >>> import numpy as np
        >>> from qtoolkit.gradients import QSGDCompressor
        >>> QSGDCompressor(levels=2).variance_bound(np.array([3.0, 4.0]))
        12.5
        """
        g, xp = check_gradient(g)
        n, s = g.size, self.levels
        sq = float(xp.sum(xp.astype(g, xp.float64) ** 2)) if g.size else 0.0
        return min(n / s**2, math.sqrt(n) / s) * sq
