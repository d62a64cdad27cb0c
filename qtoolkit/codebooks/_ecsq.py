"""Entropy-constrained scalar quantization: uniform + entropy coding, and ECSQ Lloyd."""

from __future__ import annotations

import numbers
from typing import Literal

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from .._array import MAX_ITER, check_int
from .._typing import ArrayLike, NDArray
from .._validation import check_real, check_tol
from ._accounting import huffman_code_lengths
from ._common import (
    CodesTransformerMixin,
    check_codes,
    check_finite_state,
    check_tensor,
    check_weights,
    code_dtype,
    validate_real_data,
)
from ._kmeans import _distinct_weighted, _ndim, _prefix, kmeans_1d

__all__ = ["EntropyConstrainedQuantizer"]


def lower_envelope(c, a):
    """Decision thresholds of ``argmin_j (x - c_j)^2 + a_j`` for sorted distinct ``c``.

    Returns ``(active, thresholds)``: the indices of the codewords that win
    somewhere, in increasing order, and the ``len(active) - 1`` points where
    the winner changes (a value on a threshold goes to the lower codeword).
    ``(x - c_j)^2 + a_j = x^2 + (c_j^2 + a_j) - 2 c_j x``: lines in ``x``
    whose slopes decrease with ``c_j``, so the envelope is a convex-hull scan.
    """
    b = c * c + a
    stack = []
    cuts = []
    for j in range(c.shape[0]):
        if not np.isfinite(b[j]):
            continue
        while stack:
            i = stack[-1]
            x = (b[j] - b[i]) / (2.0 * (c[j] - c[i]))
            if cuts and x <= cuts[-1]:
                stack.pop()
                cuts.pop()
                continue
            cuts.append(x)
            break
        stack.append(j)
    return np.asarray(stack, dtype=np.intp), np.asarray(cuts, dtype=np.float64)


class EntropyConstrainedQuantizer(CodesTransformerMixin, TransformerMixin, BaseEstimator):
    r"""Entropy-constrained scalar quantization of a weight tensor.

    Parameters
    ----------
    n_clusters : int, default=16
        ``"ecsq"``: codewords at the start (the iterations may empty some);
        ``"uniform"``: sets the default step.
    lam : float, default=0.01
        Lagrange multiplier :math:`\lambda \ge 0` of the rate (bits per
        weight) against the mean squared error.
    method : {"ecsq", "uniform"}, default="ecsq"
        ``"ecsq"``: the entropy-constrained Lloyd algorithm of Chou,
        Lookabaugh and Gray. ``"uniform"``: uniform thresholds at
        :math:`(i + \tfrac12)\Delta`, reconstruction at the cell centroids,
        followed by entropy coding (``lam`` unused).
    step : float, optional
        Cell width :math:`\Delta` of ``"uniform"`` (default
        ``(max - min) / (n_clusters - 1)``).
    max_iter : int, default=100
        Maximum ECSQ iterations. At most ``10**6``.
    tol : float, default=1e-9
        ECSQ stops when the objective decreases by at most ``tol`` times its value.

    Attributes
    ----------
    codebook_ : ndarray of shape (n_codewords,)
        Sorted codewords in use (centroids of their cells).
    thresholds_ : ndarray of shape (n_codewords - 1,)
        Decision thresholds (a value on a threshold goes to the lower codeword).
    probabilities_ : ndarray of shape (n_codewords,)
        Frequencies of the codes on the training tensor.
    code_lengths_ : ndarray of shape (n_codewords,)
        Huffman code lengths for these frequencies.
    entropy_ : float
        Entropy of the codes, bits per weight.
    huffman_bits_ : float
        Average Huffman code length, bits per weight.
    distortion_ : float
        Weighted mean squared error :math:`D`.
    inertia_ : float
        Weighted sum of squared errors.
    objective_ : float
        :math:`D + \lambda H`.
    n_iter_ : int
        Iterations run (1 for ``"uniform"``).

    See Also
    --------
    KMeansQuantizer : the fixed-rate (``log2 k`` bits) counterpart.
    entropy_bits, huffman_code_lengths

    Notes
    -----
    ECSQ alternates (i) the assignment
    :math:`a(x) = \arg\min_j (x - c_j)^2 + \lambda \ell_j` with
    :math:`\ell_j = -\log_2 p_j`, (ii) centroids
    :math:`c_j = \sum_{a(i) = j} s_i x_i / \sum_{a(i) = j} s_i` and
    (iii) :math:`p_j` the fraction of weights coded :math:`j`; each step
    lowers :math:`D + \lambda H` (with :math:`H` measured by the code
    lengths :math:`\ell`), codewords that win nowhere are dropped. The
    optional ``sample_weight`` (Hessian importance, Choi et al.) weighs the
    distortion only; the rate counts every weight once. Gish and Pierce: at
    high rate, uniform thresholds with entropy coding are optimal, with
    :math:`H \approx h(X) - \log_2 \Delta`.

    References
    ----------
    .. [1] P. A. Chou, T. Lookabaugh and R. M. Gray, "Entropy-constrained
       vector quantization", IEEE Trans. ASSP 37(1), 1989.
    .. [2] H. Gish and J. N. Pierce, "Asymptotically efficient quantizing",
       IEEE Trans. IT 14(5), 1968.
    .. [3] Y. Choi, M. El-Khamy and J. Lee, "Towards the limit of network
       quantization", ICLR 2017.

    Examples
    --------
    >>> import numpy as np
    >>> from qtoolkit.codebooks import EntropyConstrainedQuantizer
    >>> w = np.random.default_rng(0).laplace(size=10_000)
    >>> q = EntropyConstrainedQuantizer(n_clusters=16, lam=0.05).fit(w)
    >>> bool(q.entropy_ <= q.huffman_bits_ < q.entropy_ + 1)
    True
    >>> bool(q.entropy_ < 4.0)
    True
    """

    def __init__(
        self,
        n_clusters: int = 16,
        lam: float = 0.01,
        *,
        method: Literal["ecsq", "uniform"] = "ecsq",
        step: float | None = None,
        max_iter: int = 100,
        tol: float = 1e-9,
    ) -> None:
        self.n_clusters = n_clusters
        self.lam = lam
        self.method = method
        self.step = step
        self.max_iter = max_iter
        self.tol = tol

    def _check_params(self):
        k = check_int(self.n_clusters, "n_clusters", low=1, high=1 << 16)
        check_real(self.lam, "lam", low=0)
        check_tol(self.tol)
        if self.method not in ("ecsq", "uniform"):
            raise ValueError(f"method must be 'ecsq' or 'uniform', got {self.method!r}")
        if self.step is not None and (
            not isinstance(self.step, numbers.Real)
            or isinstance(self.step, bool)
            or not (np.isfinite(self.step) and self.step > 0)
        ):
            raise ValueError(f"step must be None or a positive real number, got {self.step!r}")
        check_int(self.max_iter, "max_iter", low=1, high=MAX_ITER)
        return k

    def fit(
        self, X: ArrayLike, y: None = None, sample_weight: ArrayLike | None = None
    ) -> EntropyConstrainedQuantizer:
        """Learn the thresholds, codewords and code lengths from every entry of ``X``.

        Parameters
        ----------
        X : array_like of any shape
            The weights.
        y : None
            Ignored.
        sample_weight : array_like of the shape of ``X`` or (n_samples,), optional
            Non-negative importance of each weight in the distortion.

        Returns
        -------
        self : EntropyConstrainedQuantizer
            The fitted quantizer.
        """
        k = self._check_params()
        if _ndim(X) == 2:
            x = validate_real_data(self, X, dtype=[np.float64, np.float32], reset=True)
        else:
            x = check_tensor(X, "X")
            for attr in ("n_features_in_", "feature_names_in_"):
                if hasattr(self, attr):
                    delattr(self, attr)
        sw = check_weights(sample_weight, x.shape)
        flat = x.ravel().astype(np.float64)
        ux, uw = _distinct_weighted(flat, np.ascontiguousarray(sw, dtype=np.float64).ravel())
        # counts of every distinct value (the rate ignores the importance weights)
        _, uc = _distinct_weighted(flat[sw.ravel() > 0], np.ones(int(np.sum(sw > 0))))
        n_total = float(uc.sum())
        shift, pw, p1, p2 = _prefix(ux, uw)
        pc = np.concatenate(([0.0], np.cumsum(uc)))

        def cells(thresholds):
            starts = np.concatenate(
                ([0], np.searchsorted(ux, thresholds, side="right"), [ux.shape[0]])
            )
            s, e = starts[:-1], starts[1:]
            keep = e > s
            return s[keep], e[keep], keep

        def stats(s, e):
            w = pw[e] - pw[s]
            c = shift + (p1[e] - p1[s]) / w
            sse = np.maximum((p2[e] - p2[s]) - (p1[e] - p1[s]) ** 2 / w, 0.0)
            p = (pc[e] - pc[s]) / n_total
            return c, p, float(sse.sum())

        lam = float(self.lam)
        if self.method == "uniform":
            step = (
                float(self.step)
                if self.step is not None
                else ((ux[-1] - ux[0]) / max(k - 1, 1) if ux[-1] > ux[0] else 1.0)
            )
            cell = np.round(ux / step)
            edges = (np.unique(cell)[:-1] + 0.5) * step
            s, e, _ = cells(edges)
            codebook, p, sse = stats(s, e)
            thresholds = edges
            n_iter = 1
        else:
            if k > ux.shape[0]:
                raise ValueError(
                    f"n_clusters={k} exceeds the number of distinct values with "
                    f"positive weight ({ux.shape[0]}); use n_clusters <= {ux.shape[0]}"
                )
            codebook, _, _ = kmeans_1d(ux, k, sample_weight=uw, algorithm="lloyd")
            bounds = 0.5 * (codebook[1:] + codebook[:-1])
            s, e, _ = cells(bounds)
            codebook, p, sse = stats(s, e)
            thresholds = bounds
            objective = np.inf
            n_iter = 0
            for _ in range(self.max_iter):
                n_iter += 1
                lengths = -np.log2(p)
                _active, thresholds = lower_envelope(codebook, lam * lengths)
                s, e, keep = cells(thresholds)
                # drop the thresholds of cells that hold no value
                nonempty = np.flatnonzero(keep)
                thresholds = thresholds[nonempty[1:] - 1]
                codebook, p, sse = stats(s, e)
                d = sse / pw[-1]
                new = d + lam * float(-(p * np.log2(p)).sum())
                if objective - new <= self.tol * abs(new):
                    objective = min(objective, new)
                    break
                objective = new
        self.codebook_ = np.asarray(codebook, dtype=np.float64)
        self.thresholds_ = np.asarray(thresholds, dtype=np.float64)
        self.probabilities_ = p
        self.code_lengths_ = huffman_code_lengths(p)
        self.entropy_ = float(max(0.0, -(p * np.log2(p)).sum()))
        self.huffman_bits_ = float(np.dot(p, self.code_lengths_))
        self.inertia_ = float(sse)
        self.distortion_ = float(sse / pw[-1])
        self.objective_ = float(self.distortion_ + lam * self.entropy_)
        self.n_iter_ = int(n_iter)
        return check_finite_state(self)

    def transform(self, X: ArrayLike) -> NDArray[np.integer]:
        """Code of every entry (index into ``codebook_``).

        Parameters
        ----------
        X : array_like
            Values to encode: 2-D with ``n_features_in_`` columns after a 2-D
            ``fit``, any shape otherwise.

        Returns
        -------
        codes : ndarray of the shape of ``X``
            Unsigned integer codes.
        """
        check_is_fitted(self, "codebook_")
        if hasattr(self, "n_features_in_"):
            x = validate_real_data(self, X, dtype=[np.float64, np.float32], reset=False)
        else:
            x = check_tensor(X, "X")
        codes = np.searchsorted(self.thresholds_, x, side="left")
        return codes.astype(code_dtype(self.codebook_.shape[0]))

    def inverse_transform(self, X: ArrayLike) -> NDArray[np.float64]:
        """Return the codewords of the codes.

        Parameters
        ----------
        X : array_like of int
            Codes, any shape.

        Returns
        -------
        values : ndarray of float64
            ``codebook_[X]``.
        """
        check_is_fitted(self, "codebook_")
        return self.codebook_[check_codes(X, self.codebook_.shape[0], "X")]
