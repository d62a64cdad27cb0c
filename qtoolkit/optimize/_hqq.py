"""HQQ: calibration-free half-quadratic optimisation of group zero points under an lp error."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .._array import check_int, check_random_state
from .._typing import ArrayLike, RNGLike
from .._validation import check_bool, check_real
from ._hadamard import incoherence_transform
from ._layer import QuantizedLayer, check_group_size, storable
from ._rtn import check_weight_and_optional_x, group_columns


def _shrink_lp(x, beta, p):
    """Generalized soft-thresholding, the proximal step of ``|x|^p`` (p < 1) in HQQ."""
    ax = np.abs(x)
    with np.errstate(divide="ignore"):
        thr = np.where(ax > 0, ax ** (p - 1.0), np.inf) / beta
    return np.sign(x) * np.maximum(ax - thr, 0.0)


def hqq(
    W: ArrayLike,
    X: ArrayLike | None = None,
    *,
    bits: int = 4,
    group_size: int | None = 64,
    p: float = 0.7,
    beta: float = 10.0,
    kappa: float = 1.01,
    max_iter: int = 20,
    rotate: bool = False,
    rng: RNGLike = None,
) -> QuantizedLayer:
    r"""Half-quadratic quantization (HQQ): per-group zero points minimizing an lp weight error.

    Calibration-free: ``X`` is accepted for the uniform calling form of the
    layer methods and ignored.

    Parameters
    ----------
    W : numpy.ndarray of shape (n_out, n_in)
        Weight of the layer ``Y = X @ W.T``, real floating, finite.
    X : None or numpy.ndarray of shape (n_samples, n_in), default=None
        Ignored (validated when given).
    bits : int, default=4
        Bits per weight, in [1, 16].
    group_size : int or None, default=64
        One scale and zero point per row and block of ``group_size`` inputs.
    p : float, default=0.7
        Exponent of the error :math:`\sum |w - \hat w|^p`, in (0, 1].
    beta : float, default=10.0
        Initial weight :math:`\beta` of the quadratic coupling, > 0.
    kappa : float, default=1.01
        Growth of :math:`\beta` per iteration, >= 1.
    max_iter : int, default=20
        Half-quadratic iterations (0 gives min-max round-to-nearest with a
        real-valued zero point).
    rotate : bool, default=False
        Incoherence processing (see :func:`rtn`).
    rng : None, int or numpy.random.Generator, optional
        Randomness of the transform (``rotate=True``).

    Returns
    -------
    result : QuantizedLayer
        ``scheme="uniform-real-zero"``: codes, ``scale``, real ``zero_point``,
        and ``n_iter``.

    Raises
    ------
    TypeError
        If ``W`` is not a real floating NumPy array, or a parameter has the wrong type.
    ValueError
        If a parameter is out of range or values are not finite.

    See Also
    --------
    rtn : the min-max starting point.
    gptq, awq : calibration-based methods.

    Notes
    -----
    With the min-max scale :math:`s` of a group and its zero point :math:`z`,
    :math:`Q_z(w) = \operatorname{clip}(\operatorname{round}(w/s + z), 0, 2^b - 1)`
    and :math:`\hat w = s\,(Q_z(w) - z)`. HQQ minimizes
    :math:`\phi(z) = \sum_j |w_j - \hat w_j|^p` by splitting off the error
    :math:`e` and alternating

    .. math::

        e \leftarrow \operatorname{shrink}_p(w - \hat w, \beta), \qquad
        z \leftarrow \operatorname{mean}_j\big(Q_z(w_j) - (w_j - e_j)/s\big), \qquad
        \beta \leftarrow \kappa\beta,

    with :math:`\operatorname{shrink}_p(x, \beta) = \operatorname{sign}(x)
    \max(|x| - |x|^{p-1}/\beta, 0)`. Every group keeps the best zero point
    seen, so :math:`\phi` never increases from one iteration to the next; all
    groups are updated at once (vectorized).

    References
    ----------
    .. [1] H. Badri and A. Shaji, "Half-Quadratic Quantization of Large
       Machine Learning Models", 2023.
    .. [2] D. Geman and C. Yang, "Nonlinear image recovery with half-quadratic
       regularization", IEEE Trans. Image Processing 4(7), 1995.

    Examples
    --------
    >>> import numpy as np
    >>> from qtoolkit.optimize import hqq
    >>> W = np.random.default_rng(0).standard_t(3, size=(8, 64))
    >>> lp = lambda r: float(np.sum(np.abs(W - r.weight) ** 0.7))
    >>> bool(lp(hqq(W, bits=3, max_iter=20)) < lp(hqq(W, bits=3, max_iter=0)))
    True
    """
    bits = check_weight_and_optional_x(W, X, bits, "asymmetric")
    group_size = check_group_size(group_size, W.shape[1])
    if isinstance(p, bool) or not isinstance(p, (int, float, np.floating)) or not 0 < p <= 1:
        raise ValueError(f"p must be a number in (0, 1], got {p!r}")
    beta = check_real(beta, "beta", low=0)
    if beta == 0:
        raise ValueError(f"beta must be > 0, got {beta!r}")
    kappa = check_real(kappa, "kappa", low=0)
    if kappa < 1:
        raise ValueError(f"kappa must be >= 1, got {kappa!r}")
    max_iter = check_int(max_iter, "max_iter", low=0)
    rotate = check_bool(rotate, "rotate")
    gen = check_random_state(rng)
    Wf = np.asarray(W, dtype=np.float64)
    transform = None
    if rotate:
        transform = incoherence_transform(W.shape[1], rng=gen)
        Wf = transform.forward(Wf, axis=1)
    res = _hqq(Wf, bits, group_size, float(p), beta, kappa, max_iter, W.dtype)
    eff = res.stored_weight()
    if transform is not None:
        eff = transform.inverse(eff, axis=1)
    return replace(res, weight=eff.astype(W.dtype), transform=transform)


def _hqq(Wf, bits, group_size, p, beta, kappa, max_iter, dtype=None):
    n_out, n_in = Wf.shape
    groups, n_groups = group_columns(n_in, group_size)
    gs = n_in if group_size is None else group_size
    pad = n_groups * gs - n_in
    # (n_out, n_groups, gs) view, the last group padded with masked entries
    Wp = np.concatenate([Wf, np.zeros((n_out, pad))], axis=1).reshape(n_out, n_groups, gs)
    mask = np.concatenate([np.ones(n_in), np.zeros(pad)]).reshape(n_groups, gs)[None]
    count = mask.sum(axis=2)
    big = np.where(mask > 0, Wp, np.nan)
    lo = np.nanmin(big, axis=2)
    hi = np.nanmax(big, axis=2)
    qmax = 2**bits - 1
    scale = storable((hi - lo) / qmax, dtype)
    scale = np.where(scale > 0, scale, 1.0)
    zero = -lo / scale
    s3 = scale[..., None]

    def dequant(z):
        q = np.clip(np.round(Wp / s3 + z[..., None]), 0, qmax)
        return q, (q - z[..., None]) * s3

    def objective(what):
        return np.sum(np.abs(Wp - what) ** p * mask, axis=2)

    q, what = dequant(zero)
    best_z, best_obj = zero.copy(), objective(what)
    z = zero
    for _ in range(max_iter):
        e = _shrink_lp(Wp - what, beta, p)
        z = np.sum((q - (Wp - e) / s3) * mask, axis=2) / count
        q, what = dequant(z)
        obj = objective(what)
        better = obj < best_obj
        best_obj = np.where(better, obj, best_obj)
        best_z = np.where(better, z, best_z)
        beta *= kappa
    best_z = storable(best_z, dtype)  # the stored zero points
    q, _ = dequant(best_z)
    codes = q.reshape(n_out, n_groups * gs)[:, :n_in]
    return QuantizedLayer(
        weight=None,
        codes=codes.astype(np.int32),
        scale=scale,
        zero_point=best_z,
        groups=groups,
        bits=bits,
        dead_inputs=np.zeros(n_in, dtype=bool),
        damp=0.0,
        n_iter=max_iter,
        scheme="uniform-real-zero",
    )
