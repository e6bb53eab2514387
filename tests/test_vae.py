"""The whole VAE (and the plain autoencoder): gradients, values, estimators, bad input.

Gradient checks run in float64 with fixed noise ``eps``, so the loss is a deterministic
function of the parameters. For ReLU and leaky ReLU the data are chosen so that no
pre-activation lies within ``KINK_MARGIN`` of 0: :func:`kink_free_batch` draws (x, eps)
from successive seeds and keeps the first draw whose smallest |pre-activation| exceeds
the margin. A finite-difference step of h = 1e-6 moves a pre-activation by at most
h * |input| (about 1e-5 here), so no difference straddles a kink.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import special, stats

import scratchvae as sv
from scratchvae.gradcheck import check_model
from scratchvae.layers import Linear

GRAD_TOL = 1e-6
KINK_MARGIN = 1e-4

LIKELIHOODS = {  # the four observation models, by test id
    "bernoulli": dict(likelihood="bernoulli"),
    "gaussian_fixed": dict(likelihood="gaussian", sigma_dec=0.5),
    "gaussian_sigma_learned": dict(likelihood="gaussian", sigma_dec="learned"),
    "gaussian_per_pixel": dict(likelihood="gaussian_per_pixel"),
}


def make_vae(case="bernoulli", D=5, hidden=(5, 3), d=2, backend="numpy", **kw):
    model = sv.VAE(D, hidden, d, dtype="float64", backend=backend, seed=kw.pop("seed", 0),
                   **LIKELIHOODS[case], **kw)
    if "dec.logvar" in model.params:  # a generic point, not the initial 0
        model.params["dec.logvar"][...] = 0.3
    return model


def draw_x(likelihood, n, D, rng):
    if likelihood == "bernoulli":
        x = rng.uniform(size=(n, D))
        x[0, :2] = [0.0, 1.0]  # the end points of the range are legal targets
        return x
    return rng.standard_normal((n, D)) * 1.5


def pre_activations(model):
    """|pre-activation| of every linear layer that feeds a ReLU or leaky ReLU, from the
    caches of the last forward pass."""
    stacks = [model.decoder.body]
    stacks.append(model.encoder.body if isinstance(model, sv.VAE) else model.encoder)
    out = []
    for seq in stacks:
        for lin, act in zip(seq.layers[::2], seq.layers[1::2], strict=False):
            if act.kind in ("relu", "leaky_relu"):
                x, W = lin.cache
                out.append(sv.to_numpy(x @ W + lin.b).ravel())
    return np.abs(np.concatenate(out)) if out else np.array([np.inf])


def kink_free_batch(model, n=3, L=1, first_seed=0):
    """(x, eps) on the model's backend with every ReLU pre-activation > KINK_MARGIN from 0."""
    for seed in range(first_seed, first_seed + 100):
        rng = np.random.default_rng(seed)
        x = model.asarray(draw_x(model.likelihood, n, model.input_dim, rng))
        if isinstance(model, sv.AE):
            model.loss(x)
            eps = None
        else:
            eps = model.asarray(rng.standard_normal((L, n, model.latent_dim)))
            model.loss(x, eps)
        if pre_activations(model).min() > KINK_MARGIN:
            return x, eps
    raise AssertionError("no kink-free draw in 100 seeds")


def assert_gradients(model, x, eps=None, **kw):
    report = check_model(model, x, eps, **kw)
    assert report.passed(GRAD_TOL), str(report)
    assert set(report.errors) == set(model.params)
    return report


# ---- gradients of the whole model -------------------------------------------------------
GRID = [  # every likelihood x estimator x L x depth; the activation varies where there is one
    (case, est, act, L, hidden)
    for case, est, L in itertools.product(LIKELIHOODS, "AB", (1, 3))
    for hidden, acts in (((), ("relu",)), ((5, 3), ("relu", "tanh")))
    for act in acts
]


@pytest.mark.parametrize(("case", "estimator", "activation", "L", "hidden"), GRID)
def test_vae_gradients(case, estimator, activation, L, hidden):
    model = make_vae(case, hidden=hidden, estimator=estimator, activation=activation)
    x, eps = kink_free_batch(model, L=L)
    assert_gradients(model, x, eps)


@pytest.mark.parametrize("activation", ["leaky_relu", "sigmoid", "softplus"])
@pytest.mark.parametrize("case", ["bernoulli", "gaussian_per_pixel"])
def test_vae_gradients_other_activations(activation, case):
    model = make_vae(case, hidden=(4,), activation=activation, estimator="A")
    x, eps = kink_free_batch(model, L=2)
    assert_gradients(model, x, eps)


@pytest.mark.parametrize(("init", "h"), [("glorot", 1e-6), ("normal", 1e-4)])
def test_vae_gradients_other_initializers(init, h):
    """With N(0, 0.01^2) weights the encoder's gradients are ~1e-4 against a loss of ~9, so
    the rounding error of the difference, ~1e-16 * 9 / h, dominates at h = 1e-6 (the
    measured error falls as 1/h: 7e-6, 7e-7, 8e-8 at h = 1e-6, 1e-5, 1e-4). The model is
    nearly linear in these weights, so h = 1e-4 costs no truncation error."""
    model = make_vae("gaussian_sigma_learned", hidden=(4,), init=init, activation="tanh")
    x, eps = kink_free_batch(model, L=2)
    assert_gradients(model, x, eps, h=h)


@pytest.mark.parametrize("beta", [0.0, 0.5, 3.0])
@pytest.mark.parametrize("estimator", ["A", "B"])
def test_vae_gradients_with_beta(beta, estimator):
    model = make_vae("gaussian_fixed", hidden=(4,), activation="tanh", estimator=estimator,
                     beta=beta)
    x, eps = kink_free_batch(model, L=2)
    assert_gradients(model, x, eps)
    res = model.loss(x, eps)
    assert float(res.loss) == pytest.approx(float(res.recon) + beta * float(res.kl), rel=1e-14)


@pytest.mark.parametrize("case", ["gaussian_fixed", "gaussian_sigma_learned", "gaussian_per_pixel"])
@pytest.mark.parametrize("estimator", ["A", "B"])
def test_vae_gradients_with_a_sigmoid_mean(case, estimator):
    model = make_vae(case, hidden=(4,), activation="relu", estimator=estimator,
                     mean_activation="sigmoid")
    x, eps = kink_free_batch(model, L=2)
    assert_gradients(model, x, eps)
    mean = model.decode(model.encode(x)[0]).mean
    assert np.all((mean > 0) & (mean < 1))


def kl_per_dim(model, x):
    mu, logvar = (sv.to_numpy(a) for a in model.encode(x))
    return (0.5 * (np.exp(logvar) + mu**2 - 1 - logvar)).mean(0)


@pytest.mark.parametrize("case", ["bernoulli", "gaussian_sigma_learned"])
def test_vae_gradients_with_free_bits(case):
    """Free bits between the batch KLs of the two latent dimensions: one dimension is
    clamped (no KL gradient), the other is not. The threshold sits halfway between them,
    far from the kink of max(KL_j, lambda)."""
    probe = make_vae(case, hidden=(4,), activation="tanh", d=2)
    x, eps = kink_free_batch(probe, n=4, L=2)
    kl_d = kl_per_dim(probe, x)
    lam = float(kl_d.mean())
    assert abs(kl_d[0] - kl_d[1]) > 1e-3
    model = make_vae(case, hidden=(4,), activation="tanh", d=2, free_bits=lam, beta=1.5)
    assert_gradients(model, x, eps)
    res = model.loss(x, eps)
    assert float(res.kl) == pytest.approx(kl_d.sum(), rel=1e-12)  # the true KL is reported
    penalty = np.maximum(kl_d, lam).sum()
    assert float(res.loss) == pytest.approx(float(res.recon) + 1.5 * penalty, rel=1e-13)


def test_free_bits_limits():
    """Free bits above every dimension's KL leave only the reconstruction gradient (as
    beta = 0); below every dimension they change nothing."""
    ref = make_vae("gaussian_fixed", hidden=(4,), activation="tanh")
    x, eps = kink_free_batch(ref, n=4, L=2)
    kl_d = kl_per_dim(ref, x)
    grads = {}
    for name, kw in {"none": {}, "low": dict(free_bits=0.5 * kl_d.min()),
                     "high": dict(free_bits=2 * kl_d.max()), "beta0": dict(beta=0.0)}.items():
        model = make_vae("gaussian_fixed", hidden=(4,), activation="tanh", **kw)
        model.loss(x, eps)
        model.backward()
        grads[name] = model.grads.flat.copy()
    np.testing.assert_array_equal(grads["low"], grads["none"])
    np.testing.assert_array_equal(grads["high"], grads["beta0"])
    assert not np.array_equal(grads["none"], grads["beta0"])


def test_vae_gradients_with_two_dimensional_eps():
    """eps of shape (n, d) is one sample per point, the same as (1, n, d)."""
    model = make_vae("bernoulli", hidden=(4,), activation="tanh")
    x, eps = kink_free_batch(model, L=1)
    eps2 = model.xp.reshape(eps, (3, 2))
    assert float(model.loss(x, eps2).loss) == float(model.loss(x, eps).loss)
    assert_gradients(model, x, eps2)


def test_vae_gradients_directional():
    """A model too large for element-wise checks: one random direction per parameter."""
    model = make_vae("bernoulli", D=30, hidden=(40, 20), d=4, activation="relu")
    x, eps = kink_free_batch(model, n=8, L=2)
    report = assert_gradients(model, x, eps, method="directional")
    assert report.method == "directional"
    auto = assert_gradients(model, x, eps, method="auto", max_elementwise=100)
    assert auto.passed(GRAD_TOL)


def test_vae_gradients_on_backends(backend, device):
    """The same check on every backend (the strict stand-in on a non-default device)."""
    for case, est in [("bernoulli", "A"), ("gaussian_sigma_learned", "B"),
                      ("gaussian_per_pixel", "A")]:
        model = make_vae(case, hidden=(4,), activation="relu", estimator=est)
        model.to(backend, device=device)
        x, eps = kink_free_batch(model, L=2)
        assert_gradients(model, x, eps)


@pytest.mark.parametrize("case", list(LIKELIHOODS))
@pytest.mark.parametrize(("activation", "hidden"), [("relu", ()), ("relu", (5, 3)),
                                                    ("tanh", (4,))])
def test_ae_gradients(case, activation, hidden):
    model = sv.AE(5, hidden, 2, activation=activation, dtype="float64", seed=1,
                  **LIKELIHOODS[case])
    x, _ = kink_free_batch(model, n=4)
    assert_gradients(model, x)


def test_gradient_check_detects_a_kink_crossing():
    """Why the data are chosen: a pre-activation at 0 makes the finite difference of a ReLU
    net disagree with the (sub)gradient, by far more than the tolerance."""
    model = make_vae("gaussian_fixed", hidden=(4,), activation="relu")
    x, eps = kink_free_batch(model, L=1)
    first = model.encoder.body.layers[0]
    model.loss(x, eps)
    a = sv.to_numpy(first.cache[0] @ first.W + first.b)
    first.b[0] -= a[0, 0]  # puts example 0, unit 0 exactly on the kink
    model.loss(x, eps)
    assert pre_activations(model).min() < 1e-12
    report = check_model(model, x, eps)
    assert report.errors["enc.0.b"] > 1e-3


# ---- loss values ----------------------------------------------------------------------
ACT = {"relu": lambda a: np.maximum(a, 0), "tanh": np.tanh}


def reference_loss(model, x, eps):
    """The negative ELBO computed in plain NumPy/SciPy from the parameter arrays."""
    P = {k: sv.to_numpy(v) for k, v in model.params.items()}
    f = ACT[model.activation]
    k = len(model.hidden_dims)
    h = x
    for i in range(k):
        h = f(h @ P[f"enc.{i}.W"] + P[f"enc.{i}.b"])
    mu, logvar = h @ P["enc.mu.W"] + P["enc.mu.b"], h @ P["enc.logvar.W"] + P["enc.logvar.b"]
    sigma = np.exp(logvar / 2)
    z = mu + sigma * eps
    h = z
    for i in range(k):
        h = f(h @ P[f"dec.{i}.W"] + P[f"dec.{i}.b"])
    out = h @ P["dec.out.W"] + P["dec.out.b"]
    D = model.input_dim
    if model.likelihood != "bernoulli" and model.mean_activation == "sigmoid":
        out = np.concatenate([special.expit(out[..., :D]), out[..., D:]], axis=-1)
    if model.likelihood == "bernoulli":
        log_px = stats.bernoulli.logpmf(x, special.expit(out)) if np.all(np.isin(x, (0, 1))) \
            else x * np.log(special.expit(out)) + (1 - x) * np.log(special.expit(-out))
    elif model.likelihood == "gaussian":
        s = np.exp(P["dec.logvar"][0] / 2) if model.sigma_dec == "learned" else model.sigma_dec
        log_px = stats.norm.logpdf(x, out, s)
    else:
        log_px = stats.norm.logpdf(x, out[..., :D], np.exp(out[..., D:] / 2))
    recon = -log_px.sum(-1).mean()
    if model.estimator == "B":
        kl_d = np.mean(-np.log(sigma) + (sigma**2 + mu**2 - 1) / 2, axis=0)
        kl, penalty = kl_d.sum(), np.maximum(kl_d, model.free_bits).sum()
    else:
        kl = np.mean(stats.norm.logpdf(z, mu, sigma).sum(-1) - stats.norm.logpdf(z).sum(-1))
        penalty = kl
    return recon + model.beta * penalty, recon, kl


@pytest.mark.parametrize(("case", "estimator", "extra"), [
    (case, est, extra) for case in LIKELIHOODS
    for est, extra in (("A", {}), ("B", {}), ("B", dict(free_bits=0.3)),
                       ("A", dict(mean_activation="sigmoid")))
    if not (case == "bernoulli" and "mean_activation" in extra)])  # logits have no mean
def test_loss_matches_an_independent_computation(case, estimator, extra):
    model = make_vae(case, estimator=estimator, activation="tanh", beta=0.7, seed=3, **extra)
    rng = np.random.default_rng(4)
    x, eps = draw_x(model.likelihood, 4, 5, rng), rng.standard_normal((3, 4, 2))
    res = model.loss(model.asarray(x), model.asarray(eps))
    loss, recon, kl = reference_loss(model, x, eps)
    assert float(res.loss) == pytest.approx(loss, rel=1e-12)
    assert float(res.recon) == pytest.approx(recon, rel=1e-12)
    assert float(res.kl) == pytest.approx(kl, rel=1e-12, abs=1e-14)
    assert res.z.shape == (3, 4, 2) and res.mu.shape == (4, 2) and res.logvar.shape == (4, 2)


def test_estimators_share_the_reconstruction_term():
    """With the same eps, A and B differ only in how they estimate the KL."""
    a, b = (make_vae("bernoulli", estimator=e, seed=5) for e in "AB")
    np.testing.assert_array_equal(a.params.flat, b.params.flat)
    x, eps = kink_free_batch(a, n=4, L=3)
    ra, rb = a.loss(x, eps), b.loss(x, eps)
    assert float(ra.recon) == float(rb.recon)
    assert float(ra.kl) != float(rb.kl)


def test_estimator_a_kl_is_unbiased_for_the_analytic_kl():
    """E[KL_A] = KL_B: 200000 samples of log q - log p average to the closed form within
    4 standard errors (the SE from the per-sample values, recomputed with SciPy)."""
    L = 200_000
    a, b = (make_vae("gaussian_fixed", hidden=(4,), activation="tanh", estimator=e, seed=6)
            for e in "AB")
    x = a.asarray(np.random.default_rng(7).standard_normal((2, 5)))
    kl_b = float(b.loss(x).kl)
    ra = a.loss(x, n_samples=L)
    z, mu, sigma = sv.to_numpy(ra.z), sv.to_numpy(ra.mu), np.exp(sv.to_numpy(ra.logvar) / 2)
    per_sample = (stats.norm.logpdf(z, mu, sigma) - stats.norm.logpdf(z)).sum(-1).mean(-1)
    assert float(ra.kl) == pytest.approx(per_sample.mean(), rel=1e-10)
    se = per_sample.std(ddof=1) / math.sqrt(L)
    assert abs(float(ra.kl) - kl_b) < 4 * se
    assert 4 * se < 0.05 * kl_b  # a meaningful check, not a vacuous one


def test_model_samples_z_with_the_posterior_moments():
    """res.z from model.loss(x, n_samples=L) has mean res.mu and variance exp(res.logvar)
    (200000 draws; logvar set far from 0 so exp(logvar) as the std would be caught)."""
    model = make_vae("bernoulli", D=4, hidden=(4,), d=3, seed=8)
    model.params["enc.logvar.b"][...] = [-2.0, 0.7, 1.6]
    model.params["enc.mu.b"][...] = [1.0, -2.0, 0.0]
    x = model.asarray(np.random.default_rng(9).uniform(size=(2, 4)))
    res = model.loss(x, n_samples=200_000)
    z, mu, logvar = (sv.to_numpy(a) for a in (res.z, res.mu, res.logvar))
    assert z.shape == (200_000, 2, 3)
    assert np.all(np.abs(logvar) > 0.3)
    L = z.shape[0]
    var = np.exp(logvar)
    assert np.all(np.abs(z.mean(0) - mu) < 5 * np.sqrt(var / L))
    se_var = var * math.sqrt(2 / (L - 1))
    assert np.all(np.abs(z.var(0, ddof=1) - var) < 5 * se_var)
    assert np.all(np.abs(z.var(0, ddof=1) - np.exp(2 * logvar)) > 50 * se_var)


def test_default_noise_comes_from_the_model_generator():
    """Same seed: the same noise; n_samples from the constructor is the default L."""
    m1, m2 = (make_vae("bernoulli", n_samples=4, seed=10) for _ in range(2))
    x = m1.asarray(np.random.default_rng(11).uniform(size=(3, 5)))
    r1, r2 = m1.loss(x), m2.loss(x)
    assert r1.z.shape == (4, 3, 2)
    np.testing.assert_array_equal(r1.z, r2.z)
    assert not np.array_equal(m1.loss(x).z, r1.z)  # the stream moves on
    assert m1.loss(x, n_samples=2).z.shape == (2, 3, 2)


# ---- the rest of the public surface -------------------------------------------------------
@pytest.mark.parametrize("case", list(LIKELIHOODS))
def test_encode_decode_sample_reconstruct(case):
    model = make_vae(case, seed=12)
    x = model.asarray(draw_x(model.likelihood, 6, 5, np.random.default_rng(13)))
    mu, logvar = model.encode(x)
    assert mu.shape == logvar.shape == (6, 2)
    out = model.decode(mu)
    samples, recon = model.sample(7), model.reconstruct(x)
    assert samples.shape == (7, 5) and recon.shape == (6, 5)
    assert out.mean.shape == (6, 5)
    if case == "bernoulli":
        assert out.logits.shape == (6, 5) and out.logvar is None
        assert np.all((samples > 0) & (samples < 1))
        np.testing.assert_allclose(recon, special.expit(out.logits), rtol=1e-14)
        np.testing.assert_array_equal(out.mean, recon)  # both sigmoid(logits)
    else:
        assert out.logits is None
        assert out.logvar.shape == ((6, 5) if case == "gaussian_per_pixel" else (1,))
        np.testing.assert_array_equal(recon, out.mean)
        if case != "gaussian_per_pixel":
            assert float(out.logvar[0]) == pytest.approx(0.3 if "learned" in case
                                                         else math.log(0.5**2), rel=1e-15)
    z = model.asarray(np.zeros((3, 2)))
    np.testing.assert_array_equal(model.sample(3, z=z), model.sample(3, z=z))


def test_config_rebuilds_the_same_model():
    model = make_vae("gaussian_fixed", estimator="A", beta=2.0, seed=14)
    clone = sv.VAE(**model.config())
    assert clone.config() == model.config()
    np.testing.assert_array_equal(clone.params.flat, model.params.flat)


def test_parameters_are_views_of_one_buffer():
    model = make_vae("gaussian_sigma_learned", seed=15)
    assert sum(p.size for p in model.params.values()) == model.n_params()
    model.params.flat[...] = 0.25
    assert all(np.all(p == 0.25) for p in model.params.values())
    model.params["enc.mu.b"][...] = -1.0
    assert np.sum(model.params.flat == -1.0) == 2


# ---- bad input ------------------------------------------------------------------------
@pytest.fixture
def bern():
    return sv.VAE(4, (3,), 2, seed=0)  # float32, Bernoulli


def test_bad_x_shape_and_dtype(bern):
    good = np.full((2, 4), 0.5, dtype=np.float32)
    with pytest.raises(ValueError, match=r"x must have shape \(n, 4\), got \(2, 5\)"):
        bern.loss(np.zeros((2, 5), dtype=np.float32))
    with pytest.raises(ValueError, match=r"x must have shape \(n, 4\), got \(4,\)"):
        bern.loss(good[0])
    with pytest.raises(ValueError, match="x must hold at least one example"):
        bern.loss(good[:0])
    with pytest.raises(TypeError, match=r"x must be a floating array.*uint8"):
        bern.loss(np.zeros((2, 4), dtype=np.uint8))
    with pytest.raises(TypeError, match=r"x must be a floating array.*int64"):
        bern.loss(np.zeros((2, 4), dtype=np.int64))
    with pytest.raises(TypeError, match="x has dtype float64 but the model computes in float32"):
        bern.loss(good.astype(np.float64))
    with pytest.raises(TypeError, match="x must be an array"):
        bern.loss([[0.5] * 4] * 2)
    assert np.isfinite(float(bern.loss(good).loss))


def test_bad_x_values(bern):
    for bad in (np.nan, np.inf, -np.inf):
        x = np.full((2, 4), 0.5, dtype=np.float32)
        x[1, 2] = bad
        with pytest.raises(ValueError, match="x contains NaN or inf"):
            bern.loss(x)
    for bad in (-0.1, 1.5):
        x = np.full((2, 4), 0.5, dtype=np.float32)
        x[0, 0] = bad
        with pytest.raises(ValueError, match=r"x must lie in \[0, 1\]"):
            bern.loss(x)
    gauss = sv.VAE(4, (3,), 2, likelihood="gaussian", seed=0)
    assert np.isfinite(float(gauss.loss(np.full((2, 4), 7.0, dtype=np.float32)).loss))
    x = np.full((2, 4), np.nan, dtype=np.float32)
    with pytest.raises(ValueError, match="x contains NaN"):
        gauss.loss(x)
    with pytest.raises(ValueError, match="x contains NaN"):
        gauss.encode(x)


def test_bad_eps_and_n_samples(bern):
    x = np.full((3, 4), 0.5, dtype=np.float32)
    with pytest.raises(ValueError, match=r"eps must have shape \(n, 3, 2\), got \(1, 3, 3\)"):
        bern.loss(x, eps=np.zeros((1, 3, 3), dtype=np.float32))
    with pytest.raises(ValueError, match=r"eps must have shape \(3, 2\), got \(2, 2\)"):
        bern.loss(x, eps=np.zeros((2, 2), dtype=np.float32))
    with pytest.raises(ValueError, match="eps must have shape"):
        bern.loss(x, eps=np.zeros(6, dtype=np.float32))
    with pytest.raises(TypeError, match="eps has dtype float64"):
        bern.loss(x, eps=np.zeros((1, 3, 2)))
    with pytest.raises(ValueError, match="eps contains NaN"):
        bern.loss(x, eps=np.full((1, 3, 2), np.nan, dtype=np.float32))
    with pytest.raises(ValueError, match="either eps or n_samples"):
        bern.loss(x, eps=np.zeros((1, 3, 2), dtype=np.float32), n_samples=1)
    with pytest.raises(ValueError, match="n_samples must be an integer >= 1, got 0"):
        bern.loss(x, n_samples=0)
    with pytest.raises(TypeError, match="n_samples must be an integer"):
        bern.loss(x, n_samples=1.5)
    with pytest.raises(ValueError, match=r"z must have shape \(n, 2\)"):
        bern.decode(np.zeros((3, 3), dtype=np.float32))


VAE_ONLY_ARGUMENTS = [
    (dict(estimator="C"), ValueError, "estimator must be one of"),
    (dict(free_bits=-0.5), ValueError, "free_bits must be a number >= 0"),
    (dict(free_bits=0.5, estimator="A"), ValueError, "free_bits needs estimator='B'"),
    (dict(likelihood="gaussian", mean_activation="tanh"), ValueError,
     "mean_activation must be one of"),
    (dict(mean_activation="sigmoid"), ValueError, "mean_activation applies to the Gaussian"),
    (dict(n_samples=0), ValueError, "n_samples must be an integer >= 1"),
    (dict(beta=-1.0), ValueError, "beta must be a number >= 0"),
    (dict(beta=float("nan")), ValueError, "beta must be a number >= 0"),
]
SHARED_ARGUMENTS = [
    (dict(backend="jax"), ValueError, "backend must be one of"),
    (dict(likelihood="poisson"), ValueError, "likelihood must be one of"),
    (dict(activation="gelu"), ValueError, "activation must be one of"),
    (dict(init="he"), ValueError, "init must be one of"),
    (dict(dtype="float16"), ValueError, "dtype must be one of"),
    (dict(latent_dim=0), ValueError, "latent_dim must be an integer >= 1, got 0"),
    (dict(latent_dim=2.5), TypeError, "latent_dim must be an integer"),
    (dict(input_dim=0), ValueError, "input_dim must be an integer >= 1"),
    (dict(hidden_dims=(3, 0)), ValueError, "hidden_dims entries must be an integer >= 1"),
    (dict(seed=-1), ValueError, "seed must be an integer >= 0"),
    (dict(likelihood="gaussian", sigma_dec=0.0), ValueError, "sigma_dec must be a positive"),
    (dict(likelihood="gaussian", sigma_dec=-0.1), ValueError, "sigma_dec must be a positive"),
    (dict(likelihood="gaussian", sigma_dec=float("inf")), ValueError, "sigma_dec must be"),
    (dict(likelihood="gaussian", sigma_dec="learnt"), ValueError, "sigma_dec must be"),
    (dict(likelihood="gaussian", sigma_dec=True), ValueError, "sigma_dec must be"),
]


@pytest.mark.parametrize(("cls", "kwargs", "error", "match"),
                         [(sv.VAE, *case) for case in SHARED_ARGUMENTS + VAE_ONLY_ARGUMENTS]
                         + [(sv.AE, *case) for case in SHARED_ARGUMENTS])
def test_bad_constructor_arguments(cls, kwargs, error, match):
    args = dict(input_dim=4, hidden_dims=(3,), latent_dim=2) | kwargs
    with pytest.raises(error, match=match):
        cls(**args)


@pytest.mark.parametrize("cls", [sv.VAE, sv.AE])
def test_backward_before_loss(cls):
    model = cls(4, (3,), 2, seed=0)
    with pytest.raises(RuntimeError, match=r"call model.loss\(x\) before model.backward\(\)"):
        model.backward()
    model.loss(np.full((2, 4), 0.5, dtype=np.float32))
    model.backward()
    with pytest.raises(RuntimeError, match=r"before model\.backward"):  # the cache is consumed
        model.backward()
    model.loss(np.full((2, 4), 0.5, dtype=np.float32))
    model.encode(np.full((2, 4), 0.5, dtype=np.float32))  # a forward that is not a loss
    with pytest.raises(RuntimeError, match=r"before model\.backward"):
        model.backward()


def test_gradcheck_of_a_float32_model_is_refused(bern):
    x = np.full((2, 4), 0.5, dtype=np.float32)
    with pytest.raises(TypeError, match="must be float64 for a gradient check"):
        check_model(bern, x, np.zeros((1, 2, 2), dtype=np.float32))


def test_first_layers_skip_the_input_gradient():
    """Nothing upstream of x needs dL/dx, so the first linear layers do not compute it."""
    deep, shallow = make_vae("bernoulli", hidden=(3,)), make_vae("bernoulli", hidden=())
    assert deep.encoder.body.layers[0].need_dx is False
    assert shallow.encoder.mu_head.need_dx is False and shallow.encoder.logvar_head.need_dx is False
    assert all(layer.need_dx for layer in deep.decoder.body.layers if isinstance(layer, Linear))


# ---- cross-check against PyTorch autograd ------------------------------------------------
def torch_vae_loss(torch, model, P, x, eps):
    """The negative ELBO of ``model`` in PyTorch, from parameter tensors ``P``."""
    F = torch.nn.functional
    act = {"relu": F.relu, "leaky_relu": F.leaky_relu, "tanh": torch.tanh,
           "sigmoid": torch.sigmoid,
           "softplus": lambda a: torch.logaddexp(a, torch.zeros_like(a))}[model.activation]
    Normal = torch.distributions.Normal
    k = len(model.hidden_dims)
    h = x
    for i in range(k):
        h = act(h @ P[f"enc.{i}.W"] + P[f"enc.{i}.b"])
    if isinstance(model, sv.AE):
        z = h @ P[f"enc.{k}.W"] + P[f"enc.{k}.b"]
    else:
        mu, logvar = h @ P["enc.mu.W"] + P["enc.mu.b"], h @ P["enc.logvar.W"] + P["enc.logvar.b"]
        std = torch.exp(0.5 * logvar)
        z = mu + std * eps
    h = z
    for i in range(k):
        h = act(h @ P[f"dec.{i}.W"] + P[f"dec.{i}.b"])
    out = h @ P["dec.out.W"] + P["dec.out.b"]
    D = model.input_dim
    if model.likelihood != "bernoulli" and model.decoder.sigmoid_mean:
        out = torch.cat([torch.sigmoid(out[..., :D]), out[..., D:]], dim=-1)
    if model.likelihood == "bernoulli":
        log_px = -F.binary_cross_entropy_with_logits(out, x.expand_as(out), reduction="none")
    elif model.likelihood == "gaussian":
        sigma_dec = model.decoder.sigma_dec
        logvar_dec = P["dec.logvar"] if sigma_dec == "learned" else torch.tensor(
            math.log(sigma_dec**2), dtype=torch.float64)
        log_px = Normal(out, torch.exp(0.5 * logvar_dec)).log_prob(x)
    else:
        log_px = Normal(out[..., :D], torch.exp(0.5 * out[..., D:])).log_prob(x)
    recon = -log_px.sum(-1).mean()
    if isinstance(model, sv.AE):
        return recon
    q, p = Normal(mu, std), Normal(torch.zeros_like(mu), torch.ones_like(mu))
    if model.estimator == "B":
        kl_d = torch.distributions.kl_divergence(q, p).mean(0)
        kl = torch.clamp(kl_d, min=model.free_bits).sum()
    else:
        kl = (q.log_prob(z).sum(-1) - p.log_prob(z).sum(-1)).mean()
    return recon + model.beta * kl


def assert_matches_torch(model, x, eps=None):
    torch = pytest.importorskip("torch")
    P = {k: torch.tensor(sv.to_numpy(v), requires_grad=True) for k, v in model.params.items()}
    t_loss = torch_vae_loss(torch, model, P, torch.tensor(sv.to_numpy(x)),
                            None if eps is None else torch.tensor(sv.to_numpy(eps)))
    t_loss.backward()
    res = model.loss(x) if eps is None else model.loss(x, eps)
    model.backward()
    # the same float64 arithmetic in another order: measured 3e-16 (loss), 1.3e-15 (grads)
    assert float(res.loss) == pytest.approx(t_loss.item(), rel=1e-13)
    for name, g in model.grads.items():
        err = sv.gradcheck.rel_error(g, P[name].grad.numpy())
        assert err <= 1e-12, (name, err)


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "tanh", "sigmoid", "softplus"])
@pytest.mark.parametrize("estimator", ["A", "B"])
@pytest.mark.parametrize("case", list(LIKELIHOODS))
def test_vae_matches_torch_autograd(case, estimator, activation):
    model = make_vae(case, estimator=estimator, activation=activation, beta=0.7, seed=16)
    rng = np.random.default_rng(17)
    x = model.asarray(draw_x(model.likelihood, 4, 5, rng))
    eps = model.asarray(rng.standard_normal((3, 4, 2)))
    assert_matches_torch(model, x, eps)


@pytest.mark.parametrize("case", ["gaussian_fixed", "gaussian_sigma_learned", "gaussian_per_pixel"])
def test_vae_with_sigmoid_mean_and_free_bits_matches_torch_autograd(case):
    probe = make_vae(case, activation="tanh", seed=20)
    rng = np.random.default_rng(21)
    x = probe.asarray(draw_x(probe.likelihood, 4, 5, rng))
    eps = probe.asarray(rng.standard_normal((2, 4, 2)))
    lam = float(kl_per_dim(probe, x).mean())  # one dimension clamped, one not
    model = make_vae(case, activation="tanh", seed=20, mean_activation="sigmoid", free_bits=lam)
    assert_matches_torch(model, x, eps)


@pytest.mark.parametrize("case", list(LIKELIHOODS))
def test_ae_matches_torch_autograd(case):
    model = sv.AE(5, (5, 3), 2, activation="tanh", dtype="float64", seed=18, **LIKELIHOODS[case])
    x = model.asarray(draw_x(model.likelihood, 4, 5, np.random.default_rng(19)))
    assert_matches_torch(model, x)


def test_the_former_name_of_the_per_pixel_gaussian_still_works_with_a_warning():
    with pytest.warns(DeprecationWarning, match="'gaussian_learned' is now called "
                                                "'gaussian_per_pixel'"):
        model = sv.VAE(8, (4,), 2, likelihood="gaussian_learned")
    assert model.likelihood == "gaussian_per_pixel"
    with pytest.raises(ValueError, match="likelihood must be one of"):
        sv.VAE(8, (4,), 2, likelihood="poisson")
