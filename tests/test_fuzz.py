"""Fuzz the public API with hostile inputs; only ValueError/TypeError, no NaN, no crash.

The calls are made by ``tests/fuzz_cases.py`` in a subprocess, so a crash of
the interpreter fails this test (naming the case) instead of killing the run.
``QTOOLKIT_FUZZ_CASES`` sets the number of cases (default 2000) and
``QTOOLKIT_FUZZ_SEED`` the seed; a failing case replays with
``python tests/fuzz_cases.py replay CASE SEED``.
"""

import json
import os
import pathlib
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
N_CASES = int(os.environ.get("QTOOLKIT_FUZZ_CASES", "2000"))
SEED = int(os.environ.get("QTOOLKIT_FUZZ_SEED", "20240601"))


def _package_root():
    import qtoolkit

    return str(pathlib.Path(qtoolkit.__file__).resolve().parent.parent)


def test_fuzz_public_api():
    env = dict(os.environ)
    # the child imports the same qtoolkit as this process (installed, or a source tree)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [_package_root(), env.get("PYTHONPATH")]))
    env.setdefault("OMP_NUM_THREADS", "2")
    proc = subprocess.run(
        [sys.executable, str(HERE / "fuzz_cases.py"), str(N_CASES), str(SEED)],
        capture_output=True,
        text=True,
        env=env,
        timeout=max(600, N_CASES // 2),
    )
    lines = proc.stdout.splitlines()
    cases = [line for line in lines if line.startswith("CASE ")]
    if proc.returncode != 0:
        last = cases[-1] if cases else "before the first case"
        raise AssertionError(
            f"the fuzzer died (exit {proc.returncode}) at {last} "
            f"(replay: python tests/fuzz_cases.py replay N {SEED}):\n{proc.stderr[-3000:]}"
        )
    failures = [json.loads(line[5:]) for line in lines if line.startswith("FAIL ")]
    assert not failures, "\n".join(
        f"case {f['case']} {f['name']}: {f['error']}: {f['msg']}" for f in failures[:20]
    )
    assert lines[-1] == f"DONE {N_CASES} 0" and len(cases) == N_CASES
    counts = json.loads(next(line[7:] for line in lines if line.startswith("COUNTS ")))
    # every public function and class was reached
    assert len(counts) >= 60, sorted(counts)
