"""Quantizers inside autodiff: the forward map with its pseudo-gradient, in PyTorch and JAX.

One construction serves every scheme and both frameworks. With :math:`\\bar x` the value of
``x`` cut from the graph (``Tensor.detach`` in PyTorch, ``jax.lax.stop_gradient`` in JAX),

.. math::

    y = q(\\bar x) + (x - \\bar x)\\,\\overline{m(x)}

has the value :math:`q(x)` exactly (the second term is zero) and the derivative
:math:`\\partial y / \\partial x = m(x)`, the pseudo-gradient. Learned scales enter the same way,
as terms whose value is zero and whose derivative is the method's rule.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from typing import Any, Literal

from array_api_compat import device as _device

from .._array import describe
from .._validation import check_array, check_choice, check_real
from ._common import _reduce
from ._dorefa import _quantize_k
from ._gradients import (
    approx_sign_gradient,
    clipped_straight_through,
    swish_sign_gradient,
)
from ._lsq import _lsq_codes, _lsq_levels, _validate_lsq
from ._registry import Quantizer, get
from ._ternary import _ternary, _validate_ternarize

GRADIENTS = ("identity", "clipped", "approx_sign", "swish")
# schemes whose paper fixes the pseudo-gradient (and the learned scale's gradient)
_OWN_RULE = ("dorefa", "dorefa_activation", "lsq")


def _framework(x):
    """``"torch"``, ``"jax"`` or None (no autodiff: the forward map alone is returned)."""
    root = type(x).__module__.split(".")[0]
    if root == "torch":
        return "torch"
    if root in ("jax", "jaxlib"):
        return "jax"
    return None


def _stop_gradient(x):
    """``x`` with the same value and no derivative, in the framework of ``x``."""
    fw = _framework(x)
    if fw == "torch":
        return x.detach()
    if fw == "jax":
        return sys.modules["jax"].lax.stop_gradient(x)
    return x


def _as_param(value, like, xp, name):
    """A learned scale: an array of ``like``'s framework (kept as is) or a number."""
    if hasattr(value, "dtype") and hasattr(value, "shape"):
        if _framework(value) != _framework(like) or value.ndim > like.ndim:
            raise TypeError(
                f"{name} must be a number or an array of the framework of x that broadcasts "
                f"against it ({describe(like)}), got {describe(value)}"
            )
        return xp.astype(value, like.dtype)
    check_real(value, name, low=0)
    return xp.asarray(float(value), dtype=like.dtype, device=_device(like))


class _DifferentiableQuantizer:
    """The callable returned by :func:`ste` (see there for the call signature)."""

    def __init__(self, quantizer, gradient, clip_value, beta, grad_scale):
        self.quantizer = quantizer
        self.gradient = gradient
        self.clip_value = clip_value
        self.beta = beta
        self.grad_scale = grad_scale

    def __repr__(self):
        return f"ste({self.quantizer!r}, gradient={self.gradient!r})"

    def _multiplier(self, x0, xp):
        """The pseudo-gradient :math:`m(x)` of the chosen estimator (None for the identity)."""
        if self.gradient == "identity":
            return None
        one = xp.ones_like(x0)
        if self.gradient == "clipped":
            return clipped_straight_through(x0, one, self.clip_value)
        if self.gradient == "approx_sign":
            return approx_sign_gradient(x0, one)
        return swish_sign_gradient(x0, one, self.beta)

    def __call__(self, x, **kwargs):
        x, xp = check_array(x, "x")
        name = self.quantizer.name
        x0 = _stop_gradient(x)
        if name == "lsq":
            return self._lsq(x, x0, xp, kwargs)
        if name == "dorefa_activation":
            return self._pact(x, x0, xp, kwargs)
        scales = kwargs.get("scales")
        if name == "ternary" and scales is not None:
            return self._ttq(x, x0, xp, kwargs)
        q = self.quantizer(x0, **kwargs)
        if _framework(x) is None:
            return q
        if name == "dorefa" and self.quantizer.params["bits"] > 1:
            return self._dorefa(x, q, xp)
        m = self._multiplier(x0, xp)
        d = x - x0
        return q + (d if m is None else d * m)

    def _ttq(self, x, x0, xp, kwargs):
        p = {"method": "twn", "delta": 0.7, "threshold": 0.05, "axis": None}
        p.update(self.quantizer.params)
        extra = set(kwargs) - {"scales"}
        if extra:
            raise TypeError(f"unexpected arguments {sorted(extra)} for a ternary quantizer")
        if p["method"] != "ttq":
            raise ValueError(
                f"scales=(W_p, W_n) are learned only with method='ttq', got {p['method']!r}"
            )
        scales = kwargs["scales"]
        if not isinstance(scales, (tuple, list)) or len(scales) != 2:
            raise ValueError(f"scales must be a pair (W_p, W_n), got {describe(scales)}")
        w, xp, method, delta, threshold, axis = _validate_ternarize(
            x0, "ttq", p["delta"], p["threshold"], p["axis"], None
        )
        t = _ternary(w, xp, method, delta, threshold, axis, None)[0]
        wp = _as_param(scales[0], x, xp, "scales[0]")
        wn = _as_param(scales[1], x, xp, "scales[1]")
        pos = xp.astype(t > 0, x.dtype)
        neg = xp.astype(t < 0, x.dtype)
        value = pos * wp - neg * wn
        if _framework(x) is None:
            return value
        # TTQ's latent gradient: W_p g above the threshold, g inside, W_n g below
        factor = pos * _stop_gradient(wp) + neg * _stop_gradient(wn) + (1 - pos - neg)
        m = self._multiplier(x0, xp)
        if m is not None:
            factor = factor * m
        return value + (x - x0) * factor

    def _dorefa(self, x, q, xp):
        axis = self.quantizer.params.get("axis")
        axis = None if axis is None else tuple(a % x.ndim for a in _tuple(axis))
        t = xp.tanh(x)
        m = _reduce(xp.max, xp.abs(t), axis)
        m = xp.where(m > 0, m, xp.ones_like(m))
        r = t / m  # 2 (tanh w / (2 max|tanh w|) + 1/2) - 1: straight through quantize_k only
        return q + (r - _stop_gradient(r))

    def _pact(self, x, x0, xp, kwargs):
        extra = set(kwargs) - {"clip"}
        if extra:
            raise TypeError(f"unexpected arguments {sorted(extra)} for a DoReFa activation")
        bits = self.quantizer.params["bits"]
        clip = kwargs.get("clip")
        if clip is None:
            q = self.quantizer(x0)
            a = a0 = None
        else:
            a = _as_param(clip, x, xp, "clip")
            a0 = _stop_gradient(a)
            q = a0 * _quantize_k(xp.clip(x0 / a0, 0.0, 1.0), xp, bits)
        if _framework(x) is None:
            return q
        top = 1.0 if a0 is None else a0
        inside = xp.astype((x0 >= 0) & (x0 < top), x.dtype)
        out = q + (x - x0) * inside
        if a is None:
            return out
        above = xp.astype(x0 >= a0, x.dtype)
        return out + (a - a0) * above

    def _lsq(self, x, x0, xp, kwargs):
        extra = set(kwargs) - {"step_size"}
        if extra:
            raise TypeError(f"unexpected arguments {sorted(extra)} for an LSQ quantizer")
        p = {"bits": 4, "signed": True}
        p.update(self.quantizer.params)
        step = kwargs.get("step_size", p["step_size"])
        _, _, s0, bits = _validate_lsq(x0, _stop_gradient(step), p["bits"], p["signed"])
        s = s0 if _framework(step) is None else xp.astype(step, x.dtype)
        c, v = _lsq_codes(x0, xp, s0, bits, p["signed"])
        q = c * s0
        if _framework(x) is None:
            return q
        qn, qp = _lsq_levels(bits, p["signed"])
        inside = (v > -qn) & (v < qp)
        ends = xp.where(v <= -qn, xp.full_like(v, -qn), xp.full_like(v, qp))
        ds = xp.where(inside, c - v, ends)
        g = self.grad_scale
        if g is None:
            g = 1.0 / math.sqrt(math.prod(x.shape) * qp)
        return q + (x - x0) * xp.astype(inside, x.dtype) + (s - s0) * (g * ds)


def _tuple(axis):
    return axis if isinstance(axis, (tuple, list)) else (axis,)


def ste(
    quantizer: str | dict[str, Any] | Quantizer,
    gradient: Literal["identity", "clipped", "approx_sign", "swish"] = "identity",
    *,
    clip_value: float = 1.0,
    beta: float = 5.0,
    grad_scale: float | None = None,
    **params: Any,
) -> Callable[..., Any]:
    """A quantizer that PyTorch autograd and JAX autodiff differentiate with its pseudo-gradient.

    Parameters
    ----------
    quantizer : str, dict or Quantizer
        A registry name (see :func:`available_quantizers`), a config dict or
        a :class:`Quantizer`.
    gradient : {"identity", "clipped", "approx_sign", "swish"}, default="identity"
        The pseudo-gradient :math:`m(x)`: the straight-through estimator
        (:func:`straight_through`), its clipped form
        :math:`1_{|x| \\le c}` (:func:`clipped_straight_through`), ApproxSign
        (:func:`approx_sign_gradient`) or SwishSign
        (:func:`swish_sign_gradient`). DoReFa (weights and activations) and
        LSQ have the rule of their paper and take only ``"identity"``.
    clip_value : float, default=1.0
        The bound :math:`c` of ``"clipped"``.
    beta : float, default=5.0
        The sharpness of ``"swish"``.
    grad_scale : float or None, default=None
        LSQ only: the factor of the step's gradient; None gives the paper's
        :math:`1/\\sqrt{N Q_p}` with :math:`N` the number of entries of ``x``
        (for activations pass :math:`1/\\sqrt{n_{\\text{features}} Q_p}`).
    **params
        Parameters of the scheme when ``quantizer`` is a name.

    Returns
    -------
    f : callable
        ``f(x, **kwargs)`` returns the quantized ``x`` (the value of the
        quantizer, exactly) in ``x``'s namespace. For a PyTorch tensor or a
        JAX array (also inside ``jax.grad``, ``jax.jit``, ``torch.compile``)
        its derivative is the pseudo-gradient; other arrays get the forward
        map only. ``kwargs`` are passed to the quantizer (``d`` for the
        loss-aware binarization), except the learned scales:
        ``scales=(W_p, W_n)`` for ``"ternary"`` with ``method="ttq"``,
        ``step_size=s`` for ``"lsq"``, ``clip=alpha`` for
        ``"dorefa_activation"``, each a tensor (or array) of ``x``'s
        framework that receives its gradient, or a number.

    Raises
    ------
    ValueError
        If ``gradient`` is unknown, or not ``"identity"`` for a scheme with
        its own rule, or ``clip_value``, ``beta`` or ``grad_scale`` is not
        positive; as :func:`get` for the quantizer.
    TypeError
        As :func:`get`.

    See Also
    --------
    get : The quantizers by name.
    lsq : Learned step size quantization, forward map.

    Notes
    -----
    With :math:`\\bar x` the value of :math:`x` cut from the graph
    (``Tensor.detach``, ``jax.lax.stop_gradient``), the output is

    .. math::

        y = q(\\bar x) + (x - \\bar x)\\, \\overline{m(x)},

    whose value is :math:`q(x)` and whose derivative is :math:`m(x)`, equal
    entry by entry to the NumPy pseudo-gradient functions; scales computed
    from the data (XNOR's :math:`\\mathbb{E}|w|`, TWN's :math:`\\alpha`) are
    constants of the backward pass. Rules of the methods:

    - TTQ [1]_ with learned :math:`W_p, W_n`: the value is :math:`W_p`,
      :math:`0` or :math:`-W_n` by the threshold :math:`t\\max|w|`;
      :math:`\\partial L/\\partial W_p = \\sum_{I_p} g`,
      :math:`\\partial L/\\partial W_n = -\\sum_{I_n} g`, and the latent
      gradient is :math:`W_p g`, :math:`g`, :math:`W_n g` on the three parts
      (times :math:`m`).
    - LSQ [2]_: see :func:`lsq`; the step's gradient is multiplied by ``grad_scale``.
    - DoReFa weights [3]_ (:math:`k > 1`): straight through
      :math:`\\mathrm{quantize}_k` only, so the gradient flows through the
      normalisation :math:`\\tanh w / \\max|\\tanh w|`.
    - DoReFa activations with a learned clip :math:`\\alpha` (PACT [4]_):
      :math:`y = \\alpha\\,\\mathrm{quantize}_k(\\mathrm{clip}(x/\\alpha, 0, 1))`,
      :math:`\\partial y/\\partial x = 1_{0 \\le x < \\alpha}`,
      :math:`\\partial y/\\partial \\alpha = 1_{x \\ge \\alpha}`
      (:math:`\\alpha = 1` without ``clip``).

    Stochastic schemes draw their noise with NumPy from the quantizer's
    ``seed``; under ``jax.jit`` that happens once, when the function is
    traced, so every call of the compiled function reuses the same noise.

    References
    ----------
    .. [1] C. Zhu, S. Han, H. Mao, W. J. Dally, "Trained Ternary
       Quantization", ICLR 2017.
    .. [2] S. K. Esser et al., "Learned Step Size Quantization", ICLR 2020.
    .. [3] S. Zhou et al., "DoReFa-Net: Training Low Bitwidth Convolutional
       Neural Networks with Low Bitwidth Gradients", arXiv:1606.06160, 2016.
    .. [4] J. Choi et al., "PACT: Parameterized Clipping Activation for
       Quantized Neural Networks", arXiv:1805.06085, 2018.

    Examples
    --------
    >>> import torch
    >>> from qtoolkit.rounding import ste
    >>> sign = ste("binary", gradient="clipped")
    >>> w = torch.tensor([-1.5, -0.2, 0.4, 2.0], requires_grad=True)
    >>> y = sign(w)
    >>> y.sum().backward()
    >>> y.detach(), w.grad
    (tensor([-1., -1.,  1.,  1.]), tensor([0., 1., 1., 0.]))
    """
    q = get(quantizer, **params)
    gradient = check_choice(gradient, "gradient", GRADIENTS)
    if q.name in _OWN_RULE and gradient != "identity":
        raise ValueError(
            f"quantizer {q.name!r} has the pseudo-gradient of its paper; "
            f"gradient must be 'identity', got {gradient!r}"
        )
    clip_value = check_real(clip_value, "clip_value", low=0, low_inclusive=False)
    beta = check_real(beta, "beta", low=0, low_inclusive=False)
    if grad_scale is not None:
        grad_scale = check_real(grad_scale, "grad_scale", low=0, low_inclusive=False)
    return _DifferentiableQuantizer(q, gradient, clip_value, beta, grad_scale)
