"""Pseudo-gradients of the rounding functions, as plain array functions.

Each takes the latent (real) input ``w`` and the upstream gradient ``grad``
of the quantized output, and returns the gradient to apply to ``w``, so that
a NumPy training loop can use it without an autodiff framework.
"""

from __future__ import annotations

import numpy as np

from .._array import describe
from .._typing import ArrayT
from .._validation import check_array, check_real
from ._common import _check_finite_result


def _pair(w, grad):
    w, xp = check_array(w, allow_empty=True)
    grad, _ = check_array(grad, "grad", allow_empty=True)
    if tuple(grad.shape) != tuple(w.shape):
        raise ValueError(f"grad must have the shape of w {tuple(w.shape)}, got {describe(grad)}")
    return w, grad, xp


def straight_through(w: ArrayT, grad: ArrayT) -> ArrayT:
    """Straight-through estimator: pass the gradient unchanged.

    Parameters
    ----------
    w : array of real floating dtype
        Latent input of the quantizer (checked for shape only).
    grad : array of the same shape
        Gradient of the loss with respect to the quantized output.

    Returns
    -------
    grad_w : array, same shape, dtype, namespace and device as ``grad``
        A copy-free pass-through of ``grad``.

    Raises
    ------
    TypeError
        If an input is not a real floating array.
    ValueError
        If the shapes differ.

    See Also
    --------
    clipped_straight_through : The estimator with the usual clipping.

    Notes
    -----
    .. math::

        \\frac{\\partial L}{\\partial w} = \\frac{\\partial L}{\\partial q}.

    References
    ----------
    .. [1] Y. Bengio, N. Leonard, A. Courville, "Estimating or Propagating
       Gradients Through Stochastic Neurons for Conditional Computation",
       arXiv:1308.3432, 2013.

    Examples
    --------
    >>> import numpy as np
    >>> from qtoolkit.rounding import straight_through
    >>> straight_through(np.array([-2.0, 0.5]), np.array([0.1, 0.2]))
    array([0.1, 0.2])
    """
    _, grad, _ = _pair(w, grad)
    return grad


def clipped_straight_through(w: ArrayT, grad: ArrayT, clip_value: float = 1.0) -> ArrayT:
    """Straight-through estimator cancelled outside :math:`|w| \\le c`.

    Parameters
    ----------
    w : array of real floating dtype
        Latent input of the quantizer.
    grad : array of the same shape
        Gradient of the loss with respect to the quantized output.
    clip_value : float, default=1.0
        The bound :math:`c > 0`.

    Returns
    -------
    grad_w : array, same shape, dtype, namespace and device as ``grad``

    Raises
    ------
    TypeError
        If an input is not a real floating array.
    ValueError
        If the shapes differ or ``clip_value`` is not positive.

    See Also
    --------
    straight_through : Without clipping.
    approx_sign_gradient : A piecewise-linear alternative.

    Notes
    -----
    .. math::

        \\frac{\\partial L}{\\partial w} = \\frac{\\partial L}{\\partial q}\\,
        1_{|w| \\le c}.

    This is BinaryConnect's gradient of sign (the derivative of the hard tanh).

    References
    ----------
    .. [1] M. Courbariaux, Y. Bengio, J.-P. David, "BinaryConnect: Training
       Deep Neural Networks with binary weights during propagations",
       NeurIPS 2015.

    Examples
    --------
    >>> import numpy as np
    >>> from qtoolkit.rounding import clipped_straight_through
    >>> clipped_straight_through(np.array([-2.0, 0.5, 1.0]), np.array([1.0, 1.0, 1.0]))
    array([0., 1., 1.])
    """
    w, grad, xp = _pair(w, grad)
    c = check_real(clip_value, "clip_value", low=0, low_inclusive=False)
    return xp.where(xp.abs(w) <= c, grad, xp.zeros_like(grad))


def approx_sign_gradient(w: ArrayT, grad: ArrayT) -> ArrayT:
    """ApproxSign pseudo-gradient of sign: :math:`(2 - 2|w|)\\,1_{|w| \\le 1}`.

    Parameters
    ----------
    w : array of real floating dtype
        Latent input of the sign.
    grad : array of the same shape
        Gradient of the loss with respect to ``sign(w)``.

    Returns
    -------
    grad_w : array, same shape, dtype, namespace and device as ``grad``

    Raises
    ------
    TypeError
        If an input is not a real floating array.
    ValueError
        If the shapes differ.

    See Also
    --------
    swish_sign_gradient : A smooth alternative.
    clipped_straight_through : The rectangular estimator.

    Notes
    -----
    It is the derivative of the piecewise quadratic
    :math:`F(w) = \\mathrm{sign}(w)(2|w| - w^2)` on :math:`[-1, 1]`
    (:math:`\\pm 1` outside):

    .. math::

        \\frac{\\partial L}{\\partial w} = \\frac{\\partial L}{\\partial q}\\,
        \\max(0,\\, 2 - 2|w|).

    References
    ----------
    .. [1] Z. Liu et al., "Bi-Real Net: Enhancing the Performance of 1-bit
       CNNs", ECCV 2018.

    Examples
    --------
    >>> import numpy as np
    >>> from qtoolkit.rounding import approx_sign_gradient
    >>> approx_sign_gradient(np.array([0.0, 0.5, 2.0]), np.ones(3))
    array([2., 1., 0.])
    """
    w, grad, xp = _pair(w, grad)
    d = 2 - 2 * xp.abs(w)
    with np.errstate(over="ignore"):
        out = grad * xp.where(d > 0, d, xp.zeros_like(d))
    return _check_finite_result(out, xp, "the pseudo-gradient")


def swish_sign_gradient(w: ArrayT, grad: ArrayT, beta: float = 5.0) -> ArrayT:
    """SwishSign pseudo-gradient of sign (BNN+).

    Parameters
    ----------
    w : array of real floating dtype
        Latent input of the sign.
    grad : array of the same shape
        Gradient of the loss with respect to ``sign(w)``.
    beta : float, default=5.0
        Sharpness :math:`\\beta > 0`; larger is closer to sign.

    Returns
    -------
    grad_w : array, same shape, dtype, namespace and device as ``grad``

    Raises
    ------
    TypeError
        If an input is not a real floating array.
    ValueError
        If the shapes differ or ``beta`` is not positive.

    See Also
    --------
    approx_sign_gradient : A piecewise-linear alternative.

    Notes
    -----
    The derivative of
    :math:`SS_\\beta(w) = 2\\sigma(\\beta w)\\big[1 + \\beta w(1 - \\sigma(\\beta w))\\big] - 1`:

    .. math::

        \\frac{d\\,SS_\\beta}{dw} = \\frac{\\beta\\,\\big(2 - \\beta w
        \\tanh(\\beta w / 2)\\big)}{1 + \\cosh(\\beta w)}.

    References
    ----------
    .. [1] S. Darabi, M. Belbahri, M. Courbariaux, V. P. Nia, "BNN+: Improved
       Binary Network Training", arXiv:1812.11800, 2018.

    Examples
    --------
    >>> import numpy as np
    >>> from qtoolkit.rounding import swish_sign_gradient
    >>> swish_sign_gradient(np.array([0.0]), np.array([1.0]), beta=5.0)
    array([5.])
    """
    w, grad, xp = _pair(w, grad)
    beta = check_real(beta, "beta", low=0, low_inclusive=False)
    bw = beta * w
    # cosh overflows for large |beta w|, where the derivative is 0 anyway.
    lim = 10.0 if str(w.dtype).endswith("float16") else 40.0
    safe = xp.clip(bw, -lim, lim)
    d = beta * (2 - safe * xp.tanh(safe / 2)) / (1 + xp.cosh(safe))
    with np.errstate(over="ignore"):
        out = grad * xp.where(xp.abs(bw) <= lim, d, xp.zeros_like(d))
    return _check_finite_result(out, xp, "the pseudo-gradient")
