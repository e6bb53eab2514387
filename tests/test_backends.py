"""One model, three backends: NumPy, the strict array-API stand-in on a non-default
device, and CuPy on a GPU (skipped without one).

Training runs forward, backward and optimizer steps end to end; host data cross to the
device only through ``model.asarray``, and a host array handed to a device model is
refused rather than copied.
"""

from __future__ import annotations

import sys

import array_api_strict
import numpy as np
import pytest

import scratchvae as sv
from scratchvae.backend import get_namespace

DEVICE1 = array_api_strict.Device("device1")


def small_vae(dtype="float64", seed=0, **kw):
    args = dict(input_dim=8, hidden_dims=(16,), latent_dim=2, dtype=dtype, seed=seed) | kw
    return sv.VAE(**args)


def batch(n=32, D=8, seed=1):
    return np.random.default_rng(seed).uniform(size=(n, D))


def train(model, X, steps=20, opt_cls=sv.optim.Adam, **opt_kw):
    """``steps`` full-batch steps, noise from the model's seeded generator; the losses."""
    x = model.asarray(X)
    opt = opt_cls(model.params, **({"lr": 1e-2} | opt_kw))
    losses = []
    for _ in range(steps):
        losses.append(float(model.loss(x).loss))
        model.backward()
        opt.step(model.grads)
    return np.array(losses)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_training_decreases_the_loss(backend, device, dtype):
    model = small_vae(dtype).to(backend, device=device)
    assert model.params.flat.dtype == getattr(get_namespace(backend), dtype)
    losses = train(model, batch())
    assert np.all(np.isfinite(losses))
    assert losses[-5:].mean() < losses[:5].mean() - 0.1, losses
    assert losses[-1] < losses[0]


def test_float32_and_float64_agree():
    """Same seed: the same initial parameters up to rounding, the same noise, and losses
    that agree to 1e-5 relative over 20 Adam steps."""
    m32, m64 = small_vae("float32"), small_vae("float64")
    assert m32.params.flat.dtype == np.float32 and m64.params.flat.dtype == np.float64
    np.testing.assert_array_equal(m32.params.flat, m64.params.flat.astype(np.float32))
    l32, l64 = train(m32, batch()), train(m64, batch())
    np.testing.assert_allclose(l32, l64, rtol=1e-5)  # measured: 1.2e-7
    assert np.abs(l32 - l64).max() > 0  # they really are two computations


def test_numpy_and_strict_float64_are_identical():
    """The strict stand-in on device1 runs the same float64 operations: identical losses
    and parameters, bit for bit."""
    ref = small_vae()
    strict = small_vae().to("array_api_strict", device=DEVICE1)
    assert strict.device == DEVICE1 and strict.params.flat.device == DEVICE1
    l_np, l_strict = train(ref, batch()), train(strict, batch())
    np.testing.assert_array_equal(l_np, l_strict)
    np.testing.assert_array_equal(ref.params.flat, sv.to_numpy(strict.params.flat))


@pytest.mark.parametrize(("opt_cls", "kw"), [
    (sv.optim.Adam, {"weight_decay": 1e-3}),
    (sv.optim.SGD, {"lr": 0.01, "momentum": 0.9}),
    (sv.optim.Adagrad, {"lr": 0.05}),
])
@pytest.mark.parametrize("estimator", ["A", "B"])
def test_every_optimizer_runs_on_a_device(opt_cls, kw, estimator):
    """Forward, backward and each optimizer's step on device1 match NumPy exactly."""
    kw = dict(kw)
    ref = small_vae(estimator=estimator, likelihood="gaussian", sigma_dec="learned")
    dev = small_vae(estimator=estimator, likelihood="gaussian", sigma_dec="learned")
    dev.to("array_api_strict", device=DEVICE1)
    l_np = train(ref, batch(), steps=10, opt_cls=opt_cls, **kw)
    l_dev = train(dev, batch(), steps=10, opt_cls=opt_cls, **kw)
    np.testing.assert_array_equal(l_np, l_dev)
    np.testing.assert_array_equal(ref.params.flat, sv.to_numpy(dev.params.flat))
    assert l_dev[-1] < l_dev[0]


def test_every_model_method_runs_on_a_device():
    for model in (small_vae(likelihood="gaussian_per_pixel"), sv.AE(8, (16,), 2, seed=0)):
        model.to("array_api_strict", device=DEVICE1)
        x = model.asarray(batch(n=4))
        assert x.device == DEVICE1 and x.dtype == model.dtype
        res = model.loss(x)
        model.backward()
        for out in (res.loss, res.z, model.sample(3), model.reconstruct(x)):
            assert out.device == DEVICE1
        assert all(g.device == DEVICE1 for g in model.grads.values())


def test_host_arrays_are_refused_not_copied():
    model = small_vae().to("array_api_strict", device=DEVICE1)
    X = batch(n=4)
    with pytest.raises(TypeError, match=r"x is a 'numpy' array .* model.asarray\(x\)"):
        model.loss(X)
    x = model.asarray(X)
    with pytest.raises(TypeError, match=r"eps is a 'numpy' array"):
        model.loss(x, eps=np.zeros((1, 4, 2)))
    with pytest.raises(TypeError, match="z is a 'numpy' array"):
        model.decode(np.zeros((4, 2)))
    on_cpu = array_api_strict.asarray(X)  # right library, wrong device
    with pytest.raises(ValueError, match=r"x is on device .* but the model is on"):
        model.loss(on_cpu)
    # and the other way round: a device array into a host model
    with pytest.raises(TypeError, match="x is a 'array_api_strict' array"):
        small_vae().loss(x)


def test_to_round_trips_parameters_exactly():
    model = small_vae(likelihood="gaussian", sigma_dec="learned")
    x = model.asarray(batch(n=4))
    model.loss(x)
    model.backward()
    params, grads = model.params.flat.copy(), model.grads.flat.copy()
    model.to("array_api_strict", device=DEVICE1)
    assert model.backend == "array_api_strict" and model.xp is array_api_strict
    np.testing.assert_array_equal(sv.to_numpy(model.params.flat), params)
    np.testing.assert_array_equal(sv.to_numpy(model.grads.flat), grads)
    assert list(model.params) == list(model.grads) and model.params["dec.logvar"].shape == (1,)
    model.to("numpy")
    assert model.backend == "numpy" and isinstance(model.params.flat, np.ndarray)
    np.testing.assert_array_equal(model.params.flat, params)
    np.testing.assert_array_equal(model.grads.flat, grads)
    # the layers are bound to the moved buffers: a step on the buffer changes the loss
    eps = model.asarray(np.zeros((1, 4, 2)))
    before = float(model.loss(x, eps).loss)
    model.params.flat[...] += 0.01
    assert float(model.loss(x, eps).loss) != before


def test_to_keeps_the_noise_stream():
    """Between NumPy and the strict stand-in the generator continues, so moving a model
    does not change the noise it draws next."""
    a, b = small_vae(), small_vae()
    b.to("array_api_strict", device=DEVICE1)
    za, zb = a.loss(a.asarray(batch(n=3))).z, b.loss(b.asarray(batch(n=3))).z
    np.testing.assert_array_equal(za, sv.to_numpy(zb))


def test_unknown_backend_and_dtype():
    with pytest.raises(ValueError, match="backend must be one of"):
        small_vae().to("torch")
    with pytest.raises(ValueError, match="backend must be one of"):
        sv.Generator(0, backend="jax")
    with pytest.raises(ValueError, match="dtype must be one of"):
        small_vae(dtype="float16")


def test_cupy_missing_gives_an_install_hint(monkeypatch):
    """With CuPy not importable (forced here, whether or not it is installed), asking for
    it says how to install it."""
    monkeypatch.setitem(sys.modules, "cupy", None)  # makes `import cupy` fail
    with pytest.raises(ImportError, match=r"pip install 'scratchvae\[gpu\]'"):
        small_vae(backend="cupy")
    with pytest.raises(ImportError, match="cupy-cuda12x"):
        small_vae().to("cupy")
    with pytest.raises(ImportError, match="needs CuPy and an NVIDIA GPU"):
        sv.Generator(0, backend="cupy")


def test_fixed_noise_gives_the_same_loss_and_gradients_on_every_backend(backend, device):
    """float64 with the same eps: the backend's loss and gradients equal NumPy's (exactly
    on the CPU stand-in, to rounding on a GPU)."""
    ref = small_vae(likelihood="gaussian_per_pixel", estimator="A")
    dev = small_vae(likelihood="gaussian_per_pixel", estimator="A").to(backend, device=device)
    rng = np.random.default_rng(2)
    X, E = batch(n=5), rng.standard_normal((3, 5, 2))
    r_ref = ref.loss(ref.asarray(X), ref.asarray(E))
    r_dev = dev.loss(dev.asarray(X), dev.asarray(E))
    ref.backward()
    dev.backward()
    assert float(r_dev.loss) == pytest.approx(float(r_ref.loss), rel=1e-12)
    np.testing.assert_allclose(sv.to_numpy(dev.grads.flat), ref.grads.flat, rtol=1e-10,
                               atol=1e-12 * np.abs(ref.grads.flat).max())


def test_generator_draws_on_its_backend(backend, device):
    xp = get_namespace(backend)
    gen = sv.Generator(3, backend=backend, device=device)
    z, u = gen.normal((50_000,), xp.float64), gen.uniform((50_000,), xp.float32, -2.0, 3.0)
    assert z.dtype == xp.float64 and u.dtype == xp.float32
    if device is not None:
        assert z.device == device and u.device == device
    z, u = sv.to_numpy(z), sv.to_numpy(u)
    # mean and variance within 5 standard errors of N(0, 1) and U(-2, 3)
    assert abs(z.mean()) < 5 / np.sqrt(z.size)
    assert abs(z.var() - 1) < 5 * np.sqrt(2 / z.size)
    assert u.min() >= -2 and u.max() <= 3
    assert abs(u.mean() - 0.5) < 5 * (5 / np.sqrt(12)) / np.sqrt(u.size)
    perm = gen.permutation(10)  # on the generator's device, ready to index data there
    if device is not None:
        assert perm.device == device
    assert xp.isdtype(perm.dtype, "integral")
    np.testing.assert_array_equal(np.sort(sv.to_numpy(perm)), np.arange(10))


def test_generator_state_round_trip():
    gen = sv.Generator(4)
    state = gen.get_state()
    first = gen.normal((5,), np.float64)
    gen.set_state(state)
    np.testing.assert_array_equal(gen.normal((5,), np.float64), first)
