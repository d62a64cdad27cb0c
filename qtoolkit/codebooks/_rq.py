"""Residual quantization: stage-wise k-means on residuals, beam-search encoding."""

from __future__ import annotations

from typing import Literal

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from .._array import check_int, check_random_state
from .._typing import ArrayLike, NDArray, RandomStateLike
from ._common import check_codes, check_finite_state, code_dtype
from ._pq import check_kmeans_params, fit_kmeans

__all__ = ["ResidualQuantizer"]

_CHUNK = 4096


def beam_encode(X, codebooks, beam_size):
    """Beam search over the stages; returns (codes (n, S), squared errors (n,)).

    Keeps the ``beam_size`` partial codes of smallest error after each stage
    (candidates: every kept code extended by every codeword); ties go to the
    lower (beam, codeword) pair. ``beam_size=1`` is greedy encoding.
    """
    n, _d = X.shape
    S, K, _ = codebooks.shape
    codes = np.empty((n, S), dtype=np.int64)
    errors = np.empty(n, dtype=np.float64)
    cnorm = np.einsum("skd,skd->sk", codebooks, codebooks)
    for lo in range(0, n, _CHUNK):
        x = X[lo : lo + _CHUNK]
        m = x.shape[0]
        res = x[:, None, :].copy()  # (m, B, d)
        err = np.einsum("mbd,mbd->mb", res, res)  # (m, B)
        path = np.zeros((m, 1, 0), dtype=np.int64)
        for s in range(S):
            b = res.shape[1]
            # ||r - c||^2 = ||r||^2 - 2 <r, c> + ||c||^2 for every beam and codeword
            cand = err[:, :, None] - 2 * (res @ codebooks[s].T) + cnorm[s][None, None, :]
            flat = cand.reshape(m, b * K)
            keep = min(beam_size, b * K)
            if keep == 1:
                top = np.argmin(flat, axis=1)[:, None]
            else:
                top = np.argsort(flat, axis=1, kind="stable")[:, :keep]
            bi, ki = np.divmod(top, K)
            res = np.take_along_axis(res, bi[:, :, None], axis=1) - codebooks[s][ki]
            err = np.einsum("mbd,mbd->mb", res, res)
            path = np.concatenate(
                [np.take_along_axis(path, bi[:, :, None], axis=1), ki[:, :, None]], axis=2
            )
        best = np.argmin(err, axis=1)
        codes[lo : lo + m] = path[np.arange(m), best]
        errors[lo : lo + m] = err[np.arange(m), best]
    return codes, errors


class ResidualQuantizer(TransformerMixin, BaseEstimator):
    r"""Residual quantization: ``n_stages`` codebooks, each quantizing what the previous left.

    Parameters
    ----------
    n_stages : int, default=2
        Number of codebooks ``S`` (``S log2 K`` bits per vector).
    n_clusters : int, default=256
        Codewords ``K`` per stage.
    beam_size : int, default=1
        Partial codes kept by the beam search (1: greedy).
    init : {"random", "k-means++"}, default="k-means++"
        Seeding of each stage's k-means.
    max_iter : int, default=25
        Lloyd iterations per stage. At most ``10**6``.
    tol : float, default=0.0
        scikit-learn's relative tolerance for each stage.
    random_state : None, int or numpy.random.Generator, default=None
        Seeds of the stage k-means.
    n_threads : int, default=None
        Accepted for a uniform interface; the encoder uses NumPy's BLAS threads.

    Attributes
    ----------
    codebook_ : ndarray of shape (n_stages, n_clusters, n_features)
        The stage codebooks.
    inertia_ : float
        Squared error of the training data after the last stage.
    stage_inertia_ : ndarray of shape (n_stages,)
        Training error after each stage (non-increasing).
    n_iter_ : int
        Largest number of Lloyd iterations over the stages.
    n_features_in_ : int
        Dimension of the vectors.

    See Also
    --------
    ProductQuantizer : split the vector instead of refining it.

    Notes
    -----
    :math:`q(x) = \sum_{s=1}^{S} c^s_{i_s}`. Stage :math:`s` runs k-means on
    the residuals :math:`r_s = x - \sum_{t<s} c^t_{i_t}` of the training
    vectors encoded by the beam search with the first :math:`s - 1` stages.
    Each stage's k-means moves its codewords to cluster means of the
    residuals, so on the training data the error after a stage is at most the
    error before it (Gong et al. 2014).

    References
    ----------
    .. [1] Y. Gong, L. Liu, M. Yang and L. Bourdev, "Compressing deep
       convolutional networks using vector quantization", arXiv:1412.6115, 2014.
    .. [2] B.-H. Juang and A. H. Gray, "Multiple stage vector quantization for
       speech coding", ICASSP 1982.

    Examples
    --------
    >>> import numpy as np
    >>> from qtoolkit.codebooks import ResidualQuantizer
    >>> X = np.random.default_rng(0).normal(size=(300, 4))
    >>> rq = ResidualQuantizer(n_stages=3, n_clusters=8, random_state=0).fit(X)
    >>> bool(np.all(np.diff(rq.stage_inertia_) <= 0))
    True
    >>> rq.transform(X[:2]).shape
    (2, 3)
    """

    def __init__(
        self,
        n_stages: int = 2,
        n_clusters: int = 256,
        *,
        beam_size: int = 1,
        init: Literal["random", "k-means++"] = "k-means++",
        max_iter: int = 25,
        tol: float = 0.0,
        random_state: RandomStateLike = None,
        n_threads: int | None = None,
    ) -> None:
        self.n_stages = n_stages
        self.n_clusters = n_clusters
        self.beam_size = beam_size
        self.init = init
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state
        self.n_threads = n_threads

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = []
        return tags

    def fit(
        self, X: ArrayLike, y: None = None, sample_weight: ArrayLike | None = None
    ) -> ResidualQuantizer:
        """Learn the stage codebooks.

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)
            Training vectors; ``n_samples >= n_clusters``.
        y : None
            Ignored.
        sample_weight : array_like of shape (n_samples,), optional
            Weights of the training vectors.

        Returns
        -------
        self : ResidualQuantizer
            The fitted quantizer.
        """
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=True)
        S = check_int(self.n_stages, "n_stages", low=1, high=1 << 16)
        check_int(self.beam_size, "beam_size", low=1, high=1 << 16)
        check_kmeans_params(self)
        if self.init not in ("random", "k-means++"):
            raise ValueError(f"init must be 'random' or 'k-means++', got {self.init!r}")
        n, d = X.shape
        if n < self.n_clusters:
            raise ValueError(f"n_samples={n} must be at least n_clusters={self.n_clusters}")
        rng = check_random_state(self.random_state, "random_state")
        seeds = rng.integers(0, 2**31 - 1, size=S)
        sw = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        books = np.zeros((S, self.n_clusters, d), dtype=X.dtype)
        stage_err = np.empty(S)
        n_iter = 0
        res = X
        for s in range(S):
            books[s], _, it = fit_kmeans(
                np.ascontiguousarray(res),
                self.n_clusters,
                self.init,
                self.max_iter,
                self.tol,
                int(seeds[s]),
                sw,
            )
            n_iter = max(n_iter, it)
            codes, err = beam_encode(X, books[: s + 1], self.beam_size)
            stage_err[s] = err.sum() if sw is None else np.dot(sw, err)
            res = X - self._decode(codes, books[: s + 1])
        self.codebook_ = books
        self.stage_inertia_ = stage_err
        self.inertia_ = float(stage_err[-1])
        self.n_iter_ = n_iter
        return check_finite_state(self)

    @staticmethod
    def _decode(codes, books):
        out = np.zeros((codes.shape[0], books.shape[2]), dtype=books.dtype)
        for s in range(books.shape[0]):
            out += books[s][codes[:, s]]
        return out

    def transform(self, X: ArrayLike) -> NDArray[np.integer]:
        """Encode by beam search.

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)
            Vectors to encode.

        Returns
        -------
        codes : ndarray of shape (n_samples, n_stages)
            One code per stage (``uint8`` for ``n_clusters <= 256``).
        """
        check_is_fitted(self, "codebook_")
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=False)
        codes, _ = beam_encode(
            X.astype(self.codebook_.dtype, copy=False),
            self.codebook_,
            check_int(self.beam_size, "beam_size", low=1),
        )
        return codes.astype(code_dtype(self.codebook_.shape[1]))

    def inverse_transform(self, X: ArrayLike) -> NDArray[np.floating]:
        """Decode: the sum of the selected codewords.

        Parameters
        ----------
        X : array_like of int, shape (n_samples, n_stages)
            Codes.

        Returns
        -------
        X_rec : ndarray of shape (n_samples, n_features)
            Reconstructions.
        """
        check_is_fitted(self, "codebook_")
        S, K = self.codebook_.shape[:2]
        return self._decode(check_codes(X, K, "X", shape_tail=(S,)), self.codebook_)

    encode = transform
    decode = inverse_transform
