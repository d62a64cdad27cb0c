"""Soft-to-hard vector quantization (Agustsson et al. 2017): annealed soft k-means."""

from __future__ import annotations

import numbers

import numpy as np
from scipy.special import softmax
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.cluster import kmeans_plusplus
from sklearn.utils.validation import check_is_fitted

from .._array import MAX_ITER, check_int, check_random_state
from .._typing import ArrayLike, NDArray, RandomStateLike
from ._common import (
    CodesTransformerMixin,
    check_codes,
    check_finite_state,
    check_weights,
    validate_real_data,
)

__all__ = ["SoftQuantizer"]


def _sq_dist(X, C):
    """Squared distances (n, k) between rows of X and rows of C."""
    d = np.einsum("nd,nd->n", X, X)[:, None] - 2 * X @ C.T + np.einsum("kd,kd->k", C, C)[None, :]
    return np.maximum(d, 0.0)


class SoftQuantizer(CodesTransformerMixin, TransformerMixin, BaseEstimator):
    r"""Soft-to-hard vector quantization: soft k-means with an annealed softness ``sigma``.

    Parameters
    ----------
    n_clusters : int, default=8
        Number of codewords.
    sigma : float, optional
        Initial inverse temperature :math:`\sigma_0` (default: the inverse
        of the mean squared distance of the data to its mean).
    sigma_growth : float, default=1.5
        Annealing factor: :math:`\sigma_{t+1} = \gamma \sigma_t` (``>= 1``).
    max_iter : int, default=30
        Number of annealing steps (each one soft-assignment and centroid update). At most ``10**6``.
    random_state : None, int or numpy.random.Generator, default=None
        Seed of the k-means++ initialisation.

    Attributes
    ----------
    codebook_ : ndarray of shape (n_clusters, n_features)
        Codewords.
    sigma_ : float
        Softness reached at the end of the schedule.
    inertia_ : float
        Hard (nearest-codeword) squared error of the training data.
    n_iter_ : int
        Annealing steps run.
    n_features_in_ : int
        Dimension of the vectors (use ``X.reshape(-1, 1)`` for scalars).

    See Also
    --------
    KMeansQuantizer : the hard (:math:`\sigma \to \infty`) scalar case.

    Notes
    -----
    Soft assignments and the soft quantization are

    .. math::

        \phi_j(z) = \frac{\exp(-\sigma \|z - c_j\|^2)}
                         {\sum_l \exp(-\sigma \|z - c_l\|^2)}, \qquad
        \tilde Q(z) = \sum_j \phi_j(z) c_j ,

    and the codewords move to the responsibility-weighted means
    :math:`c_j = \sum_i \phi_j(z_i) z_i / \sum_i \phi_j(z_i)`. As
    :math:`\sigma \to \infty`, :math:`\phi(z)` becomes the one-hot vector of
    the nearest codeword and :math:`\tilde Q` the hard quantizer.

    References
    ----------
    .. [1] E. Agustsson et al., "Soft-to-hard vector quantization for
       end-to-end learning compressible representations", NeurIPS 2017.

    Examples
    --------
    >>> import numpy as np
    >>> from qtoolkit.codebooks import SoftQuantizer
    >>> X = np.concatenate([np.zeros((50, 1)), np.ones((50, 1))])
    >>> sq = SoftQuantizer(n_clusters=2, random_state=0).fit(X)
    >>> np.sort(sq.codebook_[:, 0]).round(6)
    array([0., 1.])
    >>> sq.transform_soft([[0.5]], sigma=1e6).round(3).max()
    np.float64(0.5)
    """

    def __init__(
        self,
        n_clusters: int = 8,
        *,
        sigma: float | None = None,
        sigma_growth: float = 1.5,
        max_iter: int = 30,
        random_state: RandomStateLike = None,
    ) -> None:
        self.n_clusters = n_clusters
        self.sigma = sigma
        self.sigma_growth = sigma_growth
        self.max_iter = max_iter
        self.random_state = random_state

    def fit(
        self, X: ArrayLike, y: None = None, sample_weight: ArrayLike | None = None
    ) -> SoftQuantizer:
        """Run the annealed soft k-means.

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)
            Training vectors; ``n_samples >= n_clusters``.
        y : None
            Ignored.
        sample_weight : array_like of shape (n_samples,), optional
            Non-negative weights.

        Returns
        -------
        self : SoftQuantizer
            The fitted quantizer.
        """
        X = validate_real_data(self, X, dtype=np.float64, reset=True)
        k = check_int(self.n_clusters, "n_clusters", low=1, high=1 << 16)
        n_iter = check_int(self.max_iter, "max_iter", low=1, high=MAX_ITER)
        g = self.sigma_growth
        if (
            not isinstance(g, numbers.Real)
            or isinstance(g, bool)
            or not (np.isfinite(g) and g >= 1)
        ):
            raise ValueError(f"sigma_growth must be a real number >= 1, got {g!r}")
        if self.sigma is not None and (
            not isinstance(self.sigma, numbers.Real)
            or isinstance(self.sigma, bool)
            or not (np.isfinite(self.sigma) and self.sigma > 0)
        ):
            raise ValueError(f"sigma must be None or a positive real number, got {self.sigma!r}")
        n = X.shape[0]
        if n < k:
            raise ValueError(f"n_samples={n} must be at least n_clusters={k}")
        sw = check_weights(sample_weight, (n,))
        rng = check_random_state(self.random_state, "random_state")
        C, _ = kmeans_plusplus(X, k, sample_weight=sw, random_state=int(rng.integers(2**31 - 1)))
        spread = float(
            np.dot(sw, ((X - np.average(X, axis=0, weights=sw)) ** 2).sum(axis=1)) / sw.sum()
        )
        sigma = float(self.sigma) if self.sigma is not None else 1.0 / max(spread, 1e-300)
        for _ in range(n_iter):
            phi = softmax(-sigma * _sq_dist(X, C), axis=1) * sw[:, None]
            mass = phi.sum(axis=0)
            live = mass > 0
            C[live] = (phi.T @ X)[live] / mass[live, None]
            sigma *= g
        self.codebook_ = C
        self.sigma_ = sigma / g
        self.n_iter_ = n_iter
        self.inertia_ = float(np.dot(sw, _sq_dist(X, C).min(axis=1)))
        return check_finite_state(self)

    def _check(self, X, sigma):
        check_is_fitted(self, "codebook_")
        X = validate_real_data(self, X, dtype=np.float64, reset=False)
        s = self.sigma_ if sigma is None else sigma
        if not isinstance(s, numbers.Real) or isinstance(s, bool) or not s > 0:
            raise ValueError(f"sigma must be None or a positive real number, got {sigma!r}")
        return X, float(s)

    def transform_soft(self, X: ArrayLike, sigma: float | None = None) -> NDArray[np.floating]:
        """Soft assignments :math:`\\phi(z)` of every vector.

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)
            Vectors.
        sigma : float, optional
            Softness (default ``sigma_``); ``inf`` gives the hard one-hot assignment.

        Returns
        -------
        phi : ndarray of shape (n_samples, n_clusters)
            Rows sum to one.
        """
        X, s = self._check(X, sigma)
        d = _sq_dist(X, self.codebook_)
        if np.isinf(s):
            out = np.zeros_like(d)
            out[np.arange(d.shape[0]), d.argmin(axis=1)] = 1.0
            return out
        return softmax(-s * d, axis=1)

    def expected_value(self, X: ArrayLike, sigma: float | None = None) -> NDArray[np.floating]:
        """Soft quantization :math:`\\tilde Q(z) = \\sum_j \\phi_j(z) c_j`.

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)
            Vectors.
        sigma : float, optional
            Softness (default ``sigma_``).

        Returns
        -------
        Xq : ndarray of shape (n_samples, n_features)
            Expected codeword under the soft assignment.
        """
        return self.transform_soft(X, sigma) @ self.codebook_

    def transform(self, X: ArrayLike) -> NDArray[np.integer]:
        """Hard codes: index of the nearest codeword.

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)
            Vectors.

        Returns
        -------
        codes : ndarray of shape (n_samples,)
            Nearest codeword (ties go to the lower index).
        """
        X, _ = self._check(X, None)
        return _sq_dist(X, self.codebook_).argmin(axis=1)

    predict = transform

    def inverse_transform(self, X: ArrayLike) -> NDArray[np.floating]:
        """Return the codewords of hard codes.

        Parameters
        ----------
        X : array_like of int, shape (n_samples,)
            Codes.

        Returns
        -------
        Xq : ndarray of shape (n_samples, n_features)
            ``codebook_[X]``.
        """
        check_is_fitted(self, "codebook_")
        return self.codebook_[check_codes(X, self.codebook_.shape[0], "X")]
