"""Bit packing: layout against np.packbits, round trips, padding, dtypes, errors."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from qtoolkit.bitops import PackedBits, available_simd_levels, pack_bits, simd_level, unpack_bits

KS = [0, 1, 7, 63, 64, 65, 127, 128, 255, 256, 257, 511, 512, 513, 1000]


def reference_words(x):
    """The documented layout: np.packbits(x >= 0, little bit order) viewed as uint64, padded."""
    bits = (x >= 0) if x.dtype.kind != "b" else x
    k = x.shape[-1]
    n_words = -(-k // 64)
    stride = -(-n_words // 8) * 8
    raw = np.zeros((*x.shape[:-1], stride * 8), dtype=np.uint8)
    pb = np.packbits(bits, axis=-1, bitorder="little")
    raw[..., : pb.shape[-1]] = pb
    return raw.view("<u8").astype(np.uint64)


@pytest.mark.parametrize("level", available_simd_levels())
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16, np.int8, np.int64, bool])
@pytest.mark.parametrize("k", KS)
def test_layout_matches_packbits(level, dtype, k, rng):
    x = rng.standard_normal((3, k)) * 4
    x = x > 0 if dtype is bool else x.astype(dtype)
    with simd_level(level):
        p = pack_bits(x)
    assert p.n_bits == k
    assert p.shape == (3, k)
    assert p.words.dtype == np.uint64 and p.words.flags.c_contiguous
    assert p.words.shape[-1] % 8 == 0
    np.testing.assert_array_equal(p.words, reference_words(x))


def test_zero_and_negative_zero_are_plus_one():
    p = pack_bits(np.array([0.0, -0.0, -1e-30, 1e-30], dtype=np.float32))
    np.testing.assert_array_equal(unpack_bits(p), [1, 1, -1, 1])


@pytest.mark.parametrize("level", available_simd_levels())
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nan_is_rejected(level, dtype):
    x = np.ones((2, 130), dtype=dtype)
    for pos in (0, 63, 129):  # inside the SIMD words and in the scalar tail
        y = x.copy()
        y[1, pos] = np.nan
        with simd_level(level), pytest.raises(ValueError, match="NaN"):
            pack_bits(y)


def test_inf_packs_by_sign():
    p = pack_bits(np.array([np.inf, -np.inf]))
    np.testing.assert_array_equal(unpack_bits(p), [1, -1])


@pytest.mark.parametrize("axis", [0, 1, 2, -1, -2])
def test_axis_and_round_trip(axis, rng):
    x = rng.standard_normal((5, 70, 3))
    p = pack_bits(x, axis=axis)
    assert p.shape == np.moveaxis(x, axis, -1).shape
    back = unpack_bits(p, axis=axis, dtype=np.float64)
    np.testing.assert_array_equal(back, np.where(x >= 0, 1.0, -1.0))
    np.testing.assert_array_equal(unpack_bits(p, kind="bool", axis=axis), x >= 0)


def test_non_contiguous_input_is_copied(rng):
    x = rng.standard_normal((40, 300))[::3, ::2]
    np.testing.assert_array_equal(pack_bits(x).words, reference_words(np.ascontiguousarray(x)))


@settings(max_examples=60, deadline=None)
@given(
    hnp.arrays(
        np.float32,
        hnp.array_shapes(min_dims=1, max_dims=3, max_side=150),
        elements=st.floats(-10, 10, width=32),
    )
)
def test_round_trip_property(x):
    p = pack_bits(x)
    np.testing.assert_array_equal(unpack_bits(p, dtype=np.float32), np.where(x >= 0, 1, -1))
    np.testing.assert_array_equal(p.words, reference_words(x))


def test_packed_bits_constructor_canonicalises():
    k = 70
    raw = np.array([[np.uint64(2**64 - 1), np.uint64(2**64 - 1)]], dtype=np.uint64)
    p = PackedBits(raw, k)
    assert p.words.shape == (1, 8)
    assert int(p.words[0, 0]) == 2**64 - 1
    assert int(p.words[0, 1]) == 2**6 - 1  # bits >= K cleared
    assert not p.words[0, 2:].any()
    assert not p.words.flags.writeable
    np.testing.assert_array_equal(unpack_bits(p, kind="bool"), np.ones((1, k), bool))


def test_packed_bits_from_packbits(rng):
    x = rng.standard_normal((4, 200)) >= 0
    words = np.packbits(x, axis=-1, bitorder="little")
    words = np.pad(words, ((0, 0), (0, 8 - words.shape[1] % 8))).view("<u8").astype(np.uint64)
    np.testing.assert_array_equal(unpack_bits(PackedBits(words, 200), kind="bool"), x)


def test_zero_size_arrays():
    p = pack_bits(np.zeros((0, 5)))
    assert p.shape == (0, 5) and p.words.shape == (0, 8)
    q = pack_bits(np.zeros((3, 0)))
    assert q.shape == (3, 0) and q.words.shape == (3, 0)
    assert unpack_bits(q).shape == (3, 0)


@pytest.mark.parametrize(
    "bad, exc, match",
    [
        (np.array(1.0), ValueError, "at least one axis"),
        (np.ones(3, dtype=complex), TypeError, "real or boolean"),
        (np.array(["a"]), TypeError, "real or boolean"),
    ],
)
def test_pack_bad_input(bad, exc, match):
    with pytest.raises(exc, match=match):
        pack_bits(bad)


def test_bad_arguments():
    x = np.ones((2, 3))
    with pytest.raises(ValueError, match="axis=2 is out of bounds"):
        pack_bits(x, axis=2)
    with pytest.raises(TypeError, match="axis must be an int"):
        pack_bits(x, axis=1.0)
    p = pack_bits(x)
    with pytest.raises(TypeError, match="PackedBits"):
        unpack_bits(x)
    with pytest.raises(ValueError, match="kind"):
        unpack_bits(p, kind="int")
    with pytest.raises(TypeError, match="dtype"):
        unpack_bits(p, dtype=np.uint8)
    with pytest.raises(TypeError, match="only allowed"):
        unpack_bits(p, kind="bool", dtype=np.float32)
    with pytest.raises(TypeError, match="uint64"):
        PackedBits(np.ones((2, 1), dtype=np.int64), 3)
    with pytest.raises(ValueError, match="needs 2"):
        PackedBits(np.ones((2, 1), dtype=np.uint64), 65)
    with pytest.raises(ValueError, match=">= 0"):
        PackedBits(np.ones((2, 1), dtype=np.uint64), -1)


@pytest.mark.parametrize("level", available_simd_levels())
def test_threads_give_identical_words(level, rng):
    x = rng.standard_normal((257, 1000)).astype(np.float32)
    with simd_level(level):
        one = pack_bits(x, n_threads=1)
        two = pack_bits(x, n_threads=2)
    np.testing.assert_array_equal(one.words, two.words)
    np.testing.assert_array_equal(one.words, reference_words(x))


def test_bad_thread_counts():
    with pytest.raises(ValueError, match="n_threads"):
        pack_bits(np.ones(3), n_threads=0)
    with pytest.raises(TypeError, match="n_threads"):
        pack_bits(np.ones(3), n_threads="2")
