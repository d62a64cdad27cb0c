"""The naming rules of CONTRIBUTING.md, checked mechanically on every public name.

The walk covers every name in the ``__all__`` of every subpackage (new subpackages are found
by scanning the package), and the public methods of public classes. Rules:

- nothing in the Python API is called ``seed``;
- functions and non-estimator classes take ``rng``; scikit-learn estimators take
  ``random_state`` (and never ``rng`` in ``__init__``);
- iteration counts are ``max_iter``: no ``n_iter`` parameter of a function, method or estimator
  (``n_iter`` stays the field of a result object);
- ``save_*(file, obj)``: the file comes first, as in ``numpy.save``; ``load_*(file)``;
- several return values are a NamedTuple (no bare ``tuple`` annotation on a public result,
  and the result classes named ``*Result`` are NamedTuples or dataclasses).
"""

import dataclasses
import inspect
import pkgutil

import pytest
from sklearn.base import BaseEstimator

import qtoolkit


def _subpackages():
    return sorted(
        m.name for m in pkgutil.iter_modules(qtoolkit.__path__) if m.ispkg and m.name[0] != "_"
    )


def _public_callables():
    seen = set()
    for sub in _subpackages():
        module = getattr(qtoolkit, sub, None)
        if module is None:
            module = __import__(f"qtoolkit.{sub}", fromlist=["__all__"])
        for name in getattr(module, "__all__", ()):
            obj = getattr(module, name)
            if id(obj) in seen or not callable(obj):
                continue
            seen.add(id(obj))
            qual = f"qtoolkit.{sub}.{name}"
            if inspect.isclass(obj):
                yield qual, obj, obj
                for meth_name, meth in vars(obj).items():
                    if meth_name.startswith("_") or not inspect.isfunction(meth):
                        continue
                    yield f"{qual}.{meth_name}", meth, obj
            elif inspect.isfunction(obj):
                yield qual, obj, None


def _params(obj):
    target = obj.__init__ if inspect.isclass(obj) else obj
    try:
        return inspect.signature(target).parameters
    except (TypeError, ValueError):  # builtins without a signature
        return {}


def _is_result_type(cls):
    return (
        cls is not None
        and inspect.isclass(cls)
        and (dataclasses.is_dataclass(cls) or (issubclass(cls, tuple) and hasattr(cls, "_fields")))
    )


PUBLIC = list(_public_callables())
IDS = [q for q, _, _ in PUBLIC]


def test_the_walk_sees_every_subpackage():
    names = {q.split(".")[1] for q in IDS}
    assert {"rounding", "codebooks", "optimize", "gradients", "bitops", "analysis"} <= names
    assert len(PUBLIC) > 100


@pytest.mark.parametrize(("qual", "obj", "owner"), PUBLIC, ids=IDS)
def test_no_seed_parameter(qual, obj, owner):
    assert "seed" not in _params(obj), f"{qual} takes 'seed': use rng (random_state for estimators)"


@pytest.mark.parametrize(("qual", "obj", "owner"), PUBLIC, ids=IDS)
def test_rng_for_functions_random_state_for_estimators(qual, obj, owner):
    params = _params(obj)
    is_estimator = inspect.isclass(obj) and issubclass(obj, BaseEstimator)
    if is_estimator:
        assert "rng" not in params, f"{qual} is an estimator: its parameter is random_state"
    elif not _is_result_type(obj):
        assert "random_state" not in params, (
            f"{qual} is not a scikit-learn estimator: its parameter is rng"
        )


@pytest.mark.parametrize(("qual", "obj", "owner"), PUBLIC, ids=IDS)
def test_iteration_counts_are_max_iter(qual, obj, owner):
    if inspect.isclass(obj) and not issubclass(obj, BaseEstimator):
        return  # a result object records how many iterations ran (n_iter is a field there)
    assert "n_iter" not in _params(obj), f"{qual} takes n_iter: iteration limits are max_iter"


@pytest.mark.parametrize(("qual", "obj", "owner"), PUBLIC, ids=IDS)
def test_save_load_argument_order(qual, obj, owner):
    name = qual.rsplit(".", 1)[-1]
    if not (name.startswith(("save_", "load_")) and owner is None):
        return
    params = [p for p in _params(obj) if p not in ("self", "cls")]
    assert params and params[0] == "file", f"{qual}{tuple(params)}: the file comes first"
    if name.startswith("save_"):
        assert len(params) >= 2, f"{qual} must take (file, obj)"


@pytest.mark.parametrize(("qual", "obj", "owner"), PUBLIC, ids=IDS)
def test_several_results_are_named_tuples(qual, obj, owner):
    if inspect.isclass(obj):
        if obj.__name__.endswith("Result"):
            assert _is_result_type(obj), f"{qual} is a result type: make it a NamedTuple"
        return
    ann = inspect.signature(obj).return_annotation
    text = str(ann)
    homogeneous = text.endswith(", ...]")  # tuple[str, ...] is one sequence, not several results
    assert ann is not tuple and (homogeneous or not text.startswith(("tuple[", "typing.Tuple"))), (
        f"{qual} is annotated to return a bare tuple: return a NamedTuple"
    )


def test_known_multi_value_results_are_named_tuples():
    import numpy as np

    from qtoolkit import codebooks, optimize, rounding

    w = np.array([0.1, -0.7, 0.4, 0.9])
    results = [
        codebooks.kmeans_1d(w, 2),
        optimize.project_scaled_codebook(w, bits=2),
        rounding.round_to_codebook(w, [-1.0, 0.0, 1.0], return_codes=True),
        rounding.stochastic_round(w, codebook=[-1.0, 0.0, 1.0], rng=0, return_codes=True),
        optimize.lq_quantize(w, np.array([1.0]), return_codes=True),
    ]
    X = np.random.default_rng(0).standard_normal((64, 4))
    pq = codebooks.ProductQuantizer(n_subspaces=2, n_clusters=4, random_state=0).fit(X)
    results.append(pq.search(X[:2], pq.transform(X)))
    pw = codebooks.ProbabilisticWeights(kind="binary", scale=1.0).fit(np.zeros((4, 2)))
    results.append(pw.preactivation_moments(np.ones((1, 4))))
    from qtoolkit import analysis

    results.append(analysis.angle_experiment(np.sign, dims=[8], n_trials=4, rng=0).histogram(3))
    for res in results:
        assert isinstance(res, tuple) and hasattr(res, "_fields"), type(res)


def test_deprecated_aliases_keep_the_new_signature():
    # a renamed parameter is accepted through a wrapper, but the signature shows the new name
    from qtoolkit import analysis, bitops, gradients

    for func, new in (
        (analysis.reproduce, "rng"),
        (bitops.binary_matmul, "a"),
        (gradients.qsgd, "n_levels"),
    ):
        assert new in inspect.signature(func).parameters
        assert func.__renamed_parameters__
