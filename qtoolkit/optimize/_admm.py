"""ADMM quantization to a scaled codebook (Leng et al. 2018), with an exact projection."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import numpy as np
from scipy.linalg import cho_factor, cho_solve

from .._array import (
    MAX_ITER,
    check_axis,
    check_bits,
    check_finite,
    check_int,
    describe,
    is_numpy_array,
    slice_rows,
)
from .._typing import ArrayLike, AxisLike, NDArray
from .._validation import check_real, renamed_parameters
from ..rounding import round_to_codebook
from ._layer import check_layer, hessian

CODEBOOKS = ("uniform", "pow2")


def _magnitudes(bits, codebook):
    """Non-negative unscaled levels ``0 = c_0 < c_1 < ... < c_M``, ``M = 2**(bits-1) - 1``."""
    m = 2 ** (bits - 1) - 1
    if codebook == "uniform":
        return np.arange(m + 1, dtype=np.float64)
    return np.concatenate([[0.0], 2.0 ** np.arange(m)])


def _check_codebook_bits(codebook, bits):
    if codebook not in CODEBOOKS:
        raise ValueError(f"codebook must be one of {CODEBOOKS}, got {codebook!r}")
    return check_bits(bits, "bits", low=2, high=8)


def _project_row(v, mags, signed_levels):
    """Exact ``argmin_{alpha, Q} ||v - alpha Q||^2`` for one row; returns ``(alpha, Q)``."""
    a = np.abs(v)
    mid = (mags[1:] + mags[:-1]) / 2  # rounding thresholds of |v| / alpha
    nz = a > 0
    if not nz.any():
        return 0.0, np.zeros_like(v)
    # As alpha decreases, entry i moves from level k to k+1 at alpha = |v_i| / mid_k.
    at = (a[nz, None] / mid[None, :]).ravel()
    d_vq = (a[nz, None] * np.diff(mags)[None, :]).ravel()
    d_qq = np.broadcast_to(np.diff(mags**2)[None, :], (int(nz.sum()), mid.size)).ravel()
    order = np.argsort(-at, kind="stable")
    vq = np.cumsum(d_vq[order])
    qq = np.cumsum(d_qq[order])
    best = int(np.argmax(vq * vq / qq))
    alpha = vq[best] / qq[best]
    # nearest rounding at the optimal alpha is optimal as well; refit alpha for it
    Q = round_to_codebook(v / alpha, signed_levels)
    alpha = float(v @ Q) / float(Q @ Q)
    return alpha, Q


class ScaledCodebook(NamedTuple):
    """The projection ``alpha * Q`` of :func:`project_scaled_codebook`.

    Parameters
    ----------
    alpha : numpy.ndarray
        Optimal scale per kept slice (keepdims shape).
    Q : numpy.ndarray
        Unscaled levels, shape of the input.

    See Also
    --------
    project_scaled_codebook : the function that returns it.

    Examples
    --------
    >>> import numpy as np
    >>> from qtoolkit.optimize import project_scaled_codebook
    >>> project_scaled_codebook(np.array([1.0, -1.0]), bits=2).Q
    array([ 1., -1.])
    """

    alpha: np.ndarray
    Q: np.ndarray


def project_scaled_codebook(
    w: ArrayLike,
    bits: int = 3,
    *,
    codebook: Literal["uniform", "pow2"] = "uniform",
    axis: AxisLike = None,
) -> ScaledCodebook:
    r"""Exact projection onto a scaled codebook, :math:`\min_{\alpha,Q}\|w - \alpha Q\|^2`.

    Parameters
    ----------
    w : numpy.ndarray of shape (...)
        Values to project, real floating, finite.
    bits : int, default=3
        Bits per value, in [2, 8]: :math:`M = 2^{b-1} - 1` non-zero magnitudes.
    codebook : {"uniform", "pow2"}, default="uniform"
        Unscaled levels :math:`\{0, \pm 1, \pm 2, \dots, \pm M\}` or
        :math:`\{0, \pm 1, \pm 2, \pm 4, \dots, \pm 2^{M-1}\}`.
    axis : int, tuple of int or None, default=None
        Axes that keep separate scales (``0``: one :math:`\alpha` per row).

    Returns
    -------
    projection : ScaledCodebook
        A NamedTuple ``(alpha, Q)``:
    alpha : numpy.ndarray
        The optimal scales, shape of ``w`` with the non-kept axes of length 1
        (0 for an all-zero slice).
    Q : numpy.ndarray of the shape of ``w``
        Unscaled levels; the projection is ``alpha * Q``.

    Raises
    ------
    TypeError
        If ``w`` is not a real floating NumPy array or ``bits`` not an integer.
    ValueError
        If ``w`` is empty or not finite, or ``bits``/``codebook`` is out of range.

    See Also
    --------
    admm_quantize : uses this as its G-step.
    qtoolkit.rounding.round_to_codebook : nearest level for a fixed scale.

    Notes
    -----
    For fixed :math:`Q` the best scale is
    :math:`\alpha = \langle w, Q\rangle / \langle Q, Q\rangle`
    and the error is :math:`\|w\|^2 - \langle w, Q\rangle^2 / \langle Q, Q\rangle`; for fixed
    :math:`\alpha`, :math:`Q` is the nearest level of :math:`w/\alpha`. The
    alternating scheme of [1]_ converges to a local optimum; here the global
    one is found exactly: as :math:`\alpha` decreases, entry :math:`i` moves up
    from level :math:`c_k` to :math:`c_{k+1}` at
    :math:`\alpha = |w_i| / ((c_k + c_{k+1})/2)`, so sorting these
    :math:`nM` events and accumulating :math:`\langle w, Q\rangle` and
    :math:`\langle Q, Q\rangle` visits every candidate :math:`Q`; the best
    ratio :math:`\langle w, Q\rangle^2 / \langle Q, Q\rangle` wins
    (:math:`O(nM \log(nM))` time, :math:`O(nM)` memory).

    References
    ----------
    .. [1] C. Leng, Z. Dou, H. Li, S. Zhu, R. Jin, "Extremely Low Bit Neural
       Network: Squeeze the Last Bit Out with ADMM", AAAI 2018.

    Examples
    --------
    >>> import numpy as np
    >>> from qtoolkit.optimize import project_scaled_codebook
    >>> alpha, Q = project_scaled_codebook(np.array([0.1, 1.0, -2.1, 2.9]), bits=3)
    >>> alpha, Q
    (array([0.99285714]), array([ 0.,  1., -2.,  3.]))
    """
    if not is_numpy_array(w):
        raise TypeError(f"w must be a real floating NumPy array, got {describe(w)}")
    if not np.issubdtype(w.dtype, np.floating):
        raise TypeError(f"w must be a real floating NumPy array, got {describe(w)}")
    if w.size == 0:
        raise ValueError(f"w must not be empty, got {describe(w)}")
    check_finite(w, "w")
    bits = _check_codebook_bits(codebook, bits)
    axis = check_axis(axis, w.ndim)
    return _project(np.asarray(w, dtype=np.float64), bits, codebook, axis, w.dtype)


def _project(w, bits, codebook, axis, dtype):
    mags = _magnitudes(bits, codebook)
    signed = np.concatenate([-mags[:0:-1], mags])
    rows, stat_shape = slice_rows(w, axis)
    alphas = np.empty(rows.shape[0])
    Qs = np.empty_like(rows)
    for i, r in enumerate(rows):
        alphas[i], Qs[i] = _project_row(r, mags, signed)
    kept = () if axis is None else axis
    rest = tuple(ax for ax in range(w.ndim) if ax not in kept)
    Q = (
        np.transpose(Qs.reshape([w.shape[ax] for ax in kept + rest]), np.argsort(kept + rest))
        if w.ndim
        else Qs.reshape(())
    )
    return ScaledCodebook(alphas.reshape(stat_shape).astype(dtype), Q.astype(dtype))


@dataclass(frozen=True)
class ADMMResult:
    """Outcome of :func:`admm_quantize`.

    Parameters
    ----------
    weight : numpy.ndarray
        The quantized weight :math:`\\alpha Q` (the G variable), in ``w``'s dtype.
    alpha : numpy.ndarray
        Scale(s), broadcastable against ``weight``.
    Q : numpy.ndarray
        Unscaled levels in the codebook.
    history : numpy.ndarray of shape (n_iter, 2)
        Per iteration: the objective at G and the primal residual :math:`\\|W - G\\|`.

    See Also
    --------
    admm_quantize

    Notes
    -----
    ``weight == alpha * Q``.

    References
    ----------
    .. [1] C. Leng et al., "Extremely Low Bit Neural Network: Squeeze the Last
       Bit Out with ADMM", AAAI 2018.

    Examples
    --------
    >>> import numpy as np
    >>> from qtoolkit.optimize import admm_quantize
    >>> res = admm_quantize(np.array([[0.3, -1.2, 2.0]]), X=np.eye(3), max_iter=5)
    >>> bool(np.allclose(res.weight, res.alpha * res.Q))
    True
    """

    weight: np.ndarray
    alpha: np.ndarray
    Q: np.ndarray
    history: np.ndarray


@renamed_parameters({"n_iter": "max_iter"})
def admm_quantize(
    w: ArrayLike,
    *,
    X: ArrayLike | None = None,
    grad: Callable[[NDArray[Any]], ArrayLike] | None = None,
    bits: int = 3,
    codebook: Literal["uniform", "pow2"] = "uniform",
    axis: AxisLike = None,
    rho: float = 1e-2,
    rho_growth: float = 1.2,
    max_iter: int = 50,
    lr: float = 1e-2,
    inner_steps: int = 10,
) -> ADMMResult:
    r"""Quantize a weight tensor to a scaled codebook by ADMM (Leng et al. 2018).

    Minimises a loss :math:`f(W)` subject to :math:`W` lying in
    :math:`\{\alpha Q\}`, by splitting :math:`W = G` and alternating a
    continuous W-step, an exact projection (G-step) and a dual update.

    Parameters
    ----------
    w : numpy.ndarray
        Initial (full-precision) weights, real floating, finite. With ``X``
        it must be 2-D of shape (n_out, n_in) (the layer ``Y = X @ w.T``).
    X : numpy.ndarray of shape (n_samples, n_in) or None, default=None
        Calibration inputs: the loss is the layer-reconstruction error
        :math:`\operatorname{tr}((W - w)H(W - w)^\top)`, :math:`H = X^\top X/n`,
        and the W-step is solved exactly. Exactly one of ``X`` and ``grad``.
    grad : callable or None, default=None
        ``grad(W) -> array`` of the shape of ``w``: the gradient of any loss;
        the W-step is then ``inner_steps`` proximal-gradient steps of size
        ``lr`` (explicit on the loss, implicit on the penalty:
        :math:`W \leftarrow (W - \eta\nabla f(W) + \eta\rho(G - U)) / (1 + \eta\rho)`),
        stable however large :math:`\rho` grows.
    bits : int, default=3
        Bits per weight, in [2, 8] (see :func:`project_scaled_codebook`).
    codebook : {"uniform", "pow2"}, default="uniform"
        :math:`\{0, \pm 1, \dots, \pm M\}` or
        :math:`\{0, \pm 1, \pm 2, \dots, \pm 2^{M-1}\}`, scaled by :math:`\alpha`.
    axis : int, tuple of int or None, default=None
        Axes that keep separate scales (``0``: per output row).
    rho : float, default=1e-2
        Initial penalty :math:`\rho`, relative to the mean Hessian diagonal
        when ``X`` is given (absolute otherwise).
    rho_growth : float, default=1.2
        Factor applied to :math:`\rho` after each iteration (:math:`\ge 1`),
        which drives :math:`W` onto :math:`G`.
    max_iter : int, default=50
        ADMM iterations. At most ``10**6``.
    lr : float, default=1e-2
        Step size of the gradient W-step (``grad`` only).
    inner_steps : int, default=10
        Gradient steps per W-step (``grad`` only). At most ``10**6``.

    Returns
    -------
    result : ADMMResult
        ``weight`` = G, ``alpha``, ``Q`` and the per-iteration ``history``.

    Raises
    ------
    TypeError
        If ``w`` or ``X`` is not a real floating NumPy array, or ``grad`` is not callable.
    ValueError
        If neither or both of ``X`` and ``grad`` are given, shapes disagree,
        values are not finite, or a parameter is out of range (also if
        ``grad`` returns a misshapen or non-finite array).

    See Also
    --------
    project_scaled_codebook : the exact G-step.
    gptq, adaround : post-training rounding of a layer on a fixed grid.

    Notes
    -----
    With the scaled dual :math:`U` (augmented Lagrangian
    :math:`f(W) + \frac{\rho}{2}\|W - G + U\|^2`):

    .. math::

        W &\leftarrow \arg\min_W f(W) + \tfrac{\rho}{2}\|W - G + U\|^2, \\
        G &\leftarrow \Pi_{\{\alpha Q\}}(W + U), \\
        U &\leftarrow U + W - G .

    For the reconstruction loss the W-step is the linear system
    :math:`W (2H + \rho I) = 2 w H + \rho (G - U)`, and the G of lowest loss
    over the iterations (starting from the projection of ``w``) is returned;
    with ``grad`` the last G is returned. The G-step is the exact
    projection of :func:`project_scaled_codebook` (the paper alternates
    :math:`\alpha` and :math:`Q`; the exact one is never worse). Inputs that
    are zero in every calibration vector leave :math:`H` singular; the
    penalty :math:`\rho I` keeps the system positive definite.

    References
    ----------
    .. [1] C. Leng, Z. Dou, H. Li, S. Zhu, R. Jin, "Extremely Low Bit Neural
       Network: Squeeze the Last Bit Out with ADMM", AAAI 2018.
    .. [2] S. Boyd et al., "Distributed Optimization and Statistical Learning
       via the Alternating Direction Method of Multipliers", 2011.

    Examples
    --------
    >>> import numpy as np
    >>> from qtoolkit.optimize import admm_quantize, project_scaled_codebook, output_error
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 12)) @ rng.normal(size=(12, 12))
    >>> W = rng.normal(size=(6, 12))
    >>> res = admm_quantize(W, X=X, bits=3, axis=0)
    >>> alpha, Q = project_scaled_codebook(W, bits=3, axis=0)
    >>> bool(output_error(W, res.weight, X) < output_error(W, alpha * Q, X))
    True
    """
    if (X is None) == (grad is None):
        raise ValueError(
            "give exactly one of X (layer reconstruction) and grad (a loss "
            f"gradient callback), got X={describe(X) if X is not None else None} "
            f"and grad={grad!r}"
        )
    if X is not None:
        check_layer(w, X, 2, "asymmetric", w_name="w")
    else:
        if not callable(grad):
            raise TypeError(f"grad must be callable grad(W) -> array, got {describe(grad)}")
        if not is_numpy_array(w) or not np.issubdtype(w.dtype, np.floating) or w.size == 0:
            raise TypeError(f"w must be a non-empty real floating NumPy array, got {describe(w)}")
        check_finite(w, "w")
    bits = _check_codebook_bits(codebook, bits)
    axis = check_axis(axis, w.ndim)
    rho = check_real(rho, "rho", low=0)
    if rho == 0:
        raise ValueError("rho must be > 0, got 0")
    rho_growth = check_real(rho_growth, "rho_growth", low=0)
    if rho_growth < 1:
        raise ValueError(f"rho_growth must be >= 1, got {rho_growth!r}")
    max_iter = check_int(max_iter, "max_iter", low=1, high=MAX_ITER)
    lr = check_real(lr, "lr", low=0)
    inner_steps = check_int(inner_steps, "inner_steps", low=1, high=MAX_ITER)

    w0 = np.asarray(w, dtype=np.float64)
    if X is not None:
        H, _ = hessian(X)
        scale = float(np.mean(np.diag(H))) or 1.0
        rho *= scale
        w0H = w0 @ H

        def loss(W):
            E = W - w0
            return float(np.sum((E @ H) * E))
    else:

        def loss(W):
            return np.nan

    W = w0.copy()
    alpha, Q = _project(W, bits, codebook, axis, np.float64)
    G = alpha * Q
    U = np.zeros_like(W)
    history = np.empty((max_iter, 2))
    best = (loss(G), alpha, Q)
    for it in range(max_iter):
        if X is not None:
            c = cho_factor(2.0 * H + rho * np.eye(H.shape[0]), check_finite=False)
            W = cho_solve(c, (2.0 * w0H + rho * (G - U)).T, check_finite=False).T
        else:
            for _ in range(inner_steps):
                g = grad(W)  # type: ignore[misc]  # grad is set when X is None
                if not hasattr(g, "shape") or tuple(g.shape) != W.shape:
                    raise ValueError(
                        f"grad(W) must return an array of shape {W.shape}, got {describe(g)}"
                    )
                g = np.asarray(g, dtype=np.float64)
                if not np.all(np.isfinite(g)):
                    raise ValueError("grad(W) returned NaN or Inf")
                # gradient step on f, exact (implicit) step on the penalty: stable for any rho
                W = (W - lr * g + (lr * rho) * (G - U)) / (1.0 + lr * rho)
        alpha, Q = _project(W + U, bits, codebook, axis, np.float64)
        G = alpha * Q
        U = U + W - G
        history[it] = loss(G), float(np.linalg.norm(W - G))
        if X is not None and history[it, 0] < best[0]:
            best = (history[it, 0], alpha, Q)
        rho *= rho_growth
    if X is not None:
        alpha, Q = best[1], best[2]
        G = alpha * Q
    return ADMMResult(
        weight=G.astype(w.dtype), alpha=alpha.astype(w.dtype), Q=Q.astype(w.dtype), history=history
    )
