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
