"""Build script: the table of compiled extensions, nothing else.

Package metadata lives in ``pyproject.toml``. Each extension is one Cython
module; C kernels are ``#include``d by the module that uses them, so every
kernel file is compiled at the baseline ISA and selects its SIMD path at run
time (never tuned to the build machine's own CPU). OpenMP is used where the compiler supports it;
otherwise the extensions are built serial, with a warning.

Set ``QTOOLKIT_DEBUG=1`` to build with bounds checking and assertions, and
``QTOOLKIT_SANITIZE=1`` to build with AddressSanitizer and UndefinedBehaviorSanitizer
(``-fsanitize=address,undefined``, compile and link; see ``.ci/sanitize.sh``).
"""

import glob
import os
import sys
import tempfile
import warnings

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

DEBUG = os.environ.get("QTOOLKIT_DEBUG", "0") not in ("", "0")
SANITIZE = os.environ.get("QTOOLKIT_SANITIZE", "0") not in ("", "0")
_SANITIZE_FLAGS = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer"]

# name -> (sources, uses OpenMP)
EXTENSIONS = {
    "qtoolkit._cpu": (["qtoolkit/_cpu.pyx"], False),
    "qtoolkit.bitops._bitops": (["qtoolkit/bitops/_bitops.pyx"], True),
    "qtoolkit.bitops._lowbit": (["qtoolkit/bitops/_lowbit.pyx"], True),
    "qtoolkit.codebooks._kmeans1d": (["qtoolkit/codebooks/_kmeans1d.pyx"], True),
    "qtoolkit.codebooks._pq_kernels": (["qtoolkit/codebooks/_pq_kernels.pyx"], True),
    "qtoolkit.rounding._rounding_kernels": (["qtoolkit/rounding/_rounding_kernels.pyx"], False),
    "qtoolkit.network._fused": (["qtoolkit/network/_fused.pyx"], False),
}

COMPILER_DIRECTIVES = {
    "language_level": 3,
    "boundscheck": DEBUG,
    "wraparound": False,
    "initializedcheck": DEBUG,
    "cdivision": True,
    "embedsignature": True,
}


def _compiler_has_openmp(compiler):
    """Try to compile and link a tiny OpenMP program with ``compiler``."""
    if sys.platform == "win32":
        return False
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "omp_probe.c")
        with open(src, "w") as f:
            f.write("#include <omp.h>\nint main(void){return omp_get_max_threads() < 1;}\n")
        try:
            objs = compiler.compile([src], output_dir=tmp, extra_postargs=["-fopenmp"])
            compiler.link_executable(
                objs, os.path.join(tmp, "omp_probe"), extra_postargs=["-fopenmp"]
            )
        except Exception:  # any compile or link failure means "no OpenMP"
            return False
    return True


class BuildExt(build_ext):
    """Add OpenMP and optimisation flags once the real compiler is known."""

    def build_extensions(self):
        openmp = _compiler_has_openmp(self.compiler)
        if not openmp:
            warnings.warn(
                "the C compiler has no OpenMP: qtoolkit's kernels are built "
                "single-threaded (n_threads is then ignored)",
                stacklevel=2,
            )
        for ext in self.extensions:
            ext.extra_compile_args += ["-O3", "-std=c11", "-fno-strict-aliasing"]
            if DEBUG:
                ext.extra_compile_args += ["-UNDEBUG", "-O1", "-g"]
            if SANITIZE:
                ext.extra_compile_args += [*_SANITIZE_FLAGS, "-O1", "-g"]
                ext.extra_link_args += _SANITIZE_FLAGS
            if openmp and ext.name in _OPENMP:
                ext.extra_compile_args.append("-fopenmp")
                ext.extra_link_args.append("-fopenmp")
                ext.define_macros.append(("QT_HAVE_OPENMP", "1"))
        super().build_extensions()


_OPENMP = {name for name, (_, omp) in EXTENSIONS.items() if omp}
_KERNELS = "qtoolkit/bitops/_kernels"  # on every extension's include path (qt_cpu.h, the probe)


def _depends(sources):
    """The headers an extension can include: those beside its sources and the shared kernels.

    setuptools rebuilds the extension when one of them changes.
    """
    dirs = {os.path.dirname(src) for src in sources} | {_KERNELS}
    return sorted({h for d in dirs for h in glob.glob(os.path.join(d, "*.h"))})


extensions = [
    Extension(
        name,
        sources=sources,
        include_dirs=[np.get_include(), _KERNELS],
        depends=_depends(sources),
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_2_0_API_VERSION")],
    )
    for name, (sources, _) in EXTENSIONS.items()
]

setup(
    ext_modules=cythonize(extensions, compiler_directives=COMPILER_DIRECTIVES, annotate=False),
    cmdclass={"build_ext": BuildExt},
)
