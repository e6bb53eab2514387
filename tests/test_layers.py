"""The affine layer, the activations and the layer containers.

Gradients are checked against centred finite differences in float64 on every backend.
Inputs of ReLU and leaky ReLU are drawn at least 0.1 away from the kink at 0, where the
function is not differentiable and a finite difference straddling the kink would fail
for a reason that is not a bug.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.special import expit

import scratchvae as sv
from scratchvae.activations import (
    ACTIVATIONS,
    LEAKY_SLOPE,
    relu_backward,
    relu_forward,
    sigmoid,
    softplus_forward,
)
from scratchvae.gradcheck import check_layer
from scratchvae.layers import Activation, Linear, Sequential, linear_backward, linear_forward, mlp

GRAD_TOL = 1e-7

REFERENCE = {  # independent closed forms of each activation
    "relu": lambda x: np.maximum(x, 0.0),
    "leaky_relu": lambda x: np.where(x > 0, x, LEAKY_SLOPE * x),
    "tanh": np.tanh,
    "sigmoid": expit,
    "softplus": lambda x: np.logaddexp(0.0, x),
}

DERIVATIVE = {  # f'(x), written independently of the library
    "relu": lambda x: (x > 0).astype(float),
    "leaky_relu": lambda x: np.where(x > 0, 1.0, LEAKY_SLOPE),
    "tanh": lambda x: 4 * np.exp(-2 * abs(x)) / (1 + np.exp(-2 * abs(x))) ** 2,  # sech^2
    "sigmoid": lambda x: expit(x) * expit(-x),
    "softplus": expit,
}


def away_from_zero(rng, shape, low=0.1, high=3.0):
    """Values with |v| in [low, high) and random signs: no ReLU kink within reach."""
    return rng.choice([-1.0, 1.0], size=shape) * rng.uniform(low, high, size=shape)


def test_linear_forward_matches_einsum(put):
    rng = np.random.default_rng(0)
    x, W, b = rng.standard_normal((4, 5)), rng.standard_normal((5, 3)), rng.standard_normal(3)
    y, _ = linear_forward(put(x), put(W), put(b))
    np.testing.assert_allclose(sv.to_numpy(y), np.einsum("ni,io->no", x, W) + b,
                               rtol=1e-14, atol=1e-14)


def test_linear_gradients(put):
    rng = np.random.default_rng(1)
    inputs = {"x": put(rng.standard_normal((4, 5))), "W": put(rng.standard_normal((5, 3))),
              "b": put(rng.standard_normal(3))}
    errors = check_layer(linear_forward, linear_backward, inputs)
    assert set(errors) == {"x", "W", "b"}
    assert max(errors.values()) <= GRAD_TOL, errors


def test_linear_backward_closed_form(put):
    """dx = dy W^T, dW = x^T dy, db = column sums of dy, written out entry by entry."""
    rng = np.random.default_rng(2)
    x, W, b, dy = (rng.standard_normal(s) for s in ((3, 4), (4, 2), (2,), (3, 2)))
    _, cache = linear_forward(put(x), put(W), put(b))
    dx, dW, db = (sv.to_numpy(g) for g in linear_backward(put(dy), cache))
    for n in range(3):
        for i in range(4):
            assert dx[n, i] == pytest.approx(sum(dy[n, o] * W[i, o] for o in range(2)), rel=1e-13)
    for i in range(4):
        for o in range(2):
            assert dW[i, o] == pytest.approx(sum(x[n, i] * dy[n, o] for n in range(3)), rel=1e-13)
    np.testing.assert_allclose(db, dy.sum(axis=0), rtol=1e-14)
    assert linear_backward(put(dy), cache, need_dx=False)[0] is None


@pytest.mark.parametrize("kind", sorted(ACTIVATIONS))
def test_activation_gradients(kind, put):
    forward, backward = ACTIVATIONS[kind]
    x = put(away_from_zero(np.random.default_rng(3), (5, 7)))
    errors = check_layer(forward, backward, {"x": x})
    assert errors["x"] <= GRAD_TOL, errors


@pytest.mark.parametrize("kind", sorted(ACTIVATIONS))
def test_activation_forward_and_derivative_closed_forms(kind, put):
    forward, backward = ACTIVATIONS[kind]
    x = away_from_zero(np.random.default_rng(4), (6, 5), high=6.0)
    y, cache = forward(put(x))
    np.testing.assert_allclose(sv.to_numpy(y), REFERENCE[kind](x), rtol=1e-14, atol=1e-300)
    dy = np.random.default_rng(5).standard_normal(x.shape)
    dx = sv.to_numpy(backward(put(dy), cache))
    # tanh' = 1 - y^2 cancels where y -> ±1: there the error is absolute, ~1e-16 * |dy|
    np.testing.assert_allclose(dx, dy * DERIVATIVE[kind](x), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("kind", ["sigmoid", "softplus", "tanh"])
def test_saturating_activations_are_stable_for_large_inputs(kind, backend, put):
    """exp(-|x|) forms: no overflow, no NaN, exact saturated values at |x| = 800."""
    forward, backward = ACTIVATIONS[kind]
    x = np.array([-800.0, -50.0, -1.0, 0.0, 1.0, 50.0, 800.0])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        y, cache = forward(put(x))
        dx = sv.to_numpy(backward(put(np.ones_like(x)), cache))
    y = sv.to_numpy(y)
    assert np.all(np.isfinite(y)) and np.all(np.isfinite(dx))
    np.testing.assert_allclose(y, REFERENCE[kind](x), rtol=1e-14, atol=1e-300)
    # f' is computed from y (y(1-y), 1-y^2): below ~1e-16 it rounds to 0, an absolute error
    np.testing.assert_allclose(dx, DERIVATIVE[kind](x), rtol=1e-12, atol=1e-16)


def test_sigmoid_symmetry_and_softplus_identity(put):
    """sigma(-x) = 1 - sigma(x) and softplus(x) - softplus(-x) = x, to rounding."""
    x = np.linspace(-30, 30, 121)
    s_pos, s_neg = sv.to_numpy(sigmoid(put(x))), sv.to_numpy(sigmoid(put(-x)))
    np.testing.assert_allclose(s_pos + s_neg, 1.0, rtol=0, atol=4.5e-16)  # two roundings
    sp_pos, sp_neg = (sv.to_numpy(softplus_forward(put(v))[0]) for v in (x, -x))
    np.testing.assert_allclose(sp_pos - sp_neg, x, rtol=0, atol=1e-14)


def test_relu_uses_subgradient_zero_at_the_kink(put):
    y, mask = relu_forward(put(np.array([-1.0, 0.0, 2.0])))
    np.testing.assert_array_equal(sv.to_numpy(y), [0.0, 0.0, 2.0])
    np.testing.assert_array_equal(sv.to_numpy(relu_backward(put(np.ones(3)), mask)), [0, 0, 1])


def test_leaky_relu_slope():
    forward, backward = ACTIVATIONS["leaky_relu"]
    y, cache = forward(np.array([-2.0, 3.0]))
    np.testing.assert_array_equal(y, [-2.0 * LEAKY_SLOPE, 3.0])
    np.testing.assert_array_equal(backward(np.array([1.0, 1.0]), cache), [LEAKY_SLOPE, 1.0])


def bound_layers(layers_or_seq, seed=0, dtype="float64"):
    """Give a layer (or container) its own parameter and gradient buffers and initialize."""
    params = sv.Parameters.zeros(layers_or_seq.param_shapes(), np, np.dtype(dtype))
    grads = params.zeros_like()
    layers_or_seq.bind(params, grads)
    layers_or_seq.initialize(sv.Generator(seed))
    return params, grads


def test_linear_layer_writes_gradients_into_the_buffer():
    layer = Linear("fc", 4, 3)
    params, grads = bound_layers(layer)
    assert params.shapes == {"fc.W": (4, 3), "fc.b": (3,)}
    rng = np.random.default_rng(6)
    x, dy = rng.standard_normal((5, 4)), rng.standard_normal((5, 3))
    np.testing.assert_allclose(layer.forward(x), x @ params["fc.W"] + params["fc.b"], rtol=1e-15)
    dx = layer.backward(dy)
    np.testing.assert_allclose(dx, dy @ params["fc.W"].T, rtol=1e-14)
    np.testing.assert_allclose(grads["fc.W"], x.T @ dy, rtol=1e-14)
    np.testing.assert_allclose(grads["fc.b"], dy.sum(0), rtol=1e-14)
    # the named gradients are views of the one flat buffer
    np.testing.assert_array_equal(grads.flat, np.concatenate([(x.T @ dy).ravel(), dy.sum(0)]))
    layer.need_dx = False
    layer.forward(x)
    assert layer.backward(dy) is None


def test_mlp_structure_and_names():
    seq = mlp("enc", (6, 5, 4), "tanh")
    kinds = [type(layer).__name__ for layer in seq.layers]
    assert kinds == ["Linear", "Activation", "Linear", "Activation"]
    assert list(seq.param_shapes()) == ["enc.0.W", "enc.0.b", "enc.1.W", "enc.1.b"]
    seq = mlp("dec", (2, 3, 6), "relu", final_activation=False)
    assert [type(layer).__name__ for layer in seq.layers] == ["Linear", "Activation", "Linear"]
    assert mlp("e", (5,), "relu").layers == []


def test_sequential_gradients_match_finite_differences():
    """A two-layer tanh stack, d(sum(dout * f(x)))/dx and /dW through the container."""
    seq = mlp("m", (4, 6, 3), "tanh")
    params, grads = bound_layers(seq, seed=7)
    rng = np.random.default_rng(8)
    x, dout = rng.standard_normal((5, 4)), rng.standard_normal((5, 3))
    seq.forward(x)
    dx = seq.backward(dout)

    def f():
        return float(np.sum(Sequential(seq.layers).forward(x) * dout))

    assert sv.gradcheck.rel_error(dx, sv.gradcheck.numerical_gradient(f, x)) <= GRAD_TOL
    analytic = {k: g.copy() for k, g in grads.items()}
    for name, p in params.items():
        err = sv.gradcheck.rel_error(analytic[name], sv.gradcheck.numerical_gradient(f, p))
        assert err <= GRAD_TOL, (name, err)


def test_initializers():
    d_in, d_out = 400, 300
    for init in ("pytorch", "glorot", "normal"):
        layer = Linear("fc", d_in, d_out, init)
        params, _ = bound_layers(layer, seed=9)
        W, b = params["fc.W"], params["fc.b"]
        if init == "pytorch":
            a = 1 / math.sqrt(d_in)
            assert np.abs(W).max() <= a and np.abs(b).max() <= a
            # U(-a, a) has variance a^2 / 3; 120000 draws give the std to ~0.2%
            assert W.std() == pytest.approx(a / math.sqrt(3), rel=0.01)
            assert np.abs(b).max() > 0.9 * a
        elif init == "glorot":
            a = math.sqrt(6 / (d_in + d_out))
            assert np.abs(W).max() <= a and W.std() == pytest.approx(a / math.sqrt(3), rel=0.01)
            np.testing.assert_array_equal(b, 0.0)
        else:
            assert W.std() == pytest.approx(0.01, rel=0.01)
            assert abs(W.mean()) < 4 * 0.01 / math.sqrt(W.size)


def test_initialization_is_seeded_and_dtype_independent():
    """Same seed: the same draws, float32 being the float64 values rounded."""
    w64 = bound_layers(Linear("fc", 5, 4), seed=3)[0].flat
    w64_again = bound_layers(Linear("fc", 5, 4), seed=3)[0].flat
    w32 = bound_layers(Linear("fc", 5, 4), seed=3, dtype="float32")[0].flat
    np.testing.assert_array_equal(w64, w64_again)
    np.testing.assert_array_equal(w32, w64.astype(np.float32))
    assert not np.array_equal(w64, bound_layers(Linear("fc", 5, 4), seed=4)[0].flat)


def test_unknown_names_raise():
    with pytest.raises(ValueError, match="init must be one of"):
        Linear("fc", 2, 3, init="he")
    with pytest.raises(ValueError, match="activation must be one of"):
        Activation("gelu")


def test_every_building_block_follows_the_layer_protocol():
    """Linear, Activation, Sequential, the encoder and the decoder all offer the five
    methods a model calls."""
    import scratchvae as sv
    from scratchvae.layers import Layer

    model = sv.VAE(8, (4,), 2, likelihood="gaussian", sigma_dec="learned")
    blocks = [model.encoder, model.decoder, *model.encoder.body.layers, model.decoder.head]
    for block in blocks:
        for method in ("param_shapes", "bind", "initialize", "forward", "backward"):
            assert callable(getattr(block, method, None)), (type(block).__name__, method)
    assert set(vars(Layer)) >= {"param_shapes", "bind", "initialize", "forward", "backward"}
