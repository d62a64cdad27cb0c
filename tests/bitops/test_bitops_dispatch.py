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
    if {"avx512f", "avx512_vpopcntdq"} <= flags:
        return "avx512"
    if {"avx2", "popcnt"} <= flags:
        return "avx2"
    if "popcnt" in flags:
        return "popcnt"
    return "generic"


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
    from qtoolkit.bitops import _bitops

    for level in bitops.available_simd_levels():
        lid = _bitops.LEVEL_NAMES.index(level)
        one = _bitops.ukernel_repeat(lid, 4, 3)
        assert one > 0 and one % (3 * 4 * 64) == 0
        assert _bitops.ukernel_repeat(lid, 4, 6) == 2 * one
