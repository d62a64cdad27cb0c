"""DoReFa-Net k-bit weights, activations and gradients."""

from __future__ import annotations

import math

from array_api_compat import device as _device

from .._array import check_axis, check_bits, check_random_state
from .._typing import ArrayT, AxisLike, RNGLike
from .._validation import check_array, check_finite
from ._common import _reduce, _sign, _uniform_noise
from ._quantized import QuantizedArray, _code_dtype, _codebook_like, _dtype_name


def _check_bits_fit(bits, x, xp, name="bits"):
    """``bits`` as validated, refused if ``x``'s dtype cannot count ``2^bits - 1`` levels exactly.

    A significand of ``p`` bits holds every integer up to ``2^p``; past that the
    level index ``round((2^k - 1) r)`` and the grid ``i / (2^k - 1)`` are no longer
    exact, and the forward map leaves ``[0, 1]`` (``4095 r`` rounds to 4096 in
    float16). So half precision allows ``bits <= 11`` (float16) and ``<= 8``
    (bfloat16).
    """
    bits = check_bits(bits, name, low=1, high=16)
    eps = float(xp.finfo(x.dtype).eps)
    p = round(-math.log2(eps)) + 1
    if bits > p:
        raise ValueError(
            f"{name} must be at most {p} for {x.dtype} input (its significand holds "
            f"{p} bits, too few for 2**{bits} - 1 exact levels), got {bits}"
        )
    return bits


def _level_k(r, xp, bits):
    """The level index ``round((2^k - 1) r)`` of ``r`` in [0, 1], as floats of ``r``'s dtype."""
    return xp.round(r * float(2**bits - 1))


def _quantize_k(r, xp, bits):
    return _level_k(r, xp, bits) / float(2**bits - 1)


def _grid_k(bits, like, xp, signed):
    """The DoReFa levels ``i / n`` (or ``2 i / n - 1``), ``n = 2^k - 1``, indexed by the codes.

    Computed with the operations of the forward maps, in the same dtype, so that
    a codeword is the forward map's value bit for bit.
    """
    g = xp.arange(2**bits, dtype=like.dtype, device=_device(like)) / float(2**bits - 1)
    return 2 * g - 1 if signed else g


def _dorefa_weight_levels(w, xp, bits, axis):
    """``(k, alpha)``: k > 1, the level index of each entry and None; k = 1, sign and E|w|."""
    if bits == 1:
        return _sign(w, xp), _reduce(xp.mean, xp.abs(w), axis)
    t = xp.tanh(w)
    m = _reduce(xp.max, xp.abs(t), axis)
    m = xp.where(m > 0, m, xp.ones_like(m))
    return _level_k(t / (2 * m) + 0.5, xp, bits), None


def _validate_dorefa_weights(w, bits, axis):
    w, xp = check_array(w, "w")
    bits = _check_bits_fit(bits, w, xp)
    axis = check_axis(axis, w.ndim)
    check_finite(w, "w", xp)
    return w, xp, bits, axis


def dorefa_weights(w: ArrayT, bits: int, axis: AxisLike = None) -> ArrayT:
    """DoReFa-Net k-bit weight quantization.

    Parameters
    ----------
    w : array of real floating dtype, any shape
        Weights, in any Array API namespace.
    bits : int
        Bit width k, in [1, 16].
    axis : int, tuple of int or None, default=None
        Axes that keep separate normalisers :math:`\\max|\\tanh w|` (or
        :math:`\\mathbb{E}|w|` for k = 1). None: per tensor.

    Returns
    -------
    w_q : array, same shape, dtype, namespace and device as ``w``
        For k > 1, values on the grid :math:`\\{-1, -1 + 2/(2^k-1), \\dots, 1\\}`;
        for k = 1, :math:`\\pm\\mathbb{E}|w|`.

    Raises
    ------
    TypeError
        If ``w`` is not a real floating array.
    ValueError
        If ``bits`` is out of range (1 to 16; at most 11 for float16 and
        8 for bfloat16 input), ``axis`` is out of bounds, or ``w`` is
        empty or holds NaN/Inf.

    See Also
    --------
    dorefa_activations : The activation quantizer.
    dorefa_gradients : The stochastic gradient quantizer.

    Notes
    -----
    With :math:`\\mathrm{quantize}_k(r) = \\operatorname{round}((2^k-1)r)/(2^k-1)`
    on :math:`[0, 1]`,

    .. math::

        w_q = 2\\,\\mathrm{quantize}_k\\!\\left(\\frac{\\tanh w}
        {2\\max|\\tanh w|} + \\frac12\\right) - 1 \\quad (k > 1), \\qquad
        w_q = \\mathrm{sign}(w)\\,\\mathbb{E}|w| \\quad (k = 1).

    The pseudo-gradient is straight-through for :math:`\\mathrm{quantize}_k`,
    so the gradient flows through the differentiable tanh normalisation.

    References
    ----------
    .. [1] S. Zhou et al., "DoReFa-Net: Training Low Bitwidth Convolutional
       Neural Networks with Low Bitwidth Gradients", arXiv:1606.06160, 2016.

    Examples
    --------
    >>> import numpy as np
    >>> from qtoolkit.rounding import dorefa_weights
    >>> dorefa_weights(np.array([-2.0, 0.0, 0.3, 2.0]), bits=2)
    array([-1.        ,  0.33333333,  0.33333333,  1.        ])
    """
    w, xp, bits, axis = _validate_dorefa_weights(w, bits, axis)
    k, alpha = _dorefa_weight_levels(w, xp, bits, axis)
    if bits == 1:
        return k * alpha
    return 2 * (k / float(2**bits - 1)) - 1


def encode_dorefa_weights(w, bits, axis=None):
    """The codes of :func:`dorefa_weights`: level indices on the grid ``2 i / (2^k - 1) - 1``.

    Takes the parameters of :func:`dorefa_weights` and validates them as it
    does. For k > 1 the code of an entry is its level index ``i`` in
    ``[0, 2^k - 1]`` and the codebook is the grid, computed as the forward map
    computes its values; for k = 1 the codes are 1 for ``w >= 0`` and 0
    elsewhere, on the codebook (-1, +1), with the scale :math:`\\mathbb{E}|w|`.
    ``decode(encode_dorefa_weights(w, ...))`` equals ``dorefa_weights(w, ...)``
    bit for bit.

    Returns
    -------
    q : QuantizedArray
        ``scheme="dorefa"``, ``bits=bits``.
    """
    w, xp, bits, axis = _validate_dorefa_weights(w, bits, axis)
    k, alpha = _dorefa_weight_levels(w, xp, bits, axis)
    if bits == 1:
        codes, book = xp.astype(w >= 0, xp.int8), _codebook_like((-1, 1), w, xp)
    else:
        codes, book = xp.astype(k, _code_dtype(xp, 0, 2**bits - 1)), _grid_k(bits, w, xp, True)
    return QuantizedArray(
        codes=codes,
        scale=alpha,
        codebook=book,
        bits=bits,
        axis=axis if bits == 1 else None,
        dtype=_dtype_name(w),
        scheme="dorefa",
    )


def dorefa_activations(x: ArrayT, bits: int) -> ArrayT:
    """DoReFa-Net k-bit activation quantization on :math:`[0, 1]`.

    Parameters
    ----------
    x : array of real floating dtype, any shape
        Activations, in any Array API namespace.
    bits : int
        Bit width k, in [1, 16].

    Returns
    -------
    x_q : array, same shape, dtype, namespace and device as ``x``
        :math:`\\mathrm{quantize}_k(\\mathrm{clip}(x, 0, 1))`.

    Raises
    ------
    TypeError
        If ``x`` is not a real floating array.
    ValueError
        If ``bits`` is out of range (1 to 16; at most 11 for float16 and
        8 for bfloat16 input) or ``x`` is empty.

    See Also
    --------
    dorefa_weights : The weight quantizer.
    uniform : Uniform quantization with a data-dependent range.

    Notes
    -----
    .. math::

        x_q = \\frac{\\operatorname{round}\\big((2^k-1)\\,\\mathrm{clip}(x, 0, 1)\\big)}{2^k-1}.

    The pseudo-gradient is the straight-through estimator inside [0, 1]
    and zero outside (the clip).

    References
    ----------
    .. [1] S. Zhou et al., "DoReFa-Net: Training Low Bitwidth Convolutional
       Neural Networks with Low Bitwidth Gradients", arXiv:1606.06160, 2016.

    Examples
    --------
    >>> import numpy as np
    >>> from qtoolkit.rounding import dorefa_activations
    >>> dorefa_activations(np.array([-0.5, 0.2, 0.5, 1.5]), bits=2)
    array([0.        , 0.33333333, 0.66666667, 1.        ])
    """
    x, xp = check_array(x, "x")
    bits = _check_bits_fit(bits, x, xp)
    return _quantize_k(xp.clip(x, 0.0, 1.0), xp, bits)


def encode_dorefa_activations(x, bits):
    """The codes of :func:`dorefa_activations`: level indices on the grid ``i / (2^k - 1)``.

    Same parameters and validation as :func:`dorefa_activations`;
    ``decode(encode_dorefa_activations(x, bits))`` equals
    ``dorefa_activations(x, bits)`` bit for bit.

    Returns
    -------
    q : QuantizedArray
        Codes in ``[0, 2^k - 1]``, no scale, the grid as codebook,
        ``scheme="dorefa_activation"``.
    """
    x, xp = check_array(x, "x")
    bits = _check_bits_fit(bits, x, xp)
    k = _level_k(xp.clip(x, 0.0, 1.0), xp, bits)
    return QuantizedArray(
        codes=xp.astype(k, _code_dtype(xp, 0, 2**bits - 1)),
        scale=None,
        codebook=_grid_k(bits, x, xp, False),
        bits=bits,
        dtype=_dtype_name(x),
        scheme="dorefa_activation",
    )


def dorefa_gradients(g: ArrayT, bits: int, rng: RNGLike = None, axis: AxisLike = None) -> ArrayT:
    """DoReFa-Net stochastic k-bit gradient quantization.

    Parameters
    ----------
    g : array of real floating dtype, any shape
        Gradient, in any Array API namespace.
    bits : int
        Bit width k, in [1, 16].
    rng : numpy.random.Generator, int or None, default=None
        Source of the uniform noise; the same seed gives the same result.
    axis : int, tuple of int or None, default=None
        Axes that keep separate :math:`\\max|g|` (the paper uses one per
        sample). None: per tensor.

    Returns
    -------
    g_q : array, same shape, dtype, namespace and device as ``g``

    Raises
    ------
    TypeError
        If ``g`` is not a real floating array or ``rng`` is not a valid seed.
    ValueError
        If ``bits`` is out of range (1 to 16; at most 11 for float16 and
        8 for bfloat16 input), ``axis`` is out of bounds, or ``g`` is
        empty or holds NaN/Inf.

    See Also
    --------
    dorefa_weights : The weight quantizer.
    stochastic_round : Unbiased rounding to any grid.

    Notes
    -----
    With :math:`M = \\max|g|` and :math:`\\sigma \\sim U(-\\tfrac12, \\tfrac12)`,

    .. math::

        g_q = 2M\\left[\\mathrm{quantize}_k\\!\\left(\\frac{g}{2M} + \\frac12
        + \\frac{\\sigma}{2^k - 1}\\right) - \\frac12\\right].

    The noise makes the rounding unbiased inside the range.

    References
    ----------
    .. [1] S. Zhou et al., "DoReFa-Net: Training Low Bitwidth Convolutional
       Neural Networks with Low Bitwidth Gradients", arXiv:1606.06160, 2016.

    Examples
    --------
    >>> import numpy as np
    >>> from qtoolkit.rounding import dorefa_gradients
    >>> dorefa_gradients(np.array([-1.0, 0.0, 1.0]), bits=2, rng=0)
    array([-1.        ,  0.33333333,  1.        ])
    """
    g, xp = check_array(g, "g")
    bits = _check_bits_fit(bits, g, xp)
    axis = check_axis(axis, g.ndim)
    rng = check_random_state(rng)
    check_finite(g, "g", xp)
    m = _reduce(xp.max, xp.abs(g), axis)
    m = xp.where(m > 0, m, xp.ones_like(m))
    u = _uniform_noise(rng, g, xp)
    if u.dtype != g.dtype:
        u = xp.astype(u, g.dtype)
    # (g / m) / 2 and m * (2 q - 1): the same values as g / (2 m) and 2 m (q - 1/2),
    # without forming 2 m, which overflows for |g| near the dtype's max
    r = (g / m) / 2 + 0.5 + (u - 0.5) / float(2**bits - 1)
    return m * (2 * (_quantize_k(r, xp, bits) - 0.5))
