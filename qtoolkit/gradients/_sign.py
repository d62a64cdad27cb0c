"""1-bit (sign) gradients and the error-feedback compressor."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from array_api_compat import device as _device

from .._typing import Array, ArrayT, NDArray
from .._validation import check_array
from . import _wire
from ._common import numel

_SCALES = ("mean", "two_level", None)


def _check_scale(scale):
    if scale not in _SCALES:
        raise ValueError(f"scale must be one of 'mean', 'two_level' or None, got {scale!r}")
    return scale


def _sign_parts(xp, p, scale):
    """Boolean ``p >= 0`` and the two reconstruction values (0-d arrays, dtype of ``p``)."""
    pos = p >= 0
    one = xp.ones((), dtype=p.dtype, device=_device(p))
    if scale is None or numel(p) == 0:
        return pos, one, -one
    a = xp.abs(p)
    # sums of |p| overflow near the dtype's max: there, average |p| / max|p| instead
    mx = xp.max(a)
    u = a / xp.where(mx > 0, mx, one)
    if scale == "mean":
        with np.errstate(over="ignore"):
            m = xp.mean(a)
        m = xp.where(xp.isfinite(m), m, mx * xp.mean(u))
        return pos, m, -m
    fp = xp.astype(pos, p.dtype)
    n_pos = xp.sum(fp)
    n_neg = numel(p) - n_pos
    with np.errstate(over="ignore"):
        hi = xp.sum(a * fp) / xp.maximum(n_pos, one)
        lo = xp.sum(a * (1 - fp)) / xp.maximum(n_neg, one)
    hi = xp.where(xp.isfinite(hi), hi, mx * (xp.sum(u * fp) / xp.maximum(n_pos, one)))
    lo = xp.where(xp.isfinite(lo), lo, mx * (xp.sum(u * (1 - fp)) / xp.maximum(n_neg, one)))
    return pos, hi, -lo


def scaled_sign(g: ArrayT, *, scale: Literal["mean", "two_level"] | None = "mean") -> ArrayT:
    r"""1-bit quantization of a gradient: its sign times one or two reconstruction values.

    Parameters
    ----------
    g : array of shape (...)
        Gradient, real floating, finite; any Array API array.
    scale : {"mean", "two_level", None}, default="mean"
        ``"mean"``: :math:`\frac{\|g\|_1}{n}\operatorname{sign}(g)` (the
        least-squares single scale); ``"two_level"``: non-negative entries
        become the mean of the non-negative entries and negative ones the mean
        of the negative entries (the least-squares pair, as in 1-bit SGD);
        None: plain :math:`\pm 1` (signSGD).

    Returns
    -------
    q : array of the same shape, dtype, namespace and device as ``g``
        The 1-bit quantized gradient (``sign(0) = +1``).

    Raises
    ------
    TypeError
        If ``g`` is not a real floating array.
    ValueError
        If ``g`` holds NaN or Inf or ``scale`` is unknown.

    See Also
    --------
    SignErrorFeedback : carries the quantization error to the next step.

    Notes
    -----
    For ``scale="mean"`` the compression error is exactly

    .. math::

        \|g - C(g)\|^2 = \|g\|_2^2 - \|g\|_1^2 / n \le (1 - 1/n)\,\|g\|_2^2,

    a deterministic, biased, contracting compressor; ``"two_level"`` is never
    worse. With error feedback the bias does not accumulate [2]_.

    References
    ----------
    .. [1] F. Seide, H. Fu, J. Droppo, G. Li, D. Yu, "1-Bit Stochastic Gradient
       Descent and its Application to Data-Parallel Distributed Training of
       Speech DNNs", Interspeech 2014.
    .. [2] S. P. Karimireddy, Q. Rebjock, S. U. Stich, M. Jaggi, "Error Feedback
       Fixes SignSGD and other Gradient Compression Schemes", ICML 2019.

    Examples
    --------
    >>> import numpy as np
    >>> from qtoolkit.gradients import scaled_sign
    >>> scaled_sign(np.array([1.0, -3.0, 0.0, 4.0]))
    array([ 2., -2.,  2.,  2.])
    >>> scaled_sign(np.array([1.0, -3.0, 0.0, 4.0]), scale="two_level")
    array([ 1.66666667, -3.        ,  1.66666667,  1.66666667])
    """
    g, xp = check_array(g, "g", allow_empty=True, finite=True)
    pos, hi, lo = _sign_parts(xp, g, _check_scale(scale))
    return xp.where(pos, hi, lo)


class SignErrorFeedback(_wire.WireCompressor):
    r"""1-bit gradient compressor with error feedback (stateful, one per tensor).

    Each step sends :math:`C(g_t + e_t)` and keeps :math:`e_{t+1} = g_t + e_t - C(g_t + e_t)`,
    so nothing of the gradient is ever dropped, only delayed.

    Parameters
    ----------
    scale : {"mean", "two_level", None}, default="mean"
        Reconstruction values of :func:`scaled_sign`.

    Attributes
    ----------
    error_ : array or None
        The carried error :math:`e` (None before the first step), in the
        namespace and dtype of the gradients.
    bits_per_element_ : float
        Measured size of the last message, header included, in bits per element.

    Raises
    ------
    ValueError
        If ``scale`` is unknown.

    See Also
    --------
    scaled_sign, QSGDCompressor, TernGradCompressor

    Notes
    -----
    Error accounting: after ``T`` steps,

    .. math::

        \sum_{t<T} C(g_t + e_t) + e_T = \sum_{t<T} g_t ,

    exactly in real arithmetic and up to one rounding of the working dtype per
    step in floating point. The compressor is biased; its contraction is
    :math:`\|p - C(p)\|^2 = \|p\|^2 - \|p\|_1^2/n` for ``scale="mean"``
    (:meth:`variance_bound`). The message is a header, the two reconstruction
    values in the gradient's dtype and one bit per element
    (:func:`numpy.packbits`).

    References
    ----------
    .. [1] F. Seide et al., "1-Bit Stochastic Gradient Descent and its
       Application to Data-Parallel Distributed Training of Speech DNNs",
       Interspeech 2014.
    .. [2] S. P. Karimireddy et al., "Error Feedback Fixes SignSGD and other
       Gradient Compression Schemes", ICML 2019.

    Examples
    --------
    >>> import numpy as np
    >>> from qtoolkit.gradients import SignErrorFeedback
    >>> ef = SignErrorFeedback()
    >>> sent = ef.compress(np.array([0.5, -0.1, 0.2]))
    >>> sent
    array([ 0.26666667, -0.26666667,  0.26666667])
    >>> ef.error_
    array([ 0.23333333,  0.16666667, -0.06666667])
    """

    _scheme = _wire.SCHEME_SIGN
    _wire_name = "sign"

    def __init__(self, scale: Literal["mean", "two_level"] | None = "mean") -> None:
        self.scale = scale
        _check_scale(scale)
        self.error_ = None

    def _step(self, g):
        g, xp = check_array(g, "g", allow_empty=True, finite=True)
        if self.error_ is not None:
            if tuple(self.error_.shape) != tuple(g.shape) or self.error_.dtype != g.dtype:
                raise ValueError(
                    f"g must keep the shape and dtype of earlier steps "
                    f"{tuple(self.error_.shape)}/{self.error_.dtype}, got "
                    f"{tuple(g.shape)}/{g.dtype}; call reset() to start a new tensor"
                )
            p = g + self.error_
        else:
            p = g
        pos, hi, lo = _sign_parts(xp, p, _check_scale(self.scale))
        q = xp.where(pos, hi, lo)
        self.error_ = p - q
        return q, pos, hi, lo

    def compress(self, g: ArrayT) -> ArrayT:
        """Send one step: return :math:`C(g + e)` and update the carried error.

        Parameters
        ----------
        g : array of shape (...)
            Gradient, real floating, finite; same shape and dtype at every step.

        Returns
        -------
        q : array like ``g``
            What is transmitted this step.

        Raises
        ------
        ValueError
            If the shape or dtype changes between steps.

        Examples
        --------
        >>> import numpy as np
        >>> from qtoolkit.gradients import SignErrorFeedback
        >>> SignErrorFeedback().compress(np.array([0.5, -0.1, 0.2]))
        array([ 0.26666667, -0.26666667,  0.26666667])
        """
        return self._step(g)[0]

    def encode(self, g: Array) -> bytes:
        """One step of :meth:`compress`, serialized.

        Parameters
        ----------
        g : array of shape (...)
            Gradient, real floating, finite.

        Returns
        -------
        data : bytes
            The message; :meth:`decode` gives this step's :meth:`compress` output exactly.

        Examples
        --------
        >>> import numpy as np
        >>> from qtoolkit.gradients import SignErrorFeedback
        >>> len(SignErrorFeedback().encode(np.array([0.5, -0.1, 0.2])))  # 13 + 16 + 1 bytes
        30
        """
        _wire.check_wire_dtype(g)
        q, pos, hi, lo = self._step(g)
        pos = _wire.to_numpy(pos).ravel()
        dtype = np.dtype(_wire.to_numpy(q).dtype).newbyteorder("=")
        values = np.array([_wire.to_numpy(hi), _wire.to_numpy(lo)], dtype=dtype)
        return self._message(
            dtype, tuple(q.shape), values.tobytes(), np.packbits(pos.astype(np.uint8)).tobytes()
        )

    def decode(self, data: bytes, *, max_elements: int | None = None) -> NDArray[Any]:
        """Restore the transmitted array from a message of :meth:`encode`.

        Parameters
        ----------
        data : bytes
            A sign message.
        max_elements : int, optional
            Largest number of values the message may decode to (default ``2**26``).

        Returns
        -------
        q : numpy.ndarray
            The transmitted 1-bit gradient.

        Raises
        ------
        TypeError
            If ``data`` is not bytes.
        ValueError
            If ``data`` is not a complete sign message (truncated, trailing
            bytes, a NaN or Inf value), or decodes to more than
            ``max_elements`` values.

        Examples
        --------
        >>> import numpy as np
        >>> from qtoolkit.gradients import SignErrorFeedback
        >>> ef = SignErrorFeedback()
        >>> ef.decode(ef.encode(np.array([0.5, -0.1, 0.2])))
        array([ 0.26666667, -0.26666667,  0.26666667])
        """
        data, dtype, shape, n, off = self._open(data, max_elements)
        self._check_length(data, off + 2 * dtype.itemsize + -(-n // 8))
        hi, lo = np.frombuffer(data, dtype=dtype, count=2, offset=off)
        if not (np.isfinite(hi) and np.isfinite(lo)):
            raise ValueError("data is corrupt (a sign-message value is NaN or Inf)")
        bits = np.unpackbits(
            np.frombuffer(data, dtype=np.uint8, offset=off + 2 * dtype.itemsize), count=n
        ).astype(bool)
        return np.where(bits, hi, lo).astype(dtype).reshape(shape)

    def reset(self) -> SignErrorFeedback:
        """Forget the carried error (start of a new tensor or a new run).

        Returns
        -------
        self : SignErrorFeedback
            The compressor.

        Examples
        --------
        >>> import numpy as np
        >>> from qtoolkit.gradients import SignErrorFeedback
        >>> ef = SignErrorFeedback()
        >>> _ = ef.compress(np.ones(3))
        >>> ef.reset().error_ is None
        True
        """
        self.error_ = None
        return self

    def variance_bound(self, g: Array) -> float:
        r"""Squared compression error :math:`\|p - C(p)\|^2` of the next step, :math:`p = g + e`.

        Parameters
        ----------
        g : array of shape (...)
            Next gradient (the carried error is added, the state is not changed).

        Returns
        -------
        error : float
            Exact for ``scale="mean"``: :math:`\|p\|^2 - \|p\|_1^2 / n`; for the other
            scales the error of :func:`scaled_sign` at ``p``.

        Examples
        --------
        >>> import numpy as np
        >>> from qtoolkit.gradients import SignErrorFeedback
        >>> SignErrorFeedback().variance_bound(np.array([1.0, -3.0]))
        2.0
        """
        g, xp = check_array(g, "g", allow_empty=True, finite=True)
        p = g if self.error_ is None else g + self.error_
        p = xp.astype(p, xp.float64)
        pos, hi, lo = _sign_parts(xp, p, _check_scale(self.scale))
        d = p - xp.where(pos, hi, lo)
        return float(xp.sum(d * d))
