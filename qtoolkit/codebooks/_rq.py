"""Residual quantization: stage-wise k-means on residuals, beam-search encoding."""

from __future__ import annotations

from typing import Literal

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted
from threadpoolctl import threadpool_limits

from .._array import check_int, check_n_threads, check_random_state
from .._dispatch import kernel_level, register_kernel_family
from .._typing import ArrayLike, NDArray, RandomStateLike
from . import _pq_kernels
from ._common import (
    CodesTransformerMixin,
    check_codes,
    check_finite_state,
    check_weights,
    code_dtype,
    validate_real_data,
)
from ._pq import check_kmeans_params, fit_kmeans

__all__ = ["ResidualQuantizer"]

_BEAM = register_kernel_family(
    "codebooks.rq_beam",
    ("generic", "avx2", "avx512"),
    "beam-search encoder (ResidualQuantizer.fit / transform)",
    openmp=_pq_kernels.openmp_enabled(),
)


_SEED_POINTS = 32  # k-means++ seeds a stage from at most this many residuals per centroid


def beam_encode(X, codebooks, beam_size, n_threads=1):
    """Beam search over the stages; returns (codes (n, S) int32, squared errors (n,) float64).

    Keeps the ``beam_size`` partial codes of smallest candidate error
    ``(e - 2 <r, c>) + ||c||^2`` after each stage; ties go to the lower
    (beam, codeword) pair, and the final code is the kept one of smallest
    recomputed error (ties: the first kept). ``beam_size=1`` is greedy
    encoding. The compiled search of ``_rq_encode.h`` (SIMD level from
    :mod:`qtoolkit._dispatch`), GIL released, ``n_threads`` threads over the
    vectors (the result does not depend on them). Prior validation assumed:
    ``X`` (n, d) and ``codebooks`` (S, K, d) finite, of one float dtype.
    """
    books = np.ascontiguousarray(codebooks)
    S, K, d = books.shape
    X = np.ascontiguousarray(X, dtype=books.dtype)
    if X.ndim != 2 or X.shape[1] != d or K < 1:
        # the kernel reads d values of every row and K codewords: never past them
        raise ValueError(f"codebooks of shape {books.shape} do not fit vectors of shape {X.shape}")
    pad = _pq_kernels.rq_kpad()
    Kp = -(-K // pad) * pad
    cbt = np.zeros((S, d, Kp), dtype=books.dtype)
    cbt[:, :, :K] = books.transpose(0, 2, 1)
    cnorm = np.ascontiguousarray(np.einsum("skd,skd->sk", books, books))
    codes = np.empty((X.shape[0], S), dtype=np.int32)
    err = np.empty(X.shape[0], dtype=books.dtype)
    rc = _pq_kernels.rq_beam_encode(
        X, books, cbt, cnorm, int(beam_size), codes, err, int(n_threads), kernel_level(_BEAM)[1]
    )
    if rc != 0:
        raise MemoryError("beam search: could not allocate the work space of a thread")
    return codes, err.astype(np.float64)


def _kmeans_plusplus(X, k, rng, sw=None):
    """Greedy k-means++ seeding (Arthur and Vassilvitskii 2007) on BLAS products.

    Each new centre is the best, by the resulting potential
    ``sum_i w_i min_c ||x_i - c||^2``, of ``2 + floor(ln k)`` candidates drawn
    with probability proportional to ``w_i D(x_i)^2``; the distances of all
    points to the candidates come from one (trials, n) matrix product per
    centre in the dtype of ``X`` (one BLAS thread: the products are small),
    the cumulative potentials in float64. Prior validation assumed:
    ``n >= k``, ``X`` finite.
    """
    n = X.shape[0]
    w = None if sw is None or not sw.sum() > 0 else sw
    xn = np.einsum("ij,ij->i", X, X)
    centers = np.empty((k, X.shape[1]), dtype=X.dtype)
    first = int(rng.integers(n)) if w is None else int(rng.choice(n, p=w / w.sum()))
    centers[0] = X[first]
    dist = np.maximum(xn - 2 * (X @ X[first]) + xn[first], 0)
    trials = 2 + int(np.log(k))
    with threadpool_limits(1, user_api="blas"):
        for c in range(1, k):
            cum = np.cumsum(dist if w is None else w * dist, dtype=np.float64)
            if not cum[-1] > 0:  # every point is a centre already: repeat one
                centers[c:] = centers[0]
                break
            cand = np.searchsorted(cum, rng.uniform(size=trials) * cum[-1], side="right")
            cand = np.minimum(cand, n - 1)
            d_c = X[cand] @ X.T  # (trials, n)
            d_c *= -2
            d_c += xn
            d_c += xn[cand][:, None]
            np.maximum(d_c, 0, out=d_c)
            np.minimum(d_c, dist, out=d_c)
            pot = d_c.sum(axis=1, dtype=np.float64) if w is None else d_c @ w
            best = int(np.argmin(pot))
            dist = d_c[best]
            centers[c] = X[cand[best]]
    return centers


class ResidualQuantizer(CodesTransformerMixin, TransformerMixin, BaseEstimator):
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
        Seeding of each stage's k-means: ``"k-means++"`` is the greedy
        k-means++ seeding (``2 + ln K`` candidates per centre) on at most
        ``32 * n_clusters`` of the stage's training residuals, drawn at
        random; ``"random"`` draws ``K`` distinct training residuals.
    max_iter : int, default=25
        Lloyd iterations per stage. At most ``10**6``.
    tol : float, default=0.0
        scikit-learn's relative tolerance for each stage.
    max_points_per_centroid : int or None, default=256
        Each stage's k-means runs on at most ``max_points_per_centroid *
        n_clusters`` training residuals, drawn without replacement (a new draw
        per stage, from ``random_state``); None trains on every vector. The
        encoding and ``stage_inertia_`` always use every training vector.
    random_state : None, int or numpy.random.Generator, default=None
        Seeds of the subsamples and of the stage k-means.
    n_threads : int, default=None
        Threads of the beam-search encoder (None: chosen from the number of
        vectors, at most the usable CPUs). The codes do not depend on it.

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
    error before it (Gong et al. 2014) when the stage trains on every vector
    (``n_samples <= max_points_per_centroid * n_clusters``). Above that, a
    stage trains on a random subsample of that size, as faiss does (its
    ``max_points_per_centroid``), which bounds the training cost by
    :math:`O(256 K^2 d)` per iteration whatever the number of vectors.

    The encoder keeps, after each stage, the ``beam_size`` partial codes of
    smallest candidate error :math:`(e - 2 \langle r, c_k \rangle) + \|c_k\|^2`
    (:math:`e = \|r\|^2` of the kept residual :math:`r`); ties go to the
    lower (beam, codeword) pair, and the returned code is the kept one of
    smallest error :math:`\|x - q(x)\|^2` (first on ties). It is compiled
    (generic, AVX2 and AVX-512 paths, chosen by :func:`qtoolkit.show_runtime`'s
    dispatch), runs without the GIL on ``n_threads`` threads, and gives the
    same codes at every SIMD level and thread count.

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
        max_points_per_centroid: int | None = 256,
        random_state: RandomStateLike = None,
        n_threads: int | None = None,
    ) -> None:
        self.n_stages = n_stages
        self.n_clusters = n_clusters
        self.beam_size = beam_size
        self.init = init
        self.max_iter = max_iter
        self.tol = tol
        self.max_points_per_centroid = max_points_per_centroid
        self.random_state = random_state
        self.n_threads = n_threads

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
        X = validate_real_data(self, X, dtype=[np.float64, np.float32], reset=True)
        S = check_int(self.n_stages, "n_stages", low=1, high=1 << 16)
        beam = check_int(self.beam_size, "beam_size", low=1, high=1 << 16)
        K = check_kmeans_params(self)
        if self.init not in ("random", "k-means++"):
            raise ValueError(f"init must be 'random' or 'k-means++', got {self.init!r}")
        n, d = X.shape
        if n < self.n_clusters:
            raise ValueError(f"n_samples={n} must be at least n_clusters={self.n_clusters}")
        mppc = check_int(
            self.max_points_per_centroid,
            "max_points_per_centroid",
            low=1,
            high=1 << 31,
            allow_none=True,
        )
        n_threads = check_n_threads(self.n_threads, work=n // 256)
        rng = check_random_state(self.random_state, "random_state")
        n_sub = n if mppc is None else min(n, mppc * K)
        sw = None if sample_weight is None else check_weights(sample_weight, (n,))
        books = np.zeros((S, K, d), dtype=X.dtype)
        stage_err = np.empty(S)
        n_iter = 0
        codes = None
        for s in range(S):
            idx = np.sort(rng.choice(n, n_sub, replace=False)) if n_sub < n else slice(None)
            res = X[idx]
            if s:
                res = res - self._decode(codes[idx], books[:s])
            res = np.ascontiguousarray(res)
            w = None if sw is None else sw[idx]
            seed = int(rng.integers(0, 2**31 - 1))
            if self.init == "k-means++":
                m = min(n_sub, _SEED_POINTS * K)  # the seeding looks at a random part
                part = rng.choice(n_sub, m, replace=False) if m < n_sub else slice(None)
                start = _kmeans_plusplus(res[part], K, rng, None if w is None else w[part])
            else:
                start = res[rng.choice(n_sub, K, replace=False)]
            books[s], _, it = fit_kmeans(res, K, start, self.max_iter, self.tol, seed, w)
            n_iter = max(n_iter, it)
            codes, err = beam_encode(X, books[: s + 1], beam, n_threads)
            stage_err[s] = err.sum() if sw is None else np.dot(sw, err)
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
        X = validate_real_data(self, X, dtype=[np.float64, np.float32], reset=False)
        codes, _ = beam_encode(
            X.astype(self.codebook_.dtype, copy=False),
            self.codebook_,
            check_int(self.beam_size, "beam_size", low=1, high=1 << 16),
            check_n_threads(self.n_threads, work=X.shape[0] // 256),
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
