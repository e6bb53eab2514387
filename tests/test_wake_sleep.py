"""Wake-sleep: both phases' gradients against finite differences, every parameter.

In float64 with tanh units (no kinks), small layers so that every entry is perturbed.
The wake phase's gradient covers the decoder (θ), the sleep phase's the encoder (φ); each
leaves the other half of the gradient buffer alone. A deliberately wrong gradient (the
sleep phase's log-variance gradient with its sign flipped) must fail the same check.
"""

from __future__ import annotations

import numpy as np
import pytest

from scratchvae import VAE
from scratchvae.gradcheck import numerical_gradient, rel_error
from scratchvae.optim import Adagrad
from scratchvae.wake_sleep import WakeSleep, train_epoch

LIKELIHOODS = [("bernoulli", "identity"), ("gaussian_per_pixel", "sigmoid"),
               ("gaussian", "identity")]


def _model(likelihood, mean_activation, seed=0):
    sigma = "learned" if likelihood == "gaussian" else 1.0
    vae = VAE(input_dim=7, hidden_dims=(5,), latent_dim=3, likelihood=likelihood,
              activation="tanh", init="pytorch", sigma_dec=sigma,
              mean_activation=mean_activation, dtype="float64", seed=seed)
    return WakeSleep(vae)


def _data(likelihood, n=6, seed=1):
    rng = np.random.default_rng(seed)
    return rng.uniform(0.05, 0.95, size=(n, 7)) if likelihood != "gaussian" \
        else rng.normal(size=(n, 7))


def _is_decoder(name):
    return name.startswith("dec.")


@pytest.mark.parametrize("likelihood, mean_activation", LIKELIHOODS)
def test_wake_gradient_matches_finite_differences_for_every_decoder_parameter(
        likelihood, mean_activation):
    ws = _model(likelihood, mean_activation)
    x = _data(likelihood)
    eps = np.random.default_rng(2).standard_normal((6, 3))
    ws.model.grads.flat[...] = np.nan            # untouched entries stay NaN
    ws.wake_loss(x, eps)
    ws.wake_backward()
    names = [k for k in ws.model.params if _is_decoder(k)]
    assert names and (likelihood != "gaussian" or "dec.logvar" in names)
    for name in names:
        numeric = numerical_gradient(lambda: ws.wake_loss(x, eps), ws.model.params[name])
        err = rel_error(ws.model.grads[name], numeric)
        assert err < 1e-7, (name, err)
    for name, g in ws.model.grads.items():      # no gradient flows into q
        assert np.all(np.isnan(g)) != _is_decoder(name), name


@pytest.mark.parametrize("likelihood, mean_activation", LIKELIHOODS)
def test_sleep_gradient_matches_finite_differences_for_every_encoder_parameter(
        likelihood, mean_activation):
    ws = _model(likelihood, mean_activation)
    z, x = ws.dream(6)
    ws.model.grads.flat[...] = np.nan
    ws.sleep_loss(z, x)
    ws.sleep_backward()
    names = [k for k in ws.model.params if not _is_decoder(k)]
    assert {"enc.mu.W", "enc.logvar.W"} <= set(names)
    for name in names:
        numeric = numerical_gradient(lambda: ws.sleep_loss(z, x), ws.model.params[name])
        err = rel_error(ws.model.grads[name], numeric)
        assert err < 1e-7, (name, err)
    for name, g in ws.model.grads.items():      # the decoder is not touched by sleep
        assert np.all(np.isnan(g)) == _is_decoder(name), name


def test_a_wrong_sleep_gradient_is_caught():
    """The log-variance head's gradient with the wrong sign: the same check fails."""
    ws = _model("bernoulli", "identity")
    z, x = ws.dream(6)
    ws.sleep_loss(z, x)
    n, c_q = ws._take("sleep")
    from scratchvae.likelihoods import gaussian_logpdf_backward

    _, dmu, dlogvar = gaussian_logpdf_backward(np.full((n,), -1.0 / n), c_q)
    ws.model.encoder.backward(dmu, -dlogvar)     # the bug
    W = ws.model.params["enc.logvar.W"]
    numeric = numerical_gradient(lambda: ws.sleep_loss(z, x), W)
    assert rel_error(ws.model.grads["enc.logvar.W"], numeric) > 0.1


def test_wake_gradient_is_the_elbo_gradient_of_the_decoder():
    """For the same noise, AEVB and wake-sleep move theta alike (they differ in phi)."""
    ws = _model("bernoulli", "identity")
    x = _data("bernoulli")
    eps = np.random.default_rng(3).standard_normal((6, 3))
    ws.model.loss(x, eps)
    ws.model.backward()
    aevb = {k: g.copy() for k, g in ws.model.grads.items() if _is_decoder(k)}
    ws.model.grads.flat[...] = 0.0
    ws.wake_loss(x, eps)
    ws.wake_backward()
    for name, g in aevb.items():
        assert np.abs(g).max() > 0 and np.allclose(ws.model.grads[name], g, rtol=1e-12,
                                                   atol=1e-15), name


def test_backward_needs_its_own_forward_pass():
    ws = _model("bernoulli", "identity")
    ws.wake_loss(_data("bernoulli"))
    ws.dream(4)                                  # overwrites the decoder's caches
    with pytest.raises(RuntimeError, match="wake_loss"):
        ws.wake_backward()
    ws.sleep_loss(*ws.dream(4))
    with pytest.raises(RuntimeError, match="wake_loss"):
        ws.wake_backward()


def test_dreams_follow_the_decoder_distribution():
    """Gaussian dreams have standard deviation exp(logvar / 2), not exp(logvar); the
    Bernoulli dreams' mean is sigmoid(logits)."""
    ws = _model("gaussian_per_pixel", "sigmoid")
    ws.model.params["dec.out.W"][:, 7:] = 0.0            # log-variances log 0.3^2:
    ws.model.params["dec.out.b"][7:] = np.log(0.3 ** 2)   # standard deviation 0.3
    z = np.zeros((20000, 3))
    _, x = ws.dream(20000, z=z)
    assert np.allclose(x.std(axis=0), 0.3, rtol=0.03)
    assert np.allclose(x.mean(axis=0), ws.model.sample(1, z=z[:1])[0], atol=0.01)
    wb = _model("bernoulli", "identity")
    _, xb = wb.dream(20000, z=z)
    assert set(np.unique(xb)) <= {0.0, 1.0}
    assert np.allclose(xb.mean(axis=0), wb.model.sample(1, z=z[:1])[0], atol=0.015)


def test_an_epoch_raises_the_bound_on_a_small_problem():
    """Wake-sleep learns: the ELBO of the model it trains rises on data it fits."""
    from scratchvae.evaluate import elbo

    rng = np.random.default_rng(4)
    prototypes = rng.uniform(size=(3, 7)) > 0.5
    x = prototypes[rng.integers(0, 3, size=300)].astype(np.float64)
    ws = _model("bernoulli", "identity")
    opt = Adagrad(ws.model.params, lr=0.1)
    before = -elbo(ws.model, x)["loss"]
    for epoch in range(1, 31):
        losses = train_epoch(ws, opt, x, batch_size=30, epoch=epoch)
    after = -elbo(ws.model, x)["loss"]
    assert after > before + 1.0, (before, after)
    assert set(losses) == {"wake_loss", "sleep_loss"}


@pytest.mark.parametrize("likelihood, mean_activation", LIKELIHOODS[:2])
def test_an_epoch_gives_the_same_model_on_every_backend(likelihood, mean_activation,
                                                        backend, move):
    """The strict stand-in on its second device refuses any silent host <-> device copy;
    its draws are NumPy's, so the parameters must match NumPy's run (CuPy draws its own
    noise: only finite there; NumPy: the reference itself)."""
    from scratchvae.backend import to_numpy

    x_host = _data(likelihood, n=40)
    runs = {}
    for name in ("numpy", backend):
        ws = _model(likelihood, mean_activation)
        if name != "numpy":
            move(ws.model)
        opt = Adagrad(ws.model.params, lr=0.05, weight_decay=0.01)
        for epoch in (1, 2):
            losses = train_epoch(ws, opt, ws.model.asarray(x_host), batch_size=16, epoch=epoch)
        assert all(np.isfinite(v) for v in losses.values())
        runs[name] = to_numpy(ws.model.params.flat)
    if backend == "array_api_strict":
        assert np.allclose(runs[backend], runs["numpy"], rtol=1e-10, atol=1e-12)
