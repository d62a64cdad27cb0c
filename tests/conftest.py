"""Shared fixtures: a seed, the float dtypes, the SIMD levels, a headless matplotlib."""

import os

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

SEED = 20240601
FLOAT_DTYPES = [np.float16, np.float32, np.float64]


@pytest.fixture
def seed():
    """A fixed seed; tests that draw random data use it so failures reproduce."""
    return SEED


@pytest.fixture
def rng():
    """A fresh ``numpy.random.Generator`` from the fixed seed."""
    return np.random.default_rng(SEED)


@pytest.fixture(params=FLOAT_DTYPES, ids=lambda d: np.dtype(d).name)
def float_dtype(request):
    """Each floating dtype that quantizers must preserve."""
    return request.param


def _simd_levels():
    from qtoolkit.bitops import available_simd_levels

    return available_simd_levels()


@pytest.fixture(params=_simd_levels())
def simd_levels(request):
    """Each SIMD level this CPU runs; the test body runs inside ``simd_level(level)``."""
    from qtoolkit.bitops import simd_level

    with simd_level(request.param):
        yield request.param


@pytest.fixture(autouse=True)
def _close_figures():
    """Close every matplotlib figure a test opened."""
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


os.environ.setdefault("PYTHONHASHSEED", "0")
