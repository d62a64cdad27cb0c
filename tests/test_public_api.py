"""The public API: pinned names, numpydoc-valid docstrings, and docstring examples that run."""

import doctest
import inspect

import numpy as np
import pytest

import qtoolkit

SUBPACKAGES = [
    "analysis",
    "bitops",
    "codebooks",
    "gradients",
    "network",
    "nn",
    "optimize",
    "rounding",
]

# numpydoc.validate checks every public docstring must pass
CHECKS = {"GL08", "SS01", "SS02", "SS03", "SS04", "SS05", "SS06", "PR01", "PR02", "RT01", "EX01"}


def test_top_level_names():
    assert set(qtoolkit.__all__) == {"__version__", "show_runtime", *SUBPACKAGES}
    assert isinstance(qtoolkit.__version__, str)


def public_objects():
    seen = set()
    for sub in SUBPACKAGES:
        module = getattr(qtoolkit, sub)
        for name in module.__all__:
            obj = getattr(module, name)
            if not (inspect.isfunction(obj) or inspect.isclass(obj)):
                continue
            if id(obj) in seen:
                continue
            seen.add(id(obj))
            yield f"qtoolkit.{sub}.{name}", obj
            if inspect.isclass(obj):
                for meth_name, meth in vars(obj).items():
                    if meth_name.startswith("_") or not inspect.isfunction(meth):
                        continue
                    yield f"qtoolkit.{sub}.{name}.{meth_name}", meth


PUBLIC = list(public_objects())


def test_every_subpackage_exports_names():
    for sub in SUBPACKAGES:
        module = getattr(qtoolkit, sub)
        assert module.__all__, sub
        assert sorted(set(module.__all__)) == sorted(module.__all__)  # no duplicates
        for name in module.__all__:
            assert hasattr(module, name), f"{sub}.{name}"
        assert module.__doc__ and len(module.__doc__) > 200, f"{sub} needs a background docstring"


@pytest.mark.parametrize("qualname", [q for q, _ in PUBLIC])
def test_numpydoc(qualname):
    numpydoc_validate = pytest.importorskip("numpydoc.validate")
    result = numpydoc_validate.validate(qualname)
    errors = [(code, msg) for code, msg in result["errors"] if code in CHECKS]
    # methods inherit the class examples; only functions and classes need their own
    if qualname.count(".") > 2 and inspect.isclass(
        getattr(getattr(qtoolkit, qualname.split(".")[1]), qualname.split(".")[2], None)
    ):
        errors = [(c, m) for c, m in errors if c != "EX01"]
    assert not errors, f"{qualname}: {errors}"


def doctests():
    finder = doctest.DocTestFinder(exclude_empty=True)
    for qualname, obj in PUBLIC:
        for test in finder.find(obj, qualname, globs={}):
            if test.examples:
                yield test


DOCTESTS = list(doctests())


@pytest.mark.parametrize("test", DOCTESTS, ids=[t.name for t in DOCTESTS])
def test_docstring_examples(test):
    np.set_printoptions(legacy=False)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    result = runner.run(test, out=lambda s: None)
    if result.failed:
        # rerun to report the failure text
        report = []
        doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE).run(
            test, out=report.append
        )
        pytest.fail("".join(report))
