"""``qtoolkit quantize``: end to end, reports, GGUF, exit codes, and nothing left on Ctrl-C."""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from safetensors.numpy import save_file

from qtoolkit.cli import main
from qtoolkit.network import load, quantize

RECIPE = [
    {"match": "*.weight", "method": "gptq", "params": {"bits": 4, "group_size": 16}},
]


@pytest.fixture
def files(tmp_path, rng):
    state = {
        "fc1.weight": rng.normal(size=(16, 64)).astype(np.float32),
        "fc1.bias": rng.normal(size=16).astype(np.float32),
        "fc2.weight": rng.normal(size=(8, 16)).astype(np.float32),
    }
    cal = {"fc1.weight": rng.normal(size=(100, 64)), "fc2.weight": rng.normal(size=(100, 16))}
    save_file(state, str(tmp_path / "in.safetensors"))
    np.savez(tmp_path / "cal.npz", **cal)
    (tmp_path / "r.json").write_text(json.dumps(RECIPE))
    return tmp_path, state, cal


def test_end_to_end_matches_the_python_api(files, capsys):
    d, state, cal = files
    args = [
        str(d / "in.safetensors"),
        "--recipe",
        str(d / "r.json"),
        "--out",
        str(d / "out.safetensors"),
    ]
    rc = main(["quantize", *args, "--calibration", str(d / "cal.npz"), "--report", str(d / "rep")])
    assert rc == 0
    out = capsys.readouterr()
    assert "| fc1.weight | 16x64 | gptq |" in out.out and "wrote" in out.out
    assert "3/3" in out.err  # the progress bar
    net = load(d / "out.safetensors")
    ref = quantize(state, RECIPE, calibration=cal)
    for k in state:
        assert np.array_equal(net[k], ref[k])
    assert sorted(os.listdir(d / "rep")) == ["report.csv", "report.json", "report.md"]
    rows = json.loads((d / "rep" / "report.json").read_text())["rows"]
    assert sorted(r["name"] for r in rows) == sorted(state)


def test_budget_and_gguf_from_the_command_line(files, capsys):
    d, state, _ = files
    recipe = [
        {
            "match": "*.weight",
            "candidates": [{"method": "q4_0"}, {"method": "q8_0"}],
        }
    ]
    state = {
        "a.weight": np.random.default_rng(0).normal(size=(8, 64)).astype(np.float32),
        "b.weight": np.random.default_rng(1).normal(size=(8, 64)).astype(np.float32),
    }
    save_file(state, str(d / "g.safetensors"))
    (d / "g.json").write_text(json.dumps(recipe))
    rc = main(
        [
            "quantize",
            str(d / "g.safetensors"),
            "--recipe",
            str(d / "g.json"),
            "--out",
            str(d / "g.gguf"),
            "--format",
            "gguf",
            "--budget",
            "6.5",
            "--report",
            str(d / "rep"),
            "--no-progress",
        ]
    )
    assert rc == 0
    assert capsys.readouterr().err == ""
    assert (d / "rep" / "pareto.png").read_bytes()[:4] == b"\x89PNG"
    from gguf import GGUFReader

    types = sorted(t.tensor_type.name for t in GGUFReader(str(d / "g.gguf")).tensors)
    assert types == ["Q4_0", "Q8_0"]  # 6.5 bits per weight: one of each (4.5 + 8.5) / 2


@pytest.mark.parametrize(
    "setup, code, message",
    [
        (lambda d: (d / "r.json").write_text("[{]"), 2, "bad recipe"),
        (
            lambda d: (d / "r.json").write_text('[{"match": "*", "method": "nope"}]'),
            2,
            "unknown method",
        ),
        (lambda d: (d / "in.safetensors").write_bytes(b"\x00" * 20), 3, "in.safetensors"),
        (lambda d: np.savez(d / "cal.npz", **{"fc1.weight": np.ones((4, 3))}), 2, "3 features"),
        (lambda d: (d / "cal.npz").write_bytes(b"junk"), 3, "calibration file"),
    ],
)
def test_errors_and_exit_codes(files, capsys, setup, code, message):
    d, _, _ = files
    setup(d)
    rc = main(
        [
            "quantize",
            str(d / "in.safetensors"),
            "--recipe",
            str(d / "r.json"),
            "--out",
            str(d / "out.safetensors"),
            "--calibration",
            str(d / "cal.npz"),
            "--no-progress",
        ]
    )
    assert rc == code
    assert message in capsys.readouterr().err
    assert not (d / "out.safetensors").exists()


def test_bad_budget_argument(files, capsys):
    d, _, _ = files
    with pytest.raises(SystemExit) as exc:
        main(
            [
                "quantize",
                str(d / "in.safetensors"),
                "--recipe",
                str(d / "r.json"),
                "--out",
                "o",
                "--budget",
                "-3",
            ]
        )
    assert exc.value.code == 2
    assert "expected a positive number" in capsys.readouterr().err


def test_ctrl_c_leaves_no_output(files, monkeypatch, capsys):
    d, _, _ = files
    from safetensors import numpy as stnp

    real = stnp.save_file

    def interrupted(tensors, filename, metadata=None):
        real(tensors, filename, metadata)  # the temporary file is complete...
        raise KeyboardInterrupt  # ...but the rename never happens

    monkeypatch.setattr(stnp, "save_file", interrupted)
    rc = main(
        [
            "quantize",
            str(d / "in.safetensors"),
            "--recipe",
            str(d / "r.json"),
            "--out",
            str(d / "out.safetensors"),
            "--calibration",
            str(d / "cal.npz"),
            "--no-progress",
        ]
    )
    assert rc == 130
    assert "interrupted" in capsys.readouterr().err
    assert sorted(os.listdir(d)) == ["cal.npz", "in.safetensors", "r.json"]


def test_console_entry_point(files):
    d, _, _ = files
    # the child imports the same qtoolkit as this process and runs outside the source tree
    import qtoolkit

    env = {**os.environ, "PYTHONPATH": str(pathlib.Path(qtoolkit.__file__).resolve().parent.parent)}
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "qtoolkit",
            "quantize",
            str(d / "in.safetensors"),
            "--recipe",
            str(d / "r.json"),
            "--out",
            str(d / "o.safetensors"),
            "--calibration",
            str(d / "cal.npz"),
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=d,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert sorted(load(d / "o.safetensors").names) == ["fc1.bias", "fc1.weight", "fc2.weight"]
