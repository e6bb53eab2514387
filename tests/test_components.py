"""Likelihoods, the KL term and the reparameterized sampler.

Each forward/backward pair is checked three ways: its gradient against finite
differences (float64, every backend), its value against an independent closed form
(SciPy or a formula written out here), and, for the stochastic pieces, its statistics
against the distribution it claims to sample or average over.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

import scratchvae as sv
from scratchvae.gradcheck import check_layer
from scratchvae.kl import kl_std_normal_backward, kl_std_normal_forward
from scratchvae.likelihoods import (
    bernoulli_logpmf_backward,
    bernoulli_logpmf_forward,
    gaussian_logpdf_backward,
    gaussian_logpdf_forward,
    std_normal_logpdf_backward,
    std_normal_logpdf_forward,
    sum_log_one_plus,
)
from scratchvae.reparam import reparameterize_backward, reparameterize_forward

GRAD_TOL = 1e-7


def host(a):
    return sv.to_numpy(a)


# ---- Bernoulli ---------------------------------------------------------------------
def bernoulli_reference(x, logits):
    """log p = x l - log(1 + e^l), with NumPy's logaddexp for the log-partition."""
    return np.sum(x * logits - np.logaddexp(0.0, logits), axis=-1)


@pytest.mark.parametrize("D", [1, 2, 3, 7, 16, 48, 560, 784, 1000])
def test_sum_log_one_plus_is_the_sum_of_log1p(D, put):
    """The pairwise-product form equals sum(log1p(e)) for every length (even, odd, powers
    of two), with e at the ends of [0, 1] included."""
    rng = np.random.default_rng(D)
    e = rng.random((3, D))
    e[0, :: 3], e[1, :: 2] = 0.0, 1.0
    np.testing.assert_allclose(host(sum_log_one_plus(put(e))), np.sum(np.log1p(e), axis=-1),
                               rtol=1e-14, atol=1e-15)


def test_sum_log_one_plus_in_float32_is_as_accurate_as_the_plain_sum():
    """In float32 its error (against float64) is of the plain float32 sum's size."""
    rng = np.random.default_rng(0)
    e = np.exp(-np.abs(4 * rng.standard_normal((2000, 784))))
    exact = np.sum(np.log1p(e), axis=-1)
    e32 = e.astype(np.float32)
    plain = np.abs(np.sum(np.log1p(e32), axis=-1) - exact).max()
    ours = np.abs(sum_log_one_plus(e32) - exact).max()
    assert sum_log_one_plus(e32).dtype == np.float32
    assert ours < 3 * plain + 1e-5, (ours, plain)
    assert ours < 1e-3
    assert np.abs(sum_log_one_plus(e32, levels=0) - exact).max() < 1e-3


def test_bernoulli_gradient_wrt_logits(put):
    rng = np.random.default_rng(0)
    x = put(rng.uniform(size=(4, 6)))
    logits = rng.standard_normal((4, 6)) * 3
    logits[0, :3] = [50.0, -50.0, 30.0]  # saturated units keep a finite, exact gradient
    errors = check_layer(lambda logits: bernoulli_logpmf_forward(x, logits),
                         bernoulli_logpmf_backward, {"logits": put(logits)})
    assert errors["logits"] <= GRAD_TOL, errors


def test_bernoulli_gradient_with_broadcast_logits(put):
    """logits (L, n, D) against targets (n, D), as in the VAE with L samples."""
    rng = np.random.default_rng(1)
    x = put((rng.uniform(size=(3, 5)) > 0.5).astype(float))
    errors = check_layer(lambda logits: bernoulli_logpmf_forward(x, logits),
                         bernoulli_logpmf_backward,
                         {"logits": put(rng.standard_normal((2, 3, 5)))})
    assert errors["logits"] <= GRAD_TOL, errors


def test_bernoulli_matches_scipy_and_the_naive_formula(put):
    rng = np.random.default_rng(2)
    logits = rng.standard_normal((5, 7)) * 4
    x_bin = (rng.uniform(size=(5, 7)) > 0.5).astype(float)
    logp, _ = bernoulli_logpmf_forward(put(x_bin), put(logits))
    p = 1 / (1 + np.exp(-logits))
    scipy_ref = stats.bernoulli.logpmf(x_bin, p).sum(-1)
    np.testing.assert_allclose(host(logp), scipy_ref, rtol=1e-12)
    # grey values in [0, 1]: the cross-entropy x log p + (1 - x) log(1 - p)
    x_grey = rng.uniform(size=(5, 7))
    logp, _ = bernoulli_logpmf_forward(put(x_grey), put(logits))
    naive = np.sum(x_grey * np.log(p) + (1 - x_grey) * np.log1p(-p), axis=-1)
    np.testing.assert_allclose(host(logp), naive, rtol=1e-12)


def test_bernoulli_is_stable_for_huge_logits(put):
    """|logits| = 50 and 1000: finite values and gradients, exact where a naive form is not."""
    logits = np.array([[50.0, -50.0, 1000.0, -1000.0, 50.0, -50.0, 1000.0, -1000.0]])
    x = np.array([[1.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 1.0]])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        logp, cache = bernoulli_logpmf_forward(put(x), put(logits))
        dlogits = host(bernoulli_logpmf_backward(put(np.ones(1)), cache))
    assert np.all(np.isfinite(host(logp))) and np.all(np.isfinite(dlogits))
    np.testing.assert_allclose(host(logp), bernoulli_reference(x, logits), rtol=1e-14)
    # confident and right costs ~e^-50 nats each; confident and wrong costs |l| nats
    assert host(logp)[0] == pytest.approx(-(50 + 50 + 1000 + 1000) - 2 * math.log1p(math.exp(-50)),
                                          rel=1e-15)
    np.testing.assert_allclose(dlogits, x - 1 / (1 + np.exp(-np.clip(logits, -700, 700))),
                               rtol=1e-15, atol=1e-300)
    # the naive log(sigmoid) form, where it is finite, agrees
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):  # 0 * -inf
        p = 1 / (1 + np.exp(-logits))
        naive = x * np.log(p) + (1 - x) * np.log1p(-p)
    finite = np.isfinite(naive)
    assert finite.sum() >= 2
    terms = x * logits - np.logaddexp(0.0, logits)
    np.testing.assert_allclose(terms[finite], naive[finite], rtol=1e-12)


# ---- Gaussian ----------------------------------------------------------------------
def test_gaussian_gradients(put):
    rng = np.random.default_rng(3)
    inputs = {"x": put(rng.standard_normal((4, 5))), "mean": put(rng.standard_normal((4, 5))),
              "logvar": put(rng.uniform(-2, 2, size=(4, 5)))}
    errors = check_layer(gaussian_logpdf_forward, gaussian_logpdf_backward, inputs)
    assert max(errors.values()) <= GRAD_TOL, errors


def test_gaussian_gradient_of_a_shared_log_variance(xp, put):
    """One logvar of shape (1,) shared by all pixels: its gradient is the sum over them."""
    rng = np.random.default_rng(4)
    x, mean = put(rng.standard_normal((3, 4))), put(rng.standard_normal((2, 3, 4)))

    def backward(dlogp, cache):
        return xp.reshape(xp.sum(gaussian_logpdf_backward(dlogp, cache)[2]), (1,))

    errors = check_layer(lambda logvar: gaussian_logpdf_forward(x, mean, logvar), backward,
                         {"logvar": put(np.array([0.7]))})
    assert errors["logvar"] <= GRAD_TOL, errors


def test_gaussian_matches_scipy(put):
    rng = np.random.default_rng(5)
    x, m = rng.standard_normal((6, 3)), rng.standard_normal((6, 3))
    v = rng.uniform(-3, 3, size=(6, 3))
    logp, _ = gaussian_logpdf_forward(put(x), put(m), put(v))
    ref = stats.norm.logpdf(x, loc=m, scale=np.exp(0.5 * v)).sum(-1)
    np.testing.assert_allclose(host(logp), ref, rtol=1e-13)
    for n in range(6):  # the same as one multivariate normal with diagonal covariance
        mvn = stats.multivariate_normal(mean=m[n], cov=np.diag(np.exp(v[n])))
        assert host(logp)[n] == pytest.approx(mvn.logpdf(x[n]), rel=1e-12)
    # a shared variance sigma^2: the constant is (D/2) log(2 pi sigma^2)
    sigma = 0.3
    logp, _ = gaussian_logpdf_forward(put(x), put(m), put(np.array([math.log(sigma**2)])))
    ref = -0.5 * np.sum((x - m) ** 2, -1) / sigma**2 - 1.5 * math.log(2 * math.pi * sigma**2)
    np.testing.assert_allclose(host(logp), ref, rtol=1e-13)


def test_std_normal_gradient_and_value(put):
    z = np.random.default_rng(6).standard_normal((2, 3, 4))
    errors = check_layer(std_normal_logpdf_forward, std_normal_logpdf_backward, {"z": put(z)})
    assert errors["z"] <= GRAD_TOL, errors
    logp, _ = std_normal_logpdf_forward(put(z))
    np.testing.assert_allclose(host(logp), stats.norm.logpdf(z).sum(-1), rtol=1e-14)


# ---- KL ----------------------------------------------------------------------------
def kl_general(m0, S0, m1, S1):
    """KL(N(m0, S0) || N(m1, S1)) for full covariance matrices."""
    d = m0.shape[0]
    S1_inv = np.linalg.inv(S1)
    diff = m1 - m0
    logdet0, logdet1 = np.linalg.slogdet(S0)[1], np.linalg.slogdet(S1)[1]
    return 0.5 * (np.trace(S1_inv @ S0) + diff @ S1_inv @ diff - d + logdet1 - logdet0)


def test_kl_gradients(put):
    rng = np.random.default_rng(7)
    inputs = {"mu": put(rng.standard_normal((5, 3))),
              "logvar": put(rng.uniform(-3, 2, size=(5, 3)))}
    errors = check_layer(kl_std_normal_forward, kl_std_normal_backward, inputs)
    assert max(errors.values()) <= GRAD_TOL, errors


def test_kl_per_dimension(put):
    """The d terms of the sum (used by free bits): gradients and their sum."""
    rng = np.random.default_rng(12)
    mu, logvar = rng.standard_normal((5, 3)), rng.uniform(-3, 2, size=(5, 3))
    errors = check_layer(lambda mu, logvar: kl_std_normal_forward(mu, logvar, per_dim=True),
                         kl_std_normal_backward, {"mu": put(mu), "logvar": put(logvar)})
    assert max(errors.values()) <= GRAD_TOL, errors
    terms = host(kl_std_normal_forward(put(mu), put(logvar), per_dim=True)[0])
    assert terms.shape == (5, 3) and np.all(terms >= 0)
    np.testing.assert_allclose(terms.sum(-1), host(kl_std_normal_forward(put(mu), put(logvar))[0]),
                               rtol=1e-14)
    np.testing.assert_allclose(terms, 0.5 * (np.exp(logvar) + mu**2 - 1 - logvar), rtol=1e-13)


def test_kl_matches_closed_forms(put):
    rng = np.random.default_rng(8)
    mu, logvar = rng.standard_normal((5, 3)) * 2, rng.uniform(-4, 3, size=(5, 3))
    kl = host(kl_std_normal_forward(put(mu), put(logvar))[0])
    sigma = np.exp(0.5 * logvar)
    direct = np.sum(np.log(1 / sigma) + (sigma**2 + mu**2) / 2 - 0.5, axis=-1)
    np.testing.assert_allclose(kl, direct, rtol=1e-13)
    for n in range(5):
        ref = kl_general(mu[n], np.diag(sigma[n] ** 2), np.zeros(3), np.eye(3))
        assert kl[n] == pytest.approx(ref, rel=1e-12)
    # zero exactly at the prior, positive elsewhere
    assert host(kl_std_normal_forward(put(np.zeros((1, 3))), put(np.zeros((1, 3))))[0])[0] == 0
    assert np.all(kl > 0)


def test_kl_equals_monte_carlo_expectation_of_log_ratio():
    """KL = E_q[log q(z) - log p(z)], estimated from 400000 draws, within 4 standard errors."""
    mu, logvar = np.array([[0.8, -1.5, 0.1]]), np.array([[-1.2, 0.9, 0.0]])
    kl = float(kl_std_normal_forward(mu, logvar)[0][0])
    rng = np.random.default_rng(9)
    z = mu + np.exp(0.5 * logvar) * rng.standard_normal((400_000, 3))
    log_q = stats.norm.logpdf(z, mu, np.exp(0.5 * logvar)).sum(-1)
    log_p = stats.norm.logpdf(z).sum(-1)
    ratio = log_q - log_p
    se = ratio.std(ddof=1) / math.sqrt(ratio.size)
    assert abs(ratio.mean() - kl) < 4 * se
    assert se < 0.01 * kl  # the check has power: 4 SE is well under the KL itself


# ---- reparameterization --------------------------------------------------------------
@pytest.mark.parametrize("L", [1, 3])
def test_reparameterize_gradients(L, put):
    rng = np.random.default_rng(10 + L)
    eps = put(rng.standard_normal((L, 4, 3)))
    inputs = {"mu": put(rng.standard_normal((4, 3))),
              "logvar": put(rng.uniform(-2, 2, size=(4, 3)))}
    errors = check_layer(lambda mu, logvar: reparameterize_forward(mu, logvar, eps),
                         reparameterize_backward, inputs)
    assert max(errors.values()) <= GRAD_TOL, errors


def test_reparameterize_uses_the_standard_deviation(put):
    mu, logvar = np.array([[1.0, -2.0]]), np.array([[math.log(4.0), math.log(0.25)]])
    eps = np.array([[[1.0, 1.0]], [[-2.0, 0.5]]])
    z, _ = reparameterize_forward(put(mu), put(logvar), put(eps))
    # sigma = sqrt(var) = (2, 0.5)
    np.testing.assert_allclose(host(z), [[[3.0, -1.5]], [[-3.0, -1.75]]], rtol=1e-15)


def test_reparameterized_samples_have_the_posterior_moments(backend, xp, device, put):
    """200000 draws per coordinate: mean mu and variance exp(logvar) within 5 standard
    errors. Sampling with exp(logvar) as the standard deviation would miss the variance by
    hundreds of standard errors here (logvar far from 0)."""
    mu = np.array([[0.5, -1.0, 2.0], [0.0, 3.0, -0.5]])
    logvar = np.array([[-2.0, 1.5, 0.0], [0.8, -1.0, 2.5]])
    gen = sv.Generator(11, backend=backend, device=device)
    eps = gen.normal((200_000, 2, 3), xp.float64)
    z, _ = reparameterize_forward(put(mu), put(logvar), eps)
    assert_moments(host(z), mu, logvar)


def assert_moments(z, mu, logvar, n_se=5.0):
    """Sample mean and variance of z (L, n, d) against N(mu, exp(logvar)), in standard errors.

    SE of the mean: sigma / sqrt(L); SE of the sample variance: sigma^2 sqrt(2 / (L - 1)).
    """
    L = z.shape[0]
    var = np.exp(logvar)
    se_mean = np.sqrt(var / L)
    se_var = var * math.sqrt(2 / (L - 1))
    assert np.all(np.abs(z.mean(0) - mu) < n_se * se_mean), (z.mean(0), mu)
    assert np.all(np.abs(z.var(0, ddof=1) - var) < n_se * se_var), (z.var(0, ddof=1), var)
    # the wrong scale exp(logvar) as sigma gives variance exp(2 logvar): far outside
    wrong = np.exp(2 * logvar)
    assert np.all(np.abs(z.var(0, ddof=1) - wrong)[logvar != 0] > 50 * se_var[logvar != 0])


def test_bernoulli_logits_broadcast_against_larger_targets():
    """logits of shape (n, 1, D) score targets of shape (n, k, D), as the docstring allows."""
    from scratchvae.likelihoods import bernoulli_logpmf_backward, bernoulli_logpmf_forward

    rng = np.random.default_rng(0)
    logits, x = rng.standard_normal((5, 1, 7)), rng.random((5, 3, 7))
    logp, cache = bernoulli_logpmf_forward(x, logits)
    naive = np.sum(x * np.log(1 / (1 + np.exp(-logits)))
                   + (1 - x) * np.log(1 - 1 / (1 + np.exp(-logits))), axis=-1)
    np.testing.assert_allclose(logp, naive, rtol=1e-12)
    dlogits = bernoulli_logpmf_backward(np.ones((5, 3)), cache)
    np.testing.assert_allclose(dlogits, x - 1 / (1 + np.exp(-logits)), rtol=1e-12)
