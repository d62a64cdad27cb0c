"""The low-bit C kernels on their own, through their shared drivers: built with and without
OpenMP by the system C compiler; the AVX-512 kernels on emulated intrinsics (SIMDe) where the
headers are installed, so that their arithmetic is checked on CPUs without AVX-512; and
cross-built for aarch64 and run under qemu when those tools are installed (the NEON path).

lowbit_check.c runs every level usable on the target, with 1 and 2 threads, every weight
width (1, 2, 3, 4, 8, binary, codebook), per-row and 32/64/128 groups, symmetric and
asymmetric activations, integer and float outputs, and the ternary popcount GEMM, against
direct int64 references, and exits non-zero on any mismatch.
"""

import pathlib
import shutil
import subprocess

import pytest

import qtoolkit.bitops

HERE = pathlib.Path(__file__).parent
KERNELS = pathlib.Path(qtoolkit.bitops.__file__).parent / "_kernels"
FLAGS = ["-std=c11", "-Wall", "-Wno-unused-function", f"-I{KERNELS}", f"-I{HERE}"]


def build_and_run(tmp_path, cc, source, flags, runner=()):
    if not (KERNELS / "qt_lowbit.h").exists():
        pytest.skip("the kernel headers are not installed beside the package")
    exe = tmp_path / "lowbit_check"
    subprocess.run(
        [cc, *FLAGS, str(HERE / source), "-o", str(exe), *flags],
        check=True,
        capture_output=True,
        text=True,
    )
    out = subprocess.run([*runner, str(exe)], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    assert " 0 mismatches" in out.stdout
    return out.stdout


@pytest.mark.parametrize("openmp", [True, False], ids=["openmp", "serial"])
def test_native_build(tmp_path, openmp):
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler")
    flags = ["-O2", "-Werror", "-fopenmp", "-DQT_HAVE_OPENMP"] if openmp else ["-O2", "-Werror"]
    text = build_and_run(tmp_path, cc, "lowbit_check.c", flags)
    from qtoolkit import _dispatch

    # the levels with a C micro-kernel (sse41 is a level of the rounding loop only)
    for level in _dispatch.kernel_families()["bitops.gemm"][0]:
        assert f" {level}=" in text


@pytest.mark.slow
def test_avx512_kernels_on_emulated_intrinsics(tmp_path):
    cc = shutil.which("gcc")
    simde = pathlib.Path("/usr/include/simde/x86/avx512.h")
    if cc is None or not simde.exists():
        pytest.skip("needs gcc and the SIMDe headers (libsimde-dev)")
    text = build_and_run(tmp_path, cc, "lowbit_vnni_emulated.c", ["-O1", "-Wno-psabi"])
    assert "avx512=avx512-vnni (emulated)" in text
    assert "avx512=avx512-vpopcntdq (emulated)" in text


@pytest.mark.slow
def test_neon_under_qemu(tmp_path):
    cc = shutil.which("aarch64-linux-gnu-gcc")
    qemu = shutil.which("qemu-aarch64-static") or shutil.which("qemu-aarch64")
    if cc is None or qemu is None:
        pytest.skip("needs gcc-aarch64-linux-gnu and qemu-user-static")
    text = build_and_run(
        tmp_path, cc, "lowbit_check.c", ["-O2", "-Werror", "-static"], runner=(qemu,)
    )
    # qemu's default CPU has the dot-product instructions: the sdot kernel runs
    assert "neon=neon-dotprod" in text
    # a Cortex-A53 has not: the baseline Advanced SIMD kernel runs
    exe = tmp_path / "lowbit_check"
    out = subprocess.run(
        [qemu, "-cpu", "cortex-a53", str(exe)], capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0 and " 0 mismatches" in out.stdout, out.stdout + out.stderr
    assert "neon=neon " in out.stdout or "neon=neon\n" in out.stdout
