"""Project metadata: one version source, the pytest markers, no import of the package root."""

import ast
import pathlib

import pytest

import qtoolkit
from qtoolkit import _version

ROOT = pathlib.Path(__file__).parent.parent
tomllib = pytest.importorskip("tomllib")  # Python >= 3.11


def _pyproject():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_version_has_one_source():
    meta = _pyproject()
    assert "version" not in meta["project"]
    assert "version" in meta["project"]["dynamic"]
    attr = meta["tool"]["setuptools"]["dynamic"]["version"]["attr"]
    assert attr == "qtoolkit._version.__version__"
    assert qtoolkit.__version__ is _version.__version__
    parts = _version.__version__.split(".")
    assert len(parts) >= 3 and all(p.isdigit() for p in parts[:2])


def test_no_module_imports_the_package_root():
    # ``from .. import x`` in a subpackage reaches qtoolkit/__init__.py, an upward import
    # (the top-level cli.py and __main__.py sit above everything and may)
    for path in sorted((ROOT / "qtoolkit").rglob("*.py")):
        rel = path.relative_to(ROOT / "qtoolkit")
        depth = len(rel.parts) - 1  # 0 for qtoolkit/x.py
        if depth == 0:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level > depth and not node.module:
                # ``from .. import rounding`` names a subpackage: fine; anything else is
                # defined in qtoolkit/__init__.py
                pkg = ROOT / "qtoolkit"
                for alias in node.names:
                    sub = alias.name
                    assert (pkg / sub).is_dir() or (pkg / f"{sub}.py").exists(), (
                        f"{rel} imports {sub!r} from the package root"
                    )
            if isinstance(node, ast.ImportFrom) and node.module == "qtoolkit" and node.level == 0:
                for alias in node.names:
                    assert (ROOT / "qtoolkit" / alias.name).is_dir(), (
                        f"{rel} imports {alias.name!r} from the package root"
                    )


def test_slow_marker_is_registered():
    markers = _pyproject()["tool"]["pytest"]["ini_options"]["markers"]
    assert any(m.startswith("slow:") for m in markers)


def test_show_runtime_reports_the_version():
    import io

    buf = io.StringIO()
    qtoolkit.show_runtime(file=buf)
    assert f"qtoolkit {_version.__version__}" in buf.getvalue()


def test_project_files():
    assert "BSD 3-Clause License" in (ROOT / "LICENSE").read_text()
    assert "qtoolkit developers" in (ROOT / "LICENSE").read_text()
    assert (ROOT / "qtoolkit" / "py.typed").exists()
    meta = _pyproject()
    assert "py.typed" in meta["tool"]["setuptools"]["package-data"]["qtoolkit"]
    assert "## [Unreleased]" in (ROOT / "CHANGELOG.md").read_text()
    guide = (ROOT / "CONTRIBUTING.md").read_text()
    for topic in ("## Build", "## Test", "## Benchmark", "## Naming rules", "add a quantizer"):
        assert topic in guide
    assert "ruff" in (ROOT / ".pre-commit-config.yaml").read_text()


def test_ci_lints_before_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    readme = (ROOT / "README.md").read_text()
    test_cmd = 'pip install ".[test]" && pytest'
    assert test_cmd in readme
    lint = next(i for i, line in enumerate(ci) if line.startswith("ruff check . && ruff format"))
    test = next(i for i, line in enumerate(ci) if line.strip() == test_cmd)
    assert lint < test
