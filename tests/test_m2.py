"""The M2 model: its hand-written gradients against finite differences, and its losses
against a direct evaluation.

Every parameter is checked element by element in float64 (small networks, softplus: no
kinks), for the labelled ELBO alone, the unlabelled bound alone, the classification term
alone and the whole objective, with both likelihoods. A backward pass with one term
dropped must fail the same check.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from scratchvae.gradcheck import check_model
from scratchvae.m2 import M2

D, C, D_Z = 6, 4, 3
N_L, N_U = 3, 2
TOL = 1e-6


def _model(likelihood="bernoulli", hidden=(5,), seed=0, backend="numpy", device=None):
    return M2(D, n_classes=C, hidden_dims=hidden, latent_dim=D_Z, likelihood=likelihood,
              alpha=0.7, dtype="float64", seed=seed, backend=backend, device=device)


def _data(likelihood="bernoulli", seed=1):
    rng = np.random.default_rng(seed)
    if likelihood == "bernoulli":
        x, x_u = rng.uniform(size=(N_L, D)), rng.uniform(size=(N_U, D))
    else:
        x, x_u = rng.normal(size=(N_L, D)), rng.normal(size=(N_U, D))
    y = np.array([0, 3, 1])
    eps = rng.standard_normal((N_L + C * N_U, D_Z))
    return x, y, x_u, eps


# which term each check isolates: label_fraction f, alpha, and whether x_u is given
TERMS = {
    "labelled ELBO": dict(label_fraction=1.0, alpha=0.0, unlabelled=False),
    "classification": dict(label_fraction=0.0, alpha=1.0, unlabelled=False),
    "unlabelled bound": dict(label_fraction=0.0, alpha=0.0, unlabelled=True),
    "whole objective": dict(label_fraction=0.3, alpha=0.7, unlabelled=True),
}


def _check(model, term, likelihood, **extra):
    x, y, x_u, eps = _data(likelihood)
    t = TERMS[term]
    kwargs = dict(y=y, label_fraction=t["label_fraction"], alpha=t["alpha"])
    if t["unlabelled"]:
        kwargs["x_u"] = model.asarray(x_u)
    else:
        eps = eps[:N_L]
    return check_model(model, model.asarray(x), eps=model.asarray(eps),
                       method="elementwise", **kwargs, **extra)


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian_per_pixel"])
@pytest.mark.parametrize("term", list(TERMS))
def test_every_gradient_matches_finite_differences(term, likelihood):
    model = _model(likelihood, hidden=(5, 4))
    report = _check(model, term, likelihood)
    assert len(report.errors) == len(model.params)
    assert report.passed(TOL), f"{term}, {likelihood}:\n{report}"


@pytest.mark.parametrize("term, touched, untouched", [
    ("labelled ELBO", ("px.out.W", "qz.x.W", "qz.y.W"), ("qy.0.W", "qy.2.b")),
    ("classification", ("qy.0.W", "qy.2.b"), ("px.out.W", "qz.x.W", "qz.mu.W")),
    ("unlabelled bound", ("qy.0.W", "px.out.W", "qz.x.W", "px.y.W"), ()),
])
def test_each_term_reaches_the_parameters_it_should(term, touched, untouched):
    """The labelled ELBO does not train q(y|x); the classification term trains nothing
    else; the unlabelled bound trains everything, q(y|x) included."""
    model = _model(hidden=(5, 4))
    x, y, x_u, eps = _data()
    t = TERMS[term]
    model.loss(model.asarray(x), y, x_u=model.asarray(x_u) if t["unlabelled"] else None,
               eps=model.asarray(eps if t["unlabelled"] else eps[:N_L]),
               label_fraction=t["label_fraction"], alpha=t["alpha"])
    model.backward()
    for name in touched:
        assert np.abs(model.grads[name]).max() > 1e-8, name
    for name in untouched:
        assert np.abs(model.grads[name]).max() == 0.0, name


class _DroppedEntropy(M2):
    """A wrong backward: the entropy's share of dpi (the log pi + 1) left out."""

    def backward(self):
        c = self._cache
        c.log_pi = c.log_pi * 0.0 - 1.0
        super().backward()


class _DroppedKL(M2):
    """A wrong backward: the KL's gradient never reaches mu and logvar."""

    def backward(self):
        c = self._cache
        mu, var = c.c_kl
        c.c_kl = (mu * 0.0, var * 0.0 + 1.0)
        super().backward()


@pytest.mark.parametrize("cls, term, culprit", [
    (_DroppedEntropy, "unlabelled bound", "qy."),
    (_DroppedKL, "labelled ELBO", "qz."),
])
def test_a_backward_with_a_dropped_term_fails_the_check(cls, term, culprit):
    model = cls(D, n_classes=C, hidden_dims=(5,), latent_dim=D_Z, alpha=0.7,
                dtype="float64", seed=0)
    report = _check(model, term, "bernoulli")
    assert not report.passed(1e-3), report
    assert all(name.startswith(culprit) for name in report.failures(1e-3)), report


def test_losses_match_a_direct_evaluation():
    """J computed term by term with plain NumPy loops over images and classes."""
    model = _model()
    x, y, x_u, eps = _data()
    f, alpha = 0.25, 0.7
    res = model.loss(model.asarray(x), y, x_u=model.asarray(x_u), eps=model.asarray(eps),
                     label_fraction=f, alpha=alpha)
    p = {k: np.asarray(v) for k, v in model.params.items()}

    def softplus(a):
        return np.log1p(np.exp(a))

    def elbo(xi, c, e):
        onehot = np.eye(C)[c]
        h = softplus(xi @ p["qz.x.W"] + p["qz.x.b"] + onehot @ p["qz.y.W"])
        mu, logvar = h @ p["qz.mu.W"] + p["qz.mu.b"], h @ p["qz.logvar.W"] + p["qz.logvar.b"]
        z = mu + np.exp(0.5 * logvar) * e
        g = softplus(z @ p["px.z.W"] + p["px.z.b"] + onehot @ p["px.y.W"])
        q = 1 / (1 + np.exp(-(g @ p["px.out.W"] + p["px.out.b"])))
        log_px = np.sum(xi * np.log(q) + (1 - xi) * np.log(1 - q))
        kl = 0.5 * np.sum(np.exp(logvar) + mu ** 2 - 1 - logvar)
        return log_px - kl + np.log(1 / C)

    def q_y(xi):
        a = softplus(xi @ p["qy.0.W"] + p["qy.0.b"]) @ p["qy.1.W"] + p["qy.1.b"]
        return np.exp(a) / np.exp(a).sum()

    labelled = -np.mean([elbo(x[i], y[i], eps[i]) for i in range(N_L)])
    ce = -np.mean([math.log(q_y(x[i])[y[i]]) for i in range(N_L)])
    unlabelled = []
    for i in range(N_U):
        pi = q_y(x_u[i])
        bound = sum(pi[c] * elbo(x_u[i], c, eps[N_L + c * N_U + i]) for c in range(C))
        entropy = -np.sum(pi * np.log(pi))
        unlabelled.append(-(bound + entropy))
    unlabelled = np.mean(unlabelled)
    assert float(res.labelled) == pytest.approx(labelled, rel=1e-10)
    assert float(res.cross_entropy) == pytest.approx(ce, rel=1e-10)
    assert float(res.unlabelled) == pytest.approx(unlabelled, rel=1e-10)
    assert float(res.loss) == pytest.approx(f * labelled + (1 - f) * unlabelled + alpha * ce,
                                            rel=1e-10)


def test_unlabelled_bound_lies_below_the_best_labelled_bound_plus_log_c():
    """-U(x) = sum_c pi_c (-L(x, c)) - H >= min_c (-L(x, c)) - log C for any pi: the bound
    is a pi-weighted mixture, and the entropy is at most log C."""
    model = _model()
    x, y, x_u, eps = _data()
    res = model.loss(model.asarray(x), y, x_u=model.asarray(x_u), eps=model.asarray(eps),
                     label_fraction=0.0, alpha=0.0)
    per_class = []
    for c in range(C):
        r = model.loss(model.asarray(x_u), np.full(N_U, c),
                       eps=model.asarray(eps[N_L + c * N_U:N_L + (c + 1) * N_U]))
        per_class.append(float(r.labelled))
    assert float(res.unlabelled) >= min(per_class) - math.log(C) - 1e-12


def test_classes_and_shapes_are_checked():
    model = _model()
    x, y, x_u, eps = _data()
    with pytest.raises(ValueError, match="y must lie"):
        model.loss(model.asarray(x), np.array([0, 1, C]))
    with pytest.raises(ValueError, match="integer classes"):
        model.loss(model.asarray(x), np.array([0.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match="eps must have shape"):
        model.loss(model.asarray(x), y, x_u=model.asarray(x_u), eps=model.asarray(eps[:4]))
    with pytest.raises(ValueError, match="hidden_dims"):
        M2(D, hidden_dims=())


def test_runs_on_every_backend(backend, move, put):
    """The same loss and gradients on NumPy and on the strict stand-in (and CuPy)."""
    ref = _model()
    x, y, x_u, eps = _data()
    r0 = ref.loss(ref.asarray(x), y, x_u=ref.asarray(x_u), eps=ref.asarray(eps))
    ref.backward()
    model = move(_model())
    r1 = model.loss(put(x), y, x_u=put(x_u), eps=put(eps))
    model.backward()
    assert float(r1.loss) == pytest.approx(float(r0.loss), rel=1e-10)
    from scratchvae.backend import to_numpy
    assert np.allclose(to_numpy(model.grads.flat), ref.grads.flat, rtol=1e-9, atol=1e-12)
    assert to_numpy(model.predict(put(x))).shape == (N_L,)


def test_encode_decode_and_classify_are_the_loss_networks():
    """encode gives the loss's q(z|x,y) at the labelled rows; decode at z = mu gives the
    means whose logits the loss scored; classify's rows are distributions."""
    model = _model()
    x, y, x_u, _ = _data()
    res = model.loss(model.asarray(x), y, eps=model.asarray(np.zeros((N_L, D_Z))))
    mu, logvar = model.encode(model.asarray(x), y)
    assert np.allclose(mu, res.mu) and np.allclose(logvar, res.logvar)
    mean = np.asarray(model.decode(mu, y))
    log_px = np.sum(x * np.log(mean) + (1 - x) * np.log(1 - mean), axis=1)
    kl = 0.5 * np.sum(np.exp(logvar) + mu ** 2 - 1 - logvar, axis=1)
    assert float(res.labelled) == pytest.approx(-np.mean(log_px - kl - math.log(C)), rel=1e-10)
    p = np.asarray(model.classify(model.asarray(x_u)))
    assert p.shape == (N_U, C) and np.allclose(p.sum(axis=1), 1) and (p > 0).all()
    assert np.array_equal(np.asarray(model.predict(model.asarray(x_u))), p.argmax(axis=1))
