"""xnor_gemm and binary_matmul: exact against a NumPy reference at every SIMD level."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qtoolkit.bitops import (
    MAX_BITS,
    PackedBits,
    available_simd_levels,
    binary_matmul,
    pack_bits,
    simd_level,
    unpack_bits,
    xnor_gemm,
)

LEVELS = available_simd_levels()
KS = [1, 63, 64, 65, 255, 256, 257, 1000, 4097, 20000]
MNS = [(0, 3), (1, 1), (1, 17), (7, 5), (8, 16), (13, 33), (18, 2)]


def reference(a_real, b_real):
    """Unpack-free reference: float64 matmul of the +-1 matrices."""
    sa = np.where(a_real >= 0, 1.0, -1.0)
    sb = np.where(b_real >= 0, 1.0, -1.0)
    return (sa @ sb.T).astype(np.int64)


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("k", KS)
def test_exact_against_numpy(level, k, rng):
    for m, n in MNS:
        if k == 20000 and m * n > 100:
            continue  # keep the largest K cheap
        a = rng.standard_normal((m, k))
        b = rng.standard_normal((n, k))
        pa, pb = pack_bits(a), pack_bits(b)
        ref = reference(a, b)
        for threads in (1, 2):
            with simd_level(level):
                c = xnor_gemm(pa, pb, n_threads=threads)
            assert c.dtype == np.int32 and c.shape == (m, n)
            np.testing.assert_array_equal(c, ref, err_msg=f"{level} M={m} N={n} K={k} t={threads}")


@pytest.mark.parametrize("level", LEVELS)
def test_blocked_sizes_and_threads(level, rng):
    # several M blocks, K blocks (K > 8192 bits) and edge tiles in both directions
    m, n, k = 523, 37, 8192 + 3 * 64 + 5
    a = rng.standard_normal((m, k))
    b = rng.standard_normal((n, k))
    ref = reference(a, b)
    pa, pb = pack_bits(a), pack_bits(b)
    with simd_level(level):
        c1 = xnor_gemm(pa, pb, n_threads=1)
        c2 = xnor_gemm(pa, pb, n_threads=2)
        c3 = xnor_gemm(pa, pb, n_threads=3)
    np.testing.assert_array_equal(c1, ref)
    np.testing.assert_array_equal(c2, c1)
    np.testing.assert_array_equal(c3, c1)


@pytest.mark.parametrize("level", LEVELS)
def test_levels_agree_with_generic(level, rng):
    a = pack_bits(rng.standard_normal((45, 3000)))
    b = pack_bits(rng.standard_normal((29, 3000)))
    with simd_level("generic"):
        ref = xnor_gemm(a, b)
    with simd_level(level):
        np.testing.assert_array_equal(xnor_gemm(a, b), ref)


@pytest.mark.parametrize("level", LEVELS)
def test_padding_is_never_counted(level):
    """All -1 rows: every bit is 0, so a kernel that counts padding (xnor form) gets it wrong,
    and one padded operand with ones would shift the result by twice the padding bits set."""
    k = 65
    a = pack_bits(-np.ones((3, k)))
    b = pack_bits(np.ones((5, k)))
    with simd_level(level):
        np.testing.assert_array_equal(xnor_gemm(a, a), np.full((3, 3), k))
        np.testing.assert_array_equal(xnor_gemm(a, b), np.full((3, 5), -k))


def test_user_words_with_garbage_padding_are_cleaned():
    k = 10
    words = np.full((2, 1), np.uint64(2**64 - 1), dtype=np.uint64)  # bits >= 10 set too
    p = PackedBits(words, k)
    np.testing.assert_array_equal(xnor_gemm(p, p), np.full((2, 2), k))


@settings(max_examples=40, deadline=None)
@given(
    m=st.integers(0, 20),
    n=st.integers(0, 20),
    k=st.integers(0, 700),
    seed=st.integers(0, 2**32 - 1),
    level=st.sampled_from(LEVELS),
)
def test_hypothesis_shapes(m, n, k, seed, level):
    r = np.random.default_rng(seed)
    a = r.standard_normal((m, k))
    b = r.standard_normal((n, k))
    with simd_level(level):
        c = xnor_gemm(pack_bits(a), pack_bits(b))
    np.testing.assert_array_equal(c, reference(a, b))


def test_zero_sizes():
    assert xnor_gemm(pack_bits(np.ones((0, 9))), pack_bits(np.ones((4, 9)))).shape == (0, 4)
    assert xnor_gemm(pack_bits(np.ones((4, 9))), pack_bits(np.ones((0, 9)))).shape == (4, 0)
    c = xnor_gemm(pack_bits(np.ones((3, 0))), pack_bits(np.ones((2, 0))))
    np.testing.assert_array_equal(c, np.zeros((3, 2), np.int32))


def test_out_argument(rng):
    a = pack_bits(rng.standard_normal((6, 100)))
    out = np.full((6, 6), 99, dtype=np.int32)
    res = xnor_gemm(a, a, out=out)
    assert res is out
    np.testing.assert_array_equal(np.diag(out), np.full(6, 100))


def test_binary_matmul(rng):
    A = rng.standard_normal((9, 130)).astype(np.float32)
    B = rng.standard_normal((4, 130)).astype(np.float32)
    np.testing.assert_array_equal(binary_matmul(A, B), reference(A, B))
    scaled = binary_matmul(A, B, scale="mean")
    alpha = np.abs(A).mean(axis=1)
    beta = np.abs(B).mean(axis=1)
    expected = alpha[:, None] * beta[None, :] * (np.sign(A + 0.0) @ np.sign(B).T)
    assert scaled.dtype == np.float32
    np.testing.assert_allclose(scaled, expected, rtol=1e-5)
    # integer input binarizes by sign too, and K = 0 gives zeros
    np.testing.assert_array_equal(binary_matmul(np.array([[3, -1]]), np.array([[1, 1]])), [[0]])
    np.testing.assert_array_equal(
        binary_matmul(np.ones((2, 0)), np.ones((3, 0)), scale="mean"), np.zeros((2, 3), np.float32)
    )


def test_binary_matmul_renamed_names_warn(rng):
    a = rng.standard_normal((3, 70))
    b = rng.standard_normal((2, 70))
    with pytest.warns(DeprecationWarning, match=r"scale='xnor'"):
        old = binary_matmul(a, b, scale="xnor")
    np.testing.assert_array_equal(old, binary_matmul(a, b, scale="mean"))
    with pytest.warns(DeprecationWarning, match=r"binary_matmul\(A=...\)"):
        np.testing.assert_array_equal(binary_matmul(A=a, b=b), binary_matmul(a, b))
    with pytest.raises(ValueError, match="scale must be None or 'mean'"):
        binary_matmul(a, b, scale="max")


def test_unpack_gives_the_operands(rng):
    a = rng.standard_normal((3, 77))
    pa = pack_bits(a)
    ua = unpack_bits(pa, dtype=np.float64)
    np.testing.assert_array_equal(xnor_gemm(pa, pa), (ua @ ua.T).astype(np.int32))


def test_bad_input(rng):
    a = pack_bits(rng.standard_normal((3, 10)))
    b = pack_bits(rng.standard_normal((3, 11)))
    with pytest.raises(TypeError, match="a must be a PackedBits"):
        xnor_gemm(np.ones((3, 10)), a)
    with pytest.raises(TypeError, match="b must be a PackedBits"):
        xnor_gemm(a, a.words)
    with pytest.raises(ValueError, match="same number of bits"):
        xnor_gemm(a, b)
    with pytest.raises(ValueError, match="must be 2-D"):
        xnor_gemm(pack_bits(np.ones((2, 2, 10))), a)
    with pytest.raises(TypeError, match="int32"):
        xnor_gemm(a, a, out=np.zeros((3, 3)))
    with pytest.raises(ValueError, match="shape"):
        xnor_gemm(a, a, out=np.zeros((3, 4), np.int32))
    with pytest.raises(ValueError, match="C-contiguous"):
        xnor_gemm(a, a, out=np.zeros((3, 6), np.int32)[:, ::2])
    with pytest.raises(ValueError, match="n_threads"):
        xnor_gemm(a, a, n_threads=0)
    with pytest.raises(TypeError, match="n_threads"):
        xnor_gemm(a, a, n_threads=1.5)
    with pytest.raises(ValueError, match="scale"):
        binary_matmul(np.ones((2, 2)), np.ones((2, 2)), scale="max")
    with pytest.raises(ValueError, match="same number of columns"):
        binary_matmul(np.ones((2, 2)), np.ones((2, 3)))
    with pytest.raises(ValueError, match="2-D"):
        binary_matmul(np.ones(2), np.ones((2, 2)))
    with pytest.raises(ValueError, match="NaN"):
        binary_matmul(np.full((2, 2), np.nan), np.ones((2, 2)))
    with pytest.raises(TypeError, match="real"):
        binary_matmul(np.ones((2, 2), complex), np.ones((2, 2)))
    assert MAX_BITS == 2**31 - 1
