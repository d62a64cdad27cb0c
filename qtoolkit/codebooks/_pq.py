"""Product quantization (Jégou et al. 2011; Gong et al. 2014 for network weights)."""

from __future__ import annotations

from typing import Any, Literal, NamedTuple

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.cluster import KMeans
from sklearn.utils.validation import check_is_fitted

from .._array import MAX_ITER, check_int, check_n_threads, check_random_state, describe
from .._dispatch import kernel_level, register_kernel_family
from .._typing import ArrayLike, NDArray, RandomStateLike
from .._validation import check_tol
from . import _pq_kernels
from ._common import (
    CodesTransformerMixin,
    check_codes,
    check_finite_state,
    code_dtype,
    validate_real_data,
)

__all__ = ["PQSearchResult", "ProductQuantizer"]


class PQSearchResult(NamedTuple):
    """Nearest database vectors found by :meth:`ProductQuantizer.search`.

    Parameters
    ----------
    distances : ndarray of shape (n_queries, n_neighbors)
        Approximate (asymmetric) squared distances, ascending along each row.
    indices : ndarray of int64, shape (n_queries, n_neighbors)
        Database rows; ties are broken by the lower index.

    See Also
    --------
    ProductQuantizer.search : the method that returns it.

    Examples
    --------
    >>> import numpy as np
    >>> from qtoolkit.codebooks import ProductQuantizer
    >>> X = np.random.default_rng(0).standard_normal((200, 8))
    >>> pq = ProductQuantizer(n_subspaces=2, n_clusters=4, random_state=0).fit(X)
    >>> res = pq.search(X[:3], pq.transform(X), n_neighbors=2)
    >>> res.indices.shape, bool(np.all(np.diff(res.distances, axis=1) >= 0))
    ((3, 2), True)
    """

    distances: NDArray[Any]
    indices: NDArray[np.intp]


_SEARCH = register_kernel_family(
    "codebooks.pq_search",
    ("generic", "avx2", "avx512"),
    "nearest-codeword search (ProductQuantizer.transform)",
    openmp=_pq_kernels.openmp_enabled(),
)


def check_kmeans_params(est):
    """Validate the k-means parameters shared by the vector quantizers; return ``n_clusters``.

    The count comes back as a Python ``int``: a NumPy integer (``uint8`` from a
    config) would overflow in the sizes computed from it.
    """
    n_clusters = check_int(est.n_clusters, "n_clusters", low=1, high=1 << 16)
    check_int(est.max_iter, "max_iter", low=1, high=MAX_ITER)
    check_tol(est.tol)
    check_n_threads(est.n_threads)
    return n_clusters


def fit_kmeans(X, n_clusters, init, max_iter, tol, seed, sample_weight=None):
    """scikit-learn's Lloyd k-means, one start; returns (centers, inertia, n_iter)."""
    km = KMeans(
        n_clusters=n_clusters,
        init=init,
        n_init=1,
        max_iter=max_iter,
        tol=tol,
        random_state=seed,
        algorithm="lloyd",
    )
    km.fit(X, sample_weight=sample_weight)
    return km.cluster_centers_.astype(X.dtype, copy=False), float(km.inertia_), int(km.n_iter_)


def encode_nearest(X, codebooks, n_threads):
    """Nearest-codeword codes (n, M) for sub-vectors of X against (M, K, d_sub) codebooks."""
    dtype = codebooks.dtype
    M, K, ds = codebooks.shape
    if K < 1 or X.ndim != 2 or X.shape[1] != M * ds:
        # the kernel reads M * ds values of every row and K codewords: never past them
        raise ValueError(
            f"codebooks of shape {codebooks.shape} do not fit vectors of shape {X.shape}"
        )
    X = np.ascontiguousarray(X, dtype=dtype)
    cbt = np.ascontiguousarray(codebooks.transpose(0, 2, 1))
    cnorm = np.ascontiguousarray(np.einsum("mkd,mkd->mk", codebooks, codebooks))
    codes = np.empty((X.shape[0], codebooks.shape[0]), dtype=np.int32)
    work = np.empty((n_threads, codebooks.shape[1]), dtype=dtype)
    _pq_kernels.pq_encode(X, cbt, cnorm, codes, work, n_threads, kernel_level(_SEARCH)[1])
    return codes


class ProductQuantizer(CodesTransformerMixin, TransformerMixin, BaseEstimator):
    r"""Product quantization: k-means in each of ``n_subspaces`` groups of columns.

    Parameters
    ----------
    n_subspaces : int, default=8
        Number ``M`` of sub-vectors; ``n_features`` must be a multiple of it.
    n_clusters : int, default=256
        Codewords ``K`` per subspace (``log2 K`` bits per sub-vector).
    init : {"random", "k-means++"} or array_like of shape (M, K, d_sub), default="random"
        Seeding of each subspace's k-means (``"random"``, as faiss does, or
        scikit-learn's ``"k-means++"``), or explicit initial codebooks.
    max_iter : int, default=25
        Lloyd iterations per subspace (faiss's default). At most ``10**6``.
    tol : float, default=0.0
        scikit-learn's relative tolerance; 0 runs ``max_iter`` iterations
        unless the assignment stops changing.
    random_state : None, int or numpy.random.Generator, default=None
        Seeds of the subspace k-means.
    n_threads : int, default=None
        Threads of the encoding and scanning kernels (all CPUs if None).

    Attributes
    ----------
    codebook_ : ndarray of shape (M, K, d_sub)
        One codebook per subspace, float32 for float32 data, else float64.
    inertia_ : float
        Weighted squared error of the training data (sum of the subspace
        k-means inertias, each with the final assignment).
    n_iter_ : int
        Largest number of Lloyd iterations over the subspaces.
    n_features_in_ : int
        ``M * d_sub``.

    See Also
    --------
    ResidualQuantizer : stage-wise quantization of residuals.
    KMeansQuantizer : scalar weight sharing.

    Notes
    -----
    A vector :math:`x = (x^1, \dots, x^M)` is coded by the nearest codeword in
    every subspace, :math:`q(x) = (c^1_{i_1}, \dots, c^M_{i_M})`, so the
    squared error is the sum of the subspace errors. With ``n_subspaces=1``
    this is plain vector k-means (scikit-learn's ``KMeans``). Asymmetric
    distances use per-subspace lookup tables
    :math:`T_{m,k} = \|y^m - c^m_k\|^2`, and
    :math:`\|y - q(x)\|^2 = \sum_m T_{m, i_m}`. Gong et al. apply this to the
    rows of a dense layer's weight matrix.

    References
    ----------
    .. [1] H. Jégou, M. Douze and C. Schmid, "Product quantization for nearest
       neighbor search", IEEE TPAMI 33(1), 2011.
    .. [2] Y. Gong, L. Liu, M. Yang and L. Bourdev, "Compressing deep
       convolutional networks using vector quantization", arXiv:1412.6115, 2014.

    Examples
    --------
    >>> import numpy as np
    >>> from qtoolkit.codebooks import ProductQuantizer
    >>> X = np.random.default_rng(0).normal(size=(200, 8)).astype(np.float32)
    >>> pq = ProductQuantizer(n_subspaces=2, n_clusters=16, random_state=0).fit(X)
    >>> codes = pq.transform(X)
    >>> codes.shape, codes.dtype
    ((200, 2), dtype('uint8'))
    >>> pq.inverse_transform(codes).shape
    (200, 8)
    """

    def __init__(
        self,
        n_subspaces: int = 8,
        n_clusters: int = 256,
        *,
        init: Literal["random", "k-means++"] | ArrayLike = "random",
        max_iter: int = 25,
        tol: float = 0.0,
        random_state: RandomStateLike = None,
        n_threads: int | None = None,
    ) -> None:
        self.n_subspaces = n_subspaces
        self.n_clusters = n_clusters
        self.init = init
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state
        self.n_threads = n_threads

    def fit(
        self, X: ArrayLike, y: None = None, sample_weight: ArrayLike | None = None
    ) -> ProductQuantizer:
        """Learn one codebook per subspace.

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)
            Training vectors; ``n_samples >= n_clusters``.
        y : None
            Ignored.
        sample_weight : array_like of shape (n_samples,), optional
            Weights of the training vectors (passed to scikit-learn's k-means).

        Returns
        -------
        self : ProductQuantizer
            The fitted quantizer.
        """
        X = validate_real_data(self, X, dtype=[np.float32, np.float64], reset=True)
        M = check_int(self.n_subspaces, "n_subspaces", low=1, high=1 << 16)
        check_kmeans_params(self)
        n, d = X.shape
        if d % M:
            raise ValueError(f"n_features={d} must be a multiple of n_subspaces={M}")
        if n < self.n_clusters:
            raise ValueError(f"n_samples={n} must be at least n_clusters={self.n_clusters}")
        ds = d // M
        init = self.init
        if isinstance(init, str):
            if init not in ("random", "k-means++"):
                raise ValueError(
                    f"init must be 'random', 'k-means++' or an array of shape "
                    f"({M}, {self.n_clusters}, {ds}), got {init!r}"
                )
        else:
            init = np.asarray(init, dtype=X.dtype)
            if init.shape != (M, self.n_clusters, ds):
                raise ValueError(
                    f"init must be 'random', 'k-means++' or an array of shape "
                    f"({M}, {self.n_clusters}, {ds}), got {describe(self.init)}"
                )
        rng = check_random_state(self.random_state, "random_state")
        seeds = rng.integers(0, 2**31 - 1, size=M)
        books = np.empty((M, self.n_clusters, ds), dtype=X.dtype)
        n_iter = 0
        inertia = 0.0
        for m in range(M):
            sub = np.ascontiguousarray(X[:, m * ds : (m + 1) * ds])
            start = init if isinstance(init, str) else init[m]
            books[m], err, it = fit_kmeans(
                sub, self.n_clusters, start, self.max_iter, self.tol, int(seeds[m]), sample_weight
            )
            n_iter = max(n_iter, it)
            inertia += err  # the subspaces are orthogonal: their errors add up
        self.codebook_ = books
        self.n_iter_ = n_iter
        self.inertia_ = inertia
        return check_finite_state(self)

    def _encode(self, X):
        return encode_nearest(X, self.codebook_, check_n_threads(self.n_threads, work=X.shape[0]))

    def _decode(self, codes):
        M = self.codebook_.shape[0]
        parts = [self.codebook_[m][codes[:, m]] for m in range(M)]
        return np.concatenate(parts, axis=1)

    def transform(self, X: ArrayLike) -> NDArray[np.integer]:
        """Encode: index of the nearest codeword in every subspace.

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)
            Vectors to encode.

        Returns
        -------
        codes : ndarray of shape (n_samples, n_subspaces)
            ``uint8`` codes for ``n_clusters <= 256``, else ``uint16``.
        """
        check_is_fitted(self, "codebook_")
        X = validate_real_data(self, X, dtype=[np.float32, np.float64], reset=False)
        return self._encode(X).astype(code_dtype(self.codebook_.shape[1]))

    def inverse_transform(self, X: ArrayLike) -> NDArray[np.floating]:
        """Decode codes into vectors.

        Parameters
        ----------
        X : array_like of int, shape (n_samples, n_subspaces)
            Codes.

        Returns
        -------
        X_rec : ndarray of shape (n_samples, n_features)
            Concatenated codewords.
        """
        check_is_fitted(self, "codebook_")
        M, K = self.codebook_.shape[:2]
        return self._decode(check_codes(X, K, "X", shape_tail=(M,)))

    encode = transform
    decode = inverse_transform

    def adc_tables(self, Q: ArrayLike) -> NDArray[np.floating]:
        """Asymmetric-distance lookup tables of queries against every codeword.

        Parameters
        ----------
        Q : array_like of shape (n_queries, n_features)
            Query vectors (not quantized).

        Returns
        -------
        tables : ndarray of shape (n_queries, n_subspaces, n_clusters)
            ``tables[q, m, k] = ||Q[q, m-th part] - codebook_[m, k]||^2``.
        """
        check_is_fitted(self, "codebook_")
        Q = validate_real_data(self, Q, dtype=[np.float32, np.float64], reset=False)
        M, _K, ds = self.codebook_.shape
        Qs = Q.reshape(Q.shape[0], M, ds).astype(self.codebook_.dtype, copy=False)
        t = (
            np.einsum("qmd,qmd->qm", Qs, Qs)[:, :, None]
            - 2 * np.einsum("qmd,mkd->qmk", Qs, self.codebook_)
            + np.einsum("mkd,mkd->mk", self.codebook_, self.codebook_)[None]
        )
        if not np.all(np.isfinite(t)):
            raise ValueError("Q is too large in magnitude: its squared distances overflow")
        return np.maximum(t, 0)

    def search(self, Q: ArrayLike, codes: ArrayLike, n_neighbors: int = 1) -> PQSearchResult:
        """Nearest database vectors of each query by asymmetric distance.

        Parameters
        ----------
        Q : array_like of shape (n_queries, n_features)
            Query vectors.
        codes : array_like of int, shape (n_database, n_subspaces)
            Codes of the database (from :meth:`transform`).
        n_neighbors : int, default=1
            Neighbours returned per query (at most ``n_database``).

        Returns
        -------
        PQSearchResult
            ``(distances, indices)``, each of shape (n_queries, n_neighbors):
            approximate squared distances, ascending, and the database rows
            (ties broken by the lower index).
        """
        tables = np.ascontiguousarray(self.adc_tables(Q))
        M, K = self.codebook_.shape[:2]
        c = np.ascontiguousarray(check_codes(codes, K, "codes", shape_tail=(M,)), dtype=np.int32)
        nn = check_int(n_neighbors, "n_neighbors", low=1, high=max(1, c.shape[0]))
        if c.shape[0] == 0:
            raise ValueError("codes is empty: the database needs at least one vector")
        dist = np.empty((tables.shape[0], c.shape[0]), dtype=tables.dtype)
        _pq_kernels.adc_scan(tables, c, dist, check_n_threads(self.n_threads, work=c.shape[0]))
        idx = np.argsort(dist, axis=1, kind="stable")[:, :nn]
        return PQSearchResult(np.take_along_axis(dist, idx, axis=1), idx)
