"""AWQ: activation-aware per-input-channel weight scaling, searched on the layer's output error."""

from dataclasses import replace

import numpy as np

from .._array import check_int
from ._gptq import gptq
from ._hqq import hqq
from ._layer import check_group_size, check_layer, hessian
from ._rtn import rtn, rtn_core

METHODS = ("rtn", "gptq", "hqq")


def _scales(mean_abs, alpha):
    m = np.maximum(mean_abs, 1e-8 * max(float(mean_abs.max()), 1e-300))
    s = m**alpha
    return s / np.sqrt(s.max() * s.min())


def _err(D, H):
    """``tr(D H D^T)`` = mean squared output error of the weight difference ``D``."""
    return float(np.sum((D @ H) * D))


def awq(
    W,
    X,
    *,
    bits=4,
    group_size=None,
    mode="asymmetric",
    alpha=None,
    n_grid=20,
    clip="mse",
    method="rtn",
    method_params=None,
):
    r"""Activation-aware weight quantization (AWQ): scale input channels, then quantize.

    Parameters
    ----------
    W : numpy.ndarray of shape (n_out, n_in)
        Weight of the layer ``Y = X @ W.T``, real floating, finite.
    X : numpy.ndarray of shape (n_samples, n_in)
        Calibration inputs.
    bits : int, default=4
        Bits per weight.
    group_size : int or None, default=None
        One grid per row and block of ``group_size`` inputs.
    mode : {"asymmetric", "symmetric"}, default="asymmetric"
        Grid of ``"rtn"`` and ``"gptq"`` (``"hqq"`` is asymmetric).
    alpha : float in [0, 1] or None, default=None
        Exponent of the scales; None searches ``alpha`` in
        ``linspace(0, 1, n_grid + 1)`` for the smallest output error with
        round-to-nearest.
    n_grid : int, default=20
        Steps of the search.
    clip : {"mse", None}, default="mse"
        AWQ's weight clipping: ``"mse"`` also tries, for each ``alpha``, the
        clipped grid of :func:`rtn` (each group's range shrunk to minimize
        its rounding error weighted by the input energy) and keeps whichever
        of clipped and unclipped gives the smaller output error; the choice is
        passed on to ``"rtn"`` and ``"gptq"``. None: min-max grids only.
    method : {"rtn", "gptq", "hqq"}, default="rtn"
        Layer method applied to the scaled weight (with the scaled inputs).
    method_params : dict or None, default=None
        Extra keyword arguments of that method (e.g. ``{"act_order": True}``).

    Returns
    -------
    result : QuantizedLayer
        The scaled layer's codes and grid, ``input_scale`` = :math:`1/s` (to
        fold into the previous operation), the exponent used in ``alpha``, and
        the effective ``weight``
        :math:`Q(W\operatorname{diag}(s))\operatorname{diag}(s)^{-1}`.

    Raises
    ------
    TypeError
        If ``W`` or ``X`` is not a real floating NumPy array.
    ValueError
        If shapes disagree or a parameter is out of range.

    See Also
    --------
    rtn, gptq, hqq

    Notes
    -----
    With :math:`\bar x_j = \operatorname{mean}_n |X_{nj}|` and
    :math:`s_j = \bar x_j^{\alpha} / \sqrt{\max_k \bar x_k^\alpha \min_k \bar x_k^\alpha}`,

    .. math::

        Y = X W^\top = (X \operatorname{diag}(s)^{-1})\,(W \operatorname{diag}(s))^\top
        \approx (X \operatorname{diag}(s)^{-1})\, Q(W \operatorname{diag}(s))^\top :

    channels with large activations get proportionally finer steps. The
    exponent (and whether to clip) minimizes
    :math:`\|X W^\top - X \hat W^\top\|^2` over the grid with round-to-nearest;
    :math:`\alpha = 0` without clipping gives :math:`s = 1`, plain
    round-to-nearest, so the search is never worse than it.

    References
    ----------
    .. [1] J. Lin, J. Tang, H. Tang, S. Yang, W.-M. Chen, W.-C. Wang, G. Xiao,
       X. Dang, C. Gan, S. Han, "AWQ: Activation-aware Weight Quantization for
       LLM Compression and Acceleration", MLSys 2024.

    Examples
    --------
    >>> import numpy as np
    >>> from qtoolkit.optimize import awq, rtn, output_error
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(256, 32)) * np.geomspace(0.1, 10, 32)   # uneven channels
    >>> W = rng.normal(size=(16, 32))
    >>> res = awq(W, X, bits=3)
    >>> bool(output_error(W, res.weight, X) < output_error(W, rtn(W, bits=3).weight, X))
    True
    """
    bits = check_layer(W, X, bits, mode)
    group_size = check_group_size(group_size, W.shape[1])
    n_grid = check_int(n_grid, "n_grid", low=1)
    if alpha is not None and (
        isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 <= alpha <= 1
    ):
        raise ValueError(f"alpha must be None or a number in [0, 1], got {alpha!r}")
    if clip not in (None, "mse"):
        raise ValueError(f"clip must be None or 'mse', got {clip!r}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if method_params is not None and not isinstance(method_params, dict):
        raise TypeError(f"method_params must be a dict or None, got {method_params!r}")
    params = dict(method_params or {})
    for key in ("bits", "group_size", "rotate", "clip"):
        if key in params:
            raise ValueError(f"method_params must not set {key!r} (an argument of awq itself)")

    Wf = np.asarray(W, dtype=np.float64)
    Xf = np.asarray(X, dtype=np.float64)
    H, _ = hessian(Xf)
    hdiag = np.diag(H)
    mean_abs = np.mean(np.abs(Xf), axis=0)
    alphas = np.linspace(0.0, 1.0, n_grid + 1) if alpha is None else [float(alpha)]
    clips = (None, "mse") if clip == "mse" else (None,)
    best = (np.inf, 0.0, None)
    for a in alphas:
        s = _scales(mean_abs, a)
        for c in clips:
            q = rtn_core(Wf * s, bits, group_size, mode, c, hdiag / s**2).stored_weight()
            e = _err(Wf - q / s, H)
            if e < best[0]:
                best = (e, float(a), c)
    _, alpha, chosen_clip = best
    s = _scales(mean_abs, alpha)
    Ws = (Wf * s).astype(W.dtype)
    Xs = (Xf / s).astype(X.dtype)
    fn = {"rtn": rtn, "gptq": gptq, "hqq": hqq}[method]
    if method != "hqq":
        params.setdefault("mode", mode)
        params["clip"] = chosen_clip
    res = fn(Ws, Xs, bits=bits, group_size=group_size, **params)
    eff = res.stored_weight() / s
    return replace(res, weight=eff.astype(W.dtype), input_scale=1.0 / s, alpha=float(alpha))
