"""Quantizers inside PyTorch autograd and JAX autodiff: values, pseudo-gradients, learned scales."""

import numpy as np
import pytest

from qtoolkit import rounding as R
from qtoolkit.rounding import ste

torch = pytest.importorskip("torch")
jax = pytest.importorskip("jax")
jnp = jax.numpy

# entries on both sides of every boundary of the pseudo-gradients (|x| = 1, x = 0, ...)
X = np.concatenate(
    [
        np.array([-2.0, -1.0, -0.999, -0.5, 0.0, 0.25, 0.5, 1.0, 1.001, 3.0]),
        np.random.default_rng(0).standard_normal(22) * 1.2,
    ]
).astype(np.float32)
G = np.random.default_rng(1).standard_normal(X.shape).astype(np.float32)

PSEUDO = {
    "identity": lambda x, g: R.straight_through(x, g),
    "clipped": lambda x, g: R.clipped_straight_through(x, g, clip_value=1.0),
    "approx_sign": lambda x, g: R.approx_sign_gradient(x, g),
    "swish": lambda x, g: R.swish_sign_gradient(x, g, beta=5.0),
}

SCHEMES = [
    ("binary", {}),
    ("binary", {"scale": "mean"}),
    ("stochastic_binary", {"rng": 0}),
    ("ternary", {}),
    ("ternary", {"method": "optimal"}),
    ("ternary", {"method": "ttq"}),
    ("uniform", {"bits": 3}),
    ("uniform", {"bits": 4, "mode": "asymmetric", "group_size": 8}),
    ("power_of_two", {"bits": 3}),
    ("fixed_point", {"int_bits": 1, "frac_bits": 2}),
    ("codebook", {"codebook": [-1.0, -0.3, 0.0, 0.4, 1.2]}),
    ("stochastic", {"codebook": [-1.0, 0.0, 1.0], "rng": 0}),
    ("dorefa", {"bits": 1}),
    ("dorefa", {"bits": 3}),
    ("dorefa_activation", {"bits": 2}),
    ("lsq", {"step_size": 0.3, "bits": 3}),
]


def torch_vjp(f, x, g, *params):
    """``(f(x), dL/dx, dL/dparams)`` for ``L = sum(f(x) * g)`` by torch autograd."""
    xt = torch.tensor(x, requires_grad=True)
    ps = [torch.tensor(p, requires_grad=True) for p in params]
    y = f(xt, *ps)
    (y * torch.tensor(g)).sum().backward()
    return y.detach().numpy(), xt.grad.numpy(), [p.grad.numpy() for p in ps]


def jax_vjp(f, x, g, *params):
    """The same with ``jax.vjp``."""
    y, back = jax.vjp(f, jnp.asarray(x), *[jnp.asarray(p) for p in params])
    grads = back(jnp.asarray(g))
    return np.asarray(y), np.asarray(grads[0]), [np.asarray(p) for p in grads[1:]]


VJPS = {"torch": torch_vjp, "jax": jax_vjp}


@pytest.mark.parametrize("framework", sorted(VJPS))
@pytest.mark.parametrize("gradient", sorted(PSEUDO))
def test_gradient_equals_numpy_pseudo_gradient(framework, gradient):
    f = ste("binary", gradient=gradient)
    y, gx, _ = VJPS[framework](f, X, G)
    np.testing.assert_array_equal(y, R.binarize(X))
    # exactly the library's pseudo-gradient function run in the framework's own arrays
    to = torch.tensor if framework == "torch" else jnp.asarray
    np.testing.assert_array_equal(gx, np.asarray(PSEUDO[gradient](to(X), to(G))))
    if gradient == "swish":  # tanh and cosh of the framework's libm: within an ulp or two
        np.testing.assert_allclose(gx, PSEUDO[gradient](X, G), rtol=2e-6, atol=1e-9)
    else:
        np.testing.assert_array_equal(gx, PSEUDO[gradient](X, G))


@pytest.mark.parametrize("framework", sorted(VJPS))
def test_clip_value_and_beta_reach_the_pseudo_gradient(framework):
    _, gx, _ = VJPS[framework](ste("ternary", gradient="clipped", clip_value=0.5), X, G)
    np.testing.assert_array_equal(gx, R.clipped_straight_through(X, G, clip_value=0.5))
    _, gx, _ = VJPS[framework](ste("binary", gradient="swish", beta=2.0), X, G)
    np.testing.assert_allclose(gx, R.swish_sign_gradient(X, G, beta=2.0), rtol=2e-6, atol=1e-9)


@pytest.mark.parametrize("framework", sorted(VJPS))
@pytest.mark.parametrize(("name", "params"), SCHEMES, ids=lambda v: str(v))
def test_value_is_the_quantizer_exactly(framework, name, params):
    q = R.get(name, **params)
    f = ste(R.get(name, **params))  # a fresh seed stream, as q's
    y, gx, _ = VJPS[framework](f, X, G)
    to = torch.tensor if framework == "torch" else jnp.asarray
    np.testing.assert_array_equal(y, np.asarray(q(to(X))))  # the same quantizer, same arrays
    np.testing.assert_allclose(y, R.get(name, **params)(X), rtol=1e-6, atol=1e-7)  # and NumPy's
    assert np.all(np.isfinite(gx))


@pytest.mark.parametrize("framework", sorted(VJPS))
def test_straight_through_for_the_generic_schemes(framework):
    for name, params in SCHEMES:
        if name in ("dorefa", "dorefa_activation", "lsq") and not (
            name == "dorefa" and params["bits"] == 1
        ):
            continue
        _, gx, _ = VJPS[framework](ste(name, **params), X, G)
        np.testing.assert_array_equal(gx, G, err_msg=name)


def test_numpy_gets_the_forward_map():
    q = R.get("uniform", bits=3)
    np.testing.assert_array_equal(ste(q)(X), q(X))
    out = ste("ternary", method="ttq")(X, scales=(0.5, 0.25))
    np.testing.assert_array_equal(out, R.ternarize(X, method="ttq", scales=(0.5, 0.25)))


@pytest.mark.parametrize("framework", sorted(VJPS))
def test_ttq_scales_and_latent_gradient(framework):
    f = ste("ternary", method="ttq", threshold=0.2)

    def g(x, wp, wn):
        return f(x, scales=(wp, wn))

    wp, wn = np.float32(0.7), np.float32(1.3)
    y, gx, (gwp, gwn) = VJPS[framework](g, X, G, wp, wn)
    np.testing.assert_array_equal(y, R.ternarize(X, method="ttq", threshold=0.2, scales=(wp, wn)))
    thr = 0.2 * np.abs(X).max()
    pos, neg = thr < X, -thr > X
    # TTQ: dL/dWp = sum over I_p of g, dL/dWn = -sum over I_n of g (the value there is -Wn)
    np.testing.assert_allclose(gwp, G[pos].sum(), rtol=1e-6)
    np.testing.assert_allclose(gwn, -G[neg].sum(), rtol=1e-6)
    np.testing.assert_array_equal(gx, np.where(pos, wp * G, np.where(neg, wn * G, G)))


def _lsq_reference(x, s, bits, signed, grad_scale):
    """Slow LSQ gradients, entry by entry from the paper's case analysis."""
    qn, qp = (2 ** (bits - 1), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    gx = np.zeros_like(x)
    ds = np.zeros_like(x)
    for i, xi in enumerate(x):
        v = xi / s
        if v <= -qn:
            ds[i] = -qn
        elif v >= qp:
            ds[i] = qp
        else:
            gx[i] = 1.0
            ds[i] = np.round(v) - v
    return gx, ds * grad_scale


@pytest.mark.parametrize("framework", sorted(VJPS))
@pytest.mark.parametrize("signed", [True, False])
def test_lsq_gradients(framework, signed):
    bits, s = 3, np.float32(0.35)
    f = ste("lsq", bits=bits, signed=signed, step_size=1.0)
    y, gx, (gs,) = VJPS[framework](lambda x, s: f(x, step_size=s), X, G, s)
    np.testing.assert_array_equal(y, R.lsq(X, s, bits=bits, signed=signed))
    qp = 2 ** (bits - 1) - 1 if signed else 2**bits - 1
    ref_x, ref_ds = _lsq_reference(X, s, bits, signed, 1 / np.sqrt(X.size * qp))
    np.testing.assert_array_equal(gx, ref_x * G)
    np.testing.assert_allclose(gs, (ref_ds * G).sum(), rtol=1e-5)
    _, _, (gs2,) = VJPS[framework](
        lambda x, s: ste("lsq", bits=bits, signed=signed, step_size=1.0, grad_scale=1.0)(
            x, step_size=s
        ),
        X,
        G,
        s,
    )
    np.testing.assert_allclose(gs2, (ref_ds * G).sum() * np.sqrt(X.size * qp), rtol=1e-5)


@pytest.mark.parametrize("framework", sorted(VJPS))
def test_dorefa_activation_learned_clip(framework):
    f = ste("dorefa_activation", bits=2)
    a = np.float32(0.8)
    y, gx, (ga,) = VJPS[framework](lambda x, a: f(x, clip=a), X, G, a)
    n = 3.0
    ref = a * np.round(np.clip(X / a, 0, 1) * n) / n
    np.testing.assert_allclose(y, ref, rtol=1e-6)
    np.testing.assert_array_equal(gx, np.where((X >= 0) & (a > X), G, 0))
    np.testing.assert_allclose(ga, G[a <= X].sum(), rtol=1e-6)
    # without a clip: DoReFa's quantizer on [0, 1] and its straight-through inside
    y, gx, _ = VJPS[framework](f, X, G)
    np.testing.assert_array_equal(y, R.dorefa_activations(X, 2))
    np.testing.assert_array_equal(gx, np.where((X >= 0) & (X < 1), G, 0))


def test_dorefa_weights_gradient_flows_through_the_normalisation():
    f = ste("dorefa", bits=3)
    x = torch.tensor(X, requires_grad=True)
    (f(x) * torch.tensor(G)).sum().backward()
    # reference: autograd of 2 * (tanh x / (2 max|tanh x|) + 1/2) - 1, the quantize_k input
    x2 = torch.tensor(X, requires_grad=True)
    t = torch.tanh(x2)
    r = 2 * (t / (2 * t.abs().max()) + 0.5) - 1
    (r * torch.tensor(G)).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), x2.grad.numpy(), rtol=1e-5, atol=1e-7)
    _, gx, _ = jax_vjp(f, X, G)
    np.testing.assert_allclose(gx, x2.grad.numpy(), rtol=1e-5, atol=1e-7)


def test_works_inside_jit_and_grad():
    f = ste("uniform", gradient="clipped", bits=3)
    loss = jax.jit(jax.grad(lambda x: jnp.sum(f(x) * jnp.asarray(G))))
    np.testing.assert_array_equal(
        np.asarray(loss(jnp.asarray(X))), R.clipped_straight_through(X, G)
    )
    torch._dynamo.reset()
    fc = torch.compile(lambda x: f(x), backend="eager")
    x = torch.tensor(X, requires_grad=True)
    (fc(x) * torch.tensor(G)).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), R.clipped_straight_through(X, G))


def test_errors():
    with pytest.raises(ValueError, match="gradient must be one of"):
        ste("binary", gradient="sigmoid")
    with pytest.raises(ValueError, match="pseudo-gradient of its paper"):
        ste("lsq", gradient="clipped", step_size=0.1)
    with pytest.raises(ValueError, match="clip_value"):
        ste("binary", gradient="clipped", clip_value=0.0)
    with pytest.raises(ValueError, match="grad_scale"):
        ste("lsq", step_size=0.1, grad_scale=-1.0)
    with pytest.raises(ValueError, match="name must be one of"):
        ste("binery")
    with pytest.raises(TypeError, match="cannot be combined"):
        ste(R.get("binary"), scale="mean")
    f = ste("ternary", method="twn")
    with pytest.raises(ValueError, match="only with method='ttq'"):
        f(torch.tensor(X), scales=(1.0, 1.0))
    with pytest.raises(TypeError, match="framework of x"):
        ste("ternary", method="ttq")(torch.tensor(X), scales=(jnp.ones(()), 1.0))
    with pytest.raises(ValueError, match="step_size must be > 0"):
        ste("lsq", step_size=0.1)(torch.tensor(X), step_size=torch.tensor(-0.5))
    with pytest.raises(TypeError, match="x must be"):
        ste("binary")([1.0, 2.0])


def test_ttq_scales_move_in_training():
    """Trained ternary weights fit a linear map; W_p and W_n leave their common start."""
    rng = np.random.default_rng(0)
    A = rng.standard_normal((256, 16)).astype(np.float32)
    w_true = np.where(rng.random(16) < 0.5, 1.5, -0.6).astype(np.float32)
    b = A @ w_true
    w = torch.tensor(rng.standard_normal(16).astype(np.float32), requires_grad=True)
    wp = torch.tensor(1.0, requires_grad=True)
    wn = torch.tensor(1.0, requires_grad=True)
    f = ste("ternary", method="ttq", threshold=0.05)
    opt = torch.optim.SGD([w, wp, wn], lr=0.05)
    At, bt = torch.tensor(A), torch.tensor(b)
    losses = []
    for _ in range(200):
        opt.zero_grad()
        loss = ((At @ f(w, scales=(wp, wn)) - bt) ** 2).mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    # the targets are +1.5 and -0.6: the two scales move apart towards them
    assert abs(wp.item() - 1.5) < 0.1 and abs(wn.item() - 0.6) < 0.1
    assert losses[-1] < 0.01 * losses[0]
