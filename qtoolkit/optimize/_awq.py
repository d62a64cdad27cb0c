"""AWQ: activation-aware per-input-channel weight scaling, searched on the layer's output error."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Literal

import numpy as np

from .._array import check_int, describe, is_numpy_array
from .._typing import ArrayLike
from ._gptq import gptq
from ._hqq import hqq
from ._layer import QuantizedLayer, check_group_size, check_layer, hessian, storable
from ._rtn import rtn, rtn_core

METHODS = ("rtn", "gptq", "hqq")
SEARCHES = ("grid", "fast")


def _inverse_scales(mean_abs, alpha, dtype=None):
    """``a = 1 / s`` with ``s = m**alpha / sqrt(max * min)``, :func:`storable` in ``dtype``
    (the stored factor of the activations is ``a``; the weight is scaled by ``1 / a``)."""
    m = np.maximum(mean_abs, 1e-8 * max(float(mean_abs.max()), 1e-300))
    s = m**alpha
    return storable(np.sqrt(s.max() * s.min()) / s, dtype)


def _err(D, H32):
    """``tr(D H D^T)`` = mean squared output error of the weight difference ``D``, with
    float32 products (``H32`` = H in float32): ranking the exponents needs a few digits, and
    this product is most of the search's time for wide layers."""
    D32 = D.astype(np.float32)
    return float(np.sum((D32 @ H32) * D32, dtype=np.float64))


def awq(
    W: ArrayLike,
    X: ArrayLike,
    *,
    bits: int = 4,
    group_size: int | None = None,
    mode: Literal["asymmetric", "symmetric"] = "asymmetric",
    alpha: float | None = None,
    n_grid: int = 20,
    search: Literal["grid", "fast"] = "grid",
    clip: Literal["mse"] | None = "mse",
    method: Literal["rtn", "gptq", "hqq"] = "rtn",
    method_params: dict[str, Any] | None = None,
    mean_abs_x: ArrayLike | None = None,
) -> QuantizedLayer:
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
        Steps of the search (``"grid"``); ``"fast"`` refines until its step is
        finer than ``1 / n_grid``.
    search : {"grid", "fast"}, default="grid"
        ``"grid"``: every ``alpha`` of the grid, each with and without
        clipping (``(n_grid + 1) * 22`` grid fits with ``clip="mse"``).
        ``"fast"``: coarse to fine without clipping (5 points on [0, 1], then
        the step is halved around the best point: 11 fits for ``n_grid=20``),
        then clipping at the best ``alpha`` and its two neighbours (63 fits):
        about 6 times fewer fits. The output error is a rough function of
        ``alpha`` (rounding), so ``"fast"`` can miss the grid's minimum; it is
        never worse than round-to-nearest (``alpha = 0`` is among its points).
    clip : {"mse", None}, default="mse"
        AWQ's weight clipping: ``"mse"`` also tries the clipped grid of
        :func:`rtn` (each group's range shrunk to minimize its rounding error
        weighted by the input energy) and keeps whichever of clipped and
        unclipped gives the smaller output error; the choice is passed on to
        ``"rtn"`` and ``"gptq"``. None: min-max grids only.
    method : {"rtn", "gptq", "hqq"}, default="rtn"
        Layer method applied to the scaled weight (with the scaled inputs).
    method_params : dict or None, default=None
        Extra keyword arguments of that method (e.g. ``{"act_order": True}``).
    mean_abs_x : numpy.ndarray of shape (n_in,) or None, default=None
        The activation magnitudes :math:`\bar x_j` to use instead of those of
        ``X`` (for example accumulated over a calibration set too large to
        keep, with ``X`` a square-root factor of its :math:`X^\top X`).

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
    qtoolkit.network.quantize : ``"awq"`` as a recipe method.

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
    round-to-nearest, so the search is never worse than it. The inverse scales
    :math:`a = 1/s` (``input_scale``) are rounded to the weight's floating dtype
    (float32 for float16 weights) and the weight is scaled by :math:`1/a`, so a
    file holding :math:`a` in that dtype reproduces ``weight`` exactly.

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
    n_grid = check_int(n_grid, "n_grid", low=1, high=10**6)
    if alpha is not None and (
        isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 <= alpha <= 1
    ):
        raise ValueError(f"alpha must be None or a number in [0, 1], got {alpha!r}")
    if search not in SEARCHES:
        raise ValueError(f"search must be one of {SEARCHES}, got {search!r}")
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
    if mean_abs_x is None:
        mean_abs = np.mean(np.abs(Xf), axis=0)
    else:
        mean_abs = _check_mean_abs(mean_abs_x, W.shape[1])
    H, _ = hessian(Xf)
    hdiag = np.diag(H)
    H32 = H.astype(np.float32)

    def error(alpha, c):
        a = _inverse_scales(mean_abs, alpha, W.dtype)
        q = rtn_core(Wf / a, bits, group_size, mode, c, hdiag * a**2, W.dtype).stored_weight()
        return _err(Wf - q * a, H32)

    if alpha is not None:
        cands = [(error(alpha, None), float(alpha), None)]
        if clip == "mse":
            cands.append((error(alpha, "mse"), float(alpha), "mse"))
        best = min(cands, key=lambda t: t[0])
    elif search == "grid":
        clips = (None, "mse") if clip == "mse" else (None,)
        best = (np.inf, 0.0, None)
        for a in np.linspace(0.0, 1.0, n_grid + 1):
            for c in clips:
                e = error(a, c)
                if e < best[0]:
                    best = (e, float(a), c)
    else:
        best = _fast_search(error, n_grid, clip)
    _, alpha, chosen_clip = best
    a = _inverse_scales(mean_abs, alpha, W.dtype)
    Ws = (Wf / a).astype(W.dtype)
    Xs = (Xf * a).astype(X.dtype)
    fn = {"rtn": rtn, "gptq": gptq, "hqq": hqq}[method]
    if method != "hqq":
        params.setdefault("mode", mode)
        if params.get("grid", "uniform") == "uniform":  # clipping is for uniform grids
            params["clip"] = chosen_clip
    res = fn(Ws, Xs, bits=bits, group_size=group_size, **params)
    eff = res.stored_weight() * a
    return replace(res, weight=eff.astype(W.dtype), input_scale=a, alpha=float(alpha))


def _check_mean_abs(value, n_in):
    if not is_numpy_array(value) or value.shape != (n_in,) or value.dtype.kind not in "fiu":
        raise ValueError(
            f"mean_abs_x must be a NumPy array of shape ({n_in},) (one value per input), "
            f"got {describe(value)}"
        )
    v = np.asarray(value, dtype=np.float64)
    if not np.all(np.isfinite(v)) or np.any(v < 0):
        raise ValueError("mean_abs_x must hold finite values >= 0")
    return v


def _fast_search(error, n_grid, clip):
    """Coarse-to-fine search of the exponent: 5 points on [0, 1], then the step is halved
    around the best point until it is finer than the grid's ``1 / n_grid``, without clipping
    (one grid fit per point); then the clipped grid is tried at the best exponent and at its
    two neighbours on the finest step. Returns ``(error, alpha, clip)``."""
    cache = {}

    def f(a, c=None):
        a = float(min(max(a, 0.0), 1.0))
        if (a, c) not in cache:
            cache[(a, c)] = error(a, c)
        return cache[(a, c)]

    step = 0.25
    best = min(np.linspace(0.0, 1.0, 5), key=f)
    while step > 1.0 / n_grid:
        step /= 2
        best = min((max(best - step, 0.0), best, min(best + step, 1.0)), key=f)
    cands = [(f(best), float(best), None)]
    if clip == "mse":
        for a in sorted({max(best - step, 0.0), best, min(best + step, 1.0)}):
            cands.append((f(a, "mse"), a, "mse"))
    return min(cands, key=lambda t: t[0])
