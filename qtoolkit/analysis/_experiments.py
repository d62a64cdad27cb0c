"""Monte Carlo experiments: angle against dimension, dot products, pairs, correlated inputs.

The experiments draw float64 NumPy data from a ``numpy.random.Generator`` and
call the quantizer on NumPy arrays; the same ``rng`` seed gives the same result.
"""

from __future__ import annotations

import math
from collections import namedtuple
from collections.abc import Callable, Sequence
from typing import Any, Literal, NamedTuple

import numpy as np
from threadpoolctl import threadpool_limits

from .._array import check_int, check_random_state, describe
from .._typing import ArrayLike, DistributionLike, NDArray, RNGLike
from ._distributions import as_distribution
from ._measures import angle, dot_product_proportionality
from ._theory import arcsine_law, expected_angle, expected_cosine, expected_dot_product_fit

__all__ = [
    "AngleExperiment",
    "AngleHistogram",
    "ArcsineExperiment",
    "DotProductExperiment",
    "RotationExperiment",
    "angle_experiment",
    "arcsine_experiment",
    "dot_product_experiment",
    "rotation_experiment",
]


class AngleHistogram(NamedTuple):
    """Per-dimension histogram of angles, from :meth:`AngleExperiment.histogram`.

    Parameters
    ----------
    counts : ndarray of int64, shape (n_dims, bins)
        Number of trials per bin, per dimension.
    edges : ndarray of shape (bins + 1,)
        The common bin edges (degrees or radians, as asked).

    See Also
    --------
    AngleExperiment.histogram : the method that returns it.

    Examples
    --------
    >>> import numpy as np
    >>> from qtoolkit.analysis import angle_experiment
    >>> h = angle_experiment(np.sign, dims=[16], n_trials=20, rng=0).histogram(4)
    >>> h.counts.shape, h.edges.shape
    ((1, 4), (5,))
    """

    counts: NDArray[np.int64]
    edges: NDArray[np.float64]


class AngleExperiment(
    namedtuple(
        "AngleExperiment",
        ["dims", "angles", "mean", "std", "theory_mean", "theory_std", "theory_limit"],
    )
):
    __slots__ = ()

    def histogram(self, bins: int = 40, *, degrees: bool = True) -> AngleHistogram:
        """Histogram of the angles of every dimension on common bin edges.

        Parameters
        ----------
        bins : int, default=40
            Number of bins, ``>= 1``, spanning all the finite angles.
        degrees : bool, default=True
            Bin the angles in degrees instead of radians.

        Returns
        -------
        AngleHistogram
            ``(counts, edges)``: trials per bin and dimension, shape
            (n_dims, bins), and the common bin edges, shape (bins + 1,).

        Examples
        --------
        >>> import numpy as np
        >>> from qtoolkit.analysis import angle_experiment
        >>> res = angle_experiment(np.sign, dims=[16, 64], n_trials=30, rng=0)
        >>> counts, edges = res.histogram(10)
        >>> counts.shape, edges.shape, counts.sum(axis=1)
        ((2, 10), (11,), array([30, 30]))
        """
        bins = check_int(bins, "bins", low=1)
        a = np.degrees(self.angles) if degrees else np.asarray(self.angles)
        finite = a[np.isfinite(a)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        edges = np.linspace(lo, hi if hi > lo else lo + 1.0, bins + 1)
        counts = np.stack([np.histogram(row[np.isfinite(row)], bins=edges)[0] for row in a])
        return AngleHistogram(counts, edges)


AngleExperiment.__doc__ = """Distribution of angle(x, q(x)) against the dimension (radians).

Parameters
----------
dims : ndarray of shape (n_dims,)
    The dimensions d.
angles : ndarray of shape (n_dims, n_trials)
    One angle per random vector.
mean : ndarray of shape (n_dims,)
    Sample mean of the angle per dimension.
std : ndarray of shape (n_dims,)
    Sample standard deviation (ddof=1) per dimension.
theory_mean : ndarray of shape (n_dims,)
    The delta-method mean angle per dimension (:func:`expected_angle`).
theory_std : ndarray of shape (n_dims,)
    The delta-method standard deviation per dimension.
theory_limit : float
    The d -> infinity limit, arccos of :func:`expected_cosine`.

See Also
--------
angle_experiment : Returns it.

Examples
--------
>>> import numpy as np
>>> from qtoolkit.analysis import angle_experiment
>>> res = angle_experiment(np.sign, dims=[32], n_trials=10, rng=0)
>>> res.angles.shape
(1, 10)
"""

DotProductExperiment = namedtuple(
    "DotProductExperiment", ["r", "slope", "intercept", "cosine", "theory", "u", "v"]
)
DotProductExperiment.__doc__ = """Dot products a.w against a.q(w), random weights and activations.

Parameters
----------
r : ndarray of shape (n_outputs,)
    Measured Pearson correlation per output.
slope : ndarray of shape (n_outputs,)
    Measured least-squares slope per output.
intercept : ndarray of shape (n_outputs,)
    Measured intercept per output.
cosine : ndarray of shape (n_outputs,)
    cos angle(w_j, q(w)_j), the exact population correlation for isotropic activations.
theory : DotProductFit
    The d -> infinity limit (:func:`expected_dot_product_fit`).
u : ndarray of shape (n_samples,)
    Real dot products a.w of the first output, for plotting.
v : ndarray of shape (n_samples,)
    Quantized dot products a.q(w) of the first output.

See Also
--------
dot_product_experiment : Returns it.

Examples
--------
>>> import numpy as np
>>> from qtoolkit.analysis import dot_product_experiment
>>> res = dot_product_experiment(np.sign, d=16, n_outputs=2, n_samples=50, rng=0)
>>> res.r.shape, res.u.shape
((2,), (50,))
"""

ArcsineExperiment = namedtuple(
    "ArcsineExperiment", ["rho", "cos_before", "cos_after", "cos_after_std", "theory"]
)
ArcsineExperiment.__doc__ = """Cosine of q(x) and q(y) for Gaussian pairs of correlation rho.

Parameters
----------
rho : ndarray of shape (n_rho,)
    Population correlations of the pairs.
cos_before : ndarray of shape (n_rho,)
    Mean measured cosine between x and y.
cos_after : ndarray of shape (n_rho,)
    Mean measured cosine between q(x) and q(y).
cos_after_std : ndarray of shape (n_rho,)
    Its standard deviation over the trials (ddof=1).
theory : ndarray of shape (n_rho,)
    The arcsine law (2/pi) arcsin(rho) (exact for the sign in the limit).

See Also
--------
arcsine_experiment : Returns it.

Examples
--------
>>> import numpy as np
>>> from qtoolkit.analysis import arcsine_experiment
>>> res = arcsine_experiment(np.sign, rho=[0.0, 0.5], d=64, n_trials=5, rng=0)
>>> res.theory.round(3)
array([0.   , 0.333])
"""

RotationExperiment = namedtuple(
    "RotationExperiment",
    ["length_scales", "mean", "std", "mean_rotated", "std_rotated", "se_rotated", "theory_mean"],
)
RotationExperiment.__doc__ = """Angle(x, q(x)) of correlated Gaussian x, rotated or not (radians).

Parameters
----------
length_scales : ndarray of shape (n_scales,)
    Correlation lengths of the covariance.
mean : ndarray of shape (n_scales,)
    Mean angle between x and q(x).
std : ndarray of shape (n_scales,)
    Its standard deviation (ddof=1).
mean_rotated : ndarray of shape (n_scales,)
    Mean angle between Rx and q(Rx) for one Haar-random rotation R.
std_rotated : ndarray of shape (n_scales,)
    Its standard deviation (ddof=1).
se_rotated : ndarray of shape (n_scales,)
    Standard error of ``mean_rotated`` from the spread of the per-rotation
    means (the trials that share a rotation are not independent).
theory_mean : float
    The isotropic (iid Gaussian) limit arccos(expected_cosine(q)).

See Also
--------
rotation_experiment : Returns it.

Examples
--------
>>> import numpy as np
>>> from qtoolkit.analysis import rotation_experiment
>>> res = rotation_experiment(np.sign, d=16, length_scales=[2.0], n_trials=4, n_rotations=2, rng=0)
>>> res.mean.shape
(1,)
"""


def _check_quantizer(quantizer):
    if not callable(quantizer):
        raise TypeError(f"quantizer must be a callable array -> array, got {describe(quantizer)}")


def _check_dims(dims):
    if np.ndim(dims) == 0:
        dims = [dims]
    dims = [check_int(d, "dims", low=1) for d in dims]
    if not dims:
        raise ValueError("dims must hold at least one dimension, got an empty sequence")
    return np.asarray(dims, dtype=np.int64)


def _quantize_rows(quantizer, X, vectorized):
    """Apply ``quantizer`` to each row of X (or once to X if ``vectorized``)."""
    if vectorized:
        Q = np.asarray(quantizer(X), dtype=np.float64)
        if Q.shape != X.shape:
            raise ValueError(
                f"quantizer must return an array of its input's shape {X.shape}, got {describe(Q)}"
            )
        return Q
    Q = np.empty_like(X)
    for i in range(X.shape[0]):
        qi = np.asarray(quantizer(X[i]), dtype=np.float64)
        if qi.shape != X[i].shape:
            raise ValueError(
                f"quantizer must return an array of its input's shape {X[i].shape}, "
                f"got {describe(qi)}"
            )
        Q[i] = qi
    return Q


def angle_experiment(
    quantizer: Callable[..., Any],
    distribution: DistributionLike = "gaussian",
    dims: int | Sequence[int] = (16, 64, 256, 1024, 4096),
    *,
    n_trials: int = 1000,
    vectorized: bool = False,
    n_nodes: int = 2**18,
    rng: RNGLike = None,
) -> AngleExperiment:
    r"""Monte Carlo distribution of angle(x, q(x)) for random vectors of several dimensions.

    Parameters
    ----------
    quantizer : callable
        ``q(x) -> array`` of ``x``'s shape; called on each 1-D vector of
        length d (or once per dimension on the ``(n_trials, d)`` batch if
        ``vectorized``).
    distribution : str, frozen scipy.stats distribution or 1-D array, default="gaussian"
        Entry distribution: ``"gaussian"``, ``"laplace"``, ``"uniform"``,
        ``"student-t"`` (unit variance), a frozen continuous distribution, or
        samples to resample from.
    dims : int or sequence of int, default=(16, 64, 256, 1024, 4096)
        Dimensions ``d >= 1``.
    n_trials : int, default=1000
        Random vectors per dimension, ``>= 2``.
    vectorized : bool, default=False
        Call ``quantizer`` once on the whole batch; only valid when it treats
        rows independently (any entrywise map such as ``numpy.sign``).
    n_nodes : int, default=2**18
        Quantile-grid size of the theory (:func:`expected_angle`).
    rng : None, int or numpy.random.Generator, default=None
        Source of randomness.

    Returns
    -------
    result : AngleExperiment
        Angles, their mean and standard deviation per dimension, and the theory.

    Raises
    ------
    TypeError
        If ``quantizer`` is not callable or an integer argument is not an integer.
    ValueError
        If a dimension is < 1, ``n_trials < 2``, or the quantizer changes the shape.

    See Also
    --------
    expected_angle : The limit and the delta-method spread.
    plot_angle_histograms : Histograms of the result against the theory.

    Notes
    -----
    For each d, ``n_trials`` vectors :math:`x \in \mathbb{R}^d` with iid
    entries are drawn and :math:`\theta = \angle(x, q(x))` measured; the mean
    tends to :math:`\arccos E[xq]/\sqrt{E[x^2]E[q^2]}` and the spread shrinks
    like :math:`1/\sqrt d`.

    References
    ----------
    .. [1] A. G. Anderson and C. P. Berg, "The high-dimensional geometry of
       binary neural networks", ICLR 2018.

    Examples
    --------
    >>> import numpy as np
    >>> from qtoolkit.analysis import angle_experiment
    >>> res = angle_experiment(np.sign, dims=[64, 4096], n_trials=200, vectorized=True, rng=0)
    >>> np.degrees(res.mean).round(0), round(float(np.degrees(res.theory_limit)), 1)
    (array([36., 37.]), 37.1)
    """
    _check_quantizer(quantizer)
    dist = as_distribution(distribution)
    dims = _check_dims(dims)
    n_trials = check_int(n_trials, "n_trials", low=2)
    rng = check_random_state(rng)
    angles = np.empty((dims.size, n_trials))
    for k, d in enumerate(dims):
        X = dist.rvs((n_trials, int(d)), rng)
        Q = _quantize_rows(quantizer, X, vectorized)
        angles[k] = angle(X, Q, axis=-1)
    theory = np.array(
        [tuple(expected_angle(quantizer, dist, d=int(d), n_nodes=n_nodes)) for d in dims]
    )
    limit = math.acos(expected_cosine(quantizer, dist, n_nodes=n_nodes))
    return AngleExperiment(
        dims,
        angles,
        np.nanmean(angles, axis=1),
        np.nanstd(angles, axis=1, ddof=1),
        theory[:, 0],
        theory[:, 1],
        limit,
    )


def dot_product_experiment(
    quantizer: Callable[..., Any],
    distribution: DistributionLike = "gaussian",
    d: int = 1024,
    *,
    n_outputs: int = 32,
    n_samples: int = 2000,
    activations: DistributionLike = "gaussian",
    rng: RNGLike = None,
) -> DotProductExperiment:
    r"""Monte Carlo dot-product proportionality: a.q(w) against a.w over random activations.

    Parameters
    ----------
    quantizer : callable
        ``q(w) -> array``, applied once to the ``(n_outputs, d)`` weight matrix
        (like a layer: a per-tensor scale sees the whole matrix).
    distribution : str, frozen scipy.stats distribution or 1-D array, default="gaussian"
        Distribution of the weight entries.
    d : int, default=1024
        Input dimension, ``>= 1``.
    n_outputs : int, default=32
        Number of weight rows (outputs), ``>= 1``.
    n_samples : int, default=2000
        Number of activation vectors, ``>= 3``.
    activations : str, scipy.stats distribution, 1-D or (n_samples, d) array, default="gaussian"
        Distribution of the iid activation entries, or the activations themselves.
    rng : None, int or numpy.random.Generator, default=None
        Source of randomness.

    Returns
    -------
    result : DotProductExperiment
        Measured ``r``, ``slope``, ``intercept`` per output, the exact
        isotropic correlation ``cosine`` per output, the limit ``theory`` and
        the dot products of the first output.

    Raises
    ------
    TypeError
        If ``quantizer`` is not callable or an integer argument is not an integer.
    ValueError
        If a size is out of range or the activations' shape does not match.

    See Also
    --------
    dot_product_proportionality : The measurement on given weights.
    expected_dot_product_fit : The limit.

    Notes
    -----
    The sample correlation of :math:`u = a\cdot w` and :math:`v = a\cdot q(w)`
    estimates :math:`\cos\angle(w, q(w))` for isotropic activations, with a
    standard error of about :math:`(1 - r^2)/\sqrt{n}`.

    References
    ----------
    .. [1] A. G. Anderson and C. P. Berg, "The high-dimensional geometry of
       binary neural networks", ICLR 2018.

    Examples
    --------
    >>> import numpy as np
    >>> from qtoolkit.analysis import dot_product_experiment
    >>> res = dot_product_experiment(np.sign, d=512, n_outputs=4, n_samples=1000, rng=0)
    >>> res.r.round(1), round(res.theory.r, 3)
    (array([0.8, 0.8, 0.8, 0.8]), 0.798)
    """
    _check_quantizer(quantizer)
    dist = as_distribution(distribution)
    d = check_int(d, "d", low=1)
    n_outputs = check_int(n_outputs, "n_outputs", low=1)
    n_samples = check_int(n_samples, "n_samples", low=3)
    rng = check_random_state(rng)
    W = dist.rvs((n_outputs, d), rng)
    if isinstance(activations, np.ndarray) and activations.ndim == 2:
        if activations.shape[1] != d:
            raise ValueError(
                f"activations must have shape (n_samples, {d}), got {describe(activations)}"
            )
        A = np.asarray(activations, dtype=np.float64)
    else:
        A = as_distribution(activations, "activations").rvs((n_samples, d), rng)
    fit = dot_product_proportionality(W, quantizer, A)
    Q = np.asarray(quantizer(W), dtype=np.float64)
    cos = np.sum(W * Q, axis=1) / (np.linalg.norm(W, axis=1) * np.linalg.norm(Q, axis=1))
    theory = expected_dot_product_fit(quantizer, dist)
    return DotProductExperiment(fit.r, fit.slope, fit.intercept, cos, theory, A @ W[0], A @ Q[0])


#: Default correlations of :func:`arcsine_experiment` (nine values from -0.95 to 0.95).
_ARCSINE_RHO = tuple(np.linspace(-0.95, 0.95, 9).tolist())


def arcsine_experiment(
    quantizer: Callable[..., Any] = np.sign,
    rho: ArrayLike = _ARCSINE_RHO,
    d: int = 1024,
    *,
    n_trials: int = 200,
    vectorized: bool = False,
    rng: RNGLike = None,
) -> ArcsineExperiment:
    r"""Monte Carlo arcsine law: cosine between q(x) and q(y) for correlated Gaussian pairs.

    Parameters
    ----------
    quantizer : callable, default=numpy.sign
        ``q(x) -> array`` of ``x``'s shape, called on each vector (or on the
        ``(n_trials, d)`` batch if ``vectorized``).
    rho : array_like of shape (n_rho,), default=numpy.linspace(-0.95, 0.95, 9)
        Correlations in ``[-1, 1]``.
    d : int, default=1024
        Dimension, ``>= 1``.
    n_trials : int, default=200
        Pairs per correlation, ``>= 2``.
    vectorized : bool, default=False
        Call ``quantizer`` once per batch (rows must be independent).
    rng : None, int or numpy.random.Generator, default=None
        Source of randomness.

    Returns
    -------
    result : ArcsineExperiment
        Mean cosines before and after quantization, and the arcsine law.

    Raises
    ------
    TypeError
        If ``quantizer`` is not callable or an integer argument is not an integer.
    ValueError
        If ``rho`` leaves ``[-1, 1]`` or a size is out of range.

    See Also
    --------
    arcsine_law : The closed form.
    pairwise_angle_preservation : The same measurement on given vectors.

    Notes
    -----
    With :math:`x, z \sim N(0, I_d)` independent and
    :math:`y = \rho x + \sqrt{1-\rho^2} z`, each coordinate pair has
    correlation :math:`\rho`, and
    :math:`\cos\angle(\operatorname{sign}x, \operatorname{sign}y) =
    \frac1d\sum_i \operatorname{sign}x_i\operatorname{sign}y_i \to \frac2\pi\arcsin\rho`.

    References
    ----------
    .. [1] W. F. Sheppard, "On the application of the theory of error to cases
       of normal distribution and normal correlation", Phil. Trans. R. Soc. A
       192, 1899.

    Examples
    --------
    >>> import numpy as np
    >>> from qtoolkit.analysis import arcsine_experiment
    >>> res = arcsine_experiment(np.sign, rho=[0.0, 0.5], d=4096, n_trials=50, rng=0)
    >>> np.abs(res.cos_after - res.theory).max() < 0.02
    np.True_
    """
    _check_quantizer(quantizer)
    rho = np.atleast_1d(np.asarray(rho, dtype=np.float64))
    theory = arcsine_law(rho)  # validates the range
    d = check_int(d, "d", low=1)
    n_trials = check_int(n_trials, "n_trials", low=2)
    rng = check_random_state(rng)
    before = np.empty(rho.size)
    after = np.empty(rho.size)
    after_sd = np.empty(rho.size)
    for k, r in enumerate(rho):
        X = rng.standard_normal((n_trials, d))
        Y = r * X + math.sqrt(max(1.0 - r * r, 0.0)) * rng.standard_normal((n_trials, d))
        QX = _quantize_rows(quantizer, X, vectorized)
        QY = _quantize_rows(quantizer, Y, vectorized)
        before[k] = np.mean(np.cos(angle(X, Y)))
        ca = np.cos(angle(QX, QY))
        after[k] = np.nanmean(ca)
        after_sd[k] = np.nanstd(ca, ddof=1)
    return ArcsineExperiment(rho, before, after, after_sd, theory)


def _random_rotation(d, rng):
    """A Haar-distributed orthogonal matrix (QR of a Gaussian matrix, signs fixed)."""
    G = rng.standard_normal((d, d))
    Qm, R = np.linalg.qr(G)
    return Qm * np.where(np.diag(R) < 0, -1.0, 1.0)


def _covariance_factor(d, length, covariance):
    """L with L L^T = Sigma for the covariance family (eigen-decomposition, robust if singular)."""
    idx = np.arange(d, dtype=np.float64)
    if covariance == "exponential":
        S = np.exp(-np.abs(idx[:, None] - idx[None, :]) / length)
        lam, U = np.linalg.eigh(S)
        return U * np.sqrt(np.clip(lam, 0.0, None))
    return np.diag(np.exp(-idx / (2.0 * length)))  # variances exp(-i / length)


def rotation_experiment(
    quantizer: Callable[..., Any] = np.sign,
    d: int = 256,
    length_scales: Sequence[float] = (0.5, 2.0, 8.0, 32.0, 128.0),
    *,
    covariance: Literal["exponential", "exponential-spectrum"] = "exponential",
    n_trials: int = 200,
    n_rotations: int = 10,
    vectorized: bool = False,
    rng: RNGLike = None,
) -> RotationExperiment:
    r"""Angle(x, q(x)) for correlated Gaussian vectors, with and without a random rotation.

    Parameters
    ----------
    quantizer : callable, default=numpy.sign
        ``q(x) -> array`` of ``x``'s shape, called on each vector (or on the
        batch if ``vectorized``).
    d : int, default=256
        Dimension, ``>= 1``.
    length_scales : sequence of float, default=(0.5, 2.0, 8.0, 32.0, 128.0)
        Positive correlation lengths :math:`\ell`.
    covariance : {"exponential", "exponential-spectrum"}, default="exponential"
        ``"exponential"``: :math:`\Sigma_{ij} = e^{-|i-j|/\ell}` (stationary,
        unit variances); ``"exponential-spectrum"``: independent coordinates
        with variances :math:`e^{-i/\ell}` (an anisotropic vector expressed in
        its principal axes).
    n_trials : int, default=200
        Vectors per length scale, ``>= 2``.
    n_rotations : int, default=10
        Haar rotations per length scale, in ``[2, n_trials]``; the vectors
        are split evenly among them.
    vectorized : bool, default=False
        Call ``quantizer`` once per batch (rows must be independent).
    rng : None, int or numpy.random.Generator, default=None
        Source of randomness.

    Returns
    -------
    result : RotationExperiment
        Mean and standard deviation of the angle without and with the
        rotation, and the isotropic limit.

    Raises
    ------
    TypeError
        If ``quantizer`` is not callable or an integer argument is not an integer.
    ValueError
        If ``covariance`` is unknown, a length scale is not positive, or a
        size is out of range.

    See Also
    --------
    angle_experiment : The isotropic case.

    Notes
    -----
    :math:`x = L z` with :math:`LL^T = \Sigma` and :math:`z \sim N(0, I)`;
    the rotated vector is :math:`Rx` for a Haar-random orthogonal
    :math:`R` (``n_rotations`` of them per length scale). Rotation spreads the energy evenly
    over the coordinates, so the angle returns to the isotropic limit
    :math:`\arccos\sqrt{2/\pi}` for the sign. Without it, an anisotropic
    spectrum makes the angle larger (a few large coordinates dominate), and a
    long stationary correlation makes it smaller (the entries of one vector
    vary little).

    References
    ----------
    .. [1] A. G. Anderson and C. P. Berg, "The high-dimensional geometry of
       binary neural networks", ICLR 2018.

    Examples
    --------
    >>> import numpy as np
    >>> from qtoolkit.analysis import rotation_experiment
    >>> res = rotation_experiment(np.sign, d=128, length_scales=[16.0],
    ...                           covariance="exponential-spectrum", n_trials=50, rng=0)
    >>> bool(res.mean[0] > res.mean_rotated[0])
    True
    """
    _check_quantizer(quantizer)
    d = check_int(d, "d", low=1)
    n_trials = check_int(n_trials, "n_trials", low=2)
    if covariance not in ("exponential", "exponential-spectrum"):
        raise ValueError(
            f"covariance must be 'exponential' or 'exponential-spectrum', got {covariance!r}"
        )
    scales = np.atleast_1d(np.asarray(length_scales, dtype=np.float64))
    if scales.size == 0 or not np.all(np.isfinite(scales)) or np.any(scales <= 0):
        raise ValueError(
            f"length_scales must be positive and finite, got {describe(length_scales)}"
        )
    n_rotations = check_int(n_rotations, "n_rotations", low=2, high=n_trials)
    rng = check_random_state(rng)
    out = np.empty((5, scales.size))
    groups = np.array_split(np.arange(n_trials), n_rotations)
    for k, ell in enumerate(scales):
        # Small factorizations: one BLAS thread is fastest, and immune to oversubscription.
        with threadpool_limits(limits=1, user_api="blas"):
            L = _covariance_factor(d, float(ell), covariance)
            X = rng.standard_normal((n_trials, d)) @ L.T
            XR = np.empty_like(X)
            for g in groups:
                XR[g] = X[g] @ _random_rotation(d, rng).T
        a = angle(X, _quantize_rows(quantizer, X, vectorized))
        b = angle(XR, _quantize_rows(quantizer, XR, vectorized))
        means = np.array([np.nanmean(b[g]) for g in groups])
        out[:, k] = (
            np.nanmean(a),
            np.nanstd(a, ddof=1),
            np.nanmean(b),
            np.nanstd(b, ddof=1),
            np.std(means, ddof=1) / math.sqrt(n_rotations),
        )
    theory = math.acos(expected_cosine(quantizer, "gaussian"))
    return RotationExperiment(scales, out[0], out[1], out[2], out[3], out[4], theory)
