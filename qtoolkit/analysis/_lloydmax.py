"""Lloyd-Max quantizers: the MSE-optimal scalar quantizer of a distribution (reference codebook)."""

from __future__ import annotations

import math

import numpy as np

from .._array import MAX_ITER, array_namespace, check_int, describe
from .._typing import ArrayLike, ArrayT, DistributionLike
from .._validation import check_tol
from ._distributions import as_distribution

__all__ = ["LloydMaxQuantizer", "lloyd_max"]


class LloydMaxQuantizer:
    r"""A fixed scalar codebook with its decision thresholds: the result of :func:`lloyd_max`.

    Calling it maps every entry of an array to its nearest level (entrywise,
    any Array API namespace, the input's dtype).

    Parameters
    ----------
    levels : array_like of shape (n_levels,)
        Increasing reconstruction levels.
    thresholds : array_like of shape (n_levels - 1,)
        Increasing decision thresholds; level ``j`` covers
        ``(thresholds[j-1], thresholds[j]]``.
    mse : float
        Mean squared error on the distribution it was designed for.
    distribution : str
        Name of that distribution.
    n_iter : int
        Lloyd iterations run.
    converged : bool
        Whether the levels moved less than the tolerance at the end.

    Attributes
    ----------
    levels : ndarray of shape (n_levels,)
        The levels, float64.
    thresholds : ndarray of shape (n_levels - 1,)
        The thresholds, float64.
    mse : float
        The design distortion.
    distribution : str
        The design distribution's name.
    n_iter : int
        Lloyd iterations run.
    converged : bool
        Convergence flag.

    See Also
    --------
    lloyd_max : Design the quantizer for a distribution.

    Notes
    -----
    :math:`q(x) = c_j` for :math:`t_{j-1} < x \le t_j`, with
    :math:`t_0 = -\infty`, :math:`t_n = +\infty`.

    References
    ----------
    .. [1] J. Max, "Quantizing for minimum distortion", IRE Transactions on
       Information Theory 6(1), 1960.

    Examples
    --------
    >>> import numpy as np
    >>> from qtoolkit.analysis import LloydMaxQuantizer
    >>> q = LloydMaxQuantizer([-1.0, 1.0], [0.0], mse=0.0, distribution="toy")
    >>> q(np.array([-0.3, 0.0, 2.5]))
    array([-1., -1.,  1.])
    """

    def __init__(
        self,
        levels: ArrayLike,
        thresholds: ArrayLike,
        mse: float,
        distribution: str,
        n_iter: int = 0,
        converged: bool = True,
    ) -> None:
        self.levels = np.asarray(levels, dtype=np.float64)
        self.thresholds = np.asarray(thresholds, dtype=np.float64)
        self.mse = float(mse)
        self.distribution = distribution
        self.n_iter = int(n_iter)
        self.converged = bool(converged)

    @property
    def n_levels(self) -> int:
        """Number of levels.

        Examples
        --------
        >>> from qtoolkit.analysis import lloyd_max
        >>> lloyd_max(4).n_levels
        4
        """
        return self.levels.shape[0]

    def __call__(self, x: ArrayT) -> ArrayT:
        """Quantize every entry of ``x`` to its level.

        Parameters
        ----------
        x : array
            Real floating array of any shape and any Array API namespace.

        Returns
        -------
        q : array
            The level of each entry's cell, same shape, dtype and namespace as ``x``.

        Examples
        --------
        >>> import numpy as np
        >>> from qtoolkit.analysis import lloyd_max
        >>> lloyd_max(2)(np.array([-0.1, 3.0])).round(4)
        array([-0.7979,  0.7979])
        """
        xp = array_namespace(x)
        if not hasattr(x, "dtype") or not xp.isdtype(x.dtype, "real floating"):
            raise TypeError(f"x must be a real floating array, got {describe(x)}")
        t = xp.asarray(self.thresholds, dtype=x.dtype)
        levels = xp.asarray(self.levels, dtype=x.dtype)
        if t.shape[0] == 0:
            return xp.zeros_like(x) + levels[0]
        shape = x.shape
        idx = xp.searchsorted(t, xp.reshape(x, (-1,)), side="left")
        return xp.reshape(xp.take(levels, idx), shape)

    def __repr__(self):
        return (
            f"LloydMaxQuantizer(n_levels={self.n_levels}, distribution={self.distribution!r}, "
            f"mse={self.mse:.6g})"
        )


def _initial_levels(dist, k):
    if dist.samples is not None:
        return np.quantile(dist.samples, (np.arange(k) + 0.5) / k)
    if dist.name in ("gaussian", "norm") and not dist.frozen.args:
        # High-resolution optimum (Panter & Dite): point density ~ f^(1/3),
        # a Gaussian with 3x the variance.
        loc = float(dist.frozen.kwds.get("loc", 0.0))
        scale = float(dist.frozen.kwds.get("scale", 1.0))
        from scipy.stats import norm

        return loc + scale * math.sqrt(3.0) * norm.ppf((np.arange(k) + 0.5) / k)
    return dist.quantile_grid(k)


def lloyd_max(
    n_levels: int,
    distribution: DistributionLike = "gaussian",
    *,
    tol: float = 1e-12,
    max_iter: int = 20000,
) -> LloydMaxQuantizer:
    r"""Design the MSE-optimal scalar quantizer of a distribution by the Lloyd-Max iteration.

    Parameters
    ----------
    n_levels : int
        Number of reconstruction levels, in ``[1, 2**16]``.
    distribution : str, frozen scipy.stats distribution or 1-D array, default="gaussian"
        ``"gaussian"``, ``"laplace"``, ``"uniform"``, ``"student-t"`` (unit
        variance), any continuous frozen distribution with finite variance,
        or samples (then this is Lloyd's k-means on the samples, a local optimum).
    tol : float, default=1e-12
        Stop when no level moves more than ``tol`` times the standard deviation.
    max_iter : int, default=20000
        Maximum number of iterations. At most ``10**6``.

    Returns
    -------
    quantizer : LloydMaxQuantizer
        Levels, thresholds and MSE; callable on arrays.

    Raises
    ------
    TypeError
        If ``n_levels`` or ``max_iter`` is not an integer, ``tol`` is not a
        real number, or ``distribution`` is of the wrong type.
    ValueError
        If ``n_levels < 1``, ``tol < 0``, or ``distribution`` is unknown or
        has infinite variance.

    See Also
    --------
    expected_cosine : Its cosine, :math:`\sqrt{1 - D/E[x^2]}`.

    Notes
    -----
    Lloyd's Method I alternates the two optimality conditions of Max (1960):
    thresholds halfway between levels, levels at the centroids of their cells,

    .. math:: t_j = \frac{c_j + c_{j+1}}{2}, \qquad
              c_j = E[X \mid t_{j-1} < X \le t_j]
                  = \frac{\int_{t_{j-1}}^{t_j} x f(x)\,dx}{F(t_j) - F(t_{j-1})},

    with the partial moments in closed form for the named distributions
    (numerical quadrature otherwise), until the levels stop moving. The MSE is
    :math:`D = E[X^2] - 2\sum_j c_j M_j + \sum_j c_j^2 P_j`. For a log-concave
    density (Gaussian, Laplace, uniform) the fixed point is unique, hence the
    global optimum (Fleischer 1964). The Gaussian start is the high-resolution
    optimum (point density proportional to :math:`f^{1/3}`).

    References
    ----------
    .. [1] J. Max, "Quantizing for minimum distortion", IRE Transactions on
       Information Theory 6(1), 1960.
    .. [2] S. P. Lloyd, "Least squares quantization in PCM", IEEE Transactions
       on Information Theory 28(2), 1982 (Bell Labs memo, 1957).
    .. [3] P. E. Fleischer, "Sufficient conditions for achieving minimum
       distortion in a quantizer", IEEE Int. Conv. Rec., 1964.

    Examples
    --------
    >>> from qtoolkit.analysis import lloyd_max
    >>> q = lloyd_max(4)
    >>> q.levels.round(4), q.thresholds.round(4) + 0.0, round(q.mse, 4)
    (array([-1.5104, -0.4528,  0.4528,  1.5104]), array([-0.9816,  0.    ,  0.9816]), 0.1175)
    """
    n_levels = check_int(n_levels, "n_levels", low=1, high=1 << 16)
    max_iter = check_int(max_iter, "max_iter", low=1, high=MAX_ITER)
    tol = check_tol(tol)
    dist = as_distribution(distribution)
    scale = math.sqrt(dist.variance())
    c = np.sort(np.asarray(_initial_levels(dist, n_levels), dtype=np.float64))
    converged = False
    n_iter = 0
    for _ in range(max_iter):
        n_iter += 1
        edges = np.concatenate(([-np.inf], (c[:-1] + c[1:]) / 2.0, [np.inf]))
        P = np.diff(dist.cdf(edges))
        M = np.diff(dist.partial_moment(edges))
        new = np.where(P > 0, M / np.where(P > 0, P, 1.0), c)
        step = float(np.max(np.abs(new - c)))
        c = np.sort(new)
        if step <= tol * scale:
            converged = True
            break
    c = c + 0.0  # no negative zeros
    t = (c[:-1] + c[1:]) / 2.0 + 0.0
    edges = np.concatenate(([-np.inf], t, [np.inf]))
    P = np.diff(dist.cdf(edges))
    M = np.diff(dist.partial_moment(edges))
    D = dist.second_moment() - 2.0 * float(np.sum(c * M)) + float(np.sum(c * c * P))
    return LloydMaxQuantizer(c, t, max(D, 0.0), dist.name, n_iter=n_iter, converged=converged)
