"""GPTQ / OBQ: Hessian-guided post-training rounding of a linear layer, column by column."""

import numpy as np
from scipy.linalg import LinAlgError, cho_factor, cho_solve, cholesky

from .._array import check_int
from ._layer import (
    QuantizedLayer,
    check_group_size,
    check_layer,
    check_nonneg_float,
    fit_grid,
    hessian,
    levels,
    quantize_column,
)

_MAX_DAMP_TRIES = 8


def _inverse_cholesky(H, damp):
    """Upper Cholesky factor of ``(H + damp * mean(diag H) I)^-1``, growing ``damp`` on failure.

    Returns ``(U, damp_used)``.
    """
    n = H.shape[0]
    mean_diag = float(np.mean(np.diag(H))) if n else 1.0
    mean_diag = mean_diag if mean_diag > 0 else 1.0
    d = damp
    for _ in range(_MAX_DAMP_TRIES):
        Hd = H + (d * mean_diag) * np.eye(n)
        try:
            c = cho_factor(Hd, lower=True, check_finite=False)
            Hinv = cho_solve(c, np.eye(n), check_finite=False)
            return cholesky(Hinv, lower=False, check_finite=False), d
        except LinAlgError:
            d = max(10.0 * d, 1e-6)
    raise LinAlgError(  # pragma: no cover - H + 1e1 * mean(diag) I is positive definite
        f"the dampened Hessian is not positive definite even with damp={d}"
    )


def gptq(
    W, X, bits=4, *, mode="asymmetric", group_size=None, act_order=False, damp=0.01, block_size=128
):
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

    References
    ----------
    .. [1] E. Frantar, S. Ashkboos, T. Hoefler, D. Alistarh, "GPTQ: Accurate
       Post-Training Quantization for Generative Pre-trained Transformers",
       ICLR 2023.
    .. [2] E. Frantar, S. P. Singh, D. Alistarh, "Optimal Brain Compression: A
       Framework for Accurate Post-Training Quantization and Pruning",
       NeurIPS 2022.

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
    """
    bits = check_layer(W, X, bits, mode)
    n_out, n_in = W.shape
    group_size = check_group_size(group_size, n_in)
    if not isinstance(act_order, (bool, np.bool_)):
        raise TypeError(f"act_order must be a bool, got {act_order!r}")
    damp = check_nonneg_float(damp, "damp")
    block_size = check_int(block_size, "block_size", low=1)
    qmin, qmax = levels(bits, mode)

    H, dead = hessian(X)
    Wf = np.array(W, dtype=np.float64)
    if dead.any():
        H[dead, dead] = 1.0
        Wf[:, dead] = 0.0
    perm = np.argsort(-np.diag(H), kind="stable") if act_order else np.arange(n_in)
    H = H[np.ix_(perm, perm)]
    Wp = Wf[:, perm]
    U, damp_used = _inverse_cholesky(H, damp)

    n_groups = 1 if group_size is None else -(-n_in // group_size)
    scales = np.empty((n_out, n_groups))
    zeros = np.empty((n_out, n_groups))
    codes = np.empty((n_out, n_in))
    Q = np.empty((n_out, n_in))
    if group_size is None:
        scales[:, 0], zeros[:, 0] = fit_grid(Wp, qmin, qmax, mode)
    scale, zero = scales[:, 0], zeros[:, 0]

    for i1 in range(0, n_in, block_size):
        i2 = min(i1 + block_size, n_in)
        W1 = Wp[:, i1:i2].copy()
        U1 = U[i1:i2, i1:i2]
        E1 = np.zeros_like(W1)
        for j in range(i2 - i1):
            col = i1 + j
            if group_size is not None and col % group_size == 0:
                # the group's current weights: in-block updates are in W1, the
                # pending lazy updates of this block are applied on the fly
                g_end = min(col + group_size, n_in)
                cur = W1[:, j : g_end - i1]
                if g_end > i2:
                    later = Wp[:, i2:g_end] - E1[:, :j] @ U[i1:col, i2:g_end]
                    cur = np.concatenate([cur, later], axis=1)
                g = col // group_size
                scales[:, g], zeros[:, g] = fit_grid(cur, qmin, qmax, mode)
                scale, zero = scales[:, g], zeros[:, g]
            w = W1[:, j]
            c, q = quantize_column(w, scale, zero, qmin, qmax)
            codes[:, col], Q[:, col] = c, q
            err = (w - q) / U1[j, j]
            W1[:, j + 1 :] -= np.outer(err, U1[j, j + 1 :])
            E1[:, j] = err
        Wp[:, i2:] -= E1 @ U[i1:i2, i2:]

    inv = np.empty_like(perm)
    inv[perm] = np.arange(n_in)
    groups_proc = (
        np.zeros(n_in, dtype=np.intp) if group_size is None else np.arange(n_in) // group_size
    )
    return QuantizedLayer(
        weight=Q[:, inv].astype(W.dtype),
        codes=codes[:, inv].astype(np.int32),
        scale=scales,
        zero_point=zeros,
        groups=groups_proc[inv],
        bits=bits,
        dead_inputs=dead,
        damp=damp_used,
    )
