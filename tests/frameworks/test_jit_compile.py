"""Every rounding scheme, gradient quantizer and analysis measure under jax.jit and torch.compile.

Each public function is run eagerly and traced (``jax.jit``) or compiled (``torch.compile``) on the
same input, and the results are compared. Data-dependent checks (NaN/Inf, all-zero input) are
skipped for traced arrays, so a function that used ``bool()`` on an array fails here.
"""

import numpy as np
import pytest

from qtoolkit import analysis as A
from qtoolkit import gradients as G
from qtoolkit import rounding as R
from qtoolkit._array import is_lazy

pytestmark = pytest.mark.filterwarnings("ignore:Dynamo detected a call:UserWarning")

BOOK = [-1.0, -0.25, 0.0, 0.5, 1.0]


def _cases(sign):
    """name -> f(w) for a (4, 8) float32 array ``w``; ``sign`` is the namespace's sign."""
    return {
        "binarize": lambda w: R.binarize(w),
        "binarize_mean_axis": lambda w: R.binarize(w, scale="mean", axis=0),
        "binarize_loss_aware": lambda w: R.binarize(w, scale="loss_aware", d=w * w + 0.5),
        "stochastic_binarize": lambda w: R.stochastic_binarize(w, rng=0),
        "ternarize_twn": lambda w: R.ternarize(w),
        "ternarize_optimal": lambda w: R.ternarize(w, method="optimal", axis=0),
        "ternarize_ttq": lambda w: R.ternarize(w, method="ttq"),
        "uniform": lambda w: R.uniform(w, bits=4),
        "uniform_asym_groups": lambda w: R.uniform(w, bits=3, mode="asymmetric", group_size=4),
        "uniform_percentile": lambda w: R.uniform(w, bits=4, range="percentile", percentile=90),
        "uniform_mse": lambda w: R.uniform(w, bits=3, range="mse"),
        "encode_codes": lambda w: R.encode(w, bits=4, axis=0).codes,
        "decode_encode": lambda w: R.decode(R.encode(w, bits=4, axis=0)),
        "fixed_point": lambda w: R.fixed_point(w, 1, 3),
        "fixed_point_stochastic": lambda w: R.fixed_point(w, 1, 3, rounding="stochastic", rng=0),
        "power_of_two": lambda w: R.power_of_two(w, bits=3),
        "power_of_two_inq": lambda w: R.power_of_two(w, bits=3, method="inq", axis=0),
        "inq_codebook": lambda w: R.inq_codebook(w, bits=4),
        "dorefa_weights": lambda w: R.dorefa_weights(w, bits=3),
        "dorefa_weights_1bit": lambda w: R.dorefa_weights(w, bits=1, axis=0),
        "dorefa_activations": lambda w: R.dorefa_activations(w, bits=2),
        "dorefa_gradients": lambda w: R.dorefa_gradients(w, bits=4, rng=0),
        "round_to_codebook": lambda w: R.round_to_codebook(w, BOOK),
        "stochastic_round_book": lambda w: R.stochastic_round(w, codebook=BOOK, rng=0),
        "stochastic_round_step": lambda w: R.stochastic_round(w, step=0.25, rng=0),
        "quantizer_registry": lambda w: R.get("uniform", bits=3, axis=0)(w),
        "straight_through": lambda w: R.straight_through(w, w + 1),
        "clipped_straight_through": lambda w: R.clipped_straight_through(w, w + 1),
        "approx_sign_gradient": lambda w: R.approx_sign_gradient(w, w + 1),
        "swish_sign_gradient": lambda w: R.swish_sign_gradient(w, w + 1),
        "qsgd": lambda w: G.qsgd(w, n_levels=4, rng=0),
        "qsgd_buckets": lambda w: G.qsgd(w, n_levels=4, bucket_size=8, rng=0),
        "terngrad": lambda w: G.terngrad(w, rng=0),
        "terngrad_clip": lambda w: G.terngrad(w, clip=1.0, rng=0),
        "scaled_sign": lambda w: G.scaled_sign(w),
        "scaled_sign_two_level": lambda w: G.scaled_sign(w, scale="two_level"),
        "angle": lambda w: A.angle(w, w + 0.5),
        "cosine": lambda w: A.cosine(w, sign(w)),
        "mse": lambda w: A.mse(w, w + 0.5, axis=0),
        "sqnr": lambda w: A.sqnr(w, sign(w)),
        "angle_preservation": lambda w: A.angle_preservation(w, sign),
        "dot_product_proportionality": lambda w: (
            A.dot_product_proportionality(w, sign, w[:3, :] + 1).r
        ),
        "pairwise_angle_preservation": lambda w: A.pairwise_angle_preservation(w, sign).after,
    }


NAMES = sorted(_cases(np.sign))
W = np.random.default_rng(5).standard_normal((4, 8)).astype(np.float32)


def _check_same(eager, traced):
    eager, traced = np.asarray(eager), np.asarray(traced)
    assert eager.shape == traced.shape and eager.dtype == traced.dtype
    if np.issubdtype(eager.dtype, np.integer):
        np.testing.assert_array_equal(traced, eager)
    else:
        # the compiler may fuse or reorder float arithmetic: a few ulps
        np.testing.assert_allclose(traced, eager, rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def jax():
    return pytest.importorskip("jax")


@pytest.mark.parametrize("name", NAMES)
def test_jax_jit_equals_eager(jax, name):
    f = _cases(jax.numpy.sign)[name]
    w = jax.numpy.asarray(W)
    _check_same(f(w), jax.jit(f)(w))


def test_is_lazy_sees_tracers_and_compiling(jax):
    torch = pytest.importorskip("torch")
    seen = []
    jax.jit(lambda x: seen.append(is_lazy(x)) or x)(jax.numpy.ones(2))
    assert seen == [True]
    assert not is_lazy(jax.numpy.ones(2))
    assert not is_lazy(torch.ones(2)) and not is_lazy(W)

    def f(x):
        return x + 1 if is_lazy(x) else x - 1

    assert torch.compile(f, backend="eager", fullgraph=True)(torch.zeros(1)).item() == 1.0
    assert f(torch.zeros(1)).item() == -1.0


def test_eager_checks_still_run_outside_tracing(jax):
    w = jax.numpy.asarray(np.array([1.0, np.nan], dtype=np.float32))
    with pytest.raises(ValueError, match="NaN"):
        R.uniform(w, bits=4)
    with pytest.raises(ValueError, match="NaN"):
        G.qsgd(w, n_levels=4, rng=0)
    with pytest.raises(ValueError, match="all zero"):
        R.inq_codebook(jax.numpy.zeros(3), bits=3)


# torch.compile traces slowly on small machines (seconds per function): the quick run compiles
# one function per family, the slow run (-m slow) all of them.
QUICK = {
    "binarize_mean_axis",
    "stochastic_binarize",
    "ternarize_twn",
    "uniform",
    "dorefa_gradients",
    "clipped_straight_through",
    "qsgd",
    "scaled_sign",
    "cosine",
}
COMPILE_CASES = [n if n in QUICK else pytest.param(n, marks=pytest.mark.slow) for n in NAMES]


@pytest.mark.parametrize("name", COMPILE_CASES)
def test_torch_compile_equals_eager(name):
    torch = pytest.importorskip("torch")
    f = _cases(torch.sign)[name]
    w = torch.asarray(W)
    torch._dynamo.reset()
    # the "eager" backend runs dynamo's tracing (fake tensors, is_compiling) without inductor's
    # C++ code generation, which takes minutes on small machines; graph breaks are allowed
    # (the stochastic schemes draw their counter-based noise with NumPy).
    _check_same(f(w), torch.compile(f, backend="eager")(w))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["uniform", "ternarize_twn", "qsgd_buckets", "cosine"])
def test_torch_compile_inductor_equals_eager(name):
    torch = pytest.importorskip("torch")
    f = _cases(torch.sign)[name]
    w = torch.asarray(W)
    torch._dynamo.reset()
    _check_same(f(w), torch.compile(f)(w))
