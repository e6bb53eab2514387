"""The linear-Gaussian VAE recovers probabilistic PCA.

Data come from x = W z + m + sigma e with z ~ N(0, I_q), e ~ N(0, I_D). A VAE with
affine encoder and decoder (``hidden_dims=()``) and one learned noise variance s^2 is
the pPCA model with an amortized diagonal-Gaussian posterior. Its ELBO is bounded by the
log-likelihood of its own parameters, which is bounded by the maximum log-likelihood of
pPCA (Tipping & Bishop 1999), known in closed form from the eigendecomposition of the
sample covariance S:

    sigma^2_ML = mean of the D - q smallest eigenvalues,
    W_ML = U_q (Lambda_q - sigma^2_ML I)^(1/2),   C = W_ML W_ML^T + sigma^2_ML I,
    max log-lik per example = -1/2 [D log 2 pi + log |C| + tr(C^-1 S)].

With a diagonal posterior the bound is tight at the optimum (the decoder can rotate its
columns so that the exact posterior is diagonal), so training should close the gap.
Because the decoder is linear, the ELBO also has a closed form, with no Monte Carlo
error: E_q ||x - z W_d - b||^2 = ||x - mu W_d - b||^2 + sum_j sigma_j^2 ||W_d[j]||^2.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from scipy.linalg import subspace_angles

import scratchvae as sv

D, Q, N = 6, 2, 3000
LOG_2PI = math.log(2 * math.pi)


def ppca_data(seed=0):
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((D, Q)) * 1.5
    m = rng.standard_normal(D)
    return rng.standard_normal((N, Q)) @ W.T + m + 0.5 * rng.standard_normal((N, D))


def ppca_max_loglik(X, q):
    """Tipping & Bishop's closed form: (max log-lik per example, sigma^2_ML, top-q eigvecs)."""
    n, d = X.shape
    Xc = X - X.mean(0)
    S = Xc.T @ Xc / n
    lam, U = np.linalg.eigh(S)
    lam, U = lam[::-1], U[:, ::-1]
    sigma2 = lam[q:].mean()
    W = U[:, :q] * np.sqrt(lam[:q] - sigma2)
    C = W @ W.T + sigma2 * np.eye(d)
    loglik = -0.5 * (d * LOG_2PI + np.linalg.slogdet(C)[1] + np.trace(np.linalg.solve(C, S)))
    return loglik, sigma2, U[:, :q], C


def exact_elbo(model, X):
    """The ELBO per example of a linear-Gaussian VAE, in closed form (float64, host)."""
    P = {k: sv.to_numpy(v) for k, v in model.params.items()}
    Wd, b, s = P["dec.out.W"], P["dec.out.b"], float(P["dec.logvar"][0])
    mu = X @ P["enc.mu.W"] + P["enc.mu.b"]
    logvar = X @ P["enc.logvar.W"] + P["enc.logvar.b"]
    resid = X - mu @ Wd - b
    sq = (resid**2).sum(1) + np.exp(logvar) @ (Wd**2).sum(1)
    expected_loglik = -0.5 * (X.shape[1] * (LOG_2PI + s) + sq / math.exp(s))
    kl = 0.5 * (np.exp(logvar) + mu**2 - 1 - logvar).sum(1)
    return float((expected_loglik - kl).mean())


def model_loglik(model, X):
    """log p_theta(x) per example: x ~ N(b, W_d^T W_d + s^2 I) under the VAE's decoder."""
    P = {k: sv.to_numpy(v) for k, v in model.params.items()}
    Wd, s2 = P["dec.out.W"], math.exp(float(P["dec.logvar"][0]))
    C = Wd.T @ Wd + s2 * np.eye(X.shape[1])
    return float(stats.multivariate_normal(P["dec.out.b"], C).logpdf(X).mean())


@pytest.fixture(scope="module")
def trained():
    """A linear VAE trained full-batch with Adam (3000 steps, lr 0.05 decayed to 5e-4)."""
    X = ppca_data()
    model = sv.VAE(D, (), Q, likelihood="gaussian", sigma_dec="learned", dtype="float64",
                   seed=1)
    assert set(model.params) == {"enc.mu.W", "enc.mu.b", "enc.logvar.W", "enc.logvar.b",
                                 "dec.out.W", "dec.out.b", "dec.logvar"}
    x = model.asarray(X)
    steps, lr0 = 3000, 0.05
    opt = sv.optim.Adam(model.params, lr=lr0)
    first = float(model.loss(x).loss)
    for i in range(steps):
        opt.lr = lr0 * 0.01 ** (i / steps)
        model.loss(x, check_values=False)
        model.backward()
        opt.step(model.grads)
    assert float(model.loss(x).loss) < first
    return model, X


def test_elbo_reaches_the_ppca_maximum_likelihood(trained):
    model, X = trained
    ml, _, _, _ = ppca_max_loglik(X, Q)
    elbo, loglik = exact_elbo(model, X), model_loglik(model, X)
    # ELBO <= log p_theta(x) <= max_theta log p_theta(x), up to float64 rounding
    assert elbo <= loglik + 1e-10
    assert loglik <= ml + 1e-10
    assert ml - elbo < 0.01, f"gap {ml - elbo:.4f} nats per example"  # measured: 3.2e-4


def test_monte_carlo_elbo_agrees_with_the_closed_form_and_stays_below_the_bound(trained):
    """The model's own estimate (L = 20 samples per point) equals the closed-form ELBO within
    4 standard errors and never exceeds the pPCA maximum by more than 3 of them."""
    model, X = trained
    ml, _, _, _ = ppca_max_loglik(X, Q)
    L = 20
    res = model.loss(model.asarray(X), n_samples=L)
    elbo_mc = -float(res.loss)
    # per-sample log p(x | z_l), recomputed with SciPy, for the standard error
    P = {k: sv.to_numpy(v) for k, v in model.params.items()}
    mean = sv.to_numpy(res.z) @ P["dec.out.W"] + P["dec.out.b"]
    log_px = stats.norm.logpdf(X, mean, math.exp(0.5 * float(P["dec.logvar"][0]))).sum(-1)
    assert -log_px.mean() == pytest.approx(float(res.recon), rel=1e-12)
    se = math.sqrt(np.sum(log_px.var(0, ddof=1)) / L) / X.shape[0]
    assert 0 < se < 0.005
    assert abs(elbo_mc - exact_elbo(model, X)) < 4 * se
    assert elbo_mc <= ml + 3 * se


def test_recovers_the_principal_subspace_and_noise_variance(trained):
    model, X = trained
    _, sigma2_ml, U_q, C_ml = ppca_max_loglik(X, Q)
    Wd = sv.to_numpy(model.params["dec.out.W"])  # (q, D): rows span the principal subspace
    cosines = np.cos(subspace_angles(Wd.T, U_q))
    assert np.all(cosines > 0.999), cosines
    s2 = math.exp(float(model.params["dec.logvar"][0]))
    assert s2 == pytest.approx(sigma2_ml, rel=0.02)
    # the marginal covariance of the model is the ML covariance, the mean the sample mean
    C = Wd.T @ Wd + s2 * np.eye(D)
    np.testing.assert_allclose(C, C_ml, atol=0.02 * np.abs(C_ml).max())
    np.testing.assert_allclose(sv.to_numpy(model.params["dec.out.b"]), X.mean(0), atol=0.02)


def test_posterior_variance_does_not_depend_on_x(trained):
    """In pPCA the exact posterior covariance is the same for every x; the encoder learns
    an almost constant log-variance."""
    model, X = trained
    _, logvar = model.encode(model.asarray(X))
    assert np.all(sv.to_numpy(logvar).std(0) < 0.05)
