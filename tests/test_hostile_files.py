"""Hostile files, messages and parameters: each gives its clean error, in bounded memory and time.

The cases live in ``tests/hostile_cases.py``; they run in a subprocess (one
for all of them, restarted after a crash), so an interpreter crash fails the
case that caused it instead of the whole test run. Every case must

- raise exactly the documented exception type (a ``ValueError`` or
  ``TypeError`` subclass), or succeed where the case says it must;
- keep the memory it allocates (``tracemalloc`` peak, which NumPy reports to)
  under ``PEAK_BYTES``: none of these inputs justifies more; a bomb read in
  full would allocate 40 MB to 4 GB;
- finish in ``SECONDS`` (a generous safety bound, not a speed assertion).
"""

import json
import os
import pathlib
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import hostile_cases  # noqa: E402

PEAK_BYTES = 32 << 20
SECONDS = 10.0
# cases whose input legitimately decodes to a large array: their own bound
PEAK_OVERRIDE = {
    "qsgd_max_elements_default_decodes": (1 << 20) * 8 * 4 + (32 << 20),
    # 2**24 int8 codes: the packed bytes, the unpacked bytes and the codes (no int64 copy)
    "consistent_codes_not_widened": 4 << 24,
}


def _package_root():
    # the child imports the same qtoolkit as this process (installed, or a source tree)
    import qtoolkit

    return str(pathlib.Path(qtoolkit.__file__).resolve().parent.parent)


def _run_all():
    names = list(hostile_cases.CASES)
    results = {}
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(filter(None, [_package_root(), os.environ.get("PYTHONPATH")])),
    )
    while names:
        proc = subprocess.run(
            [sys.executable, str(HERE / "hostile_cases.py"), *names],
            capture_output=True,
            text=True,
            env=env,
            timeout=600,
        )
        started = None
        for line in proc.stdout.splitlines():
            if line.startswith("START "):
                started = line[6:]
            elif line.startswith("RESULT "):
                r = json.loads(line[7:])
                results[r["name"]] = r
                started = None
        done = [n for n in names if n in results]
        if proc.returncode != 0 and started is not None:
            results[started] = {
                "name": started,
                "crash": proc.returncode,
                "stderr": proc.stderr[-2000:],
            }
        elif proc.returncode != 0:
            pytest.fail(f"hostile case runner failed: {proc.stderr[-3000:]}")
        names = [n for n in names if n not in results]
        if not done and started is None:
            break
    return results


@pytest.fixture(scope="module")
def results():
    return _run_all()


@pytest.mark.parametrize("name", list(hostile_cases.CASES))
def test_hostile_case(results, name):
    r = results[name]
    assert "crash" not in r, (
        f"{name} crashed the interpreter (exit {r.get('crash')}): {r.get('stderr')}"
    )
    expected = r["expected"]
    if expected is None:
        assert r["exc"] is None, f"{name} must succeed, raised {r['exc']}: {r['msg']}"
    else:
        assert r["exc"] == expected, f"{name}: expected {expected}, got {r['exc']}: {r['msg']}"
        assert "ValueError" in r["mro"] or "TypeError" in r["mro"]
        assert r["msg"], f"{name}: the error needs a message"
    bound = PEAK_OVERRIDE.get(name, PEAK_BYTES)
    assert r["peak"] <= bound, f"{name} allocated {r['peak'] / 2**20:.1f} MiB"
    assert r["seconds"] < SECONDS, f"{name} took {r['seconds']:.1f} s"


def test_worst_peak_is_reported(results):
    # the figure quoted for the worst bomb: every case ran and reported its peak
    peaks = {n: r["peak"] for n, r in results.items() if "peak" in r}
    assert len(peaks) == len(hostile_cases.CASES)
    worst = max((p, n) for n, p in peaks.items() if n not in PEAK_OVERRIDE)
    print(f"\nhostile cases: {len(peaks)}; worst peak {worst[0] / 2**20:.2f} MiB ({worst[1]})")


def test_thread_count_is_capped_and_validated():
    from qtoolkit._array import MAX_THREADS, check_n_threads, cpu_count

    cpus = cpu_count()
    assert check_n_threads(MAX_THREADS) == min(MAX_THREADS, cpus)
    assert check_n_threads(MAX_THREADS, work=3) == min(3, cpus)
    assert check_n_threads(None, work=0) == 1
    assert check_n_threads(None) == cpus
    assert check_n_threads(None, default=1, work=100) == 1
    with pytest.raises(ValueError, match="n_threads must be in"):
        check_n_threads(MAX_THREADS + 1)
    with pytest.raises(ValueError, match="n_threads must be in"):
        check_n_threads(0)
    with pytest.raises(TypeError, match="n_threads must be an integer"):
        check_n_threads(2.0)
