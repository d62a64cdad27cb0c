"""Dense packing of 1/2/4/8-bit codes against a bit-by-bit reference."""

import numpy as np
import pytest

from qtoolkit.bitops._codes import pack_codes, unpack_codes


def _ref_pack(codes, bits):
    """Write each code's bits one at a time, little-endian within the byte."""
    out = np.zeros(-(-len(codes) * bits // 8), dtype=np.uint8)
    for i, c in enumerate(codes):
        for b in range(bits):
            pos = i * bits + b
            if (int(c) >> b) & 1:
                out[pos // 8] |= 1 << (pos % 8)
    return out


@pytest.mark.parametrize("bits", [1, 2, 4, 8])
@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 63, 64, 65, 1001])
def test_pack_matches_reference_and_unpack_inverts(bits, n, rng):
    codes = rng.integers(0, 2**bits, size=n)
    packed = pack_codes(codes, bits)
    assert packed.dtype == np.uint8
    assert packed.size == -(-n * bits // 8)
    np.testing.assert_array_equal(packed, _ref_pack(codes, bits))
    back = unpack_codes(packed, bits, n)
    np.testing.assert_array_equal(back, codes)
    assert back.dtype == np.uint8


def test_two_int4_per_byte():
    np.testing.assert_array_equal(pack_codes(np.array([1, 2, 15]), 4), [0x21, 0x0F])
    np.testing.assert_array_equal(pack_codes(np.array([3, 0, 1, 2]), 2), [0b10010011])


def test_multidimensional_input_flattens_in_c_order(rng):
    codes = rng.integers(0, 4, size=(3, 5))
    np.testing.assert_array_equal(unpack_codes(pack_codes(codes, 2), 2, 15), codes.ravel())


def test_errors():
    with pytest.raises(ValueError, match=r"bits must be one of \(1, 2, 4, 8\), got 3"):
        pack_codes(np.array([1]), 3)
    with pytest.raises(TypeError, match="bits must be an integer"):
        pack_codes(np.array([1]), 2.0)
    with pytest.raises(ValueError, match=r"codes must lie in \[0, 3\] for bits=2"):
        pack_codes(np.array([0, 4]), 2)
    with pytest.raises(ValueError, match=r"codes must lie in \[0, 1\]"):
        pack_codes(np.array([-1, 0]), 1)
    with pytest.raises(TypeError, match="codes must be an integer array"):
        pack_codes(np.array([0.5]), 4)
    with pytest.raises(TypeError, match="packed must be a uint8 array"):
        unpack_codes(np.array([1, 2]), 4, 2)
    with pytest.raises(ValueError, match=r"count must be in \[0, 4\]"):
        unpack_codes(np.array([1, 2], dtype=np.uint8), 4, 5)
    with pytest.raises(TypeError, match="count must be an integer"):
        unpack_codes(np.array([1], dtype=np.uint8), 4, 1.0)
