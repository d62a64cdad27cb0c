"""The output buffer cache: reuse only of memory no array can still see, within its limit."""

import gc
import pickle
import threading

import numpy as np
import pytest

from qtoolkit.bitops import (
    BufferCacheInfo,
    buffer_cache_info,
    lowbit_matmul,
    pack_ternary,
    set_buffer_cache,
    xnor_gemm,
)
from qtoolkit.bitops._buffers import _aligned_empty
from qtoolkit.bitops._packing import pack_bits

MIB = 1 << 20


@pytest.fixture(autouse=True)
def _own_cache():
    """Each test starts from an empty cache with the default limit and leaves it so."""
    gc.collect()
    previous = set_buffer_cache(0)
    set_buffer_cache(previous)
    yield previous
    gc.collect()
    set_buffer_cache(0)
    set_buffer_cache(previous)


def _span(a):
    start = a.__array_interface__["data"][0]
    return start, start + a.nbytes


def _overlap(a, b):
    (a0, a1), (b0, b1) = _span(a), _span(b)
    return a0 < b1 and b0 < a1


def _product(seed=0, m=300, n=260, k=200):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((m, k)).astype(np.float32)
    w = pack_ternary(rng.integers(-1, 2, size=(n, k)))
    return x, w


def test_default_limit_and_info_fields(_own_cache):
    assert _own_cache == 256 * MIB
    info = buffer_cache_info()
    assert isinstance(info, BufferCacheInfo)
    assert info.max_bytes == 256 * MIB
    assert info.cached_bytes == 0 and info.n_buffers == 0


def test_a_freed_output_is_reused_and_the_result_is_unchanged():
    x, w = _product()
    expected = lowbit_matmul(x, w).copy()
    y = lowbit_matmul(x, w)
    address = y.ctypes.data
    del y
    info = buffer_cache_info()
    assert info.n_buffers == 1 and info.cached_bytes >= 300 * 260 * 4
    hits = info.hits
    y = lowbit_matmul(x, w)
    assert y.ctypes.data == address and y.ctypes.data % 64 == 0
    assert buffer_cache_info().hits == hits + 1
    np.testing.assert_array_equal(y, expected)
    assert y.flags.c_contiguous and y.flags.writeable and y.dtype == np.float32


@pytest.mark.parametrize("keep", ["view", "memoryview", "reshaped", "column"])
def test_memory_any_alias_can_see_is_never_reused(keep):
    x, w = _product(1)
    y = lowbit_matmul(x, w)
    if keep == "view":
        alias = y[5:7]
    elif keep == "memoryview":
        alias = memoryview(y)
    elif keep == "reshaped":
        alias = y.reshape(-1)[::3]
    else:
        alias = y[:, 4]
    before = np.array(alias)
    del y
    gc.collect()
    assert buffer_cache_info().n_buffers == 0
    others = [lowbit_matmul(2 * x, w) for _ in range(3)]
    for other in others:
        assert not _overlap(np.asarray(alias), other)
    np.testing.assert_array_equal(np.asarray(alias), before)
    del alias
    assert buffer_cache_info().n_buffers == 1  # the first buffer is back once no alias is left


def test_off_means_fresh_memory_and_nothing_kept():
    set_buffer_cache(0)
    x, w = _product(2)
    y = lowbit_matmul(x, w)
    assert y.ctypes.data % 64 == 0
    del y
    info = buffer_cache_info()
    assert info.cached_bytes == 0 and info.n_buffers == 0 and info.max_bytes == 0
    lowbit_matmul(x, w)
    assert buffer_cache_info().hits == info.hits


def test_lowering_the_limit_frees_the_oldest_first():
    blocks = [_aligned_empty((MIB,), np.uint8) for _ in range(4)]
    addresses = [b.ctypes.data for b in blocks]
    for i in range(4):  # freed in this order: 0 is the oldest in the cache
        blocks[i] = None
    assert buffer_cache_info().cached_bytes == 4 * MIB
    assert set_buffer_cache(2 * MIB + 100) == 256 * MIB
    info = buffer_cache_info()
    assert info.cached_bytes == 2 * MIB and info.n_buffers == 2
    # the two newest remain, and are handed out newest first
    first, second = _aligned_empty((MIB,), np.uint8), _aligned_empty((MIB,), np.uint8)
    assert (first.ctypes.data, second.ctypes.data) == (addresses[3], addresses[2])


def test_the_limit_holds_when_buffers_are_freed():
    set_buffer_cache(3 * MIB)
    blocks = [_aligned_empty((MIB,), np.uint8) for _ in range(5)]
    big = _aligned_empty((4 * MIB,), np.uint8)  # larger than the limit: never kept
    del big
    assert buffer_cache_info().n_buffers == 0
    del blocks
    info = buffer_cache_info()
    assert info.cached_bytes == 3 * MIB and info.n_buffers == 3


def test_at_most_64_buffers_are_kept():
    blocks = [_aligned_empty((1 << 18,), np.uint8) for _ in range(70)]
    del blocks
    info = buffer_cache_info()
    assert info.n_buffers == 64 and info.cached_bytes == 64 << 18


def test_sizes_are_matched_by_whole_pages():
    a = _aligned_empty(((1 << 18) + 100,), np.uint8)
    address = a.ctypes.data
    del a
    b = _aligned_empty(((1 << 18) + 4196,), np.uint8)  # one page more: not this buffer
    assert b.ctypes.data != address
    c = _aligned_empty(((1 << 18) + 4000,), np.uint8)  # the same pages: this buffer
    assert c.ctypes.data == address and c.nbytes == (1 << 18) + 4000


def test_a_reused_zeroed_buffer_is_zero():
    a = _aligned_empty((600, 600), np.int8)
    a.fill(7)
    address = a.ctypes.data
    del a
    z = _aligned_empty((600, 600), np.int8, zero=True)
    assert z.ctypes.data == address and not z.any()


def test_small_outputs_are_plain_arrays():
    a = _aligned_empty((100, 100), np.float32)  # 40 KB, below 256 KiB
    assert a.base is None
    del a
    assert buffer_cache_info().n_buffers == 0


def test_outputs_pickle_and_copy_like_any_array():
    x, w = _product(3)
    y = lowbit_matmul(x, w)
    z = pickle.loads(pickle.dumps(y))
    np.testing.assert_array_equal(z, y)
    assert not _overlap(z, y)
    c = y.copy()
    del y
    np.testing.assert_array_equal(z, c)


def test_xnor_and_reused_outputs_from_several_threads():
    rng = np.random.default_rng(4)
    a = pack_bits(rng.standard_normal((300, 130)))
    b = pack_bits(rng.standard_normal((280, 130)))
    expected = xnor_gemm(a, b).copy()
    errors = []

    def work():
        try:
            for _ in range(20):
                outs = [xnor_gemm(a, b, n_threads=1) for _ in range(3)]
                for o in outs:
                    np.testing.assert_array_equal(o, expected)
                    o[...] = -1  # scribble: a buffer shared by mistake would show it
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]
    assert buffer_cache_info().n_buffers <= 64


@pytest.mark.parametrize("bad", [-1, -(1 << 40)])
def test_negative_limit_is_refused(bad):
    with pytest.raises(ValueError, match="max_bytes"):
        set_buffer_cache(bad)


@pytest.mark.parametrize("bad", [1.5, "1", None, True])
def test_non_integer_limit_is_refused(bad):
    with pytest.raises(TypeError, match="max_bytes"):
        set_buffer_cache(bad)


def test_huge_limits_are_accepted():
    set_buffer_cache(1 << 80)
    assert buffer_cache_info().max_bytes == np.iinfo(np.intp).max
    set_buffer_cache(np.int64(5 * MIB))
    assert buffer_cache_info().max_bytes == 5 * MIB
