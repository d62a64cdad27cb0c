"""The C kernels on their own: built with and without OpenMP by the system C compiler, and
cross-built for aarch64 and run under qemu when those tools are installed (the NEON path).

kernel_check.c runs every level usable on the target through the shared driver, with 1 and
2 threads, against a direct popcount reference, and exits non-zero on any mismatch.
"""

import pathlib
import shutil
import subprocess

import pytest

import qtoolkit.bitops

HERE = pathlib.Path(__file__).parent
SOURCE = HERE / "kernel_check.c"
KERNELS = pathlib.Path(qtoolkit.bitops.__file__).parent / "_kernels"


def build_and_run(tmp_path, cc, flags, runner=()):
    if not (KERNELS / "qt_bitops.h").exists():
        pytest.skip("the kernel headers are not installed beside the package")
    exe = tmp_path / "kernel_check"
    subprocess.run(
        [
            cc,
            "-O2",
            "-std=c11",
            "-Wall",
            "-Werror",
            "-Wno-unused-function",
            f"-I{KERNELS}",
            str(SOURCE),
            "-o",
            str(exe),
            *flags,
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    out = subprocess.run([*runner, str(exe)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert " 0 mismatches" in out.stdout
    return out.stdout


@pytest.mark.parametrize("openmp", [True, False], ids=["openmp", "serial"])
def test_native_build(tmp_path, openmp):
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler")
    flags = ["-fopenmp", "-DQT_HAVE_OPENMP"] if openmp else []
    text = build_and_run(tmp_path, cc, flags)
    from qtoolkit import _dispatch

    for level in _dispatch.kernel_families()["bitops.gemm"][0]:
        assert level in text


def test_neon_under_qemu(tmp_path):
    cc = shutil.which("aarch64-linux-gnu-gcc")
    qemu = shutil.which("qemu-aarch64-static") or shutil.which("qemu-aarch64")
    if cc is None or qemu is None:
        pytest.skip("needs gcc-aarch64-linux-gnu and qemu-user-static")
    text = build_and_run(tmp_path, cc, ["-static"], runner=(qemu,))
    assert "neon" in text
