"""Property tests (hypothesis): invariants of the rounding schemes on arbitrary arrays."""

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra.numpy import arrays  # noqa: E402

from qtoolkit.bitops._codes import pack_codes, unpack_codes  # noqa: E402
from qtoolkit.rounding import (  # noqa: E402 (after the hypothesis importorskip)
    encode,
    round_to_codebook,
    stochastic_round,
    ternarize,
    uniform,
)

finite = st.floats(-1e3, 1e3, allow_nan=False, width=64)
weights = arrays(np.float64, st.integers(1, 60), elements=finite)


@settings(max_examples=60, deadline=None)
@given(w=weights, bits=st.integers(2, 8), mode=st.sampled_from(["symmetric", "asymmetric"]))
def test_uniform_idempotent_and_within_half_step(w, bits, mode):
    q = uniform(w, bits, mode=mode)
    np.testing.assert_allclose(uniform(q, bits, mode=mode), q, rtol=1e-9, atol=1e-9)
    s = float(np.ravel(encode(w, bits, mode=mode).scale)[0])
    assert np.all(np.abs(q - w) <= s / 2 * (1 + 1e-9) + 1e-12)


@settings(max_examples=60, deadline=None)
@given(w=weights)
def test_optimal_ternary_no_worse_than_twn_and_levels(w):
    q = ternarize(w, method="optimal")
    assert len(np.unique(np.abs(q[q != 0]))) <= 1
    assert np.sum((w - q) ** 2) <= np.sum((w - ternarize(w)) ** 2) * (1 + 1e-12) + 1e-12


@settings(max_examples=60, deadline=None)
@given(w=weights, book=st.lists(finite, min_size=2, max_size=8, unique=True))
def test_codebook_rounding_neighbours(w, book):
    book = np.sort(np.array(book))
    near = round_to_codebook(w, book)
    dist = np.min(np.abs(w[:, None] - book[None, :]), axis=1)
    np.testing.assert_allclose(np.abs(near - w), dist)
    sto = stochastic_round(w, codebook=book, rng=0)
    x = np.clip(w, book[0], book[-1])
    lo = book[np.clip(np.searchsorted(book, x, side="right") - 1, 0, len(book) - 2)]
    hi = book[np.clip(np.searchsorted(book, x, side="right"), 1, len(book) - 1)]
    assert np.all((sto == lo) | (sto == hi) | (sto == x))


@settings(max_examples=60, deadline=None)
@given(bits=st.sampled_from([1, 2, 4, 8]), data=st.data())
def test_pack_unpack_identity(bits, data):
    codes = data.draw(arrays(np.uint8, st.integers(0, 100), elements=st.integers(0, 2**bits - 1)))
    np.testing.assert_array_equal(unpack_codes(pack_codes(codes, bits), bits, codes.size), codes)


@pytest.mark.parametrize(
    "w, book, expected",
    [
        (0.0, [-5e-324, 0.0], 0.0),  # adjacent subnormals: the midpoint rounds onto a codeword
        (-5e-324, [-5e-324, 0.0], -5e-324),
        (1.5e308, [-1.7e308, 1.7e308], 1.7e308),  # the midpoint sum overflows
        (-1.5e308, [-1.7e308, 1.7e308], -1.7e308),
        (0.25, [0.0, 0.5], 0.0),  # an exact tie goes to the lower codeword
    ],
)
def test_codebook_rounding_extreme_codewords(w, book, expected):
    w = np.array([w])
    book = np.array(book)
    with np.errstate(over="ignore"):
        dist = np.abs(w[:, None] - book[None, :])
    assert round_to_codebook(w, book)[0] == expected
    assert np.abs(round_to_codebook(w, book) - w)[0] == dist.min()


def test_stochastic_binarize_refuses_nan_like_binarize():
    from qtoolkit.rounding import binarize, decode, get, stochastic_binarize

    w = np.array([0.5, np.nan, -0.2])
    for f in (binarize, lambda x: stochastic_binarize(x, rng=0)):
        with pytest.raises(ValueError, match="w contains NaN"):
            f(w)
    with pytest.raises(ValueError, match="w contains NaN"):
        get("stochastic_binary", rng=0).encode(w)
    inf = np.array([np.inf, -np.inf, 0.3])
    q = stochastic_binarize(inf, rng=0)
    assert q[0] == 1 and q[1] == -1
    np.testing.assert_array_equal(decode(get("stochastic_binary", rng=0).encode(inf)), q)


@pytest.mark.parametrize("dtype, p", [(np.float16, 11), (np.float32, 24)])
def test_dorefa_bits_limited_by_the_significand(dtype, p):
    from qtoolkit.rounding import dorefa_activations, dorefa_gradients, dorefa_weights

    x = np.linspace(0, 1, 4099).astype(dtype)
    w = (x - 0.5).astype(dtype)
    for bits in range(1, min(p, 16) + 1):  # every allowed width stays on the grid in [0, 1]
        a = dorefa_activations(x, bits=bits)
        assert a.dtype == dtype and a.min() >= 0 and a.max() <= 1
        assert np.all(np.abs(dorefa_weights(w, bits=bits)) <= 1)
    if p < 16:
        for f, arg in ((dorefa_activations, x), (dorefa_weights, w)):
            with pytest.raises(ValueError, match=f"bits must be at most {p} for float16"):
                f(arg, bits=p + 1)
        with pytest.raises(ValueError, match="bits must be at most"):
            dorefa_gradients(w, bits=p + 1, rng=0)
        # the limit is where the arithmetic breaks: 2**12 - 1 = 4095 is 4096 in float16
        assert float(dtype(2**p - 1)) == 2**p - 1
        assert float(dtype(2 ** (p + 1) - 1)) != 2 ** (p + 1) - 1
