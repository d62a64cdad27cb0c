"""The documentation builds with `sphinx-build -W` (warnings are errors).

The build runs on a copy of docs/ and notebooks/ so that the generated pages stay out of the
source tree. Notebook execution is left to tests/test_notebooks.py (here
QTOOLKIT_DOCS_EXECUTE=off renders them without outputs); everything else, including the
gallery made by `qtoolkit reproduce --quick`, is built as on the real site.
"""

import os
import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).parent.parent


@pytest.mark.slow
def test_docs_build_without_warnings(tmp_path):
    pytest.importorskip("sphinx")
    pytest.importorskip("myst_nb")
    pytest.importorskip("pydata_sphinx_theme")
    pytest.importorskip("numpydoc")
    if not (ROOT / "docs" / "conf.py").exists():
        pytest.skip("no docs/ beside the tests")
    shutil.copytree(
        ROOT / "docs",
        tmp_path / "docs",
        ignore=shutil.ignore_patterns("_build", "jupyter_execute", "generated"),
    )
    shutil.copytree(ROOT / "notebooks", tmp_path / "notebooks")
    env = dict(os.environ, QTOOLKIT_DOCS_EXECUTE="off")
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "sphinx",
            "-W",
            "--keep-going",
            "-q",
            "-b",
            "html",
            str(tmp_path / "docs"),
            str(tmp_path / "html"),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=900,
    )
    assert out.returncode == 0, out.stdout[-5000:] + out.stderr[-5000:]
    html = tmp_path / "html"
    for page in [
        "index",
        "install",
        "user_guide",
        "gallery",
        "performance",
        "api/index",
        "api/bitops",
        "notebooks/index",
    ]:
        assert (html / f"{page}.html").exists(), page
    assert list((html / "_images").glob("*.png")), "the gallery has no figures"
