"""Optimizers: step for step against PyTorch's torch.optim (when installed) and against the
update formulas written out here, in float64."""

from __future__ import annotations

import math

import numpy as np
import pytest

import scratchvae as sv
from scratchvae.optim import OPTIMIZERS, SGD, Adagrad, Adam

SHAPES = {"W": (3, 4), "b": (4,), "s": (1,)}
STEPS = 12


def make_params(seed=0, backend_put=None):
    rng = np.random.default_rng(seed)
    arrays = {k: rng.standard_normal(s) for k, s in SHAPES.items()}
    if backend_put is not None:
        arrays = {k: backend_put(a) for k, a in arrays.items()}
    return sv.Parameters.from_arrays(arrays)


def grad_sequence(seed=1):
    """The same gradients for every optimizer under test: (STEPS, n) host float64."""
    n = sum(math.prod(s) for s in SHAPES.values())
    g = np.random.default_rng(seed).standard_normal((STEPS, n))
    g[:, 0] = 0.0  # a coordinate that never moves (Adam's 0 / (0 + eps))
    return g


def run(opt_cls, kw, params=None, grads=None, put=np.asarray):
    """Apply the gradient sequence (each step put on the parameters' device with ``put``);
    the flat parameters after each step, on the host."""
    params = make_params() if params is None else params
    opt = opt_cls(params, **kw)
    g = params.zeros_like()
    history = []
    for step in grad_sequence() if grads is None else grads:
        g.flat[...] = put(step)
        opt.step(g)
        history.append(sv.to_numpy(params.flat).copy())
    return np.array(history), opt


# ---- the formulas, written out ---------------------------------------------------------------
def reference_sgd(p, grads, lr, momentum=0.0, weight_decay=0.0):
    v, out = np.zeros_like(p), []
    for g in grads:
        g = g + weight_decay * p
        v = momentum * v + g if momentum else g
        p = p - lr * v
        out.append(p)
    return np.array(out)


def reference_adagrad(p, grads, lr, eps=1e-10, weight_decay=0.0):
    G, out = np.zeros_like(p), []
    for g in grads:
        g = g + weight_decay * p
        G = G + g * g
        p = p - lr * g / (np.sqrt(G) + eps)
        out.append(p)
    return np.array(out)


def reference_adam(p, grads, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
    b1, b2 = betas
    m, v, out = np.zeros_like(p), np.zeros_like(p), []
    for t, g in enumerate(grads, start=1):
        g = g + weight_decay * p
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
        p = p - lr * m_hat / (np.sqrt(v_hat) + eps)
        out.append(p)
    return np.array(out)


CASES = [  # (scratchvae class, kwargs, reference, torch class name, torch kwargs)
    (SGD, dict(lr=0.1), reference_sgd, "SGD", {}),
    (SGD, dict(lr=0.05, momentum=0.9), reference_sgd, "SGD", {}),
    (SGD, dict(lr=0.05, momentum=0.5, weight_decay=0.1), reference_sgd, "SGD", {}),
    (Adagrad, dict(lr=0.3), reference_adagrad, "Adagrad", {}),
    (Adagrad, dict(lr=0.3, eps=1e-3, weight_decay=0.05), reference_adagrad, "Adagrad", {}),
    (Adam, dict(lr=0.01), reference_adam, "Adam", {}),
    (Adam, dict(lr=0.02, betas=(0.8, 0.99), eps=1e-6), reference_adam, "Adam", {}),
    (Adam, dict(lr=0.01, weight_decay=0.2), reference_adam, "Adam", {}),
]
IDS = [f"{c.__name__}-{'-'.join(f'{k}={v}' for k, v in kw.items())}" for c, kw, *_ in CASES]


@pytest.mark.parametrize(("opt_cls", "kw", "reference", "torch_name", "torch_kw"), CASES,
                         ids=IDS)
def test_matches_the_written_out_formula(opt_cls, kw, reference, torch_name, torch_kw, put):
    history, _ = run(opt_cls, kw, params=make_params(backend_put=put), put=put)
    expected = reference(make_params().flat.copy(), grad_sequence(), **kw)
    np.testing.assert_allclose(history, expected, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize(("opt_cls", "kw", "reference", "torch_name", "torch_kw"), CASES,
                         ids=IDS)
def test_matches_torch_optim(opt_cls, kw, reference, torch_name, torch_kw):
    torch = pytest.importorskip("torch")
    history, _ = run(opt_cls, kw)
    p = torch.tensor(make_params().flat.copy(), requires_grad=True)
    opt = getattr(torch.optim, torch_name)([p], **kw, **torch_kw)
    for step, g in enumerate(grad_sequence()):
        p.grad = torch.tensor(g)
        opt.step()
        np.testing.assert_allclose(history[step], p.detach().numpy(), rtol=1e-13, atol=1e-15)


def test_adam_first_step_is_lr_times_the_sign():
    """After one step the bias-corrected m / sqrt(v) is g / |g|: each coordinate moves by
    lr * g / (|g| + eps), whatever the gradient's scale."""
    params = make_params()
    start = params.flat.copy()
    g = grad_sequence()[:1] * 1e3
    history, _ = run(Adam, dict(lr=0.01), params=params, grads=g)
    np.testing.assert_allclose(history[0] - start, -0.01 * g[0] / (np.abs(g[0]) + 1e-8),
                               rtol=1e-12, atol=1e-18)
    assert history[0][0] == start[0]


def test_weight_decay_alone_shrinks_the_parameters():
    """With zero gradient, SGD's weight decay is p <- (1 - lr lambda) p each step."""
    params = make_params()
    start = params.flat.copy()
    history, _ = run(SGD, dict(lr=0.1, weight_decay=0.5), params=params,
                     grads=np.zeros((3, start.size)))
    np.testing.assert_allclose(history[-1], start * 0.95**3, rtol=1e-14)


@pytest.mark.parametrize(("opt_cls", "kw"), [(Adam, dict(lr=0.01, weight_decay=0.1)),
                                             (SGD, dict(lr=0.05, momentum=0.9)),
                                             (Adagrad, dict(lr=0.2))])
def test_state_dict_round_trip(opt_cls, kw):
    """A fresh optimizer loaded with another's state continues exactly as it would have."""
    grads = grad_sequence()
    full, _ = run(opt_cls, kw)
    params = make_params()
    _, opt = run(opt_cls, kw, params=params, grads=grads[:5])
    state = {k: (np.array(v, copy=True) if k != "t" else v) for k, v in opt.state_dict().items()}
    assert state["t"] == 5 and set(state) == {"t", *opt.state}
    resumed_params = sv.Parameters(params.shapes, params.flat.copy())
    resumed = opt_cls(resumed_params, **kw)
    resumed.load_state_dict(state)
    assert resumed.t == 5
    for key in opt.state:
        np.testing.assert_array_equal(resumed.state[key], opt.state[key])
    g = resumed_params.zeros_like()
    for step in grads[5:]:
        g.flat[...] = step
        resumed.step(g)
    np.testing.assert_array_equal(resumed_params.flat, full[-1])


def test_optimizer_updates_the_model_in_place():
    model = sv.VAE(4, (3,), 2, dtype="float64", seed=0)
    view = model.params["enc.0.W"]
    before = view.copy()
    x = model.asarray(np.random.default_rng(2).uniform(size=(5, 4)))
    model.loss(x)
    model.backward()
    opt = OPTIMIZERS["sgd"](model.params, lr=0.1)
    opt.step(model.grads)
    np.testing.assert_allclose(view, before - 0.1 * model.grads["enc.0.W"], rtol=1e-15)
    assert model.params["enc.0.W"] is view  # the same live view, not a rebinding


@pytest.mark.parametrize("lr", [0, -0.1, float("nan"), float("inf"), "0.1", None])
@pytest.mark.parametrize("opt_cls", [SGD, Adagrad, Adam])
def test_bad_learning_rate(opt_cls, lr):
    with pytest.raises(ValueError, match="lr must be a finite number > 0"):
        opt_cls(make_params(), lr=lr)


def test_bad_optimizer_arguments():
    params = make_params()
    with pytest.raises(ValueError, match="weight_decay must be a finite number >= 0"):
        Adam(params, weight_decay=-1e-4)
    with pytest.raises(ValueError, match="momentum must be a finite number >= 0"):
        SGD(params, momentum=-0.9)
    with pytest.raises(ValueError, match=r"betas must lie in \[0, 1\)"):
        Adam(params, betas=(1.0, 0.999))
    with pytest.raises(ValueError, match=r"betas must lie in \[0, 1\)"):
        Adam(params, betas=(0.9, -0.1))
    with pytest.raises(ValueError, match="eps must be a finite number > 0"):
        Adagrad(params, eps=0.0)
    with pytest.raises(TypeError, match="params must be a scratchvae Parameters object"):
        Adam({"W": np.zeros(3)})
    opt = Adam(params)
    with pytest.raises(ValueError, match="grads must be the model's gradients"):
        opt.step(sv.Parameters.from_arrays({"W": np.zeros(12)}))
    with pytest.raises(ValueError, match="grads must be the model's gradients"):
        opt.step(params.flat)


@pytest.mark.parametrize("weight_decay", [0.0, 1e-2])
def test_fast_adam_and_adagrad_match_their_textbook_forms(weight_decay):
    """The in-place optimizers and the few-line reference updates agree to rounding over
    20 steps on random gradients (float64)."""
    from scratchvae.optim import adagrad_reference, adam_reference

    rng = np.random.default_rng(7)
    p0 = rng.standard_normal(50)
    grads = [rng.standard_normal(50) for _ in range(20)]
    for name in ("adam", "adagrad"):
        params = sv.Parameters({"w": (50,)}, p0.copy())
        g_buf = sv.Parameters({"w": (50,)}, np.zeros(50))
        opt = (sv.optim.Adam(params, lr=1e-2, weight_decay=weight_decay) if name == "adam"
               else sv.optim.Adagrad(params, lr=1e-1, weight_decay=weight_decay))
        p, s1, s2 = p0.copy(), np.zeros(50), np.zeros(50)
        for t, g in enumerate(grads, start=1):
            g_buf.flat[...] = g
            opt.step(g_buf)
            g_total = g + weight_decay * p
            if name == "adam":
                p, s1, s2 = adam_reference(p, g_total, s1, s2, t, lr=1e-2)
            else:
                p, s1 = adagrad_reference(p, g_total, s1, lr=1e-1)
        np.testing.assert_allclose(params.flat, p, rtol=1e-12, atol=1e-14)
        assert np.abs(params.flat - p0).max() > 1e-2  # they really moved
