"""The gradient checker itself: it must pass correct gradients and catch wrong ones."""

from __future__ import annotations

import numpy as np
import pytest

import scratchvae as sv
from scratchvae import vae as vae_module
from scratchvae.activations import sigmoid_forward
from scratchvae.gradcheck import (
    GradcheckReport,
    check_layer,
    check_model,
    numerical_gradient,
    rel_error,
)
from scratchvae.layers import linear_backward, linear_forward


def test_rel_error():
    a = np.array([[3.0, -4.0]])
    assert rel_error(a, a) == 0.0
    assert rel_error(a, -a) == 1.0
    assert rel_error(np.zeros(3), np.zeros(3)) == 0.0
    assert rel_error(a, 2 * a) == pytest.approx(1 / 3, rel=1e-15)
    assert rel_error(1e-30 * a, 2e-30 * a) == pytest.approx(1 / 3, rel=1e-15)  # scale-free
    with pytest.raises(ValueError, match="same shape"):
        rel_error(np.zeros(3), np.zeros(4))


def test_numerical_gradient_of_a_known_function(xp, put):
    x = put(np.array([[0.5, -1.2, 2.0], [1.0, 0.3, -0.7]]))
    before = sv.to_numpy(x).copy()

    def f():
        return xp.sum(x**3) + xp.sum(xp.sin(x))

    g = numerical_gradient(f, x)
    assert isinstance(g, np.ndarray) and g.shape == (2, 3)
    assert rel_error(g, 3 * before**2 + np.cos(before)) < 1e-9
    np.testing.assert_array_equal(sv.to_numpy(x), before)  # every entry restored exactly


def test_float32_is_refused():
    with pytest.raises(TypeError, match="x must be float64 for a gradient check"):
        numerical_gradient(lambda: 0.0, np.zeros(3, dtype=np.float32))
    with pytest.raises(TypeError, match="W must be float64"):
        check_layer(linear_forward, linear_backward,
                    {"x": np.zeros((2, 3)), "W": np.zeros((3, 2), dtype=np.float32),
                     "b": np.zeros(2)})


def test_check_layer_passes_correct_and_catches_wrong_gradients():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 5))
    good = check_layer(sigmoid_forward, lambda dy, y: dy * y * (1 - y), {"x": x})
    wrong = check_layer(sigmoid_forward, lambda dy, y: dy * y * (1 + y), {"x": x})
    assert good["x"] < 1e-9
    assert wrong["x"] > 0.1

    def transposed_dW(dy, cache):  # a classic slip: dy^T x instead of x^T dy, reshaped
        dx, dW, db = linear_backward(dy, cache)
        return dx, (dy.T @ cache[0]).reshape(dW.shape), db

    inputs = {"x": rng.standard_normal((4, 3)), "W": rng.standard_normal((3, 3)),
              "b": rng.standard_normal(3)}
    errors = check_layer(linear_forward, transposed_dW, inputs)
    assert errors["x"] < 1e-9 and errors["b"] < 1e-9 and errors["W"] > 0.1

    def unreduced_db(dy, cache):  # forgot to sum db over the batch
        dx, dW, _ = linear_backward(dy, cache)
        return dx, dW, dy

    with pytest.raises(ValueError, match=r"gradient of b has shape \(4, 3\), expected \(3,\)"):
        check_layer(linear_forward, unreduced_db, inputs)


def small_model(**kw):
    model = sv.VAE(4, (3,), 2, activation="tanh", dtype="float64", seed=0, **kw)
    rng = np.random.default_rng(1)
    x = model.asarray(rng.uniform(size=(3, 4)))
    eps = model.asarray(rng.standard_normal((2, 3, 2)))
    return model, x, eps


@pytest.mark.parametrize("method", ["elementwise", "directional"])
def test_check_model_catches_a_wrong_reparameterization_gradient(method, monkeypatch):
    """Dropping the 1/2 of d z / d logvar = sigma eps / 2 is caught, and only in the
    parameters upstream of logvar."""
    model, x, eps = small_model()
    assert check_model(model, x, eps, method=method).passed(1e-6)

    def missing_half(dz, cache):
        sigma, e = cache
        return model.xp.sum(dz, axis=0), model.xp.sum(dz * e, axis=0) * sigma

    monkeypatch.setattr(vae_module, "reparameterize_backward", missing_half)
    report = check_model(model, x, eps, method=method)
    assert not report.passed(1e-6)
    assert report.errors["enc.logvar.b"] > 1e-3
    assert "enc.logvar.W" in report.failures(1e-6)
    assert report.errors["dec.out.W"] < 1e-6  # the decoder does not see the bug


def test_check_model_catches_sampling_with_the_variance_as_std(monkeypatch):
    """A forward pass that samples with sigma = exp(logvar) while the backward assumes
    exp(logvar / 2) disagrees with its own finite differences."""
    model, x, eps = small_model()

    def wrong_scale(mu, logvar, eps):
        xp = model.xp
        sigma = xp.exp(logvar)
        return mu + sigma * eps, (xp.exp(0.5 * logvar), eps)

    monkeypatch.setattr(vae_module, "reparameterize_forward", wrong_scale)
    report = check_model(model, x, eps)
    assert report.errors["enc.logvar.b"] > 1e-3


def test_directional_agrees_with_elementwise():
    model, x, eps = small_model(likelihood="gaussian", sigma_dec="learned", estimator="A")
    elementwise = check_model(model, x, eps, method="elementwise")
    directional = check_model(model, x, eps, method="directional", seed=3)
    assert elementwise.method == "elementwise" and directional.method == "directional"
    assert list(elementwise.errors) == list(directional.errors) == list(model.params)
    assert elementwise.passed(1e-6) and directional.passed(1e-6)


@pytest.mark.parametrize("activation", ["tanh", "softplus"])
def test_directional_check_is_not_at_the_mercy_of_the_direction(activation):
    """A 100-60-5 VAE, every direction seed: correct gradients pass far below 1e-6.

    With one random unit direction and a step of h, g . u is ~||g|| / sqrt(n) and now and
    then much smaller, so rounding alone gave errors above 1e-6 (up to 5e-6) for 2 of the
    8 seeds, with either activation. Four orthonormal directions and a step of h sqrt(n)
    (each entry moved by ~h) keep every seed below 3e-8."""
    model = sv.VAE(100, (60,), 5, activation=activation, dtype="float64", seed=0)
    rng = np.random.default_rng(0)
    x = model.asarray(rng.uniform(size=(8, 100)))
    eps = model.asarray(rng.standard_normal((1, 8, 5)))
    errors = [check_model(model, x, eps, method="directional", seed=s).max_error
              for s in range(8)]
    assert max(errors) < 1e-7, errors


def test_auto_switches_to_directional_for_large_parameters():
    """Forward passes counted: elementwise costs 2 per entry, directional 2 per direction
    (at most as many directions as entries)."""
    model, x, eps = small_model()
    calls = {"n": 0}
    loss = model.loss

    def counting_loss(*args, **kwargs):
        calls["n"] += 1
        return loss(*args, **kwargs)

    model.loss = counting_loss
    check_model(model, x, eps, method="auto", max_elementwise=3)
    sizes = [p.size for p in model.params.values()]
    expected = 1 + sum(2 * s if s <= 3 else 2 * min(4, s) for s in sizes)
    assert calls["n"] == expected
    calls["n"] = 0
    check_model(model, x, eps, method="directional", n_directions=2)
    assert calls["n"] == 1 + sum(2 * min(2, s) for s in sizes)


def test_check_model_validates_its_arguments():
    model, x, eps = small_model()
    with pytest.raises(ValueError, match="method must be 'auto', 'elementwise' or"):
        check_model(model, x, eps, method="forward")
    with pytest.raises(TypeError, match="parameters must be float64"):
        check_model(sv.VAE(4, (3,), 2), x, eps)


def test_check_model_leaves_the_parameters_unchanged():
    model, x, eps = small_model()
    before = model.params.flat.copy()
    check_model(model, x, eps, method="elementwise")
    check_model(model, x, eps, method="directional")
    np.testing.assert_array_equal(model.params.flat, before)


def test_report():
    report = GradcheckReport({"a.W": 1e-9, "b.W": 3e-6, "c": 2e-7})
    assert report.max_error == 3e-6 and report.worst == "b.W"
    assert not report.passed() and report.passed(1e-5)
    assert report.failures() == {"b.W": 3e-6}
    assert report.failures(1e-10) == {"a.W": 1e-9, "b.W": 3e-6, "c": 2e-7}
    assert list(GradcheckReport({"x": float("nan")}).failures()) == ["x"]  # NaN never passes
    text = str(report)
    assert "b.W" in text and "3.00e-06" in text and "max 3.00e-06 at b.W" in text
