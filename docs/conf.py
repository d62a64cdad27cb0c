"""Sphinx configuration of the qtoolkit documentation.

At build time this file (1) writes one API page per subpackage from its
``__all__``, so the reference always covers every public name; (2) copies the
teaching notebooks from ``../notebooks`` (jupytext percent files) so myst-nb
executes and renders them; (3) runs ``qtoolkit reproduce --quick`` and writes
the gallery page from the figures it makes. Build with::

    sphinx-build -W -b html docs docs/_build/html
"""

import os
import pathlib
import shutil
import subprocess
import sys

import qtoolkit

HERE = pathlib.Path(__file__).parent
ROOT = HERE.parent

project = "qtoolkit"
author = "qtoolkit developers"
copyright = "2026, qtoolkit developers"
version = release = qtoolkit.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "matplotlib.sphinxext.plot_directive",
    "myst_nb",
]

source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".py": "myst-nb"}
nb_custom_formats = {".py": ["jupytext.reads", {"fmt": "py:percent"}]}
nb_execution_mode = os.environ.get("QTOOLKIT_DOCS_EXECUTE", "force")
nb_execution_timeout = 300
nb_execution_raise_on_error = True
myst_enable_extensions = ["dollarmath", "amsmath"]

autosummary_generate = True
autodoc_typehints = "none"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

plot_include_source = True
plot_html_show_source_link = False
plot_formats = [("png", 100)]

html_theme = "pydata_sphinx_theme"
html_title = f"qtoolkit {release}"
html_static_path = ["_static"]
html_theme_options = {"navigation_with_keys": False, "show_prev_next": False}

exclude_patterns = ["_build", "**.ipynb_checkpoints", "conf.py", "jupyter_execute"]
suppress_warnings = ["mystnb.unknown_mime_type"]

SUBPACKAGES = [
    "rounding",
    "codebooks",
    "optimize",
    "gradients",
    "bitops",
    "analysis",
    "nn",
    "network",
]


def write_api_pages():
    """One page per subpackage: its background docstring and an autosummary of __all__."""
    api = HERE / "api"
    api.mkdir(exist_ok=True)
    for sub in SUBPACKAGES:
        module = getattr(qtoolkit, sub)
        names = "\n".join(f"   {name}" for name in sorted(module.__all__))
        title = f"qtoolkit.{sub}"
        text = (
            f"{title}\n{'=' * len(title)}\n\n.. automodule:: qtoolkit.{sub}\n   :no-members:\n\n"
            f".. currentmodule:: qtoolkit.{sub}\n\n.. autosummary::\n   :toctree: generated/\n\n"
            f"{names}\n"
        )
        path = api / f"{sub}.rst"
        if not path.exists() or path.read_text() != text:
            path.write_text(text)


def copy_notebooks():
    """Copy the jupytext notebooks next to the pages so myst-nb renders them."""
    src, dst = ROOT / "notebooks", HERE / "notebooks"
    dst.mkdir(exist_ok=True)
    for nb in sorted(src.glob("[0-9]*.py")):
        target = dst / nb.name
        if not target.exists() or target.read_bytes() != nb.read_bytes():
            shutil.copyfile(nb, target)


def write_gallery():
    """Run `qtoolkit reproduce --quick` and show every figure it makes."""
    out = HERE / "_static" / "reproduce"
    if not (out / "figures.done").exists():
        subprocess.run(
            [sys.executable, "-m", "qtoolkit", "reproduce", "--quick", "--out", str(out)],
            check=True,
        )
        (out / "figures.done").write_text("ok\n")
    lines = [
        "# Gallery of theory figures",
        "",
        "Every figure below is made by `qtoolkit reproduce` (here with `--quick`, fewer "
        "Monte Carlo samples); `qtoolkit reproduce --out DIR` makes the full-size versions "
        "and the table of theory against measurement.",
        "",
    ]
    for png in sorted(out.rglob("*.png")):
        rel = png.relative_to(HERE).as_posix()
        name = png.stem.replace("_", " ")
        lines += [f"## {name}", "", f"![{name}](/{rel})", ""]
    for md in sorted(out.rglob("*.md")):
        lines += ["## Theory against measurement", "", md.read_text(), ""]
        break
    (HERE / "gallery.md").write_text("\n".join(lines))


write_api_pages()
copy_notebooks()
write_gallery()
