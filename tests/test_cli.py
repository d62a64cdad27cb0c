"""The ``qtoolkit`` command: ``reproduce`` writes every promised file; ``runtime`` stays."""

import csv
import os
import pathlib
import subprocess
import sys

import pytest

from qtoolkit.analysis._reproduce import FIGURES, MAIN_FIGURE, TABLES
from qtoolkit.cli import build_parser, main


def test_reproduce_quick_writes_every_promised_file(tmp_path, capsys):
    out = tmp_path / "figs"
    assert main(["reproduce", "--out", str(out), "--quick", "--seed", "3"]) == 0
    expected = {f"{name}.{ext}" for name in FIGURES for ext in ("png", "svg")} | set(TABLES)
    assert {p.name for p in out.iterdir()} == expected
    for name in FIGURES:
        png = (out / f"{name}.png").read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
        assert "<svg" in (out / f"{name}.svg").read_text()[:2000]
    with open(out / TABLES[0], newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == [
        "quantity",
        "quantizer",
        "distribution",
        "d",
        "theory",
        "measured",
        "std_error",
        "z",
    ]
    assert len(rows) > 30
    # Every row holds a theory and a measurement; the arcsine rows agree within 5 standard errors.
    for r in rows[1:]:
        float(r[4]), float(r[5])
        if r[0].startswith("cos(sign x, sign y)"):
            assert abs(float(r[7])) < 5
    md = (out / TABLES[1]).read_text()
    assert md.startswith("# qtoolkit: theory against measurement")
    assert md.count("\n| ") == len(rows)  # header + one line per row
    captured = capsys.readouterr()
    assert "8/8" in captured.err  # the progress bar, on stderr
    assert f"{MAIN_FIGURE}.png" in captured.out


def test_reproduce_bad_arguments(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["reproduce", "--out", str(tmp_path), "--seed", "-1"])
    assert exc.value.code == 2
    assert "expected a non-negative integer" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["reproduce", "--quick"])
    assert "--out" in capsys.readouterr().err
    from qtoolkit.analysis import reproduce

    with pytest.raises(TypeError, match="out must be a path"):
        reproduce(3)
    with pytest.raises(ValueError, match="rng must be a non-negative seed"):
        reproduce(tmp_path, rng=-2)
    # the old keyword still works for one release, with a warning
    with (
        pytest.warns(DeprecationWarning, match=r"reproduce\(seed=...\) is deprecated"),
        pytest.raises(ValueError, match="rng must be a non-negative seed"),
    ):
        reproduce(tmp_path, seed=-2)


def test_parser_keeps_runtime_and_lists_reproduce():
    parser = build_parser()
    text = parser.format_help()
    assert "runtime" in text and "reproduce" in text
    assert main([]) == 2


def test_python_dash_m_entry_point(tmp_path):
    # The child imports the same qtoolkit as this process (installed, or the source tree on
    # PYTHONPATH), and runs outside the source tree so that no other copy shadows it.
    import qtoolkit

    env = dict(os.environ)
    root = str(pathlib.Path(qtoolkit.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    res = subprocess.run(
        [sys.executable, "-m", "qtoolkit", "reproduce", "--help"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0
    assert "--quick" in res.stdout and "--seed" in res.stdout
