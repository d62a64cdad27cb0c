"""Every public signature is annotated, and every annotation resolves at run time.

The walk is the one of ``tests/test_conventions.py`` (every name in the ``__all__`` of every
subpackage, and the public methods of public classes), extended to the properties, class
methods and static methods of the public classes. For each callable:

- every parameter has an annotation (``self``/``cls`` excepted, and ``*args``/``**kwargs``
  where the docstring documents them), and so has the return (``-> None`` on ``__init__``);
- ``typing.get_type_hints`` resolves them, so no annotation names something that exists only
  for a type checker;
- a parameter whose default is ``None`` is annotated to accept ``None``, and a ``Literal``
  annotation lists its own default.
"""

import importlib.util
import inspect
import types
import typing
from pathlib import Path

import pytest

import qtoolkit

_spec = importlib.util.spec_from_file_location(
    "_conventions_walk", Path(__file__).with_name("test_conventions.py")
)
_walk = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_walk)

# every subpackage (found by scanning the package, as in test_conventions)
ANNOTATED = set(_walk._subpackages())

# public functions outside the subpackages: the package root, the CLI, the dispatch module
TOP_LEVEL = ("qtoolkit", "qtoolkit.cli", "qtoolkit._dispatch")
CLI_NAMES = ("main", "build_parser")


def _targets():
    """(qualified name, function) for every public callable with a Python signature."""
    seen = set()
    for qual, obj, _owner in _walk.PUBLIC:
        if qual.split(".")[1] not in ANNOTATED:
            continue
        if inspect.isclass(obj):
            init = vars(obj).get("__init__")
            if inspect.isfunction(init):
                yield f"{qual}.__init__", init
            for name, member in vars(obj).items():
                if name.startswith("_"):
                    continue
                if isinstance(member, property):
                    fget = member.fget
                    if inspect.isfunction(fget) and fget.__name__ != "<lambda>":
                        yield f"{qual}.{name}", fget  # lambdas in property(...) are skipped
                elif isinstance(member, (classmethod, staticmethod)):
                    yield f"{qual}.{name}", member.__func__
        elif id(obj) not in seen:
            seen.add(id(obj))
            yield qual, obj
    for modname in TOP_LEVEL:
        module = importlib.import_module(modname)
        for name in getattr(module, "__all__", CLI_NAMES):
            obj = getattr(module, name)
            if inspect.isfunction(obj) and id(obj) not in seen:
                seen.add(id(obj))
                yield f"{modname}.{name}", obj


TARGETS = list(_targets())


def _accepts_none(hint):
    if hint is type(None) or hint is typing.Any or hint is None:
        return True
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_accepts_none(a) for a in typing.get_args(hint))
    if origin is typing.Literal:
        return None in typing.get_args(hint)
    return False


def test_the_walk_covers_every_subpackage():
    names = {q.split(".")[1] for q, _ in TARGETS if q.count(".") >= 2}
    assert {"rounding", "codebooks", "optimize", "gradients", "bitops", "analysis"} <= ANNOTATED
    assert names >= ANNOTATED
    assert {"qtoolkit.cli.main", "qtoolkit._dispatch.kernel_level"} <= {q for q, _ in TARGETS}
    assert len(TARGETS) > 200


@pytest.mark.parametrize(("qual", "func"), TARGETS, ids=[q for q, _ in TARGETS])
def test_every_parameter_and_the_return_are_annotated(qual, func):
    func = inspect.unwrap(func)
    sig = inspect.signature(func)
    doc = inspect.getdoc(func) or ""
    missing = []
    for p in sig.parameters.values():
        if p.name in ("self", "cls"):
            continue
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and (
            f"*{p.name}" in doc or f"**{p.name}" in doc
        ):
            continue
        if p.annotation is inspect.Parameter.empty:
            missing.append(p.name)
    if sig.return_annotation is inspect.Signature.empty:
        missing.append("return")
    assert not missing, f"{qual}: no annotation for {missing}"


@pytest.mark.parametrize(("qual", "func"), TARGETS, ids=[q for q, _ in TARGETS])
def test_annotations_resolve_at_run_time(qual, func):
    hints = typing.get_type_hints(func)
    sig = inspect.signature(inspect.unwrap(func))
    for p in sig.parameters.values():
        if p.name not in hints or p.default is inspect.Parameter.empty:
            continue
        hint = hints[p.name]
        if p.default is None:
            assert _accepts_none(hint), f"{qual}: {p.name}=None but annotated {hint}"
        elif typing.get_origin(hint) is typing.Literal:
            assert p.default in typing.get_args(hint), (
                f"{qual}: default {p.name}={p.default!r} is not one of {hint}"
            )


def test_result_types_resolve():
    # NamedTuples and dataclasses in __all__: their field annotations resolve too
    checked = 0
    for _qual, obj, _ in _walk.PUBLIC:
        if _walk._is_result_type(obj):
            typing.get_type_hints(obj)
            checked += 1
    assert checked >= 5


def test_the_package_ships_its_marker():
    assert (Path(qtoolkit.__file__).parent / "py.typed").is_file()


@pytest.mark.slow
def test_mypy_accepts_the_package(tmp_path):
    # the [tool.mypy] configuration of pyproject.toml, on the source tree and on the typed
    # call sites of typing_cases.py (checked in full: a wrong overload there is an error)
    pytest.importorskip("mypy")
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    if not (root / "pyproject.toml").is_file() or not (root / "qtoolkit").is_dir():
        pytest.skip("needs the source tree")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--cache-dir",
            str(tmp_path / "cache"),
            "qtoolkit",
            "tests/typing_cases.py",
        ],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
