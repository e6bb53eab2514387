"""Tests of scratchvae.evaluate against a linear-Gaussian VAE whose log p(x) and ELBO
are known in closed form.

Generative model: z ~ N(0, I_q), x = W z + b + s e, e ~ N(0, I_D), so
p(x) = N(b, W W^T + s^2 I). With orthogonal columns of W the exact posterior is
diagonal, N(A^T (x - b), diag(v)) with v_j = 1 / (1 + |W_j|^2 / s^2) and
A = W diag(v) / s^2, so the affine diagonal-Gaussian encoder can represent it.
"""

import itertools
import math

import numpy as np
import pytest
from scipy.stats import multivariate_normal

import scratchvae as sv
from scratchvae import evaluate

D, Q, S2 = 5, 2, 0.3


def generative_model():
    """W (D, Q) with orthogonal columns, b (D,), and the exact posterior's A, v."""
    rng = np.random.default_rng(1)
    basis, _ = np.linalg.qr(rng.standard_normal((D, Q)))
    W = basis * np.array([2.0, 0.7])
    b = rng.standard_normal(D)
    v = 1 / (1 + np.sum(W * W, axis=0) / S2)
    A = W * v / S2
    return W, b, A, v


def data(n: int, seed: int = 2) -> np.ndarray:
    W, b, _, _ = generative_model()
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, Q))
    return z @ W.T + b + math.sqrt(S2) * rng.standard_normal((n, D))


def exact_log_px(x) -> np.ndarray:
    W, b, _, _ = generative_model()
    return np.atleast_1d(multivariate_normal(b, W @ W.T + S2 * np.eye(D)).logpdf(x))


def linear_vae(mu_scale=1.0, logvar_shift=0.0, seed=0, beta=1.0):
    """The linear-Gaussian VAE; the encoder is exact for ``mu_scale=1, logvar_shift=0``
    and has a shrunken mean and an inflated variance otherwise."""
    W, b, A, v = generative_model()
    model = sv.VAE(input_dim=D, hidden_dims=(), latent_dim=Q, likelihood="gaussian",
                   sigma_dec="learned", dtype="float64", seed=seed, beta=beta)
    values = {
        "enc.mu.W": mu_scale * A, "enc.mu.b": -mu_scale * (b @ A),
        "enc.logvar.W": np.zeros((D, Q)), "enc.logvar.b": np.log(v) + logvar_shift,
        "dec.out.W": W.T, "dec.out.b": b, "dec.logvar": np.array([math.log(S2)]),
    }
    assert set(values) == set(model.params)
    for name, value in values.items():
        model.params[name][...] = value
    return model


def exact_elbo(x, mu_scale, logvar_shift):
    """Per-example ELBO of :func:`linear_vae` in closed form: E_q[log p(x|z)] - KL."""
    W, b, A, v = generative_model()
    mu = mu_scale * (x - b) @ A
    var = v * math.exp(logvar_shift)
    r = x - mu @ W.T - b
    expected_sq = np.sum(r * r, axis=1) + np.sum(var * np.sum(W * W, axis=0))
    recon = 0.5 * D * math.log(2 * math.pi * S2) + expected_sq / (2 * S2)
    kl = 0.5 * np.sum(var + mu * mu - 1 - np.log(var), axis=1)
    return -recon - kl, recon, kl


# ---- log_likelihood -----------------------------------------------------------------

@pytest.mark.parametrize("k", [1, 7, 100])
def test_iw_with_exact_posterior_is_exact(move, k):
    # With q(z|x) = p(z|x) every weight p(x, z)/q(z|x) equals p(x): no Monte Carlo error.
    x = data(50)
    exact = exact_log_px(x)
    mean, stderr = evaluate.log_likelihood(move(linear_vae()), x, k=k,
                                           batch_size=16, k_batch=3)
    assert abs(mean - exact.mean()) < 1e-10
    assert abs(stderr - exact.std(ddof=1) / math.sqrt(50)) < 1e-10


def test_iw_approaches_log_px_from_below_as_k_grows():
    x = data(200)
    exact = exact_log_px(x).mean()
    elbo = exact_elbo(x, 0.8, 0.7)[0].mean()
    assert elbo < exact - 0.5  # the imperfect q leaves a clear gap
    means = [evaluate.log_likelihood(linear_vae(0.8, 0.7), x, k=k)[0]
             for k in (1, 10, 100, 1000, 5000)]
    assert all(a < b for a, b in itertools.pairwise(means))
    assert means[-1] > elbo
    # The bias of the K = 5000 estimate is below 1e-3 nats here, far inside the spread.
    _, stderr = evaluate.log_likelihood(linear_vae(0.8, 0.7), x, k=5000)
    assert abs(means[-1] - exact) < min(0.01, stderr)


def test_iw_with_k_1_is_an_unbiased_elbo_estimate():
    # One data point repeated: the spread over "examples" is pure sampling noise, so
    # the returned standard error is the Monte Carlo error of the mean.
    x = np.repeat(data(1), 4000, axis=0)
    mean, stderr = evaluate.log_likelihood(linear_vae(0.8, 0.7), x, k=1, batch_size=1000)
    assert abs(mean - exact_elbo(x[:1], 0.8, 0.7)[0][0]) < 4 * stderr


@pytest.mark.parametrize("k_batch", [1, 16, 50, 64])
def test_iw_chunks_over_k_give_the_same_estimate(backend, move, k_batch):
    # Chunks of shape (k_batch, n, d) drawn one after another continue the same
    # stream of standard normals as one (K, n, d) draw, so the noise is identical; the
    # strict backend draws the same stream as NumPy.
    if backend == "cupy":
        pytest.skip("CuPy's generator draws a stream of its own")
    x = data(30)
    whole = evaluate.log_likelihood(linear_vae(0.8, 0.7), x, k=50, batch_size=30,
                                    k_batch=50)
    chunked = evaluate.log_likelihood(move(linear_vae(0.8, 0.7)), x, k=50, batch_size=30,
                                      k_batch=k_batch)
    assert chunked == pytest.approx(whole, rel=1e-12, abs=1e-12)


def test_iw_is_stable_when_the_weights_underflow():
    # log w ~ -1e4: exp(log w) is 0 in float64, the log-sum-exp is not.
    x = data(10) + 150.0
    mean, _ = evaluate.log_likelihood(linear_vae(), x, k=10)
    assert mean == pytest.approx(exact_log_px(x).mean(), rel=1e-12)
    assert mean < -1e4


# ---- elbo ---------------------------------------------------------------------------

def test_elbo_over_batches_equals_one_batch(backend, move):
    # With one sample per example, batches of noise (1, B, d) drawn in turn continue
    # the stream of one (1, N, d) draw: batching changes nothing but the sum order.
    if backend == "cupy":
        pytest.skip("CuPy's generator draws a stream of its own")
    x = data(30)
    batched = evaluate.elbo(move(linear_vae(0.8, 0.7)), x, batch_size=7)
    one = linear_vae(0.8, 0.7)
    res = one.loss(one.asarray(x), n_samples=1)
    assert batched["recon"] == pytest.approx(float(res.recon), rel=1e-12)
    assert batched["kl"] == pytest.approx(float(res.kl), rel=1e-12)
    assert batched["loss"] == pytest.approx(float(res.loss), rel=1e-12)


def test_elbo_over_batches_with_tiny_posterior_variance():
    # sigma = exp(-25): every z_l equals mu(x) to 1e-11, so the estimate is deterministic
    # whatever noise each batch drew.
    x = data(30)
    results = [evaluate.elbo(linear_vae(0.8, -50.0, seed=seed), x, batch_size=bs,
                             n_samples=3)
               for seed, bs in ((0, 7), (1, 30), (2, 1000))]
    for res in results[1:]:
        assert res == pytest.approx(results[0], rel=1e-9)


def test_elbo_matches_the_closed_form():
    x = data(200)
    elbo, recon, kl = exact_elbo(x, 0.8, 0.7)
    res = evaluate.elbo(linear_vae(0.8, 0.7), x, batch_size=64, n_samples=2000)
    assert res["kl"] == pytest.approx(kl.mean(), rel=1e-12)  # analytic: exact
    # The Monte Carlo standard deviation of recon is about 0.003 nats here.
    assert res["recon"] == pytest.approx(recon.mean(), abs=0.02)
    assert res["loss"] == pytest.approx(-elbo.mean(), abs=0.02)


@pytest.mark.parametrize("weighting", [dict(beta=4.0), dict(free_bits=5.0)])
def test_elbo_reports_recon_plus_kl_whatever_the_kl_weighting(weighting):
    model = sv.VAE(input_dim=D, hidden_dims=(3,), latent_dim=Q, likelihood="gaussian",
                   dtype="float64", **weighting)
    res = evaluate.elbo(model, data(20))
    assert res["loss"] == pytest.approx(res["recon"] + res["kl"], rel=1e-12)
    assert all(isinstance(v, float) for v in res.values())


# ---- shared behaviour ---------------------------------------------------------------

@pytest.mark.parametrize("evaluate_fn", [evaluate.elbo, evaluate.log_likelihood,
                                         evaluate.active_units])
def test_a_stray_backward_after_evaluation_raises(evaluate_fn):
    model = linear_vae(0.8, 0.7)
    x = data(10)
    model.loss(model.asarray(x))
    evaluate_fn(model, x)
    with pytest.raises(RuntimeError, match=r"model\.loss"):
        model.backward()


@pytest.mark.parametrize("evaluate_fn", [evaluate.elbo, evaluate.log_likelihood,
                                         evaluate.active_units])
def test_bad_arguments_are_named(evaluate_fn):
    ae = sv.AE(input_dim=D, hidden_dims=(), latent_dim=Q, likelihood="gaussian")
    with pytest.raises(TypeError, match=r"model must be a scratchvae\.VAE"):
        evaluate_fn(ae, data(4))
    model = linear_vae()
    with pytest.raises(TypeError, match="host NumPy array"):
        evaluate_fn(model, data(4).tolist())
    with pytest.raises(TypeError, match="floating"):
        evaluate_fn(model, np.zeros((4, D), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"shape \(N, 5\)"):
        evaluate_fn(model, np.zeros((4, D + 1)))
    with pytest.raises(ValueError, match="batch_size"):
        evaluate_fn(model, data(4), batch_size=0)


def test_log_likelihood_checks_k():
    with pytest.raises(ValueError, match="k_batch"):
        evaluate.log_likelihood(linear_vae(), data(4), k_batch=0)
    with pytest.raises(TypeError, match="k must be"):
        evaluate.log_likelihood(linear_vae(), data(4), k=2.5)


def test_log_likelihood_of_one_example_has_no_stderr():
    mean, stderr = evaluate.log_likelihood(linear_vae(), data(1), k=3)
    assert mean == pytest.approx(exact_log_px(data(1))[0], rel=1e-12)
    assert math.isnan(stderr)


# ---- active units -------------------------------------------------------------------

def test_units_with_zero_encoder_weights_are_inactive(move):
    model = sv.VAE(input_dim=6, hidden_dims=(8,), latent_dim=4, activation="tanh",
                   dtype="float64", seed=3)
    W = model.params["enc.mu.W"]
    W[:, [1, 3]] = 0.0   # mu_1, mu_3 = their bias, whatever x is
    W[:, [0, 2]] *= 5.0  # make sure the others vary well above the threshold
    model = move(model)
    x = np.random.default_rng(0).uniform(size=(300, 6))
    count, variances = evaluate.active_units(model, x, batch_size=64)
    assert count == 2
    assert isinstance(variances, np.ndarray) and variances.shape == (4,)
    np.testing.assert_array_equal(np.flatnonzero(variances > 0.01), [0, 2])
    assert np.all(variances[[1, 3]] < 1e-25)  # zero up to the rounding of the mean
    mu = sv.to_numpy(model.encode(model.asarray(x))[0])
    np.testing.assert_allclose(variances, mu.var(axis=0), rtol=1e-12, atol=0)


def test_active_units_threshold():
    model = linear_vae()
    _, variances = evaluate.active_units(model, data(100))
    assert evaluate.active_units(model, data(100), threshold=variances.max())[0] == 0
    assert evaluate.active_units(model, data(100), threshold=0.0)[0] == 2
    with pytest.raises(ValueError, match="threshold"):
        evaluate.active_units(model, data(100), threshold=-1.0)


def test_latent_means_of_vae_and_ae():
    x = data(25)
    vae = linear_vae()
    np.testing.assert_allclose(evaluate.latent_means(vae, x, batch_size=4),
                               vae.encode(vae.asarray(x))[0], rtol=1e-12)
    ae = sv.AE(input_dim=D, hidden_dims=(3,), latent_dim=Q, likelihood="gaussian",
               dtype="float64")
    np.testing.assert_allclose(evaluate.latent_means(ae, x, batch_size=4),
                               ae.encode(ae.asarray(x)), rtol=1e-12)
