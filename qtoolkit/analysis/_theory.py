"""Theory: the d -> infinity cosine of an entrywise quantizer, its 1/sqrt(d) spread, arcsine law.

The integrals are computed in NumPy float64 on a quantile grid of the
distribution: with ``x_i = F^{-1}((i - 1/2)/n)``, the midpoint rule
``E[g(X)] ~ mean_i g(x_i)`` integrates in probability space, so heavy tails
need no truncation and a quantizer whose scale or threshold is estimated from
its input (XNOR's E|w|, TWN's 0.7 E|w|) sees the population values of those
statistics. The quantizer is called once on the whole grid.
"""

from __future__ import annotations

import math
import numbers
from collections import namedtuple
from collections.abc import Callable
from typing import Any

import numpy as np

from .._array import check_int, describe
from .._typing import ArrayLike, DistributionLike, NDArray
from ._distributions import as_distribution
from ._measures import DotProductFit

MAX_NODES = 1 << 24  # largest quantile grid (128 MiB of float64)

__all__ = [
    "AngleMoments",
    "arcsine_law",
    "expected_angle",
    "expected_cosine",
    "expected_dot_product_fit",
    "sign_cosine_gaussian",
]

AngleMoments = namedtuple("AngleMoments", ["mean", "std"])
AngleMoments.__doc__ = """Mean and standard deviation of the angle between x and q(x).

Parameters
----------
mean : float
    The mean angle at dimension ``d`` to second order in 1/d, or the
    d -> infinity limit ``arccos(expected_cosine)`` when no ``d`` was given.
std : float
    Its delta-method standard deviation at dimension ``d``, proportional to
    1/sqrt(d) (NaN when no ``d`` was given).

See Also
--------
expected_angle : Returns it.

Examples
--------
>>> from qtoolkit.analysis import AngleMoments
>>> AngleMoments(mean=0.647, std=0.011).std
0.011
"""

DEFAULT_NODES = 2**20


def _check_quantizer(quantizer):
    if not callable(quantizer):
        raise TypeError(f"quantizer must be a callable array -> array, got {describe(quantizer)}")


_GRIDS = {}


def _grid(dist, n):
    """Quantile grid of a named distribution, cached (ppf of Student's t is slow)."""
    if dist.samples is not None or dist.name not in ("gaussian", "laplace", "uniform", "student-t"):
        return dist.quantile_grid(n)
    key = (dist.name, n)
    if key not in _GRIDS:
        if len(_GRIDS) >= 4:  # at most 4 grids (32 MB at the default size)
            _GRIDS.clear()
        _GRIDS[key] = dist.quantile_grid(n)
        _GRIDS[key].setflags(write=False)
    return _GRIDS[key]


def _moments(quantizer, distribution, n_nodes):
    """The grid x and q(x) for the theory (float64)."""
    _check_quantizer(quantizer)
    dist = as_distribution(distribution)
    n_nodes = check_int(n_nodes, "n_nodes", low=2, high=MAX_NODES)
    x = _grid(dist, n_nodes)
    q = np.asarray(quantizer(x.copy()), dtype=np.float64)
    if q.shape != x.shape:
        raise ValueError(
            f"quantizer must return an array of its input's shape {x.shape}, got {describe(q)}"
        )
    if not np.all(np.isfinite(q)):
        raise ValueError("quantizer returned NaN or Inf on the quantile grid of the distribution")
    if np.array_equal(q, x):
        # e.g. binarize(w, scale="mean", axis=0): on a 1-D grid every entry is its own channel,
        # gets its own scale |x_i|, and comes back unchanged, so the "theory" would say cos = 1
        raise ValueError(
            "quantizer returned the quantile grid unchanged: the theory needs a quantizer whose "
            "scales and thresholds are per tensor (entrywise in the limit); a per-channel "
            "quantizer "
            "(axis=0) treats each grid point as its own channel"
        )
    return x, q


def _cos_from(x, q):
    m1 = float(np.mean(x * q))
    m2 = float(np.mean(x * x))
    m3 = float(np.mean(q * q))
    if m3 == 0.0:
        raise ValueError("quantizer maps the whole distribution to 0: the cosine is undefined")
    return m1, m2, m3, min(1.0, max(-1.0, m1 / math.sqrt(m2 * m3)))


def expected_cosine(
    quantizer: Callable[..., Any],
    distribution: DistributionLike = "gaussian",
    *,
    n_nodes: int = DEFAULT_NODES,
) -> float:
    r"""The d -> infinity limit of cos angle(x, q(x)) for iid entries, by numerical integration.

    Parameters
    ----------
    quantizer : callable
        ``q(x) -> array`` on a 1-D float64 NumPy array; entrywise in the limit
        (a scale or threshold estimated from the input is fine: the grid has
        the population's statistics).
    distribution : str, frozen scipy.stats distribution or 1-D array, default="gaussian"
        ``"gaussian"``, ``"laplace"``, ``"uniform"``, ``"student-t"`` (unit
        variance; t with 5 degrees of freedom), any continuous frozen
        distribution with finite variance, or samples (their empirical
        distribution).
    n_nodes : int, default=2**20
        Size of the quantile grid, at most ``2**24`` (ignored for samples,
        which are used as they are).

    Returns
    -------
    c : float
        :math:`E[x q(x)] / \sqrt{E[x^2] E[q(x)^2]}`.

    Raises
    ------
    TypeError
        If ``quantizer`` is not callable or ``distribution`` is of the wrong type.
    ValueError
        If ``distribution`` is unknown or has infinite variance, ``quantizer``
        changes the shape, returns NaN/Inf, returns only zeros, or returns the
        grid unchanged (a per-channel quantizer, which the d -> infinity theory
        does not cover).

    See Also
    --------
    expected_angle : The angle and its 1/sqrt(d) spread.
    sign_cosine_gaussian : The closed form sqrt(2/pi) for the sign of a Gaussian.
    angle_preservation : The measured angle.

    Notes
    -----
    For a vector of d iid entries, by the law of large numbers

    .. math:: \cos\angle(x, q(x)) = \frac{\frac1d\sum x_i q(x_i)}
              {\sqrt{\frac1d\sum x_i^2 \, \frac1d\sum q(x_i)^2}}
              \to \frac{E[x q(x)]}{\sqrt{E[x^2] E[q(x)^2]}}.

    The expectations are midpoint sums over the quantiles
    :math:`x_i = F^{-1}((i - \tfrac12)/n)`; a jump of ``q`` costs at most
    one cell of probability :math:`1/n`. For the sign of a Gaussian the limit
    is :math:`\sqrt{2/\pi}`; for Gaussian inputs Stein's lemma gives
    :math:`E[x q(x)] = \sigma^2 E[q'(x)]`; for centroid (MMSE) quantizers
    such as Lloyd-Max, :math:`\cos^2 = 1 - D/E[x^2]`.

    A quantizer whose statistics do not converge as d grows (a min-max
    range, ``max|w|`` on an unbounded distribution) has no limit; the value
    returned then describes a vector of ``n_nodes`` entries, so pass
    ``n_nodes=d`` to predict dimension ``d``.

    References
    ----------
    .. [1] A. G. Anderson and C. P. Berg, "The high-dimensional geometry of
       binary neural networks", ICLR 2018.
    .. [2] C. Stein, "Estimation of the mean of a multivariate normal
       distribution", Annals of Statistics 9(6), 1981.

    Examples
    --------
    >>> import numpy as np
    >>> from qtoolkit.analysis import expected_cosine
    >>> round(expected_cosine(np.sign), 6), round(float(np.sqrt(2 / np.pi)), 6)
    (0.797885, 0.797885)
    >>> round(expected_cosine(np.sign, "uniform"), 4)  # E|x| / sqrt(E x^2) = sqrt(3)/2
    0.866
    """
    x, q = _moments(quantizer, distribution, n_nodes)
    return _cos_from(x, q)[3]


def expected_angle(
    quantizer: Callable[..., Any],
    distribution: DistributionLike = "gaussian",
    d: int | None = None,
    *,
    degrees: bool = False,
    n_nodes: int = DEFAULT_NODES,
) -> AngleMoments:
    r"""Limit of the angle between x and q(x) and its delta-method spread at dimension d.

    Parameters
    ----------
    quantizer : callable
        ``q(x) -> array`` on a 1-D float64 NumPy array, as in :func:`expected_cosine`.
    distribution : str, frozen scipy.stats distribution or 1-D array, default="gaussian"
        The entry distribution, as in :func:`expected_cosine`.
    d : int or None, default=None
        Dimension of the vectors (``d >= 1``); ``None`` gives only the limit.
    degrees : bool, default=False
        Return degrees instead of radians.
    n_nodes : int, default=2**20
        Size of the quantile grid.

    Returns
    -------
    moments : AngleMoments
        ``(mean, std)``: the mean angle at dimension ``d`` to second order
        (:math:`\arccos c_\infty` if ``d`` is None) and its standard
        deviation at ``d`` (NaN if ``d`` is None).

    Raises
    ------
    TypeError
        If ``quantizer`` is not callable or ``d`` is not an integer.
    ValueError
        If ``d < 1``, or for the reasons of :func:`expected_cosine`.

    See Also
    --------
    expected_cosine : The limit of the cosine.
    angle_experiment : The Monte Carlo distribution of the angle.

    Notes
    -----
    With :math:`Z = (xq, x^2, q^2)` per entry, mean :math:`\mu` and
    covariance :math:`\Sigma`, the cosine is :math:`g(\bar Z)`,
    :math:`g(a, b, c) = a/\sqrt{bc}`, and the delta method gives

    .. math:: \operatorname{Var}\cos \approx \frac{\nabla g^T \Sigma \nabla g}{d},
              \quad \nabla g = \cos\,(1/\mu_1, -1/(2\mu_2), -1/(2\mu_3)),
              \quad \operatorname{sd}\,\theta \approx
              \frac{\sqrt{\operatorname{Var}\cos}}{\sqrt{1 - \cos^2}}.

    For the sign of a Gaussian this is :math:`\sqrt{(\pi-3)/(\pi-2)}/\sqrt d`
    radians. With :math:`h = \arccos \circ g` and its Hessian :math:`H`
    (central differences), the mean at dimension ``d`` is
    :math:`h(\mu) + \operatorname{tr}(H\Sigma)/(2d)`: the limit
    :math:`\arccos c_\infty` plus an :math:`O(1/d)` bias. A scale or threshold estimated from
    the vector adds variance that the formula ignores (none for a pure scale,
    since the cosine does not see it).

    References
    ----------
    .. [1] A. G. Anderson and C. P. Berg, "The high-dimensional geometry of
       binary neural networks", ICLR 2018.

    Examples
    --------
    >>> import numpy as np
    >>> from qtoolkit.analysis import expected_angle
    >>> m = expected_angle(np.sign, "gaussian", d=1024, degrees=True)
    >>> round(m.mean, 2), round(m.std, 3)
    (37.05, 0.631)
    """
    if d is not None:
        d = check_int(d, "d", low=1)
    if not isinstance(degrees, (bool, np.bool_)):
        raise TypeError(f"degrees must be a bool, got {describe(degrees)}")
    x, q = _moments(quantizer, distribution, n_nodes)
    m1, m2, m3, c = _cos_from(x, q)
    mean = math.acos(c)
    std = float("nan")
    if d is not None:
        z = np.stack([x * q, x * x, q * q])
        sigma = np.cov(z, bias=True)
        if m1 == 0.0:
            grad = np.array([1.0 / math.sqrt(m2 * m3), 0.0, 0.0])
        else:
            grad = c * np.array([1.0 / m1, -0.5 / m2, -0.5 / m3])
        var_c = max(float(grad @ sigma @ grad), 0.0) / d
        std = math.sqrt(var_c / (1.0 - c * c)) if c * c < 1.0 - 1e-12 else 0.0
        mean += _second_order_bias(np.array([m1, m2, m3]), sigma) / d
    if degrees:
        mean, std = math.degrees(mean), math.degrees(std)
    return AngleMoments(mean, std)


def _angle_of_moments(m):
    return math.acos(min(1.0, max(-1.0, m[0] / math.sqrt(m[1] * m[2]))))


def _second_order_bias(mu, sigma):
    """tr(H Sigma) / 2 for h(m) = arccos(m1 / sqrt(m2 m3)), H by central differences."""
    if abs(mu[0]) >= math.sqrt(mu[1] * mu[2]) * (1 - 1e-9):
        return 0.0  # q(x) proportional to x: the angle is 0 at every d
    e = 1e-3 * np.maximum(np.abs(mu), 1e-12)
    H = np.zeros((3, 3))
    for i in range(3):
        for j in range(3):
            ei = np.zeros(3)
            ej = np.zeros(3)
            ei[i] = e[i]
            ej[j] = e[j]
            H[i, j] = (
                _angle_of_moments(mu + ei + ej)
                - _angle_of_moments(mu + ei - ej)
                - _angle_of_moments(mu - ei + ej)
                + _angle_of_moments(mu - ei - ej)
            ) / (4.0 * e[i] * e[j])
    return 0.5 * float(np.sum(H * sigma))


def expected_dot_product_fit(
    quantizer: Callable[..., Any],
    distribution: DistributionLike = "gaussian",
    *,
    n_nodes: int = DEFAULT_NODES,
) -> DotProductFit:
    r"""Limit of the dot-product fit a.q(w) ~ slope * a.w for isotropic activations.

    Parameters
    ----------
    quantizer : callable
        ``q(x) -> array`` on a 1-D float64 NumPy array, as in :func:`expected_cosine`.
    distribution : str, frozen scipy.stats distribution or 1-D array, default="gaussian"
        Distribution of the weight entries.
    n_nodes : int, default=2**20
        Size of the quantile grid.

    Returns
    -------
    fit : DotProductFit
        ``(r, slope, intercept)`` as floats: the correlation equals the
        expected cosine, the slope is :math:`E[wq(w)]/E[w^2]`, the intercept 0.

    Raises
    ------
    TypeError
        If ``quantizer`` is not callable or ``distribution`` is of the wrong type.
    ValueError
        For the reasons of :func:`expected_cosine`.

    See Also
    --------
    dot_product_proportionality : The measured fit.
    dot_product_experiment : The fit over random weights and activations.

    Notes
    -----
    For activations with :math:`E[a] = 0` and :math:`E[aa^T] = s^2 I`,
    :math:`\operatorname{cov}(a\cdot w, a\cdot q) = s^2\, w\cdot q` and
    :math:`\operatorname{var}(a\cdot w) = s^2\|w\|^2`, so for a fixed ``w``

    .. math:: r = \frac{w\cdot q}{\|w\|\|q\|} = \cos\angle(w, q), \qquad
              \text{slope} = \frac{w \cdot q}{\|w\|^2},

    exactly; with iid weight entries these tend to
    :math:`E[wq]/\sqrt{E[w^2]E[q^2]}` and :math:`E[wq]/E[w^2]`.

    References
    ----------
    .. [1] A. G. Anderson and C. P. Berg, "The high-dimensional geometry of
       binary neural networks", ICLR 2018.

    Examples
    --------
    >>> import numpy as np
    >>> from qtoolkit.analysis import expected_dot_product_fit
    >>> fit = expected_dot_product_fit(np.sign)
    >>> round(fit.r, 4), round(fit.slope, 4)  # both sqrt(2/pi) for unit variance
    (0.7979, 0.7979)
    """
    x, q = _moments(quantizer, distribution, n_nodes)
    m1, m2, _, c = _cos_from(x, q)
    return DotProductFit(c, m1 / m2, 0.0)


def arcsine_law(rho: ArrayLike) -> float | NDArray[np.float64]:
    r"""Expected product of the signs of two correlated Gaussians, (2/pi) arcsin(rho).

    Parameters
    ----------
    rho : float or array_like
        Correlation coefficient(s) in ``[-1, 1]``.

    Returns
    -------
    value : float or ndarray
        :math:`E[\operatorname{sign}X\operatorname{sign}Y] = \frac{2}{\pi}\arcsin\rho`;
        also the limit of :math:`\cos\angle(\operatorname{sign}x, \operatorname{sign}y)`
        for Gaussian vectors whose cosine is ``rho``.

    Raises
    ------
    TypeError
        If ``rho`` is not real.
    ValueError
        If ``rho`` is NaN or outside ``[-1, 1]``.

    See Also
    --------
    pairwise_angle_preservation : Measured angles between pairs.
    arcsine_experiment : The Monte Carlo check.

    Notes
    -----
    For a standard bivariate normal with correlation :math:`\rho`
    (Sheppard 1899; Grothendieck's identity),

    .. math:: E[\operatorname{sign}X \operatorname{sign}Y] = \frac{2}{\pi}\arcsin\rho,
              \qquad P[\operatorname{sign}X \ne \operatorname{sign}Y] = \frac{\theta}{\pi},
              \quad \theta = \arccos\rho,

    the random-hyperplane rounding of Goemans and Williamson (and SimHash).

    References
    ----------
    .. [1] W. F. Sheppard, "On the application of the theory of error to cases
       of normal distribution and normal correlation", Phil. Trans. R. Soc. A
       192, 1899.
    .. [2] M. X. Goemans and D. P. Williamson, "Improved approximation
       algorithms for maximum cut and satisfiability problems using
       semidefinite programming", JACM 42(6), 1995.

    Examples
    --------
    >>> from qtoolkit.analysis import arcsine_law
    >>> float(arcsine_law(0.5))  # (2/pi)(pi/6) = 1/3
    0.3333...
    >>> arcsine_law([-1.0, 0.0, 1.0])
    array([-1.,  0.,  1.])
    """
    scalar = isinstance(rho, numbers.Real) and not isinstance(rho, bool)
    try:
        r = np.asarray(rho, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"rho must be a real number or array of them, got {describe(rho)}") from exc
    if np.any(np.isnan(r)) or np.any(np.abs(r) > 1.0):
        raise ValueError(f"rho must lie in [-1, 1], got {describe(rho)}")
    out = (2.0 / np.pi) * np.arcsin(r)
    return float(out) if scalar else out


def sign_cosine_gaussian() -> float:
    r"""The closed form sqrt(2/pi) of the limiting cosine between a Gaussian vector and its sign.

    Returns
    -------
    c : float
        :math:`\sqrt{2/\pi} \approx 0.7979`, the cosine of 37.07 degrees.

    See Also
    --------
    expected_cosine : The same limit for any quantizer and distribution.

    Notes
    -----
    For :math:`x \sim N(0, I_d)`,

    .. math:: \cos\angle(x, \operatorname{sign}x) = \frac{\sum_i |x_i|}{\sqrt d\,\|x\|}
              \to \frac{E|x|}{\sqrt{E x^2}} = \sqrt{2/\pi}.

    References
    ----------
    .. [1] A. G. Anderson and C. P. Berg, "The high-dimensional geometry of
       binary neural networks", ICLR 2018.

    Examples
    --------
    >>> import math
    >>> from qtoolkit.analysis import sign_cosine_gaussian
    >>> round(math.degrees(math.acos(sign_cosine_gaussian())), 2)
    37.07
    """
    return math.sqrt(2.0 / math.pi)
