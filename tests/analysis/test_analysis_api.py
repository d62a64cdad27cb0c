"""The public API of qtoolkit.analysis: names, docstrings, runnable examples."""

import doctest
import importlib

import pytest

import qtoolkit.analysis as analysis

PUBLIC = [
    "angle",
    "cosine",
    "mse",
    "sqnr",
    "angle_preservation",
    "dot_product_proportionality",
    "pairwise_angle_preservation",
    "DotProductFit",
    "PairwiseAngles",
    "expected_cosine",
    "expected_angle",
    "expected_dot_product_fit",
    "arcsine_law",
    "sign_cosine_gaussian",
    "AngleMoments",
    "lloyd_max",
    "LloydMaxQuantizer",
    "angle_experiment",
    "dot_product_experiment",
    "arcsine_experiment",
    "rotation_experiment",
    "AngleExperiment",
    "AngleHistogram",
    "DotProductExperiment",
    "ArcsineExperiment",
    "RotationExperiment",
    "plot_angle_histograms",
    "plot_angle_vs_dimension",
    "plot_dot_product",
    "plot_arcsine_law",
    "plot_cosine_vs_bits",
    "plot_rotation",
    "reproduce",
]

MODULES = ["_measures", "_theory", "_lloydmax", "_experiments", "_plots", "_reproduce"]


def test_all_is_pinned():
    assert sorted(analysis.__all__) == sorted(PUBLIC)
    for name in PUBLIC:
        assert getattr(analysis, name).__doc__


def test_package_docstring_has_background():
    assert "Background" in analysis.__doc__ and "Anderson" in analysis.__doc__


@pytest.mark.parametrize("module", MODULES)
def test_examples_run(module):
    import matplotlib

    matplotlib.use("Agg")
    mod = importlib.import_module(f"qtoolkit.analysis.{module}")
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    res = doctest.testmod(mod, optionflags=flags, verbose=False)
    assert res.failed == 0


def test_numpydoc_validation():
    validate = pytest.importorskip("numpydoc.validate")
    checks = {
        "GL08",
        "SS01",
        "SS02",
        "SS03",
        "SS04",
        "SS05",
        "SS06",
        "PR01",
        "PR02",
        "RT01",
        "EX01",
    }
    problems = []
    for name in [
        *PUBLIC,
        "LloydMaxQuantizer.__call__",
        "LloydMaxQuantizer.n_levels",
        "AngleExperiment.histogram",
    ]:
        res = validate.validate(f"qtoolkit.analysis.{name}")
        problems += [f"{name}: {code} {msg}" for code, msg in res["errors"] if code in checks]
    assert not problems, "\n".join(problems)
