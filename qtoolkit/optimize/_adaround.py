"""AdaRound: learned up/down rounding of a linear layer's weights."""

from __future__ import annotations

import numbers
from typing import Literal

import numpy as np
from scipy.special import expit

from .._array import MAX_ITER, check_int
from .._typing import ArrayLike
from .._validation import check_real, renamed_parameters
from ._layer import QuantizedLayer, check_layer, fit_grid, hessian, levels

_ZETA, _GAMMA = 1.1, -0.1  # stretch of the rectified sigmoid (Louizos et al. 2018)


def _rect_sigmoid(V):
    """``h(V)`` and ``dh/dV`` of the rectified sigmoid (in ``V``'s dtype)."""
    sig = expit(V)
    raw = sig * V.dtype.type(_ZETA - _GAMMA) + V.dtype.type(_GAMMA)
    h = np.clip(raw, 0, 1)
    dh = sig * (1 - sig) * V.dtype.type(_ZETA - _GAMMA) * ((raw > 0) & (raw < 1))
    return h, dh


def _check_beta(beta):
    ok = (
        isinstance(beta, tuple)
        and len(beta) == 2
        and all(
            isinstance(b, numbers.Real) and not isinstance(b, bool) and np.isfinite(b) and b >= 1
            for b in beta
        )
    )
    if not ok:
        raise ValueError(f"beta must be a tuple (start, end) of numbers >= 1, got {beta!r}")
    return float(beta[0]), float(beta[1])


@renamed_parameters({"n_iter": "max_iter"})
def adaround(
    W: ArrayLike,
    X: ArrayLike,
    bits: int = 4,
    *,
    mode: Literal["asymmetric", "symmetric"] = "asymmetric",
    max_iter: int = 1000,
    reg_weight: float = 1.0,
    beta: tuple[float, float] = (20, 2),
    warmup: float = 0.2,
    lr: float = 0.05,
) -> QuantizedLayer:
    r"""Round a linear layer's weight up or down with AdaRound, learned on calibration inputs.

    Each weight keeps its grid cell (floor of :math:`w/s`) and learns whether
    to round up or down, by minimising the layer-output error of a soft
    rounding with a regulariser that drives it to 0 or 1.

    Parameters
    ----------
    W : numpy.ndarray of shape (n_out, n_in)
        Weight of the layer ``Y = X @ W.T``, real floating, finite.
    X : numpy.ndarray of shape (n_samples, n_in)
        Calibration inputs of the layer.
    bits : int, default=4
        Bits per weight ([1, 16] asymmetric, [2, 16] symmetric).
    mode : {"asymmetric", "symmetric"}, default="asymmetric"
        Per-output-row min-max grid, as :func:`qtoolkit.rounding.uniform`
        with ``axis=0`` (the same grid as round-to-nearest).
    max_iter : int, default=1000
        Adam iterations (each costs one ``(n_out, n_in) @ (n_in, n_in)`` product).
        At most ``10**6``.
    reg_weight : float, default=1.0
        Weight :math:`\lambda` of the rounding regulariser, per weight,
        relative to the normalised reconstruction loss (see Notes).
    beta : tuple (start, end), default=(20, 2)
        The regulariser's exponent, annealed linearly from ``start`` to
        ``end`` after the warm-up.
    warmup : float, default=0.2
        Fraction of the iterations run without the regulariser.
    lr : float, default=0.05
        Adam step size on the rounding variables :math:`V`.

    Returns
    -------
    result : QuantizedLayer
        ``weight`` (:math:`\hat W` in ``W``'s dtype), ``codes``, ``scale``,
        ``zero_point`` (one group), ``dead_inputs``, ``n_iter``.

    Raises
    ------
    TypeError
        If ``W`` or ``X`` is not a real floating NumPy array, or ``max_iter`` is
        not an integer.
    ValueError
        If shapes disagree, values are not finite, or a parameter is out of range.

    See Also
    --------
    gptq : Hessian-guided column-by-column rounding with error propagation.
    output_error : :math:`\|X W^\top - X\hat W^\top\|_F^2`.

    Notes
    -----
    With grid step :math:`s_i` and zero point :math:`z_i` of row :math:`i`,
    the soft weight is
    :math:`\tilde W_{ij} = s_i\,(\operatorname{clip}(\lfloor W_{ij}/s_i\rfloor + h(V_{ij}) + z_i,
    q_{\min}, q_{\max}) - z_i)` with the rectified sigmoid
    :math:`h(V) = \operatorname{clip}(\sigma(V)(\zeta-\gamma)+\gamma, 0, 1)`,
    :math:`\zeta = 1.1, \gamma = -0.1`, and :math:`V` minimises

    .. math::

        \frac{\operatorname{tr}\big((\tilde W - W) H (\tilde W - W)^\top\big)}
             {\overline{s^2}\;\overline{\operatorname{diag} H}}
        + \lambda \sum_{ij} \big(1 - |2 h(V_{ij}) - 1|^{\beta}\big),
        \qquad H = X^\top X / n,

    the reconstruction term normalised so that one weight moved by one grid
    step costs about 1 (which makes :math:`\lambda` independent of the
    layer's scale). :math:`V` starts where :math:`h(V)` equals the fractional
    part of :math:`W/s` (the soft weight equals :math:`W`); the result rounds
    up where :math:`V \ge 0`. Inputs that are zero in every calibration
    vector get zero weights, as in :func:`gptq`. The full :math:`H` is used
    instead of mini-batches, which is exact and cheaper whenever
    ``n_samples > n_in``. NumPy arrays; the grid and the final rounding are
    computed in float64, the Adam iterations in float32.

    References
    ----------
    .. [1] M. Nagel, R. A. Amjad, M. van Baalen, C. Louizos, T. Blankevoort,
       "Up or Down? Adaptive Rounding for Post-Training Quantization", ICML 2020.

    Examples
    --------
    >>> import numpy as np
    >>> from qtoolkit.optimize import adaround, output_error
    >>> from qtoolkit.rounding import uniform
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(256, 16)) @ rng.normal(size=(16, 16))
    >>> W = rng.normal(size=(8, 16))
    >>> res = adaround(W, X, bits=3, max_iter=200)
    >>> rtn = uniform(W, bits=3, mode="asymmetric", axis=0)
    >>> bool(output_error(W, res.weight, X) < output_error(W, rtn, X))
    True
    """
    bits = check_layer(W, X, bits, mode)
    max_iter = check_int(max_iter, "max_iter", low=0, high=MAX_ITER)
    reg_weight = check_real(reg_weight, "reg_weight", low=0)
    b_start, b_end = _check_beta(beta)
    warmup = check_real(warmup, "warmup", low=0)
    if warmup > 1:
        raise ValueError(f"warmup must be a fraction in [0, 1], got {warmup!r}")
    lr = check_real(lr, "lr", low=0)
    qmin, qmax = levels(bits, mode)

    H, dead = hessian(X)
    Wf = np.array(W, dtype=np.float64)
    Wf[:, dead] = 0.0
    scale, zero = fit_grid(Wf, qmin, qmax, mode, W.dtype)
    s = scale[:, None]
    z = zero[:, None]
    base = np.floor(Wf / s)
    rest = Wf / s - base
    p = np.clip((rest - _GAMMA) / (_ZETA - _GAMMA), 1e-6, 1 - 1e-6)
    V = np.log(p) - np.log1p(-p)
    norm = float(np.mean(scale**2)) * max(float(np.mean(np.diag(H))), np.finfo(float).tiny)

    # The iterations run in float32 (half the cost of the (n_out, n_in) @ (n_in, n_in)
    # product); the grid, the initial point and the final rounding stay in float64.
    f32 = np.float32
    V = V.astype(f32)
    H32 = H.astype(f32)
    W32, s32, z32, base32 = Wf.astype(f32), s.astype(f32), z.astype(f32), base.astype(f32)
    m = np.zeros_like(V)
    v = np.zeros_like(V)
    b1, b2, eps = 0.9, 0.999, 1e-8
    start = round(warmup * max_iter)
    for t in range(max_iter):
        h, dh = _rect_sigmoid(V)
        c_soft = base32 + h + z32
        inside = (c_soft >= qmin) & (c_soft <= qmax)
        np.clip(c_soft, qmin, qmax, out=c_soft)
        E = (c_soft - z32) * s32 - W32
        grad = (E @ H32) * (s32 * f32(2.0 / norm))
        grad *= inside
        if t >= start and reg_weight > 0:
            t_rel = (t - start) / max(max_iter - start, 1)
            beta_t = b_end + (b_start - b_end) * (1.0 - t_rel)
            u = 2 * h - 1
            grad -= f32(reg_weight * 2.0 * beta_t) * np.sign(u) * np.abs(u) ** f32(beta_t - 1)
        grad *= dh
        m *= b1
        m += f32(1 - b1) * grad
        v *= b2
        v += f32(1 - b2) * grad * grad
        step = f32(lr / (1 - b1 ** (t + 1)))
        V -= step * m / (np.sqrt(v / f32(1 - b2 ** (t + 1))) + f32(eps))

    codes = np.clip(base + (V >= 0) + z, qmin, qmax)
    W_hat = (codes - z) * s
    return QuantizedLayer(
        weight=W_hat.astype(W.dtype),
        codes=codes.astype(np.int32),
        scale=scale[:, None],
        zero_point=zero[:, None],
        groups=np.zeros(W.shape[1], dtype=np.intp),
        bits=bits,
        dead_inputs=dead,
        damp=0.0,
        n_iter=max_iter,
    )
