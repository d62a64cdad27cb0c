"""Compiled kernels called from several Python threads at once, and overlapping simd_level blocks.

Every kernel releases the GIL, so Python threads run them concurrently; each
call must give exactly the result of the same call made serially. The
override ``simd_level`` must be thread-local: blocks that overlap in two
threads must leave the process default as it was.
"""

import threading

import numpy as np
import pytest

from qtoolkit.bitops import get_simd_level, pack_bits, simd_level, xnor_gemm
from qtoolkit.codebooks import ProductQuantizer, ResidualQuantizer, kmeans_1d
from qtoolkit.rounding import stochastic_round

N_THREADS = 4
N_CALLS = 50


def _kernels():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(37, 300))
    b = rng.normal(size=(29, 300))
    pa, pb = pack_bits(a), pack_bits(b)
    X = rng.normal(size=(200, 8))
    pq = ProductQuantizer(n_subspaces=2, n_clusters=16, random_state=0).fit(X)
    codes = pq.transform(X)
    rq = ResidualQuantizer(n_stages=2, n_clusters=8, beam_size=3, random_state=0, n_threads=2)
    rq.fit(X)
    values = rng.normal(size=3000)
    w32 = rng.normal(size=5000).astype(np.float32)
    return {
        "pack_bits": lambda: pack_bits(a, n_threads=2).words,
        "xnor_gemm": lambda: xnor_gemm(pa, pb, n_threads=2),
        "pq_encode": lambda: pq.transform(X),
        "rq_beam_encode": lambda: rq.transform(X),
        "pq_adc_scan": lambda: pq.search(X[:20], codes, n_neighbors=3)[1],
        "kmeans_1d_optimal": lambda: kmeans_1d(values, 6, n_threads=2)[0],
        "stochastic_round_grid": lambda: stochastic_round(w32, step=0.25, rng=7),
    }


KERNELS = _kernels()


@pytest.mark.parametrize("name", list(KERNELS))
def test_kernel_from_four_threads_equals_serial(name):
    fn = KERNELS[name]
    serial = fn()
    results = [[] for _ in range(N_THREADS)]
    errors = []
    start = threading.Barrier(N_THREADS)

    def work(i):
        try:
            start.wait()
            for _ in range(N_CALLS):
                results[i].append(fn())
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(N_THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for per_thread in results:
        assert len(per_thread) == N_CALLS
        for r in per_thread:
            np.testing.assert_array_equal(r, serial)


def test_overlapping_simd_level_blocks_restore_the_default():
    default = get_simd_level()
    entered = threading.Barrier(2)
    a_left = threading.Event()
    seen = {}

    def a():
        with simd_level("generic"):
            entered.wait()
            seen["a"] = get_simd_level()
        a_left.set()  # A leaves first, while B is still inside

    def b():
        entered.wait()
        with simd_level("generic"):
            a_left.wait()
            seen["b"] = get_simd_level()
        seen["b_after"] = get_simd_level()

    threads = [threading.Thread(target=a), threading.Thread(target=b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen["a"] == seen["b"] == "generic"
    assert seen["b_after"] == default
    assert get_simd_level() == default


def test_simd_level_in_one_thread_does_not_change_another():
    default = get_simd_level()
    inside = threading.Event()
    release = threading.Event()
    seen = {}

    def worker():
        with simd_level("generic"):
            inside.set()
            release.wait()

    t = threading.Thread(target=worker)
    t.start()
    inside.wait()
    seen["main"] = get_simd_level()
    release.set()
    t.join()
    assert seen["main"] == default
