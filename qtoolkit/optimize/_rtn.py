"""Round-to-nearest of a linear layer on per-row (per-group) grids, the baseline layer method."""

from __future__ import annotations

from dataclasses import replace
from typing import Literal

import numpy as np

from .._array import check_random_state, describe, is_numpy_array
from .._typing import ArrayLike, RNGLike
from .._validation import check_bool
from ._grids import CLIPS, fit_uniform
from ._hadamard import incoherence_transform
from ._layer import QuantizedLayer, check_group_size, check_layer, levels, quantize_column


def check_weight_and_optional_x(W, X, bits, mode):
    """Validate ``W`` (and ``X`` when given); returns ``bits``."""
    if X is None:
        if not is_numpy_array(W):
            raise TypeError(f"W must be a 2-D NumPy array of real floats, got {describe(W)}")
        if W.ndim != 2:
            raise ValueError(f"W must be 2-D, got {describe(W)}")
        return check_layer(W, np.zeros((1, W.shape[1]), dtype=np.float64), bits, mode)
    return check_layer(W, X, bits, mode)


def group_columns(n_in, group_size):
    """Group index of each column and the number of groups (contiguous blocks)."""
    if group_size is None:
        return np.zeros(n_in, dtype=np.intp), 1
    return np.arange(n_in) // group_size, -(-n_in // group_size)


def rtn(
    W: ArrayLike,
    X: ArrayLike | None = None,
    *,
    bits: int = 4,
    group_size: int | None = None,
    mode: Literal["asymmetric", "symmetric"] = "asymmetric",
    clip: Literal["mse"] | None = None,
    rotate: bool = False,
    rng: RNGLike = None,
) -> QuantizedLayer:
    r"""Round a linear layer's weight to the nearest point of a per-row (per-group) grid.

    Parameters
    ----------
    W : numpy.ndarray of shape (n_out, n_in)
        Weight of the layer ``Y = X @ W.T``, real floating, finite.
    X : numpy.ndarray of shape (n_samples, n_in) or None, default=None
        Calibration inputs, used only to weight the clipping search by the
        input energy :math:`\operatorname{diag}(X^\top X)` (``clip="mse"``)
        and, with ``rotate=True``, not at all.
    bits : int, default=4
        Bits per weight ([1, 16] asymmetric, [2, 16] symmetric).
    group_size : int or None, default=None
        One grid per row and block of ``group_size`` consecutive inputs.
    mode : {"asymmetric", "symmetric"}, default="asymmetric"
        Min-max grid with an integer zero point, or :math:`\max|w|` with zero 0.
    clip : {None, "mse"}, default=None
        ``"mse"``: each row's (group's) range is shrunk by the factor in
        ``[0.5, 1]`` (21 steps) that minimizes its squared rounding error,
        weighted by the input energy when ``X`` is given.
    rotate : bool, default=False
        Incoherence processing: quantize :math:`T(W)` for a random
        :func:`incoherence_transform` ``T`` of the inputs; the result holds
        ``transform`` and its ``weight`` is :math:`T^{-1}` of the stored weight.
    rng : None, int or numpy.random.Generator, optional
        Randomness of the transform (``rotate=True``).

    Returns
    -------
    result : QuantizedLayer
        Codes, grid and the effective ``weight``.

    Raises
    ------
    TypeError
        If ``W`` or ``X`` is not a real floating NumPy array or a flag is not a bool.
    ValueError
        If shapes disagree, values are not finite or a parameter is out of range.

    See Also
    --------
    gptq, hqq, awq : the methods that improve on it.
    qtoolkit.rounding.uniform : the same grid on any array.

    Notes
    -----
    Per row :math:`i` and group :math:`g`:
    :math:`s = (\max(w, 0) - \min(w, 0))/(2^b - 1)`,
    :math:`z = \operatorname{round}(-\min(w, 0)/s)`,
    :math:`q = \operatorname{clip}(\operatorname{round}(w/s) + z, 0, 2^b - 1)`,
    :math:`\hat w = s (q - z)`, as :func:`qtoolkit.rounding.uniform` with
    ``axis=0``; with ``clip="mse"`` the range is :math:`c\,[\min, \max]` with
    :math:`c` minimizing :math:`\sum_j h_j (w_j - \hat w_j)^2`.

    References
    ----------
    .. [1] B. Jacob et al., "Quantization and Training of Neural Networks for
       Efficient Integer-Arithmetic-Only Inference", CVPR 2018.

    Examples
    --------
    >>> import numpy as np
    >>> from qtoolkit.optimize import rtn
    >>> from qtoolkit.rounding import uniform
    >>> W = np.random.default_rng(0).normal(size=(4, 8))
    >>> res = rtn(W, bits=3)
    >>> bool(np.allclose(res.weight, uniform(W, bits=3, mode="asymmetric", axis=0)))
    True
    """
    bits = check_weight_and_optional_x(W, X, bits, mode)
    group_size = check_group_size(group_size, W.shape[1])
    if clip not in CLIPS:
        raise ValueError(f"clip must be one of {CLIPS}, got {clip!r}")
    rotate = check_bool(rotate, "rotate")
    gen = check_random_state(rng)
    transform = None
    Wf = np.asarray(W, dtype=np.float64)
    if rotate:
        transform = incoherence_transform(W.shape[1], rng=gen)
        Wf = transform.forward(Wf, axis=1)
        hdiag = None
    else:
        hdiag = None if X is None else np.mean(np.asarray(X, dtype=np.float64) ** 2, axis=0)
    res = rtn_core(Wf, bits, group_size, mode, clip, hdiag, W.dtype)
    eff = res.stored_weight() if transform is None else transform.inverse(res.stored_weight(), 1)
    return replace(res, weight=eff.astype(W.dtype), transform=transform)


def rtn_core(Wf, bits, group_size, mode, clip, hdiag, dtype=None):
    """RTN on validated float64 weights; ``hdiag`` weights the clipping search (or None);
    scales :func:`storable` in ``dtype``."""
    n_out, n_in = Wf.shape
    qmin, qmax = levels(bits, mode)
    groups, n_groups = group_columns(n_in, group_size)
    scales = np.empty((n_out, n_groups))
    zeros = np.empty((n_out, n_groups))
    codes = np.empty((n_out, n_in))
    Q = np.empty((n_out, n_in))
    for g in range(n_groups):
        cols = groups == g
        block = Wf[:, cols]
        s, z = fit_uniform(
            block, qmin, qmax, mode, clip, None if hdiag is None else hdiag[cols], dtype
        )
        scales[:, g], zeros[:, g] = s, z
        c, q = quantize_column(block, s[:, None], z[:, None], qmin, qmax)
        codes[:, cols], Q[:, cols] = c, q
    return QuantizedLayer(
        weight=Q,
        codes=codes.astype(np.int32),
        scale=scales,
        zero_point=zeros,
        groups=groups,
        bits=bits,
        dead_inputs=np.zeros(n_in, dtype=bool),
        damp=0.0,
    )
