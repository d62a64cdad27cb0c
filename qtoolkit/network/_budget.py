"""Mixed precision to a budget: the exact multiple-choice knapsack and its Pareto curve."""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import reduce
from typing import NamedTuple

import numpy as np

from .._array import describe
from .._typing import ArrayLike

MAX_TABLE = 1 << 25


class Allocation(NamedTuple):
    """The configuration chosen for every layer under a budget (returned by :func:`allocate`).

    Parameters
    ----------
    choice : numpy.ndarray of int, shape (n_layers,)
        Index of the chosen candidate of each layer.
    error : float
        Total error of the choice (sum over layers).
    cost : int
        Total cost of the choice (same unit as the costs given).
    exact : bool
        True when the costs were solved without rounding (see :func:`allocate`).

    See Also
    --------
    allocate

    Examples
    --------
    >>> from qtoolkit.network import allocate
    >>> allocate([[2.0, 1.0]], [[1, 3]], budget=2).choice.tolist()
    [0]
    """

    choice: np.ndarray
    error: float
    cost: int
    exact: bool


class ParetoCurve(NamedTuple):
    """Every configuration that no other beats in both cost and error (from :func:`pareto`).

    Parameters
    ----------
    cost : numpy.ndarray of int, shape (n_points,)
        Increasing total costs.
    error : numpy.ndarray of float, shape (n_points,)
        Strictly decreasing minimal total errors at those costs.
    choice : numpy.ndarray of int, shape (n_points, n_layers)
        The optimal candidate of each layer at each point.
    exact : bool
        True when the costs were solved without rounding.

    See Also
    --------
    pareto

    Examples
    --------
    >>> from qtoolkit.network import pareto
    >>> pareto([[2.0, 1.0]], [[1, 3]]).cost.tolist()
    [1, 3]
    """

    cost: np.ndarray
    error: np.ndarray
    choice: np.ndarray
    exact: bool


def _check(errors, costs):
    if not isinstance(errors, (list, tuple)) or not isinstance(costs, (list, tuple)):
        raise TypeError(
            f"errors and costs must be lists (one entry per layer), got {describe(errors)} "
            f"and {describe(costs)}"
        )
    if len(errors) != len(costs) or not errors:
        raise ValueError(
            f"errors and costs must have the same non-zero length, got {len(errors)} and "
            f"{len(costs)}"
        )
    E, C = [], []
    for i, (e, c) in enumerate(zip(errors, costs)):
        e = np.asarray(e, dtype=np.float64).reshape(-1)
        c = np.asarray(c)
        if c.dtype.kind not in "iu":
            raise TypeError(f"costs[{i}] must be integers (e.g. bits), got dtype {c.dtype}")
        c = c.astype(np.int64).reshape(-1)
        if e.size == 0 or e.size != c.size:
            raise ValueError(
                f"layer {i} must have as many errors as costs (at least one), got {e.size} "
                f"and {c.size}"
            )
        if not np.all(np.isfinite(e)) or np.any(e < 0):
            raise ValueError(f"errors[{i}] must be finite and >= 0, got {e}")
        if np.any(c < 0):
            raise ValueError(f"costs[{i}] must be >= 0, got {c}")
        E.append(e)
        C.append(c)
    return E, C


def _solve(E, C, capacity):
    """DP over capacities 0..capacity (in units): table of choices and the final row."""
    n = len(E)
    cap = int(capacity)
    unit = reduce(math.gcd, [int(v) for c in C for v in c] + [cap]) or 1
    exact = True
    if (cap // unit + 1) * n > MAX_TABLE:
        unit = -(-cap // (MAX_TABLE // n - 1))
        exact = False
    cells = cap // unit + 1
    Cu = [-(-c // unit) for c in C]  # rounded up: a solution found is always within the budget
    dp = np.zeros(cells)
    choice = np.zeros((n, cells), dtype=np.int16)
    for i in range(n):
        best = np.full(cells, np.inf)
        arg = np.zeros(cells, dtype=np.int16)
        for j in range(E[i].size):
            c = int(Cu[i][j])
            if c >= cells:
                continue
            cand = np.full(cells, np.inf)
            cand[c:] = dp[: cells - c] + E[i][j]
            better = cand < best
            best[better] = cand[better]
            arg[better] = j
        dp = best
        choice[i] = arg
    return dp, choice, Cu, unit, exact


def _backtrack(choice, Cu, cells_idx):
    n = choice.shape[0]
    idx = np.array(cells_idx, dtype=np.int64)
    out = np.zeros((idx.size, n), dtype=np.int64)
    for i in range(n - 1, -1, -1):
        ch = choice[i, idx]
        out[:, i] = ch
        idx = idx - np.asarray(Cu[i])[ch]
    return out


def allocate(errors: Sequence[ArrayLike], costs: Sequence[ArrayLike], budget: int) -> Allocation:
    """Choose one candidate per layer minimising the total error within a total cost.

    Parameters
    ----------
    errors : list of array_like of float
        ``errors[i][j]``: error of layer ``i`` with its candidate ``j`` (>= 0).
    costs : list of array_like of int
        ``costs[i][j]``: cost of that candidate (e.g. its size in bits).
    budget : int
        Largest allowed total cost.

    Returns
    -------
    allocation : Allocation
        ``choice`` per layer, total ``error`` and ``cost``, and ``exact``.

    Raises
    ------
    ValueError
        If the lists disagree in length, a value is negative or not finite, or
        the budget is below the cheapest configuration.
    TypeError
        If costs are not integers.

    See Also
    --------
    pareto : The whole error-against-cost curve.

    Notes
    -----
    The multiple-choice knapsack

    .. math::

        \\min_{j_1, \\dots, j_n} \\sum_i e_{i j_i} \\quad \\text{s.t.} \\quad
        \\sum_i c_{i j_i} \\le B

    is solved exactly by dynamic programming over the capacities
    :math:`0, u, 2u, \\dots, B` with :math:`u = \\gcd` of all costs and the
    budget, in :math:`O(n\\,m\\,B/u)`:
    :math:`D_i(b) = \\min_j D_{i-1}(b - c_{ij}) + e_{ij}`. When the table
    would exceed :math:`2^{25}` cells, :math:`u` is enlarged and costs are
    rounded up to multiples of it (``exact=False``): the answer then always
    fits the budget but may be beaten by a configuration within :math:`n u`
    of it.

    References
    ----------
    .. [1] P. Sinha, A. A. Zoltners, "The multiple-choice knapsack problem",
       Operations Research 27(3), 1979.

    Examples
    --------
    >>> from qtoolkit.network import allocate
    >>> a = allocate([[4.0, 1.0], [3.0, 0.5]], [[2, 4], [2, 4]], budget=6)
    >>> a.choice.tolist(), a.error, a.cost
    ([1, 0], 4.0, 6)
    """
    E, C = _check(errors, costs)
    if isinstance(budget, bool) or not isinstance(budget, (int, np.integer)):
        raise TypeError(f"budget must be an integer (same unit as costs), got {budget!r}")
    low = int(sum(int(c.min()) for c in C))
    if budget < low:
        raise ValueError(f"budget {budget} is below the cheapest configuration (cost {low})")
    dp, choice, Cu, unit, exact = _solve(E, C, budget)
    if not np.isfinite(dp[-1]):
        raise ValueError(
            f"budget {budget} is below the cheapest configuration once costs are rounded up to "
            f"multiples of {unit} (cost {sum(int(c.min()) for c in Cu) * unit})"
        )
    ch = _backtrack(choice, Cu, [dp.size - 1])[0]
    err = float(sum(E[i][ch[i]] for i in range(len(E))))
    cost = int(sum(C[i][ch[i]] for i in range(len(C))))
    return Allocation(ch, err, cost, exact)


def pareto(errors: Sequence[ArrayLike], costs: Sequence[ArrayLike]) -> ParetoCurve:
    """The error-against-cost Pareto curve of a multiple-choice knapsack.

    Parameters
    ----------
    errors : list of array_like of float
        ``errors[i][j]``: error of layer ``i`` with its candidate ``j``.
    costs : list of array_like of int
        ``costs[i][j]``: cost of that candidate.

    Returns
    -------
    curve : ParetoCurve
        Increasing costs, decreasing errors, and the choices at each point,
        from the cheapest configuration to the most accurate.

    Raises
    ------
    ValueError, TypeError
        As :func:`allocate`.

    See Also
    --------
    allocate : One point of the curve.

    Notes
    -----
    One dynamic programme up to the largest total cost gives the minimal
    error :math:`D(b)` at every capacity :math:`b`; the curve is the set of
    capacities where :math:`D` strictly drops (the optimum there costs
    exactly :math:`b`). Unlike a Lagrangian sweep, it also holds the points
    that are not on the convex hull.

    References
    ----------
    .. [1] P. Sinha, A. A. Zoltners, "The multiple-choice knapsack problem",
       Operations Research 27(3), 1979.

    Examples
    --------
    >>> from qtoolkit.network import pareto
    >>> curve = pareto([[4.0, 1.0], [3.0, 0.5]], [[2, 4], [2, 4]])
    >>> curve.cost.tolist(), curve.error.tolist()
    ([4, 6, 8], [7.0, 4.0, 1.5])
    """
    E, C = _check(errors, costs)
    top = int(sum(int(c.max()) for c in C))
    dp, choice, Cu, _unit, exact = _solve(E, C, top)
    finite = np.isfinite(dp)
    prev = np.concatenate([[np.inf], dp[:-1]])
    points = np.flatnonzero(finite & (dp < prev))
    ch = _backtrack(choice, Cu, points)
    err = np.array([sum(E[i][c[i]] for i in range(len(E))) for c in ch])
    cost = np.array([sum(int(C[i][c[i]]) for i in range(len(C))) for c in ch], dtype=np.int64)
    return ParetoCurve(cost, err, ch, exact)
