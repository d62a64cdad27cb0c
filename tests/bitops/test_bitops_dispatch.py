"""Runtime dispatch: the best level is picked, levels can be forced, the report is printed."""

import io
import os
import re
import subprocess
import sys

import pytest

from qtoolkit import bitops


def cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
    except OSError:
        return None
    m = re.search(r"^(flags|Features)\s*:\s*(.*)$", text, re.M)
    return set(m.group(2).split()) if m else None


def expected_best():
    import platform

    flags = cpu_flags()
    if flags is None:
        pytest.skip("no /proc/cpuinfo to compare against")
    machine = platform.machine().lower()
    if machine in ("aarch64", "arm64"):
        return "neon"
    if machine not in ("x86_64", "amd64"):
        return "generic"
    # the chain generic < sse41 < popcnt < avx2 < avx512: a level needs the ones below it
    best = "generic"
    for level, need in (
        ("sse41", {"sse4_1"}),
        ("popcnt", {"popcnt"}),
        ("avx2", {"avx2"}),
        ("avx512", {"avx512f", "avx512_vpopcntdq"}),
    ):
        if not need <= flags:
            break
        best = level
    return best


def test_best_level_is_picked():
    if os.environ.get("QTOOLKIT_SIMD"):
        pytest.skip("QTOOLKIT_SIMD caps the level in this run")
    assert bitops.available_simd_levels()[-1] == expected_best()
    assert bitops.get_simd_level() == expected_best()


def test_set_and_context_manager():
    levels = bitops.available_simd_levels()
    before = bitops.get_simd_level()
    with bitops.simd_level(levels[0]) as lv:
        assert lv == levels[0] == bitops.get_simd_level()
    assert bitops.get_simd_level() == before
    prev = bitops.set_simd_level("generic")
    try:
        assert bitops.get_simd_level() == "generic"
    finally:
        bitops.set_simd_level(prev)


def test_bad_levels():
    with pytest.raises(ValueError, match="one of"):
        bitops.set_simd_level("sse9")
    with pytest.raises(TypeError, match="str"):
        bitops.set_simd_level(3)
    unavailable = [
        lv for lv in ("avx512", "neon", "avx2") if lv not in bitops.available_simd_levels()
    ]
    if unavailable:
        with pytest.raises(ValueError, match="cannot run on this CPU"):
            bitops.set_simd_level(unavailable[0])


def test_environment_variable_caps_the_level(tmp_path):
    code = "import qtoolkit.bitops as b; print(b.get_simd_level())"
    env = dict(os.environ, QTOOLKIT_SIMD="generic")
    # run outside the source tree so that the installed package is imported
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    assert out.stdout.strip() == "generic"
    env["QTOOLKIT_SIMD"] = "bogus"
    # run outside the source tree so that the installed package is imported
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    assert out.stdout.strip() == bitops.available_simd_levels()[-1]
    assert "QTOOLKIT_SIMD" in out.stderr


def test_show_runtime_reports_the_kernel():
    buf = io.StringIO()
    bitops.show_runtime(file=buf)
    text = buf.getvalue()
    assert f"kernel in use: {bitops.get_simd_level()}" in text
    for level in bitops.available_simd_levels():
        assert level in text


def test_ukernel_repeat_counts_macs():
    from qtoolkit import _dispatch
    from qtoolkit.bitops import _bitops

    for level in _dispatch.kernel_families()["bitops.gemm"][0]:
        lid = _bitops.LEVEL_NAMES.index(level)
        one = _bitops.ukernel_repeat(lid, 4, 3)
        assert one > 0 and one % (3 * 4 * 64) == 0
        assert _bitops.ukernel_repeat(lid, 4, 6) == 2 * one


def test_simd_level_is_thread_local_and_restores_the_default():
    import threading

    levels = bitops.available_simd_levels()
    default = bitops.get_simd_level()
    barrier = threading.Barrier(2)
    seen, errors = {}, []

    def worker(level, key):
        try:
            with bitops.simd_level(level):
                barrier.wait(timeout=10)  # both threads are inside their blocks now
                seen[key] = bitops.get_simd_level()
                barrier.wait(timeout=10)
            seen[key + "_after"] = bitops.get_simd_level()
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    # overlapping blocks, exited in the opposite order of entry
    threads = [
        threading.Thread(target=worker, args=(levels[0], "a")),
        threading.Thread(target=worker, args=(levels[-1], "b")),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert seen["a"] == levels[0] and seen["b"] == levels[-1]
    assert seen["a_after"] == seen["b_after"] == default
    assert bitops.get_simd_level() == default


def test_simd_level_blocks_nest():
    levels = bitops.available_simd_levels()
    default = bitops.get_simd_level()
    with bitops.simd_level(levels[-1]):
        with bitops.simd_level(levels[0]):
            assert bitops.get_simd_level() == levels[0]
        assert bitops.get_simd_level() == levels[-1]
    assert bitops.get_simd_level() == default


def test_every_kernel_family_is_registered_and_reported():
    from qtoolkit import _dispatch

    families = _dispatch.kernel_families()
    for name in (
        "bitops.gemm",
        "bitops.pack",
        "bitops.lowbit",
        "bitops.ternary",
        "rounding.stochastic_grid",
        "codebooks.pq_search",
        "codebooks.rq_beam",
    ):
        assert name in families
    buf = io.StringIO()
    bitops.show_runtime(file=buf)
    text = buf.getvalue()
    levels = bitops.available_simd_levels()
    for name, (implemented, _) in families.items():
        assert implemented[0] == "generic"
        assert set(implemented) <= set(levels)
        # at each level a family runs its best implementation at or below it
        for level in levels:
            with bitops.simd_level(level):
                used, lid = _dispatch.kernel_level(name)
                chain = next(c for c in _dispatch.CHAINS.values() if level in c)
                allowed = chain[: chain.index(level) + 1]
                assert used == [lv for lv in implemented if lv in allowed][-1]
                assert lid == _dispatch.level_id(used)
        used_now = _dispatch.kernel_level(name)[0]
        assert re.search(rf"{re.escape(name)}\s+{used_now}\s", text), text


def test_environment_variable_caps_every_family(tmp_path):
    code = (
        "from qtoolkit import _dispatch\n"
        "print(sorted({_dispatch.kernel_level(f)[0] for f in _dispatch.kernel_families()}))"
    )
    env = dict(os.environ, QTOOLKIT_SIMD="generic")
    out = subprocess.run(
        [sys.executable, "-c", "import qtoolkit\n" + code],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    assert out.stdout.strip() == "['generic']"


def test_register_kernel_family_rejects_unknown_levels():
    from qtoolkit import _dispatch

    with pytest.raises(ValueError, match="including 'generic'"):
        _dispatch.register_kernel_family("test.bad", ("avx2",), "no generic")
    with pytest.raises(ValueError, match="including 'generic'"):
        _dispatch.register_kernel_family("test.bad", ("generic", "sse9"), "unknown")
    assert "test.bad" not in _dispatch.kernel_families()
