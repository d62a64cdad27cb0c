"""Mixed precision to a budget: the knapsack equals brute force; the network honours the budget."""

import itertools

import numpy as np
import pytest

from qtoolkit.network import _budget, allocate, pareto, quantize


def brute(errors, costs, budget):
    best = None
    for combo in itertools.product(*[range(len(e)) for e in errors]):
        c = sum(costs[i][j] for i, j in enumerate(combo))
        e = sum(errors[i][j] for i, j in enumerate(combo))
        if c <= budget and (best is None or e < best[0] - 1e-12):
            best = (e, c, combo)
    return best


def brute_front(errors, costs):
    pts = []
    for combo in itertools.product(*[range(len(e)) for e in errors]):
        pts.append(
            (
                sum(costs[i][j] for i, j in enumerate(combo)),
                sum(errors[i][j] for i, j in enumerate(combo)),
            )
        )
    front, best = [], np.inf
    for c, e in sorted(pts):
        if e < best - 1e-12:
            front.append((c, e))
            best = e
    return front


def random_case(rng):
    n = int(rng.integers(1, 6))
    errors, costs = [], []
    for _ in range(n):
        m = int(rng.integers(1, 5))
        errors.append(list(rng.random(m) * 10))
        costs.append([int(v) for v in rng.integers(0, 40, m) * 3])
    return errors, costs


def test_allocate_equals_brute_force(rng):
    for _ in range(200):
        errors, costs = random_case(rng)
        low = sum(min(c) for c in costs)
        high = sum(max(c) for c in costs)
        budget = int(rng.integers(low, high + 2))
        e, _, _ = brute(errors, costs, budget)
        a = allocate(errors, costs, budget)
        assert a.exact
        assert a.error == pytest.approx(e, abs=1e-9)
        assert a.cost <= budget
        assert a.error == pytest.approx(sum(errors[i][j] for i, j in enumerate(a.choice)))
        assert a.cost == sum(costs[i][j] for i, j in enumerate(a.choice))


def test_pareto_equals_the_brute_force_front(rng):
    for _ in range(100):
        errors, costs = random_case(rng)
        curve = pareto(errors, costs)
        front = brute_front(errors, costs)
        assert curve.cost.tolist() == [c for c, _ in front]
        assert np.allclose(curve.error, [e for _, e in front])
        for k, ch in enumerate(curve.choice):
            assert sum(costs[i][j] for i, j in enumerate(ch)) == curve.cost[k]


def test_front_holds_points_off_the_convex_hull():
    # (0, 10), (5, 9.9), (10, 0): the middle point is not on the lower convex hull
    curve = pareto([[10.0, 9.9, 0.0]], [[0, 5, 10]])
    assert curve.cost.tolist() == [0, 5, 10]


def test_coarse_grid_stays_within_the_budget(rng, monkeypatch):
    monkeypatch.setattr(_budget, "MAX_TABLE", 64)
    for _ in range(50):
        errors, costs = random_case(rng)
        costs = [[c + 1 for c in cs] for cs in costs]  # gcd 1: forces a coarser grid
        budget = sum(max(c) for c in costs)
        a = allocate(errors, costs, budget)
        assert a.cost <= budget
        e, _, _ = brute(errors, costs, budget)
        assert a.error >= e - 1e-9


@pytest.mark.parametrize(
    "args, err, match",
    [
        (([[1.0]], [[5]], 4), ValueError, "below the cheapest configuration"),
        (([[1.0]], [[1.5]], 4), TypeError, "must be integers"),
        (([[1.0, 2.0]], [[1]], 4), ValueError, "as many errors as costs"),
        (([[-1.0]], [[1]], 4), ValueError, "finite and >= 0"),
        (([[1.0]], [[-1]], 4), ValueError, ">= 0"),
        (([], [], 4), ValueError, "same non-zero length"),
        ((np.ones(2), [[1]], 4), TypeError, "must be lists"),
        (([[1.0]], [[1]], 4.5), TypeError, "budget must be an integer"),
    ],
)
def test_bad_knapsack_input(args, err, match):
    with pytest.raises(err, match=match):
        allocate(*args)


CANDIDATES = [
    {"method": "uniform", "params": {"bits": b, "axis": 0, "mode": "asymmetric"}}
    for b in (2, 3, 4, 8)
]


def test_network_budget_is_honoured_and_optimal(transformer):
    state, tokens, forward = transformer
    inputs, _ = forward(state, tokens)
    recipe = [
        {"match": "blocks.*", "candidates": CANDIDATES},
        {"match": "head.weight", "method": "q8_0"},
    ]
    results = {}
    for budget in (4.0, 5.0, 7.0):
        net = quantize(state, recipe, calibration=inputs, budget=budget)
        assert net.report.totals["bits_per_weight"] <= budget
        results[budget] = net
        p = net.report.pareto
        assert p["chosen"][0] <= budget and p["exact"]
        # the chosen point is the best point of the curve within the budget
        ok = [e for b, e in zip(p["bits_per_weight"], p["error"]) if b <= budget]
        assert p["chosen"][1] == pytest.approx(min(ok))
    errs = [results[b].report.pareto["chosen"][1] for b in (4.0, 5.0, 7.0)]
    assert errs[0] > errs[1] > errs[2]
    ax = results[5.0].report.plot_pareto()
    assert ax.get_ylabel() == "total error"


def test_budget_errors(transformer):
    state, tokens, forward = transformer
    inputs, _ = forward(state, tokens)
    recipe = [{"match": "blocks.*", "candidates": CANDIDATES}]
    with pytest.raises(ValueError, match="below the smallest configuration"):
        quantize(state, recipe, calibration=inputs, budget=1.0)
    with pytest.raises(ValueError, match="only has 'candidates', which need a budget"):
        quantize(state, recipe, calibration=inputs)
    with pytest.raises(ValueError, match="budget needs at least one tensor"):
        quantize(state, [{"match": "*", "method": "q8_0"}], budget=4.0)
    with pytest.raises(ValueError, match="no Pareto curve"):
        quantize(state, [{"match": "*", "method": "q8_0"}]).report.plot_pareto()


def test_budget_without_calibration_uses_weight_error(rng):
    state = {f"l{i}.weight": rng.normal(size=(8, 64)) * (i + 1) for i in range(3)}
    recipe = [{"match": "*", "candidates": CANDIDATES}]
    net = quantize(state, recipe, budget=4.0)
    chosen = [r["bits_per_weight"] for r in net.report.rows]
    # brute force on the same per-layer squared weight errors and sizes
    errs, costs = [], []
    for name, w in state.items():
        e, c = [], []
        for cand in CANDIDATES:
            one = quantize({name: w}, [{"match": "*", **cand}])
            e.append(float(np.sum((one[name] - w) ** 2)))
            c.append(8 * one.report.rows[0]["bytes_after"])
        errs.append(e)
        costs.append(c)
    n = sum(w.size for w in state.values())
    _, _, combo = brute(errs, costs, int(4.0 * n))
    assert chosen == [costs[i][j] / w.size for (i, j), w in zip(enumerate(combo), state.values())]
