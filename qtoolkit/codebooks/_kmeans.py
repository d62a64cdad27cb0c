"""Scalar weight sharing: weighted 1-D k-means, exact (dynamic programming) or Lloyd."""

from __future__ import annotations

from typing import Literal, NamedTuple

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from .._array import MAX_ITER, check_int, check_n_threads, check_random_state, cpu_count, describe
from .._typing import ArrayLike, NDArray, RandomStateLike, RNGLike
from .._validation import check_tol
from . import _kmeans1d
from ._common import (
    CodesTransformerMixin,
    check_codes,
    check_finite_state,
    check_tensor,
    check_weights,
    code_dtype,
    validate_real_data,
)

__all__ = ["KMeans1DResult", "KMeans1DRows", "KMeansQuantizer", "kmeans_1d", "kmeans_1d_rows"]

#: Most distinct values of one problem (the exact solver indexes them with int32).
_MAX_VALUES = (1 << 31) - 2

#: Values (rows x values) below which the batched fit runs on one thread.
_MIN_VALUES_PER_THREAD = 1 << 15

#: Largest backtracking table (bytes) the optimal programme keeps in memory.
#: Above it the programme is run twice: a first pass keeps only checkpoint
#: rows, a second pass recomputes one segment of layers at a time.
MAX_TABLE_BYTES = 1 << 30

#: Most float32 values whose (value, index) pairs fit one 64-bit sort key.
_MAX_INDEXED_PAIRS = 1 << 32

#: Weights that ``_distinct_weighted`` compares in compiled code (stopping at the
#: first that differs) before it compares all of them.
_EQUAL_WEIGHTS_PREFIX = 4096

_INITS = ("histogram", "linear", "density", "k-means++", "random")
_ALGORITHMS = ("optimal", "lloyd")


def _distinct_weighted(values, weights):
    """Sorted distinct values with positive total weight, and their summed weights.

    Float32 values are read as float32 (and widened exactly on output), other
    dtypes as float64. Unequal weights: the pairs with positive weight are
    sorted in compiled code, as if by a stable sort (float32: the value's bits
    and its index as one 64-bit integer, sorted by NumPy, the weights gathered
    in the merge; float64: a radix sort of (value, weight) records), and the
    weights of a value are summed in input order; both results are views of
    one buffer. Equal weights: a plain sort, and ``count * weight`` per value.
    """
    if values.dtype != np.float32:
        values = np.ascontiguousarray(values, dtype=np.float64)
    weights = np.ascontiguousarray(weights, dtype=np.float64)
    # two different positive weights among the first ones decide it at once; otherwise
    # NumPy's (vectorised) comparisons of all the weights
    equal = _kmeans1d.equal_weights(weights[:_EQUAL_WEIGHTS_PREFIX])[0]
    if equal:
        keep = weights > 0
        if not np.all(keep):
            values = values[keep]
            weights = weights[keep]
        equal = bool(np.all(weights == weights[0]))
    if not equal:
        n = values.shape[0]
        out = np.empty(2 * n)
        values = np.ascontiguousarray(values)
        if values.dtype == np.float32 and n <= _MAX_INDEXED_PAIRS:
            # (value bits, index) as one integer: NumPy's vectorised sort, in place
            keys = out[:n].view(np.uint64)
            c = _kmeans1d.pair_keys(values, weights, keys)
            keys[:c].sort()
            m = _kmeans1d.merge_keys(keys[:c], weights, out[n:])
        else:
            m = _kmeans1d.distinct_pairs(values, weights, out)
        return out[:m], out[n : n + m]
    # no weights to carry along: a plain sort (in the input dtype) is faster
    xs = np.sort(values).astype(np.float64)
    first = np.empty(xs.shape[0], dtype=bool)
    first[0] = True
    np.not_equal(xs[1:], xs[:-1], out=first[1:])
    idx = np.flatnonzero(first)
    counts = np.diff(np.append(idx, xs.shape[0])).astype(np.float64)
    return np.ascontiguousarray(xs[idx]), counts * weights[0]


def _prefix(ux, uw):
    """Kahan prefix sums of the weights and of the moments centred on the weighted mean."""
    n = ux.shape[0]
    shift = float(np.dot(uw, ux) / uw.sum())
    pw, p1, p2 = np.empty(n + 1), np.empty(n + 1), np.empty(n + 1)
    _kmeans1d.prefix_sums(ux, uw, shift, pw, p1, p2)
    return shift, pw, p1, p2


def _lagrangian_starts(ux, uw, k):
    """Cluster starts (k + 1,) of the optimal partition of sorted distinct values.

    The Lagrangian search of ``_kmeans1d_lambda.h``: ``O(n log n)`` per
    penalised programme, a handful of programmes whatever ``k``.
    """
    starts = np.empty(k + 1, dtype=np.int64)
    shift = float(np.dot(uw, ux) / uw.sum())
    _kmeans1d.optimal_starts(ux, uw, shift, starts)
    return starts


def _optimal_starts(pw, p1, p2, n, k, n_threads, max_table_bytes=MAX_TABLE_BYTES):
    """Cluster starts (k + 1,) of the optimal partition of ``n`` sorted distinct values.

    Layer ``m`` of the programme (``m`` clusters placed, ``1 <= m < k``) only
    needs rows ``m .. n - k + m``: the remaining clusters need one value each.
    The argmins of all layers form a ``(k - 1) x (n - k + 1)`` int32 table. If
    it fits in ``max_table_bytes`` it is kept; otherwise the forward pass keeps
    the cost row and the argmin row at the start of every segment of ``s``
    layers (``s`` about ``sqrt(3k)``), and the backtracking recomputes one
    segment at a time from its checkpoint, in reverse; this costs a second
    forward pass and ``O(n sqrt(k))`` memory. Both passes do identical
    arithmetic, so the result does not depend on the memory budget.
    """
    starts = np.zeros(k + 1, dtype=np.int64)
    starts[k] = n
    if k == 1:
        return starts
    width = n - k + 1
    d_prev = np.empty(n)
    d_cur = np.empty(n)
    work = np.empty(n)
    _kmeans1d.dp_first_layer(pw, p1, p2, d_prev)
    empty = np.empty(0, dtype=np.int32)
    row_bytes = 4 * width
    if (k - 1) * row_bytes <= max_table_bytes:
        seg = k - 1
    else:
        seg = max(1, int(np.sqrt(3 * (k - 1))))
    if seg >= k - 1:
        table = np.empty((k - 1, width), dtype=np.int32)
        for m in range(1, k):
            lower = table[m - 2] if m >= 2 else empty
            _kmeans1d.dp_layer(
                pw,
                p1,
                p2,
                d_prev,
                lower,
                m - 1,
                d_cur,
                table[m - 1],
                work,
                m,
                m,
                n - k + m,
                n_threads,
            )
            d_prev, d_cur = d_cur, d_prev
        i = n - 1
        for m in range(k - 1, 0, -1):
            j = int(table[m - 1, i - m])
            starts[m] = j
            i = j - 1
        return starts
    # checkpointed pass: keep D and the previous argmin row at every segment start
    checkpoints = {}
    arg_prev = empty
    bufs = (np.empty(width, dtype=np.int32), np.empty(width, dtype=np.int32))
    for m in range(1, k):
        if (m - 1) % seg == 0:
            checkpoints[m] = (d_prev.copy(), arg_prev.copy())
        arg_cur = bufs[m % 2]
        _kmeans1d.dp_layer(
            pw, p1, p2, d_prev, arg_prev, m - 1, d_cur, arg_cur, work, m, m, n - k + m, n_threads
        )
        d_prev, d_cur = d_cur, d_prev
        arg_prev = arg_cur
    table = np.empty((seg, width), dtype=np.int32)
    i = n - 1
    for m0 in sorted(checkpoints, reverse=True):
        d_seg, lower = checkpoints.pop(m0)
        m1 = min(m0 + seg, k)
        d_a, d_b = d_seg, d_cur
        for m in range(m0, m1):
            low = lower if m == m0 else table[m - m0 - 1]
            _kmeans1d.dp_layer(
                pw, p1, p2, d_a, low, m - 1, d_b, table[m - m0], work, m, m, n - k + m, n_threads
            )
            d_a, d_b = d_b, d_a
        for m in range(m1 - 1, m0 - 1, -1):
            j = int(table[m - m0, i - m])
            starts[m] = j
            i = j - 1
    return starts


def _histogram_seeds(ux, uw, k, n_threads):
    """Optimal centres of a coarsened copy of the data (the ``"histogram"`` init).

    The sorted distinct values are cut into at most ``2 * max(16 k, 1024)``
    contiguous groups, at the union of equal-width and equal-count edges (so
    both dense regions and sparse tails are resolved); each group becomes its
    weighted mean with its total weight, and the exact programme is solved on
    the groups. Cost: ``O(k B log B)`` with ``B`` groups, independent of ``n``.
    """
    n = ux.shape[0]
    b = max(16 * k, 1024)
    if n <= 2 * b:
        gx, gw = ux, uw
    else:
        edges_w = np.searchsorted(ux, np.linspace(ux[0], ux[-1], b + 1)[1:-1], side="left")
        edges_c = np.linspace(0, n, b + 1).round().astype(np.int64)[1:-1]
        edges = np.unique(np.concatenate(([0], edges_w, edges_c, [n])))
        cw = np.concatenate(([0.0], np.cumsum(uw)))
        cx = np.concatenate(([0.0], np.cumsum(uw * (ux - ux[0]))))
        gw = np.diff(cw[edges])
        gx = ux[0] + np.diff(cx[edges]) / gw
        keep = gw > 0
        gx, gw = np.ascontiguousarray(gx[keep]), np.ascontiguousarray(gw[keep])
        gx, gw = _distinct_weighted(gx, gw)
    return _cluster_means(gx, gw, _lagrangian_starts(gx, gw, k), None)


def _init_centers(ux, uw, k, init, rng, n_threads=1):
    """Initial sorted centres for 1-D Lloyd (prior validation assumed)."""
    if not isinstance(init, str):
        return np.sort(np.asarray(init, dtype=np.float64))
    if init == "histogram":
        return _histogram_seeds(ux, uw, k, n_threads)
    if init == "linear":
        return np.linspace(ux[0], ux[-1], k)
    if init == "density":
        cdf = np.cumsum(uw)
        targets = (np.arange(k) + 0.5) / k * cdf[-1]
        idx = np.minimum(np.searchsorted(cdf, targets, side="left"), ux.shape[0] - 1)
        centers = ux[idx]
        if np.unique(centers).shape[0] < k:  # heavy atoms: fall back to distinct quantiles
            centers = ux[np.linspace(0, ux.shape[0] - 1, k).round().astype(np.intp)]
        return np.sort(centers)
    if init == "random":
        idx = rng.choice(ux.shape[0], size=k, replace=False, p=uw / uw.sum())
        return np.sort(ux[idx])
    from sklearn.cluster import kmeans_plusplus

    centers, _ = kmeans_plusplus(
        ux[:, None], k, sample_weight=uw, random_state=int(rng.integers(2**31 - 1))
    )
    return np.sort(centers[:, 0])


class KMeans1DResult(NamedTuple):
    """Codebook, error and iteration count of :func:`kmeans_1d`.

    Parameters
    ----------
    codebook : ndarray of shape (n_clusters,)
        Sorted float64 centroids.
    inertia : float
        Weighted squared error against the nearest centroids.
    n_iter : int
        Lloyd iterations run (1 for ``algorithm="optimal"``).

    See Also
    --------
    kmeans_1d : the function that returns it.

    Examples
    --------
    >>> from qtoolkit.codebooks import kmeans_1d
    >>> kmeans_1d([0.0, 1.0, 4.0], 2).codebook
    array([0.5, 4. ])
    """

    codebook: np.ndarray
    inertia: float
    n_iter: int


def kmeans_1d(
    values: ArrayLike,
    n_clusters: int,
    *,
    sample_weight: ArrayLike | None = None,
    algorithm: Literal["optimal", "lloyd"] = "optimal",
    init: Literal["histogram", "linear", "density", "k-means++", "random"]
    | ArrayLike = "histogram",
    max_iter: int = 300,
    tol: float = 1e-4,
    rng: RNGLike = None,
    n_threads: int | None = None,
) -> KMeans1DResult:
    r"""Weighted k-means of scalars: the codebook of scalar weight sharing.

    Parameters
    ----------
    values : array_like of shape (...)
        The scalars to cluster (a weight tensor of any shape); finite.
    n_clusters : int
        Number of codewords ``k``, at most the number of distinct values with
        positive weight.
    sample_weight : array_like, optional
        Non-negative weight of each value, of the shape of ``values`` (or
        ``(values.shape[0],)``). Default: all ones.
    algorithm : {"optimal", "lloyd"}, default="optimal"
        ``"optimal"``: the globally optimal partition (exact; see Notes).
        ``"lloyd"``: Lloyd iterations on the sorted values.
    init : {"histogram", "linear", "density", "k-means++", "random"} or array, default="histogram"
        Initial centres for ``"lloyd"`` (ignored by ``"optimal"``), or an
        array of shape ``(n_clusters,)``. ``"histogram"``: the optimal
        centres of a coarsened copy of the data (at most ``32 k`` groups,
        cut at equal-width and equal-count edges); ``"linear"``: evenly
        spaced over ``[min, max]`` (Deep Compression's choice); ``"density"``:
        weighted quantiles; ``"k-means++"``: scikit-learn's seeding;
        ``"random"``: distinct values drawn with probability proportional to
        weight. On large tensors with many codewords, Lloyd from the
        ``"linear"`` or ``"density"`` seeds stops at fixed points far from the
        optimum (tens of percent more error at ``k = 256``), which is why
        ``"histogram"`` is the default.
    max_iter : int, default=300
        Maximum number of Lloyd iterations. At most ``10**6``.
    tol : float, default=1e-4
        Lloyd stops when the summed squared centre shift is at most
        ``tol`` times the weighted variance of the values.
    rng : None, int or numpy.random.Generator, optional
        Randomness for ``init="k-means++"`` and ``init="random"``.
    n_threads : int, optional
        Validated for a uniform interface; one problem is solved on one
        thread (the search over penalties is sequential), so the result never
        depends on it. :func:`kmeans_1d_rows` spreads many problems over
        threads.

    Returns
    -------
    result : KMeans1DResult
        A NamedTuple ``(codebook, inertia, n_iter)``:
    codebook : ndarray of shape (n_clusters,)
        Sorted float64 centroids (weighted means of their clusters).
    inertia : float
        Weighted squared error :math:`\sum_i s_i (x_i - c_{a(i)})^2` with
        every value assigned to its nearest centroid.
    n_iter : int
        Lloyd iterations run (1 for ``"optimal"``).

    Raises
    ------
    ValueError
        If ``values`` is empty or holds NaN/Inf, if a weight is negative or
        non-finite, or if ``n_clusters`` exceeds the number of distinct values
        with positive weight.
    TypeError
        If ``n_clusters`` is not an integer.

    See Also
    --------
    KMeansQuantizer : the same as a scikit-learn estimator.

    Notes
    -----
    With sorted distinct values :math:`x_1 < \dots < x_n` and summed weights
    :math:`s_i`, the optimal error of :math:`m` clusters on the first
    :math:`i` values obeys

    .. math::

        D_m(i) = \min_{m \le j \le i} D_{m-1}(j - 1) + C(j, i), \qquad
        C(j, i) = \sum_{t=j}^{i} s_t x_t^2 - \frac{(\sum_{t=j}^{i} s_t x_t)^2}
                  {\sum_{t=j}^{i} s_t},

    with :math:`C` read off compensated prefix sums of values centred on
    their mean, so a cluster costs :math:`O(1)`. Rather than the :math:`k`
    layers of this programme, the solver uses the Lagrangian relaxation of
    the number of clusters [2]_: for a penalty :math:`\lambda > 0`,

    .. math::

        F(i) = \min_{j \le i} F(j - 1) + C(j, i) + \lambda

    is one programme whatever :math:`k`, solved in :math:`O(n \log n)`
    because :math:`C` obeys the quadrangle inequality (a queue of candidate
    cluster starts, each owning an interval of ends). :math:`D_k(n)` is
    convex in :math:`k`, so each :math:`k` on its lower hull is the count
    of clusters at some :math:`\lambda`; a few programmes find it (secant and
    regula falsi on :math:`\log` count against :math:`\log \lambda`, then
    the chord slope :math:`(D_a - D_b) / (k_b - k_a)` of the bracket). When
    several counts tie at one :math:`\lambda` (a straight piece of the hull,
    common with many duplicates), the partition with exactly :math:`k`
    clusters is spliced from the two optimal partitions of the bracket by the
    exchange argument of the quadrangle inequality. The cost is nearly
    independent of :math:`k`. Duplicate values are merged first.

    References
    ----------
    .. [1] H. Wang and M. Song, "Ckmeans.1d.dp: optimal k-means clustering in
       one dimension by dynamic programming", The R Journal 3(2), 2011.
    .. [2] A. Grønlund et al., "Fast exact k-means, k-medians and Bregman
       divergence clustering in 1D", arXiv:1701.07204, 2017.
    .. [3] S. Han, H. Mao and W. J. Dally, "Deep Compression", ICLR 2016.

    Examples
    --------
    >>> import numpy as np
    >>> from qtoolkit.codebooks import kmeans_1d
    >>> codebook, inertia, n_iter = kmeans_1d([0.0, 0.1, 0.9, 1.0, 5.0], 2)
    >>> codebook
    array([0.5, 5. ])
    >>> round(inertia, 6)
    0.82
    """
    x = check_tensor(values, "values")
    k, algorithm, init, max_iter, tol, n_threads = _check_params(
        n_clusters, algorithm, init, max_iter, tol, n_threads
    )
    sw = check_weights(sample_weight, x.shape)
    return _kmeans_1d(x, k, sw, algorithm, init, max_iter, tol, n_threads, check_random_state(rng))


def _check_params(n_clusters, algorithm, init, max_iter, tol, n_threads):
    """Validate the parameters of :func:`kmeans_1d` (and of ``KMeansQuantizer``)."""
    k = check_int(n_clusters, "n_clusters", low=1, high=1 << 16)
    if algorithm not in _ALGORITHMS:
        raise ValueError(f"algorithm must be one of {_ALGORITHMS}, got {algorithm!r}")
    if isinstance(init, str):
        if init not in _INITS:
            raise ValueError(
                f"init must be one of {_INITS} or an array of shape (n_clusters,), got {init!r}"
            )
    else:
        arr = np.asarray(init, dtype=np.float64) if not isinstance(init, str) else None
        if arr.shape != (k,) or not np.all(np.isfinite(arr)):
            raise ValueError(
                f"init must be one of {_INITS} or a finite array of shape "
                f"({k},), got {describe(init)}"
            )
    max_iter = check_int(max_iter, "max_iter", low=1, high=MAX_ITER)
    tol = check_tol(tol)
    return k, algorithm, init, max_iter, tol, check_n_threads(n_threads)


def _kmeans_1d(x, k, sw, algorithm, init, max_iter, tol, n_threads, rng):
    """The core of :func:`kmeans_1d` on validated input (``x`` float array, ``sw`` its weights)."""
    ux, uw = _distinct_weighted(x.ravel(), np.ascontiguousarray(sw, dtype=np.float64).ravel())
    n = ux.shape[0]
    if n > _MAX_VALUES:
        raise ValueError(f"values holds {n} distinct values; at most {_MAX_VALUES} are supported")
    if k > n:
        raise ValueError(
            f"n_clusters={k} exceeds the number of distinct values with positive "
            f"weight ({n}); use n_clusters <= {n}"
        )
    if algorithm == "optimal":
        starts = _lagrangian_starts(ux, uw, k)
        codebook = _cluster_means(ux, uw, starts, None)
        n_iter = 1
    else:
        shift, pw, p1, p2 = _prefix(ux, uw)
        codebook = np.ascontiguousarray(
            _init_centers(ux, uw, k, init, rng, n_threads), dtype=np.float64
        )
        starts = np.empty(k + 1, dtype=np.int_)
        variance = p2[-1] / pw[-1]
        n_iter = _kmeans1d.lloyd(
            ux, pw, p1, p2, shift, codebook, starts, max_iter, float(tol) * variance
        )
        # the centres are the means of the last assignment (``starts``) unless an
        # empty cluster was moved in the last iteration: recompute those means
        # by direct sums, which are exact for clusters of a single value
        sizes = np.diff(starts)
        if np.all(sizes >= 0) and starts[0] == 0 and starts[-1] == n:
            live = sizes > 0
            pm = (
                shift
                + (p1[starts[1:]] - p1[starts[:-1]])[live]
                / (pw[starts[1:]] - pw[starts[:-1]])[live]
            )
            if np.allclose(pm, codebook[live], rtol=1e-9, atol=1e-12 * np.sqrt(variance)):
                codebook = _cluster_means(ux, uw, starts, codebook)
        codebook = np.sort(codebook)
    inertia = _inertia_sorted(ux, uw, codebook)
    return KMeans1DResult(codebook, inertia, int(n_iter))


class KMeans1DRows(NamedTuple):
    """Codebooks and errors of :func:`kmeans_1d_rows`, one per row.

    Parameters
    ----------
    codebooks : ndarray of shape (n_rows, n_clusters)
        Sorted float64 optimal codebook of every row.
    inertia : ndarray of shape (n_rows,)
        Weighted squared error of every row against its nearest codewords.

    See Also
    --------
    kmeans_1d_rows : the function that returns it.

    Examples
    --------
    >>> from qtoolkit.codebooks import kmeans_1d_rows
    >>> codebooks, inertia = kmeans_1d_rows([[0.0, 1.0, 4.0]], 2)
    >>> codebooks
    array([[0.5, 4. ]])
    """

    codebooks: np.ndarray
    inertia: np.ndarray


def kmeans_1d_rows(
    X: ArrayLike,
    n_clusters: int,
    *,
    sample_weight: ArrayLike | None = None,
    n_threads: int | None = None,
) -> KMeans1DRows:
    r"""Optimal 1-D k-means of every row of a matrix: one codebook per row, in one call.

    Each row is an independent weighted 1-D k-means problem (per-row
    codebooks of weight sharing, non-uniform grids of post-training
    quantization), solved exactly as :func:`kmeans_1d` with
    ``algorithm="optimal"`` solves one; the rows are spread over threads.

    Parameters
    ----------
    X : array_like of shape (n_rows, n_values)
        Finite values; row ``i`` is clustered on its own.
    n_clusters : int
        Codewords per row, from 1 to 65536, at most the number of distinct
        values with positive weight in every row.
    sample_weight : array_like of shape (n_rows, n_values) or (n_values,), optional
        Non-negative weight of each value; a 1-D array is one weight per
        column, shared by every row (e.g. the diagonal of a layer's input
        Hessian). Default: all ones.
    n_threads : int, optional
        Threads across rows. Default: one thread below 32768 values in all,
        otherwise every usable CPU (at most one per row). Results do not
        depend on it.

    Returns
    -------
    result : KMeans1DRows
        ``codebooks`` (n_rows, n_clusters): sorted optimal codebook of every
        row (weighted means of its clusters); ``inertia`` (n_rows,): each
        row's weighted squared error against its nearest codewords.

    Raises
    ------
    ValueError
        If ``X`` is not 2-D or holds NaN/Inf, if a weight is negative or
        non-finite, or if a row has fewer than ``n_clusters`` distinct values
        with positive weight (the message names the first such row).
    TypeError
        If ``n_clusters`` or ``n_threads`` is not an integer.

    See Also
    --------
    kmeans_1d : one problem, with Lloyd as an alternative.
    KMeansQuantizer : one codebook shared by a whole tensor.

    Notes
    -----
    Row :math:`r` gets the codebook minimising
    :math:`\sum_j s_{rj} (x_{rj} - c_{r, a(j)})^2`; see :func:`kmeans_1d`
    for the Lagrangian algorithm [1]_. Rows without weights are sorted by
    NumPy (slices of rows on the threads), weighted rows with their weights in
    compiled code; each row is then deduplicated, summarised by compensated
    prefix sums and solved in compiled code without the GIL. Rows go to the
    threads in blocks of 16 (dynamic schedule); within a block, above 8
    codewords, each row's penalty search starts from the geometric mean of
    the penalties found for the rows before it (rows of one matrix are alike,
    so it usually gives ``n_clusters`` clusters at once), at most 8 from the
    row's own Lloyd estimate. The blocks do not depend on the number of threads, so neither
    does any result. Every codebook is optimal for its row; where several
    are, which one is returned can depend on the earlier rows of its block
    (and so differ from :func:`kmeans_1d` on that row alone).

    References
    ----------
    .. [1] A. Grønlund et al., "Fast exact k-means, k-medians and Bregman
       divergence clustering in 1D", arXiv:1701.07204, 2017.

    Examples
    --------
    >>> import numpy as np
    >>> from qtoolkit.codebooks import kmeans_1d_rows
    >>> X = np.array([[0.0, 0.1, 1.0, 1.1], [5.0, 5.0, 6.0, 9.0]])
    >>> res = kmeans_1d_rows(X, 2)
    >>> res.codebooks
    array([[0.05      , 1.05      ],
           [5.33333333, 9.        ]])
    >>> res.inertia
    array([0.01      , 0.66666667])
    """
    x = check_tensor(X, "X")
    if x.ndim != 2:
        raise ValueError(f"X must be 2-D (n_rows, n_values), got shape {x.shape}")
    k = check_int(n_clusters, "n_clusters", low=1, high=1 << 16)
    r, n = x.shape
    if n > _MAX_VALUES:
        raise ValueError(f"X has {n} values per row; at most {_MAX_VALUES} are supported")
    if n_threads is None:
        work = r * n
        n_threads = 1 if work < _MIN_VALUES_PER_THREAD else max(1, min(cpu_count(), r))
    else:
        n_threads = check_n_threads(n_threads)
    if sample_weight is None:
        xs = _sort_rows(x, n_threads)
        ws = np.empty(0)
    else:
        sw = np.asarray(sample_weight)
        if sw.dtype == object or not (
            np.issubdtype(sw.dtype, np.floating) or np.issubdtype(sw.dtype, np.integer)
        ):
            raise TypeError(
                f"sample_weight must be an array of real numbers, got {describe(sample_weight)}"
            )
        sw = sw.astype(np.float64)
        if sw.shape != (n,) and sw.shape != (r, n):
            raise ValueError(f"sample_weight must have shape {(r, n)} or ({n},), got {sw.shape}")
        if not np.all(np.isfinite(sw)):
            raise ValueError("sample_weight contains NaN or Inf")
        if np.any(sw < 0):
            raise ValueError(f"sample_weight must be non-negative, got a minimum of {sw.min()!r}")
        # (value, weight) pairs are sorted together inside the kernel, row by row
        xs = x.astype(np.float64, copy=False)
        ws = np.ascontiguousarray(sw).reshape(-1)
    xs = np.ascontiguousarray(xs)
    codebooks = np.empty((r, k))
    inertia = np.empty(r)
    status = np.zeros(r, dtype=np.intc)
    is_sorted = sample_weight is None
    _kmeans1d.fit_rows(xs, ws, is_sorted, codebooks, inertia, status, int(n_threads))
    if np.any(status == -1):
        raise MemoryError("kmeans_1d_rows: no memory for the work space of a row")
    bad = np.flatnonzero(status == -2)
    if bad.size:
        i = int(bad[0])
        wi = np.ones(n) if ws.size == 0 else (ws if ws.size == n else ws[i * n : (i + 1) * n])
        m = int(np.unique(xs[i][wi > 0]).size)
        raise ValueError(
            f"n_clusters={k} exceeds the number of distinct values with positive weight "
            f"in row {i} ({m}); use n_clusters <= {m}"
        )
    return KMeans1DRows(codebooks, inertia)


def _sort_rows(x, n_threads):
    """Rows of ``x`` sorted ascending, as float64, sorted by ``n_threads`` threads.

    Each thread sorts a contiguous slice of rows in the input dtype (float32
    sorts faster) and widens it into the output; NumPy's sort releases the GIL.
    """
    xs = np.empty(x.shape, dtype=np.float64)
    r = x.shape[0]
    if n_threads <= 1 or r < 2 * n_threads:
        xs[...] = np.sort(x, axis=1)
        return xs
    from concurrent.futures import ThreadPoolExecutor

    bounds = [r * t // n_threads for t in range(n_threads + 1)]

    def sort_slice(t):
        a, b = bounds[t], bounds[t + 1]
        xs[a:b] = np.sort(x[a:b], axis=1)

    with ThreadPoolExecutor(max_workers=n_threads) as pool:
        list(pool.map(sort_slice, range(n_threads)))
    return xs


def _cluster_means(ux, uw, starts, fallback):
    """Weighted means of the clusters ``ux[starts[t]:starts[t + 1]]``, summed directly.

    Each mean is ``x_first + sum(w (x - x_first)) / sum(w)``, so a cluster of
    one distinct value returns that value exactly. Empty clusters keep
    ``fallback[t]``.
    """
    sizes = np.diff(starts)
    live = sizes > 0
    first = starts[:-1][live]
    base = ux[first]
    off = uw * (ux - np.repeat(base, sizes[live]))
    means = base + np.add.reduceat(off, first) / np.add.reduceat(uw, first)
    if fallback is None:
        return means
    out = np.array(fallback, dtype=np.float64)
    out[live] = means
    return out


def _ndim(X):
    """Number of dimensions of an array-like without NumPy's dispatch protocol."""
    ndim = getattr(X, "ndim", None)
    return np.asarray(X).ndim if ndim is None else ndim


def _assign(values, codebook):
    """Index of the nearest codeword of a sorted codebook (ties go to the lower one)."""
    bounds = 0.5 * (codebook[1:] + codebook[:-1])
    return np.searchsorted(bounds, values, side="left")


def _inertia_sorted(ux, uw, codebook):
    """Weighted squared error of the values against their nearest codewords."""
    codes = _assign(ux, codebook)
    return float(np.dot(uw, (ux - codebook[codes]) ** 2))


class KMeansQuantizer(CodesTransformerMixin, TransformerMixin, BaseEstimator):
    r"""Scalar weight sharing: a codebook of ``n_clusters`` values learned by 1-D k-means.

    Every entry of the input is one scalar weight, whatever its shape:
    ``fit`` learns a sorted codebook from all entries (optionally weighted,
    e.g. by a Hessian diagonal), ``transform`` returns the integer code of
    every entry (same shape), ``inverse_transform`` the shared values.

    Parameters
    ----------
    n_clusters : int, default=8
        Codebook size ``k``, from 1 to 65536.
    algorithm : {"optimal", "lloyd"}, default="optimal"
        ``"optimal"``: globally optimal weighted 1-D k-means (exact, by the
        Lagrangian search of :func:`kmeans_1d`). ``"lloyd"``: Lloyd iterations on the data sorted
        once, with prefix sums, so an iteration costs ``O(k log n)``.
    init : {"histogram", "linear", "density", "k-means++", "random"} or array, default="histogram"
        Initial centres for ``"lloyd"``; ignored by ``"optimal"``. See
        :func:`kmeans_1d` (``"linear"`` is Deep Compression's choice).
    max_iter : int, default=300
        Maximum Lloyd iterations. At most ``10**6``.
    tol : float, default=1e-4
        Lloyd's stopping tolerance on the squared centre shift, relative to
        the weighted variance of the data.
    random_state : None, int or numpy.random.Generator, default=None
        Seed for the random initialisations.
    n_threads : int, default=None
        Validated for a uniform interface; one fit runs on one thread, so
        results never depend on it.

    Attributes
    ----------
    codebook_ : ndarray of shape (n_clusters,)
        Sorted float64 codewords (weighted means of their clusters).
    boundaries_ : ndarray of shape (n_clusters - 1,)
        Decision thresholds (midpoints between consecutive codewords).
    inertia_ : float
        Weighted squared quantization error on the training data.
    n_iter_ : int
        Lloyd iterations (1 for ``"optimal"``).
    n_features_in_ : int
        Number of columns of ``X``, set only when ``fit`` received a 2-D array.

    See Also
    --------
    kmeans_1d : the function behind ``fit``.
    hessian_weighted_kmeans : fit with Hessian or Adam second-moment weights.
    ProductQuantizer : vector codebooks (``n_subspaces=1`` is plain vector k-means).

    Notes
    -----
    ``fit`` minimises :math:`\sum_i s_i (w_i - c_{a(i)})^2` over the codebook
    :math:`c` and the assignment :math:`a`; the centroids are weighted means
    :math:`c_j = \sum_{a(i)=j} s_i w_i / \sum_{a(i)=j} s_i`. Deep Compression
    stores :math:`\log_2 k` bits per weight plus the codebook.

    ``n_clusters`` larger than the number of distinct values (with positive
    weight) raises ``ValueError``. Codes are ``uint8`` for ``k <= 256``,
    ``uint16`` up to 65536.

    References
    ----------
    .. [1] S. Han, H. Mao and W. J. Dally, "Deep Compression", ICLR 2016.
    .. [2] H. Wang and M. Song, "Ckmeans.1d.dp", The R Journal 3(2), 2011.

    Examples
    --------
    >>> import numpy as np
    >>> from qtoolkit.codebooks import KMeansQuantizer
    >>> w = np.array([[-1.0, -0.9, 0.0], [0.1, 1.0, 1.2]])
    >>> q = KMeansQuantizer(n_clusters=3).fit(w)
    >>> q.codebook_
    array([-0.95,  0.05,  1.1 ])
    >>> q.transform(w)
    array([[0, 0, 1],
           [1, 2, 2]], dtype=uint8)
    """

    def __init__(
        self,
        n_clusters: int = 8,
        *,
        algorithm: Literal["optimal", "lloyd"] = "optimal",
        init: Literal["histogram", "linear", "density", "k-means++", "random"]
        | ArrayLike = "histogram",
        max_iter: int = 300,
        tol: float = 1e-4,
        random_state: RandomStateLike = None,
        n_threads: int | None = None,
    ) -> None:
        self.n_clusters = n_clusters
        self.algorithm = algorithm
        self.init = init
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state
        self.n_threads = n_threads

    def fit(
        self, X: ArrayLike, y: None = None, sample_weight: ArrayLike | None = None
    ) -> KMeansQuantizer:
        """Learn the codebook from every entry of ``X``.

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features) or any shape
            The weights; every entry is one scalar.
        y : None
            Ignored.
        sample_weight : array_like of the shape of ``X`` or (n_samples,), optional
            Non-negative weight per entry (e.g. a Hessian diagonal) or per row.

        Returns
        -------
        self : KMeansQuantizer
            The fitted quantizer.
        """
        if _ndim(X) == 2:
            x = validate_real_data(self, X, dtype=[np.float64, np.float32], reset=True)
        else:
            x = check_tensor(X, "X")
            for attr in ("n_features_in_", "feature_names_in_"):
                if hasattr(self, attr):
                    delattr(self, attr)
        k, algorithm, init, max_iter, tol, n_threads = _check_params(
            self.n_clusters, self.algorithm, self.init, self.max_iter, self.tol, self.n_threads
        )
        sw = check_weights(sample_weight, x.shape)
        rng = check_random_state(self.random_state, "random_state")
        # validated once, above: the private core, not the public kmeans_1d
        codebook, inertia, n_iter = _kmeans_1d(
            x, k, sw, algorithm, init, max_iter, tol, n_threads, rng
        )
        self.codebook_ = codebook
        self.boundaries_ = 0.5 * (codebook[1:] + codebook[:-1])
        self.inertia_ = inertia
        self.n_iter_ = n_iter
        return check_finite_state(self)

    def transform(self, X: ArrayLike) -> NDArray[np.integer]:
        """Code of the nearest codeword for every entry.

        Parameters
        ----------
        X : array_like
            Values to encode. After a 2-D ``fit``, ``X`` must be 2-D with
            ``n_features_in_`` columns (scikit-learn's contract); after a fit
            on a tensor of another dimension, any shape is accepted.
            :meth:`quantize` accepts any shape in both cases.

        Returns
        -------
        codes : ndarray of the shape of ``X``
            Unsigned integer codes (ties between two codewords go to the lower).
        """
        check_is_fitted(self, "codebook_")
        if hasattr(self, "n_features_in_"):
            x = validate_real_data(self, X, dtype=[np.float64, np.float32], reset=False)
        else:
            x = check_tensor(X, "X")
        return self._encode(x)

    def _encode(self, x):
        codes = np.searchsorted(self.boundaries_, x, side="left")
        return codes.astype(code_dtype(self.codebook_.shape[0]))

    def inverse_transform(self, X: ArrayLike) -> NDArray[np.float64]:
        """Return the codewords of integer codes.

        Parameters
        ----------
        X : array_like of int
            Codes in ``[0, n_clusters)``, any shape.

        Returns
        -------
        values : ndarray of float64, same shape as ``X``
            ``codebook_[X]``.
        """
        check_is_fitted(self, "codebook_")
        return self.codebook_[check_codes(X, self.codebook_.shape[0], "X")]

    def predict(self, X: ArrayLike) -> NDArray[np.integer]:
        """Return the cluster index of every entry (as :meth:`transform`).

        Parameters
        ----------
        X : array_like of any shape
            Values to encode.

        Returns
        -------
        codes : ndarray of the shape of ``X``
            Cluster indices.
        """
        return self.transform(X)

    def quantize(self, X: ArrayLike) -> NDArray[np.floating]:
        """Replace every entry by its codeword, keeping the floating dtype of ``X``.

        Parameters
        ----------
        X : array_like of any shape
            Values to quantize.

        Returns
        -------
        q : ndarray, same shape as ``X``
            ``codebook_[transform(X)]`` cast to the dtype of ``X`` (float32 stays float32).
        """
        check_is_fitted(self, "codebook_")
        x = check_tensor(X, "X")
        return self.codebook_[self._encode(x)].astype(x.dtype, copy=False)
