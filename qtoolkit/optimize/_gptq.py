"""GPTQ / OBQ: Hessian-guided post-training rounding of a linear layer, column by column."""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import replace
from functools import cache
from typing import Literal

import numpy as np
from scipy.linalg import LinAlgError
from scipy.linalg.lapack import dpotrf, dtrtri
from threadpoolctl import ThreadpoolController

from .._array import check_int, check_random_state
from .._typing import ArrayLike, RNGLike
from .._validation import check_bool, check_real
from ._grids import CLIPS, GRIDS, fit_codebooks, fit_uniform, nearest_codeword
from ._hadamard import incoherence_transform
from ._layer import (
    QuantizedLayer,
    check_group_size,
    check_layer,
    hessian,
    levels,
    quantize_column,
    storable,
)

_MAX_DAMP_TRIES = 8


@cache
def _controller():
    return ThreadpoolController()


def _one_blas_thread():
    return _controller().limit(limits=1, user_api="blas")


def _inverse_cholesky(H, damp):
    """Upper Cholesky factor of ``(H + damp * mean(diag H) I)^-1``, growing ``damp`` on failure.

    With ``J`` the reversal permutation and ``J Hd J = M M^T`` (lower Cholesky),
    ``Hd^-1 = (J M^-T J)(J M^-1 J)`` and ``U = J M^-1 J`` is upper triangular with a positive
    diagonal, so it is the factor: one Cholesky and one triangular inverse, instead of a
    Cholesky, a solve for the inverse and a second Cholesky (half the flops). LAPACK runs on
    one thread for matrices up to 4096 (a layer's inputs): its threaded factorization gains
    little there and loses badly on a busy machine.

    Returns ``(U, damp_used)``.
    """
    n = H.shape[0]
    mean_diag = float(np.mean(np.diag(H))) if n else 1.0
    mean_diag = mean_diag if mean_diag > 0 else 1.0
    d = damp
    with _one_blas_thread() if 256 <= n <= 4096 else nullcontext():
        for _ in range(_MAX_DAMP_TRIES):
            Hd = H[::-1, ::-1] + (d * mean_diag) * np.eye(n)
            M, info = dpotrf(Hd, lower=1, clean=1, overwrite_a=1)
            if info == 0:
                Minv, info = dtrtri(M, lower=1, overwrite_c=1)
                if info == 0:
                    return np.ascontiguousarray(Minv[::-1, ::-1]), d
            d = max(10.0 * d, 1e-6)
    raise LinAlgError(  # pragma: no cover - H + 1e1 * mean(diag) I is positive definite
        f"the dampened Hessian is not positive definite even with damp={d}"
    )


def check_grid_options(grid, clip, bits):
    if grid not in GRIDS:
        raise ValueError(f"grid must be one of {GRIDS}, got {grid!r}")
    if clip not in CLIPS:
        raise ValueError(f"clip must be one of {CLIPS}, got {clip!r}")
    if grid == "optimal" and bits > 8:
        raise ValueError(f"grid='optimal' takes bits <= 8 (2**bits codewords per row), got {bits}")
    if grid == "optimal" and clip is not None:
        raise ValueError(
            f"clip applies to the uniform grid only, got clip={clip!r} with grid='optimal'"
        )


def rotate_layer(W, X, rng):
    """``(T(W), T(X), T)``: rows of ``W`` and ``X`` rotated by a random incoherence transform."""
    t = incoherence_transform(W.shape[1], rng=rng)
    Wr = t.forward(np.asarray(W, dtype=np.float64), axis=1)
    Xr = None if X is None else t.forward(np.asarray(X, dtype=np.float64), axis=1)
    return Wr.astype(W.dtype), None if Xr is None else Xr.astype(X.dtype), t


def unrotate(res, W, t):
    """The result of a method run on rotated inputs, with its effective weight unrotated."""
    eff = t.inverse(res.stored_weight(), axis=1)
    return replace(res, weight=eff.astype(W.dtype), transform=t)


def gptq(
    W: ArrayLike,
    X: ArrayLike,
    bits: int = 4,
    *,
    mode: Literal["asymmetric", "symmetric"] = "asymmetric",
    group_size: int | None = None,
    act_order: bool = False,
    damp: float = 0.01,
    block_size: int = 128,
    clip: Literal["mse"] | None = None,
    static_groups: bool = False,
    grid: Literal["uniform", "optimal"] = "uniform",
    rotate: bool = False,
    rng: RNGLike = None,
) -> QuantizedLayer:
    r"""Round a linear layer's weight with GPTQ (OBQ), minimising the output error on ``X``.

    Columns (input features) are quantized one at a time; the rounding error of
    each is spread over the columns not yet quantized through the inverse
    Hessian, so later columns compensate for earlier ones.

    Parameters
    ----------
    W : numpy.ndarray of shape (n_out, n_in)
        Weight of the layer ``Y = X @ W.T``, real floating, finite.
    X : numpy.ndarray of shape (n_samples, n_in)
        Calibration inputs of the layer.
    bits : int, default=4
        Bits per weight ([1, 16] asymmetric, [2, 16] symmetric).
    mode : {"asymmetric", "symmetric"}, default="asymmetric"
        Grid per output row (per group), as :func:`qtoolkit.rounding.uniform`
        with ``axis=0``: min-max with an integer zero point, or
        :math:`\max|w|` with zero point 0.
    group_size : int or None, default=None
        If given, a new grid is fitted every ``group_size`` columns (in the
        processing order), on the weights as updated so far.
    act_order : bool, default=False
        Process columns by decreasing Hessian diagonal (largest input energy
        first), which usually lowers the error at low bit widths.
    damp : float, default=0.01
        Relative dampening:
        :math:`\lambda = \text{damp}\cdot\operatorname{mean}(\operatorname{diag} H)`
        is added to the diagonal of :math:`H`. If the Cholesky factorization
        still fails, ``damp`` is multiplied by 10 (starting from 1e-6 if it is
        0) until it succeeds; the value used is returned.
    block_size : int, default=128
        Columns per lazy batch: updates inside a block are applied column by
        column, updates to the rest of the matrix once per block (a
        matrix product), which changes the speed, not the result.
    clip : {None, "mse"}, default=None
        ``"mse"``: each grid (row, or row and group, fitted inside the loop on
        the error-updated weights) shrinks its range by the factor in
        ``[0.5, 1]`` (21 steps) that minimizes the group's squared rounding
        error weighted by the Hessian diagonal.
    static_groups : bool, default=False
        Fit every group's grid before the loop, on the original weights and
        consecutive input columns, so that groups stay contiguous in the
        original order even with ``act_order`` (no permuted group index at
        inference). Needs ``group_size``.
    grid : {"uniform", "optimal"}, default="uniform"
        ``"optimal"``: a non-uniform codebook of ``2**bits`` values per row
        (and group), the globally optimal 1-D k-means of the row weighted by
        the Hessian diagonal (:func:`qtoolkit.codebooks.kmeans_1d`), used as
        the grid with GPTQ's error feedback; ``bits <= 8``, ``mode`` and
        ``clip`` do not apply.
    rotate : bool, default=False
        Incoherence processing: run GPTQ on :math:`T(W)` and :math:`T(X)` for a
        random :func:`incoherence_transform` ``T`` of the inputs (the output is
        unchanged, :math:`X W^\top = T(X) T(W)^\top`); the result holds
        ``transform`` and its ``weight`` is :math:`T^{-1}` of the stored weight.
    rng : None, int or numpy.random.Generator, optional
        Randomness of the transform (``rotate=True``).

    Returns
    -------
    result : QuantizedLayer
        ``weight`` (:math:`\hat W` in ``W``'s dtype), ``codes``, ``scale``,
        ``zero_point`` (one column per group), ``groups``, ``dead_inputs``
        and the ``damp`` used.

    Raises
    ------
    TypeError
        If ``W`` or ``X`` is not a real floating NumPy array, or an integer
        parameter is not an integer.
    ValueError
        If shapes disagree, values are not finite, or a parameter is out of range.

    See Also
    --------
    adaround : learned up/down rounding of the same objective.
    output_error : :math:`\|X W^\top - X\hat W^\top\|_F^2`.
    qtoolkit.rounding.uniform : round-to-nearest on the same grid.

    Notes
    -----
    With :math:`H = X^\top X / n` (dampened) and :math:`U` the upper Cholesky
    factor of :math:`H^{-1}` (:math:`H^{-1} = U^\top U`), column :math:`j`
    in processing order is quantized and the remaining columns updated by

    .. math::

        \hat w_{:,j} = \operatorname{round}(w_{:,j}), \qquad
        e = \frac{w_{:,j} - \hat w_{:,j}}{U_{jj}}, \qquad
        w_{:,k} \leftarrow w_{:,k} - e\,U_{jk} \quad (k > j),

    the OBS update of [2]_ in the Cholesky form of [1]_. With
    :math:`H \propto I` no error is propagated and the result is
    round-to-nearest on the same grid.

    *Dead inputs* (features that are zero in every calibration vector, a
    zero row and column of :math:`H`) make :math:`H` singular: their diagonal
    entry is set to 1 and their weights to 0 (they never affect the output on
    the calibration data, and 0 is on every grid), before dampening. Other
    rank deficiencies (fewer samples than inputs, collinear inputs) are
    handled by the dampening. Computation is in float64 on NumPy arrays.

    ``grid="optimal"`` (SqueezeLLM's sensitivity-weighted non-uniform grid [3]_
    inside GPTQ, GPTVQ [4]_ in one dimension): the codebook :math:`c` of row
    :math:`i` minimizes :math:`\sum_j H_{jj} (w_{ij} - c_{a(j)})^2` exactly, and
    :math:`\operatorname{round}` is the nearest codeword. With
    :math:`H \propto I` this is nearest rounding to the optimal codebook.

    References
    ----------
    .. [1] E. Frantar, S. Ashkboos, T. Hoefler, D. Alistarh, "GPTQ: Accurate
       Post-Training Quantization for Generative Pre-trained Transformers",
       ICLR 2023.
    .. [2] E. Frantar, S. P. Singh, D. Alistarh, "Optimal Brain Compression: A
       Framework for Accurate Post-Training Quantization and Pruning",
       NeurIPS 2022.
    .. [3] S. Kim et al., "SqueezeLLM: Dense-and-Sparse Quantization", ICML 2024.
    .. [4] M. van Baalen et al., "GPTVQ: The Blessing of Dimensionality for LLM
       Quantization", 2024.

    Examples
    --------
    >>> import numpy as np
    >>> from qtoolkit.optimize import gptq, output_error
    >>> from qtoolkit.rounding import uniform
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(256, 16)) @ rng.normal(size=(16, 16))   # correlated inputs
    >>> W = rng.normal(size=(8, 16))
    >>> res = gptq(W, X, bits=3)
    >>> rtn = uniform(W, bits=3, mode="asymmetric", axis=0)
    >>> bool(output_error(W, res.weight, X) < output_error(W, rtn, X))
    True
    >>> opt = gptq(W, X, bits=3, grid="optimal", act_order=True)   # per-row codebooks
    >>> bool(output_error(W, opt.weight, X) < output_error(W, rtn, X))
    True
    """
    bits = check_layer(W, X, bits, mode)
    n_in = W.shape[1]
    group_size = check_group_size(group_size, n_in)
    act_order = check_bool(act_order, "act_order")
    static_groups = check_bool(static_groups, "static_groups")
    rotate = check_bool(rotate, "rotate")
    damp = check_real(damp, "damp", low=0)
    block_size = check_int(block_size, "block_size", low=1)
    check_grid_options(grid, clip, bits)
    if static_groups and group_size is None:
        raise ValueError("static_groups=True needs a group_size, got group_size=None")
    gen = check_random_state(rng)
    if rotate:
        Wr, Xr, t = rotate_layer(W, X, gen)
        res = _gptq(
            Wr, Xr, bits, mode, group_size, act_order, damp, block_size, clip, static_groups, grid
        )
        return unrotate(res, W, t)
    return _gptq(
        W, X, bits, mode, group_size, act_order, damp, block_size, clip, static_groups, grid
    )


def _gptq(W, X, bits, mode, group_size, act_order, damp, block_size, clip, static_groups, grid):
    """GPTQ on validated arguments."""
    n_out, n_in = W.shape
    qmin, qmax = levels(bits, mode)
    k = 2**bits

    H, dead = hessian(X)
    Wf = np.array(W, dtype=np.float64)
    if dead.any():
        H[dead, dead] = 1.0
        Wf[:, dead] = 0.0
    hdiag = np.diag(H).copy()
    perm = np.argsort(-hdiag, kind="stable") if act_order else np.arange(n_in)
    n_groups = 1 if group_size is None else -(-n_in // group_size)
    # group of each processed column: natural-order groups when static, else processing order
    if group_size is None:
        gproc = np.zeros(n_in, dtype=np.intp)
    elif static_groups:
        gproc = perm // group_size
    else:
        gproc = np.arange(n_in) // group_size

    def fit(block, cols):
        cw = hdiag[cols]
        if grid == "optimal":
            return storable(fit_codebooks(block, k, cw), W.dtype)
        return fit_uniform(block, qmin, qmax, mode, clip, cw, W.dtype)

    optimal = grid == "optimal"
    scales = None if optimal else np.empty((n_out, n_groups))
    zeros = None if optimal else np.empty((n_out, n_groups))
    books = np.empty((n_out, n_groups, k)) if optimal else None

    def store(g, fitted):
        if optimal:
            books[:, g] = fitted
        else:
            scales[:, g], zeros[:, g] = fitted

    if group_size is None:
        store(0, fit(Wf, np.arange(n_in)))
    elif static_groups:
        for g in range(n_groups):
            cols = np.arange(g * group_size, min((g + 1) * group_size, n_in))
            store(g, fit(Wf[:, cols], cols))

    H = H[np.ix_(perm, perm)]
    Wp = Wf[:, perm]
    U, damp_used = _inverse_cholesky(H, damp)
    codes = np.empty((n_out, n_in))
    Q = np.empty((n_out, n_in))

    for i1 in range(0, n_in, block_size):
        i2 = min(i1 + block_size, n_in)
        W1 = Wp[:, i1:i2].copy()
        U1 = U[i1:i2, i1:i2]
        E1 = np.zeros_like(W1)
        for j in range(i2 - i1):
            col = i1 + j
            if group_size is not None and not static_groups and col % group_size == 0:
                # the group's current weights: in-block updates are in W1, the
                # pending lazy updates of this block are applied on the fly
                g_end = min(col + group_size, n_in)
                cur = W1[:, j : g_end - i1]
                if g_end > i2:
                    later = Wp[:, i2:g_end] - E1[:, :j] @ U[i1:col, i2:g_end]
                    cur = np.concatenate([cur, later], axis=1)
                store(col // group_size, fit(cur, perm[col:g_end]))
            g = gproc[col]
            w = W1[:, j]
            if optimal:
                c, q = nearest_codeword(w, books[:, g])
            else:
                c, q = quantize_column(w, scales[:, g], zeros[:, g], qmin, qmax)
            codes[:, col], Q[:, col] = c, q
            err = (w - q) / U1[j, j]
            W1[:, j + 1 :] -= np.outer(err, U1[j, j + 1 :])
            E1[:, j] = err
        Wp[:, i2:] -= E1 @ U[i1:i2, i2:]

    inv = np.empty_like(perm)
    inv[perm] = np.arange(n_in)
    return QuantizedLayer(
        weight=Q[:, inv].astype(W.dtype),
        codes=codes[:, inv].astype(np.int32),
        scale=scales,
        zero_point=zeros,
        groups=gproc[inv],
        bits=bits,
        dead_inputs=dead,
        damp=damp_used,
        codebook=books,
        scheme="codebook" if optimal else "uniform",
    )
