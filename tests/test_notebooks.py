"""Every teaching notebook in notebooks/ runs from top to bottom within its time limit."""

import os
import pathlib

import pytest

NOTEBOOKS = sorted((pathlib.Path(__file__).parent.parent / "notebooks").glob("[0-9]*.py"))
TIME_LIMIT = 240  # seconds per cell


def execute(path, workdir):
    jupytext = pytest.importorskip("jupytext")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    nb = jupytext.read(path)
    client = nbclient.NotebookClient(
        nb,
        timeout=TIME_LIMIT,
        kernel_name="python3",
        resources={"metadata": {"path": str(workdir)}},
    )
    # the kernel draws with matplotlib's inline backend, which embeds each figure as PNG
    old = os.environ.pop("MPLBACKEND", None)
    try:
        client.execute()
    finally:
        if old is not None:
            os.environ["MPLBACKEND"] = old
    return nb


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 1


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path, tmp_path):
    nb = execute(path, tmp_path)
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert images, f"{path.name} should draw at least one plot"
