"""Rounding to an arbitrary sorted scalar codebook, deterministic and stochastic."""

from __future__ import annotations

import math
from typing import Any, Literal, NamedTuple, overload

import numpy as np
from array_api_compat import device as _device

from .._array import check_random_state, describe, to_numpy
from .._dispatch import kernel_level, register_kernel_family
from .._typing import ArrayLike, ArrayT, RNGLike
from .._validation import check_array, check_finite, check_real
from ._common import (
    _check_finite_result,
    _is_numpy,
    _noise_key,
    _uniform_noise,
)
from ._quantized import QuantizedArray, _code_dtype, _dtype_name
from ._rounding_kernels import stochastic_grid_f32, stochastic_grid_f64

# the SSE4.1 loop of stochastic grid rounding, in qtoolkit's one CPU dispatch
_SR_FAMILY = register_kernel_family(
    "rounding.stochastic_grid",
    ("generic", "sse41"),
    "stochastic rounding to a grid (stochastic_round with step=)",
)


def _check_codebook(codebook, w, xp, *, min_size=1):
    """Validate a sorted 1-D codebook and return it in ``w``'s namespace, dtype and device."""
    if isinstance(codebook, (str, bytes)) or codebook is None:
        raise TypeError(f"codebook must be a sorted 1-D array of reals, got {describe(codebook)}")
    try:
        # arrays of any namespace or device through the library's one host conversion
        host = codebook
        if hasattr(codebook, "__array_namespace__") or hasattr(codebook, "dtype"):
            host = to_numpy(codebook)
        cb = np.asarray(host, dtype=np.float64)
    except (TypeError, ValueError, RuntimeError, AttributeError) as exc:
        raise TypeError(
            f"codebook must be a sorted 1-D array of reals, got {describe(codebook)}"
        ) from exc
    if cb.ndim != 1 or cb.size < min_size:
        raise ValueError(
            f"codebook must be 1-D with at least {min_size} codeword(s), got shape {cb.shape}"
        )
    if not np.all(np.isfinite(cb)):
        raise ValueError("codebook contains NaN or Inf")
    if np.any(cb[1:] <= cb[:-1]):
        raise ValueError("codebook must be strictly increasing (sorted, no repeats)")
    if _is_numpy(xp):
        return cb.astype(w.dtype)
    return xp.asarray(cb, dtype=w.dtype, device=_device(w))


def _take(c, idx, xp):
    """``c[idx]`` for an index array of any shape."""
    if _is_numpy(xp):
        return c[idx]
    flat = xp.reshape(idx, (-1,))
    return xp.reshape(xp.take(c, flat), tuple(idx.shape))


class CodedValues(NamedTuple):
    """Rounded values and the index of the codeword chosen for each entry.

    Returned by the ``return_codes=True`` form of :func:`round_to_codebook`,
    :func:`stochastic_round` and :func:`qtoolkit.optimize.lq_quantize`; it unpacks
    as ``values, codes = ...``.

    Parameters
    ----------
    values : array
        The rounded values, shape of the input.
    codes : array of int
        Index of the codeword of each entry: ``values == codebook[codes]``.

    See Also
    --------
    round_to_codebook, stochastic_round

    Examples
    --------
    >>> import numpy as np
    >>> from qtoolkit.rounding import round_to_codebook
    >>> round_to_codebook(np.array([0.2, 0.9]), [0.0, 1.0], return_codes=True).codes
    array([0, 1])
    """

    values: Any
    codes: Any


def _nearest_codes(w, c, xp):
    """Index of the nearest codeword (ties to the lower one); validated input.

    ``w`` is placed among the codewords themselves (exact), then the two
    neighbours are compared by distance. Midpoints ``(c[i] + c[i+1]) / 2``
    are not used: they round to a codeword for adjacent subnormals and
    overflow for codewords near the largest float.
    """
    k = c.shape[0]
    if k == 1:
        return xp.zeros(w.shape, dtype=xp.int64, device=_device(w))
    if _is_numpy(xp):
        i = np.clip(np.searchsorted(c, w, side="left"), 1, k - 1)
        with np.errstate(over="ignore"):  # an infinite distance still compares right
            return np.where((w - c[i - 1]) > (c[i] - w), i, i - 1)
    i = xp.clip(xp.searchsorted(c, w, side="left"), 1, k - 1)
    lo = _take(c, i - 1, xp)
    hi = _take(c, i, xp)
    return xp.where((w - lo) > (hi - w), i, i - 1)


@overload
def round_to_codebook(
    w: ArrayT, codebook: ArrayLike, return_codes: Literal[False] = False
) -> ArrayT: ...
@overload
def round_to_codebook(
    w: ArrayT, codebook: ArrayLike, return_codes: Literal[True]
) -> CodedValues: ...
@overload
def round_to_codebook(
    w: ArrayT, codebook: ArrayLike, return_codes: bool = False
) -> ArrayT | CodedValues: ...
def round_to_codebook(
    w: ArrayT, codebook: ArrayLike, return_codes: bool = False
) -> ArrayT | CodedValues:
    """Round each entry to the nearest codeword of a sorted scalar codebook.

    Parameters
    ----------
    w : array of real floating dtype, any shape
        Values to round, in any Array API namespace.
    codebook : array-like of shape (k,)
        Strictly increasing, finite codewords (a list, a NumPy array or an
        array of ``w``'s namespace).
    return_codes : bool, default=False
        Also return the index of the chosen codeword of each entry.

    Returns
    -------
    w_q : array, same shape, dtype, namespace and device as ``w``
        The nearest codeword of each entry; with ``return_codes``, a
        :class:`CodedValues` ``(values, codes)`` instead.
    codes : array of int64, same shape as ``w``
        Only when ``return_codes``: ``values == codebook[codes]``.

    Raises
    ------
    TypeError
        If ``w`` is not a real floating array or ``codebook`` is not numeric.
    ValueError
        If ``w`` is empty or holds NaN/Inf, or ``codebook`` is not 1-D,
        sorted and finite.

    See Also
    --------
    stochastic_round : Unbiased random rounding to the two neighbours.
    qtoolkit.rounding.power_of_two : A logarithmic codebook.

    Notes
    -----
    .. math::

        q(w) = c_{j^*}, \\qquad j^* = \\arg\\min_j |w - c_j|,

    found by binary search of :math:`w` among the midpoints
    :math:`(c_j + c_{j+1})/2` (:math:`O(\\log k)` per entry); a value exactly
    on a midpoint goes to the lower codeword (the library's one tie rule, as
    ``KMeansQuantizer`` and ``argmin``). The pseudo-gradient is the
    straight-through estimator.

    References
    ----------
    .. [1] Y. Guo, "A Survey on Methods and Theories of Quantized Neural
       Networks", arXiv:1808.04752, 2018.

    Examples
    --------
    >>> import numpy as np
    >>> from qtoolkit.rounding import round_to_codebook
    >>> round_to_codebook(np.array([-0.9, 0.2, 0.3, 5.0]), [-1.0, 0.0, 0.5, 1.0],
    ...                   return_codes=True)
    CodedValues(values=array([-1. ,  0. ,  0.5,  1. ]), codes=array([0, 1, 2, 3]))
    >>> round_to_codebook(np.array([0.25]), [0.0, 0.5])   # a tie goes to the lower codeword
    array([0.])
    """
    w, xp = check_array(w, "w")
    c = _check_codebook(codebook, w, xp)
    check_finite(w, "w", xp)
    codes = _nearest_codes(w, c, xp)
    out = _take(c, codes, xp)
    return CodedValues(out, codes) if return_codes else out


@overload
def stochastic_round(
    w: ArrayT,
    step: float | None = None,
    codebook: ArrayLike | None = None,
    rng: RNGLike = None,
    return_codes: Literal[False] = False,
) -> ArrayT: ...
@overload
def stochastic_round(
    w: ArrayT,
    step: float | None = None,
    codebook: ArrayLike | None = None,
    rng: RNGLike = None,
    *,
    return_codes: Literal[True],
) -> CodedValues: ...
@overload
def stochastic_round(
    w: ArrayT,
    step: float | None = None,
    codebook: ArrayLike | None = None,
    rng: RNGLike = None,
    return_codes: bool = False,
) -> ArrayT | CodedValues: ...
def stochastic_round(
    w: ArrayT,
    step: float | None = None,
    codebook: ArrayLike | None = None,
    rng: RNGLike = None,
    return_codes: bool = False,
) -> ArrayT | CodedValues:
    """Unbiased stochastic rounding to a uniform grid or to any sorted codebook.

    Parameters
    ----------
    w : array of real floating dtype, any shape
        Values to round, in any Array API namespace.
    step : float or None, default=None
        Grid step :math:`\\varepsilon > 0` of the grid
        :math:`\\varepsilon\\mathbb{Z}`. Give exactly one of ``step`` and
        ``codebook``.
    codebook : array-like of shape (k,) or None, default=None
        Strictly increasing codewords (k >= 2). Values outside
        :math:`[c_0, c_{k-1}]` are clipped to the end codewords.
    rng : numpy.random.Generator, int or None, default=None
        Source of randomness; the same seed gives the same result. For a
        Dask array the noise is drawn lazily from a seed taken from ``rng``.
    return_codes : bool, default=False
        With ``codebook``: also return the index of the chosen codeword.

    Returns
    -------
    w_q : array, same shape, dtype, namespace and device as ``w``
        The rounded values; with ``return_codes``, a :class:`CodedValues`
        ``(values, codes)`` instead.
    codes : array of int64
        Only when ``return_codes`` (requires ``codebook``).

    Raises
    ------
    TypeError
        If ``w`` is not a real floating array or ``rng`` is not a valid seed.
    ValueError
        If both or neither of ``step`` and ``codebook`` are given, ``step``
        is not positive, the codebook is invalid, or ``w`` is empty or holds
        NaN/Inf.

    See Also
    --------
    round_to_codebook : Deterministic nearest-codeword rounding.
    stochastic_binarize : The two-level special case of BinaryConnect.

    Notes
    -----
    For :math:`\\ell \\le x \\le h` the two neighbouring codewords,

    .. math::

        q(x) = \\begin{cases} h & \\text{with probability } (x-\\ell)/(h-\\ell),\\\\
        \\ell & \\text{otherwise,} \\end{cases}
        \\qquad \\mathbb{E}[q(x)] = x, \\quad
        \\operatorname{Var}[q(x)] = (x-\\ell)(h-x).

    On a grid of step :math:`\\varepsilon` this is
    :math:`q(x) = \\varepsilon\\lfloor x/\\varepsilon + u\\rfloor` with
    :math:`u \\sim U[0, 1)`. The pseudo-gradient is the straight-through
    estimator.

    References
    ----------
    .. [1] S. Gupta, A. Agrawal, K. Gopalakrishnan, P. Narayanan, "Deep
       Learning with Limited Numerical Precision", ICML 2015.

    Examples
    --------
    >>> import numpy as np
    >>> from qtoolkit.rounding import stochastic_round
    >>> stochastic_round(np.array([0.0, 0.25, 1.0]), step=0.5, rng=0)
    array([0. , 0.5, 1. ])
    >>> stochastic_round(np.array([-3.0, 0.1, 3.0]), codebook=[-1.0, 0.0, 2.0], rng=0)
    array([-1.,  0.,  2.])
    """
    w, xp = check_array(w, "w")
    if (step is None) == (codebook is None):
        raise ValueError(
            "give exactly one of step (a grid step) and codebook (sorted "
            f"codewords); got step={step!r}, codebook={describe(codebook)}"
        )
    if return_codes and codebook is None:
        raise ValueError("return_codes=True needs codebook; a grid has no finite code table")
    rng = check_random_state(rng)
    if step is not None:
        step = check_real(step, "step", low=0, low_inclusive=False)
        check_finite(w, "w", xp)
        narrow = np.float16 if str(w.dtype).endswith("float16") else np.float32
        if not str(w.dtype).endswith("float64") and not (
            float(np.finfo(narrow).tiny) <= step <= float(np.finfo(narrow).max) / 4
        ):
            # a step the dtype cannot hold (or whose quotients overflow it): grid in float64
            q = stochastic_round(xp.astype(w, xp.float64), step=step, rng=rng)
            return _check_finite_result(xp.astype(q, w.dtype), xp, f"stochastic_round(step={step})")
        if _is_numpy(xp):
            out = _stochastic_grid_numpy(w, step, rng)
        else:
            u = _uniform_noise(rng, w, xp)
            y = w / step
            if y.dtype != u.dtype:
                y = xp.astype(y, u.dtype)
            q = xp.floor(y + u) * step
            out = xp.astype(q, w.dtype) if q.dtype != w.dtype else q
        return _check_finite_result(out, xp, f"stochastic_round(step={step})")
    c = _check_codebook(codebook, w, xp, min_size=2)
    check_finite(w, "w", xp)
    out, codes = _stochastic_codebook(w, xp, c, rng)
    return CodedValues(out, codes) if return_codes else out


def _stochastic_codebook(w, xp, c, rng):
    """``(values, codes)`` of stochastic rounding to the codebook ``c``; validated input."""
    k = c.shape[0]
    x = xp.clip(w, c[0], c[k - 1]) if not _is_numpy(xp) else np.clip(w, c[0], c[k - 1])
    if _is_numpy(xp):
        lo_idx = np.searchsorted(c, x, side="right") - 1
        np.clip(lo_idx, 0, k - 2, out=lo_idx)
    else:
        lo_idx = xp.clip(xp.searchsorted(c, x, side="right") - 1, 0, k - 2)
    lo = _take(c, lo_idx, xp)
    hi = _take(c, lo_idx + 1, xp)
    p = (x - lo) / (hi - lo)
    u = _uniform_noise(rng, w, xp)
    if p.dtype != u.dtype:
        p = xp.astype(p, u.dtype)
    up = u < p
    one = xp.ones_like(lo_idx)
    return xp.where(up, hi, lo), lo_idx + xp.where(up, one, xp.zeros_like(lo_idx))


def codebook_code_bits(codebook):
    """Bits per code of a codebook of ``len(codebook)`` codewords (at least 1)."""
    return max(1, math.ceil(math.log2(len(codebook))))


def _codebook_array(w, xp, c, codes, scheme):
    k = int(c.shape[0])
    return QuantizedArray(
        codes=xp.astype(codes, _code_dtype(xp, 0, k - 1)),
        scale=None,
        codebook=c,
        bits=max(1, math.ceil(math.log2(k))),
        dtype=_dtype_name(w),
        scheme=scheme,
    )


def encode_codebook(w, codebook):
    """The codes of :func:`round_to_codebook`: the index of each entry's nearest codeword.

    Same parameters and validation as :func:`round_to_codebook`;
    ``decode(encode_codebook(w, c))`` equals ``round_to_codebook(w, c)``
    bit for bit (a decoded value is the codeword itself).

    Returns
    -------
    q : QuantizedArray
        Codes in ``[0, k)``, the codebook in ``w``'s dtype, no scale,
        ``bits = max(1, ceil(log2 k))``, ``scheme="codebook"``.
    """
    w, xp = check_array(w, "w")
    c = _check_codebook(codebook, w, xp)
    check_finite(w, "w", xp)
    return _codebook_array(w, xp, c, _nearest_codes(w, c, xp), "codebook")


def encode_stochastic(w, codebook, rng=None):
    """The codes of :func:`stochastic_round` with a codebook: the index drawn for each entry.

    Same parameters and validation as ``stochastic_round(w, codebook=...,
    rng=...)``; the same ``rng`` state draws the same noise, so the decoded
    tensor equals the forward map's bit for bit.

    Returns
    -------
    q : QuantizedArray
        Codes in ``[0, k)``, the codebook, ``scheme="stochastic"``.
    """
    w, xp = check_array(w, "w")
    rng = check_random_state(rng)
    c = _check_codebook(codebook, w, xp, min_size=2)
    check_finite(w, "w", xp)
    _, codes = _stochastic_codebook(w, xp, c, rng)
    return _codebook_array(w, xp, c, codes, "stochastic")


def _stochastic_grid_numpy(w, step, rng):
    """NumPy path: ``floor(w / step + u) * step`` in one compiled pass.

    The kernel computes the same noise as ``_uniform_noise``, so the result
    equals the generic path's for the same seed.
    """
    if w.dtype == np.float16:
        u = _uniform_noise(rng, w, np)
        y = w / step
        if y.dtype != u.dtype:
            y = y.astype(u.dtype)
        return (np.floor(y + u) * step).astype(w.dtype, copy=False)
    src = np.ascontiguousarray(w).reshape(-1)
    out = np.empty(w.shape, dtype=w.dtype)
    kernel = stochastic_grid_f32 if w.dtype == np.float32 else stochastic_grid_f64
    kernel(src, out.reshape(-1), step, _noise_key(rng), kernel_level(_SR_FAMILY)[1])
    return out
