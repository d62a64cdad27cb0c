"""The one ``(n_slices, n)`` rows helper, against an explicit loop over the kept axes."""

import itertools

import numpy as np
import pytest

from qtoolkit._array import slice_rows


@pytest.mark.parametrize("kept", [None, (), (0,), (1,), (2,), (0, 2), (1, 2), (0, 1, 2)])
def test_slice_rows_matches_a_loop(kept, rng):
    x = rng.standard_normal((3, 4, 5))
    rows, stat_shape = slice_rows(x, kept)
    k = () if kept is None else kept
    rest = [ax for ax in range(3) if ax not in k]
    expected = []
    for idx in itertools.product(*(range(x.shape[ax]) for ax in k)):
        sl = [slice(None)] * 3
        for ax, i in zip(k, idx, strict=True):
            sl[ax] = i
        # the remaining axes in C order
        expected.append(np.transpose(x, list(k) + rest)[idx].reshape(-1))
        np.testing.assert_array_equal(np.sort(x[tuple(sl)].reshape(-1)), np.sort(expected[-1]))
    np.testing.assert_array_equal(rows, np.stack(expected))
    assert stat_shape == tuple(x.shape[ax] if ax in k else 1 for ax in range(3))
    # a per-slice statistic broadcasts back against x
    m = rows.max(axis=1).reshape(stat_shape)
    red = tuple(ax for ax in range(3) if ax not in k)
    np.testing.assert_array_equal(
        np.broadcast_to(m, x.shape), np.broadcast_to(x.max(axis=red, keepdims=True), x.shape)
    )


def test_slice_rows_other_namespaces(rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((2, 3, 4)).astype(np.float32)
    rows, shape = slice_rows(torch.from_numpy(x), (1,))
    ref, ref_shape = slice_rows(x, (1,))
    assert isinstance(rows, torch.Tensor) and shape == ref_shape == (1, 3, 1)
    np.testing.assert_array_equal(rows.numpy(), ref)
    zero_d, shape = slice_rows(np.float64(2.0) * np.ones(()), None)
    assert zero_d.shape == (1, 1) and shape == ()
