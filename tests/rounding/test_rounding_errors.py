"""Bad input gets a clear error naming the argument and the value received."""

import re

import numpy as np
import pytest

import qtoolkit.rounding as qr

W = np.array([[0.5, -1.0, 0.25], [2.0, 0.0, -0.75]])


@pytest.mark.parametrize(
    "fn",
    [
        lambda w: qr.binarize(w),
        lambda w: qr.stochastic_binarize(w),
        lambda w: qr.ternarize(w),
        lambda w: qr.uniform(w),
        lambda w: qr.encode(w),
        lambda w: qr.dorefa_weights(w, 2),
        lambda w: qr.power_of_two(w, 2),
        lambda w: qr.fixed_point(w, 1, 2),
        lambda w: qr.round_to_codebook(w, [0.0, 1.0]),
        lambda w: qr.stochastic_round(w, step=0.5),
    ],
)
def test_integer_list_and_empty_inputs(fn):
    with pytest.raises(TypeError, match="must be a real floating array"):
        fn(np.arange(4))
    with pytest.raises(TypeError, match="must be an Array API array"):
        fn([0.5, 1.0])
    with pytest.raises(ValueError, match="must not be empty"):
        fn(np.zeros((0, 3)))


@pytest.mark.parametrize(
    "fn",
    [
        lambda w: qr.binarize(w, scale="mean"),
        lambda w: qr.ternarize(w),
        lambda w: qr.ternarize(w, method="optimal"),
        lambda w: qr.ternarize(w, method="ttq"),
        lambda w: qr.uniform(w, 4),
        lambda w: qr.uniform(w, 4, mode="asymmetric", axis=0),
        lambda w: qr.encode(w, 4),
        lambda w: qr.dorefa_weights(w, 2),
        lambda w: qr.dorefa_gradients(w, 2),
        lambda w: qr.power_of_two(w, 2),
        lambda w: qr.power_of_two(w, 3, method="inq"),
        lambda w: qr.inq_codebook(w, 3),
        lambda w: qr.fixed_point(w, 1, 2),
        lambda w: qr.round_to_codebook(w, [0.0, 1.0]),
        lambda w: qr.stochastic_round(w, step=0.5),
        lambda w: qr.stochastic_round(w, codebook=[0.0, 1.0]),
    ],
)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_inf_rejected(fn, bad):
    w = W.copy()
    w[1, 2] = bad
    with pytest.raises(ValueError, match="NaN or Inf"):
        fn(w)


def test_bits_out_of_range():
    with pytest.raises(ValueError, match=r"bits must be in \[2, 16\], got 1"):
        qr.uniform(W, 1)
    with pytest.raises(ValueError, match=r"bits must be in \[1, 16\], got 17"):
        qr.uniform(W, 17, mode="asymmetric")
    with pytest.raises(TypeError, match="bits must be an integer"):
        qr.uniform(W, 4.0)
    with pytest.raises(ValueError, match=r"bits must be in \[1, 16\], got 0"):
        qr.dorefa_weights(W, 0)
    with pytest.raises(ValueError, match=r"bits must be in \[2, 8\], got 1"):
        qr.power_of_two(W, 1, method="inq")
    with pytest.raises(ValueError, match="int_bits \\+ frac_bits must be at most 31"):
        qr.fixed_point(W, 20, 20)
    with pytest.raises(ValueError, match=r"frac_bits must be in \[0, 31\], got -1"):
        qr.fixed_point(W, 1, -1)


def test_bad_axis_and_group_size():
    with pytest.raises(ValueError, match="axis=2 is out of bounds for an array of dimension 2"):
        qr.uniform(W, 4, axis=2)
    with pytest.raises(ValueError, match="axis=\\(0, 0\\) repeats an axis"):
        qr.binarize(W, scale="mean", axis=(0, 0))
    with pytest.raises(TypeError, match="axis must be None, an int or a tuple of ints"):
        qr.ternarize(W, axis="0")
    with pytest.raises(ValueError, match="group_size=2 does not divide the last axis of length 3"):
        qr.uniform(W, 4, group_size=2)
    with pytest.raises(ValueError, match="axis must not contain it"):
        qr.uniform(W, 4, axis=1, group_size=3)
    with pytest.raises(ValueError, match=r"group_size must be in \[1, inf\], got 0"):
        qr.encode(W, 4, group_size=0)


def test_bad_choices_and_parameters():
    with pytest.raises(ValueError, match="mode must be one of"):
        qr.uniform(W, 4, mode="signed")
    with pytest.raises(ValueError, match="range must be one of"):
        qr.uniform(W, 4, range="max")
    with pytest.raises(ValueError, match="rounding must be one of"):
        qr.uniform(W, 4, rounding="up")
    with pytest.raises(ValueError, match="percentile must be a number in \\(50, 100\\]"):
        qr.uniform(W, 4, range="percentile", percentile=20)
    with pytest.raises(ValueError, match="narrow_range applies to"):
        qr.uniform(W, 4, mode="unsigned", narrow_range=True)
    with pytest.raises(ValueError, match="method must be one of"):
        qr.ternarize(W, method="ttw")
    with pytest.raises(ValueError, match="delta must be a finite number > 0"):
        qr.ternarize(W, delta=-0.7)
    with pytest.raises(ValueError, match="threshold is a fraction of max"):
        qr.ternarize(W, method="ttq", threshold=1.5)
    with pytest.raises(ValueError, match="scales=\\(W_p, W_n\\) is used only with"):
        qr.ternarize(W, scales=(1.0, 1.0))
    with pytest.raises(ValueError, match="scales must be a pair"):
        qr.ternarize(W, method="ttq", scales=(1.0,))
    with pytest.raises(ValueError, match="scale must be None, 'mean' or 'loss_aware'"):
        qr.binarize(W, scale="max")
    with pytest.raises(ValueError, match="needs d"):
        qr.binarize(W, scale="loss_aware")
    with pytest.raises(ValueError, match="d must have the shape of w"):
        qr.binarize(W, scale="loss_aware", d=np.ones(3))
    with pytest.raises(ValueError, match="d must be non-negative"):
        qr.binarize(W, scale="loss_aware", d=-np.ones_like(W))
    with pytest.raises(ValueError, match="d is used only with"):
        qr.binarize(W, d=np.ones_like(W))
    with pytest.raises(TypeError, match="fsr must be an integer"):
        qr.power_of_two(W, 2, fsr=0.5)
    with pytest.raises(ValueError, match="w is all zero"):
        qr.inq_codebook(np.zeros(3), 3)
    with pytest.raises(TypeError, match="saturate must be a bool"):
        qr.fixed_point(W, 1, 2, saturate=1)


def test_codebook_and_step_errors():
    with pytest.raises(ValueError, match="strictly increasing"):
        qr.round_to_codebook(W, [1.0, 0.0])
    with pytest.raises(ValueError, match="strictly increasing"):
        qr.round_to_codebook(W, [0.0, 0.0, 1.0])
    with pytest.raises(ValueError, match="codebook must be 1-D with at least 1"):
        qr.round_to_codebook(W, np.zeros((2, 2)))
    with pytest.raises(ValueError, match="codebook contains NaN or Inf"):
        qr.round_to_codebook(W, [0.0, np.inf])
    with pytest.raises(TypeError, match="codebook must be a sorted 1-D array"):
        qr.round_to_codebook(W, "abc")
    # arrays that are no reals (NumPy strings, objects) are refused the same way
    bad_arrays = [np.array(["6e-"]), np.array(["a", 1.0], dtype=object)]
    for bad in bad_arrays:
        with pytest.raises(TypeError, match="codebook must be a sorted 1-D array"):
            qr.round_to_codebook(W, bad)
    with pytest.raises(ValueError, match="at least 2"):
        qr.stochastic_round(W, codebook=[1.0])
    with pytest.raises(ValueError, match="give exactly one of step"):
        qr.stochastic_round(W)
    with pytest.raises(ValueError, match="give exactly one of step"):
        qr.stochastic_round(W, step=0.5, codebook=[0.0, 1.0])
    with pytest.raises(ValueError, match=re.escape("step must be a finite number > 0, got 0.0")):
        qr.stochastic_round(W, step=0)
    with pytest.raises(ValueError, match="return_codes=True needs codebook"):
        qr.stochastic_round(W, step=0.5, return_codes=True)
    with pytest.raises(TypeError, match="rng must be None, an int seed"):
        qr.stochastic_round(W, step=0.5, rng="seed")
    with pytest.raises(ValueError, match="rng must be a non-negative seed"):
        qr.stochastic_binarize(W, rng=-1)


def test_gradient_errors():
    with pytest.raises(ValueError, match="grad must have the shape of w"):
        qr.straight_through(W, np.ones(3))
    with pytest.raises(ValueError, match="clip_value must be a finite number > 0"):
        qr.clipped_straight_through(W, W, clip_value=0)
    with pytest.raises(ValueError, match="beta must be a finite number > 0"):
        qr.swish_sign_gradient(W, W, beta=-1)
    with pytest.raises(TypeError, match="grad must be a real floating array"):
        qr.approx_sign_gradient(W, np.ones(W.shape, dtype=int))
