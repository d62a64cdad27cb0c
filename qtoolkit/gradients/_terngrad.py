"""TernGrad: unbiased ternary gradients scaled by the max norm, optional 2.5-sigma clipping."""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from .._array import check_random_state
from .._typing import Array, ArrayT, NDArray, RNGLike
from .._validation import check_array
from ..rounding import stochastic_round
from . import _wire
from ._common import numel, work_dtype

_TRIT_WEIGHTS = np.array([1, 3, 9, 27, 81], dtype=np.uint8)


def _check_clip(clip):
    if clip is None:
        return None
    if (
        isinstance(clip, bool)
        or not isinstance(clip, numbers.Real)
        or not clip > 0
        or not math.isfinite(clip)
    ):
        raise ValueError(
            f"clip must be None or a positive finite number of standard deviations, got {clip!r}"
        )
    return float(clip)


def _clipped(xp, g, clip):
    wd = work_dtype(xp, g)
    v = xp.astype(g, wd)
    if clip is not None and numel(v) > 1:
        sd = xp.std(v)
        c = clip * sd
        # std 0: all entries equal, nothing to clip (a select, so that it traces under jit)
        v = xp.where(sd > 0, xp.clip(v, -c, c), v)
    return v


def _terngrad_parts(xp, g, clip, rng):
    """Scale ``s = max|clip(g)|`` (0-d, work dtype) and the trits in {-1, 0, 1} (work dtype)."""
    v = _clipped(xp, g, clip)
    wd = v.dtype
    if numel(v) == 0:
        return xp.asarray(0, dtype=wd), v
    s = xp.max(xp.abs(v))
    # b ~ Bernoulli(|g| / s): stochastic rounding of |g| / s in [0, 1] to {0, 1};
    # s = 0 means g = 0, and |g| / 1 = 0 then (a select rather than a branch, for jit)
    b = stochastic_round(xp.abs(v) / xp.where(s > 0, s, xp.ones_like(s)), step=1.0, rng=rng)
    return s, xp.where(v < 0, -b, b)


def terngrad(g: ArrayT, *, clip: float | None = None, rng: RNGLike = None) -> ArrayT:
    r"""Ternarize a gradient stochastically: ``s * sign(g) * b`` with ``b ~ Bernoulli(|g|/s)``.

    Parameters
    ----------
    g : array of shape (...)
        Gradient, real floating, finite; any Array API array.
    clip : float or None, default=None
        If given, first clip ``g`` to ``[-clip * std(g), clip * std(g)]``
        (the paper uses ``clip=2.5``); the output is then unbiased for the
        clipped gradient.
    rng : numpy.random.Generator, int or None, default=None
        Seed of the Bernoulli draws (made by :func:`qtoolkit.rounding.stochastic_round`
        of :math:`|g|/s` to {0, 1}).

    Returns
    -------
    q : array of the same shape, dtype, namespace and device as ``g``
        Values in ``{-s, 0, s}`` with ``s = max |clip(g)|``.

    Raises
    ------
    TypeError
        If ``g`` is not a real floating array.
    ValueError
        If ``g`` holds NaN or Inf or ``clip`` is not positive.

    See Also
    --------
    TernGradCompressor : the same map with a 1.6-bit wire encoding.
    qsgd : more levels, scaled by the Euclidean norm.

    Notes
    -----
    With :math:`s = \|g\|_\infty` and :math:`b_k \sim \mathrm{Bernoulli}(|g_k|/s)`,

    .. math::

        \tilde g = s\,\operatorname{sign}(g) \circ b, \qquad E[\tilde g] = g, \qquad
        E\|\tilde g - g\|^2 = s\,\|g\|_1 - \|g\|_2^2 \le (\sqrt n\, s/\|g\|_2 - 1)\|g\|_2^2 .

    float16 input is processed in float32 and returned as float16.

    References
    ----------
    .. [1] W. Wen, C. Xu, F. Yan, C. Wu, Y. Wang, Y. Chen, H. Li, "TernGrad:
       Ternary Gradients to Reduce Communication in Distributed Deep Learning",
       NeurIPS 2017.

    Examples
    --------
    >>> import numpy as np
    >>> from qtoolkit.gradients import terngrad
    >>> q = terngrad(np.array([0.5, -1.0, 0.25, 0.0]), rng=0)
    >>> sorted(set(np.abs(q).tolist()) - {0.0})
    [1.0]
    """
    g, xp = check_array(g, "g", allow_empty=True, finite=True)
    clip = _check_clip(clip)
    s, t = _terngrad_parts(xp, g, clip, check_random_state(rng))
    return xp.astype(t * s, g.dtype)


class TernGradCompressor(_wire.WireCompressor):
    r"""TernGrad compressor: ternary gradient with a base-3 packed wire encoding.

    Parameters
    ----------
    clip : float or None, default=None
        Clip to ``clip`` standard deviations before ternarizing (2.5 in [1]_).
    rng : numpy.random.Generator, int or None, default=None
        Source of the Bernoulli draws, kept for the life of the compressor.

    Attributes
    ----------
    bits_per_element_ : float
        Measured size of the last message, header included, in bits per element.

    Raises
    ------
    ValueError
        If ``clip`` is not None or a positive number.

    See Also
    --------
    terngrad, QSGDCompressor, SignErrorFeedback

    Notes
    -----
    Five trits are packed per byte (:math:`3^5 = 243 \le 256`), 1.6 bits per
    element, after a header and the scale ``s`` in the work dtype. The decoded
    array is ``trit * s`` computed as in :func:`terngrad`, so it equals
    :meth:`compress` bit for bit. Variance:
    :math:`E\|\tilde g - g\|^2 = s\|g\|_1 - \|g\|_2^2` for the (clipped) gradient.

    References
    ----------
    .. [1] W. Wen et al., "TernGrad: Ternary Gradients to Reduce Communication
       in Distributed Deep Learning", NeurIPS 2017.

    Examples
    --------
    >>> import numpy as np
    >>> from qtoolkit.gradients import TernGradCompressor
    >>> g = np.random.default_rng(0).normal(size=1000).astype(np.float32)
    >>> comp = TernGradCompressor(clip=2.5, rng=1)
    >>> q = comp.decode(comp.encode(g))
    >>> q.dtype, len(np.unique(q))
    (dtype('float32'), 3)
    >>> round(comp.bits_per_element_, 2)       # 1.6 bits + a 33-byte header
    1.74
    """

    _scheme = _wire.SCHEME_TERNGRAD
    _wire_name = "TernGrad"

    def __init__(self, clip: float | None = None, rng: RNGLike = None) -> None:
        self.clip = clip
        self.rng = rng
        _check_clip(clip)
        self._rng = check_random_state(rng)

    def compress(self, g: ArrayT) -> ArrayT:
        """Ternarized gradient, as :func:`terngrad`, with the compressor's generator.

        Parameters
        ----------
        g : array of shape (...)
            Gradient, real floating, finite.

        Returns
        -------
        q : array like ``g``
            The ternarized gradient.

        Examples
        --------
        >>> import numpy as np
        >>> from qtoolkit.gradients import TernGradCompressor
        >>> TernGradCompressor(rng=0).compress(np.array([0.5, -1.0, 0.25, 0.0]))
        array([ 1., -1.,  0.,  0.])
        """
        g, xp = check_array(g, "g", allow_empty=True, finite=True)
        s, t = _terngrad_parts(xp, g, _check_clip(self.clip), self._rng)
        return xp.astype(t * s, g.dtype)

    def encode(self, g: Array) -> bytes:
        """Ternarize ``g`` and serialize it.

        Parameters
        ----------
        g : array of shape (...)
            Gradient, real floating, finite (copied to the host).

        Returns
        -------
        data : bytes
            The message.

        Examples
        --------
        >>> import numpy as np
        >>> from qtoolkit.gradients import TernGradCompressor
        >>> len(TernGradCompressor(rng=0).encode(np.array([0.5, -1.0, 0.25, 0.0])))
        22
        """
        g, _ = check_array(g, "g", allow_empty=True, finite=True)
        g = _wire.wire_array(g)
        s, t = _terngrad_parts(np, g, _check_clip(self.clip), self._rng)
        wd = np.dtype(work_dtype(np, g))
        digits = (t.ravel() + 1).astype(np.uint8)
        pad = (-digits.size) % 5
        digits = np.concatenate([digits, np.zeros(pad, dtype=np.uint8)]).reshape(-1, 5)
        packed = (digits * _TRIT_WEIGHTS).sum(axis=1, dtype=np.uint8)
        return self._message(g.dtype, g.shape, np.asarray(s, dtype=wd).tobytes(), packed.tobytes())

    def decode(self, data: bytes, *, max_elements: int | None = None) -> NDArray[Any]:
        """Restore the ternarized gradient from a message of :meth:`encode`.

        Parameters
        ----------
        data : bytes
            A TernGrad message.
        max_elements : int, optional
            Largest number of values the message may decode to (default ``2**26``).

        Returns
        -------
        q : numpy.ndarray
            The ternarized gradient (shape and dtype of the encoded one).

        Raises
        ------
        TypeError
            If ``data`` is not bytes.
        ValueError
            If ``data`` is not a complete TernGrad message (truncated, trailing
            bytes, a non-finite or negative scale, a byte above ``3**5 - 1``),
            or decodes to more than ``max_elements`` values.

        Examples
        --------
        >>> import numpy as np
        >>> from qtoolkit.gradients import TernGradCompressor
        >>> comp = TernGradCompressor(rng=0)
        >>> comp.decode(comp.encode(np.array([0.5, -1.0, 0.25, 0.0])))
        array([ 1., -1.,  0.,  0.])
        """
        data, dtype, shape, n, off = self._open(data, max_elements)
        wd = np.dtype(np.float32) if dtype == np.float16 else dtype
        self._check_length(data, off + wd.itemsize + -(-n // 5))
        s = np.frombuffer(data, dtype=wd, count=1, offset=off)[0]
        if not (np.isfinite(s) and s >= 0):
            raise ValueError(f"data is corrupt (TernGrad scale {s})")
        packed = np.frombuffer(data, dtype=np.uint8, offset=off + wd.itemsize)
        if packed.size and packed.max() >= 243:
            raise ValueError("data is corrupt (a TernGrad byte exceeds 3**5 - 1)")
        digits = (packed[:, None] // _TRIT_WEIGHTS) % 3
        t = digits.ravel()[:n].astype(wd) - 1
        return (t * s).astype(dtype).reshape(shape)

    def variance_bound(self, g: Array) -> float:
        r"""Exact variance :math:`s\|g\|_1 - \|g\|_2^2` of the ternarized (clipped) gradient.

        Parameters
        ----------
        g : array of shape (...)
            Gradient.

        Returns
        -------
        variance : float
            :math:`E\|\tilde g - g_c\|^2` where :math:`g_c` is the clipped gradient.

        Examples
        --------
        >>> import numpy as np
        >>> from qtoolkit.gradients import TernGradCompressor
        >>> TernGradCompressor().variance_bound(np.array([0.5, -1.0]))
        0.25
        """
        g, xp = check_array(g, "g", allow_empty=True, finite=True)
        v = _clipped(xp, g, _check_clip(self.clip))
        v = xp.astype(v, xp.float64)
        if not numel(v):
            return 0.0
        s = float(xp.max(xp.abs(v)))
        return s * float(xp.sum(xp.abs(v))) - float(xp.sum(v * v))
