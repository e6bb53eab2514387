"""The GAN's hand-written backward passes against finite differences, in float64.

Every parameter's gradient of both losses is checked: the discriminator's loss w.r.t. the
discriminator, the generator's loss w.r.t. the generator (through the discriminator's
input gradient) and w.r.t. the discriminator. The networks are small (every entry is
perturbed) and the inputs random, so no ReLU or LeakyReLU input sits within the step of
its kink. Deliberately wrong backward passes must fail the same check.
"""

from __future__ import annotations

import numpy as np
import pytest

from scratchvae import activations
from scratchvae import gan as gan_module
from scratchvae.backend import to_numpy
from scratchvae.gan import GAN, GANConfig, gradient_errors, train_gan
from scratchvae.gradcheck import numerical_gradient, rel_error

TOL = 1e-6


def small_gan(seed: int = 3) -> GAN:
    return GAN(data_dim=12, noise_dim=3, g_hidden=(8, 7), d_hidden=(6, 5), dtype="float64",
               seed=seed)


def batch(gan: GAN, seed: int = 0):
    rng = np.random.default_rng(seed)
    return (gan.asarray(rng.uniform(-1, 1, (5, 12))), gan.asarray(rng.uniform(-1, 1, (4, 3))))


def test_both_losses_match_finite_differences_for_every_parameter():
    gan = small_gan()
    errors = gradient_errors(gan, *batch(gan))
    assert set(errors["L_D"]) == set(gan.D.params)
    assert set(errors["L_G"]) == set(gan.G.params) | set(gan.D.params)
    for loss, per_param in errors.items():
        for name, err in per_param.items():
            assert err < TOL, f"{loss} w.r.t. {name}: rel. error {err:.2e}"


def test_the_losses_are_the_stable_binary_cross_entropy():
    logits = np.array([-800.0, -3.0, 0.0, 2.5, 800.0])
    for t in (0.0, 1.0):
        loss, cache = gan_module.bce_logits_forward(logits, t)
        p = 1 / (1 + np.exp(-logits[1:4]))
        direct = -(t * np.log(p) + (1 - t) * np.log(1 - p))
        assert np.allclose(loss[1:4], direct, rtol=1e-12)
        assert np.all(np.isfinite(loss))                       # no overflow at +-800
        assert loss[0 if t == 1.0 else 4] == pytest.approx(800.0)
        grad = gan_module.bce_logits_backward(np.ones(5), cache)
        num = numerical_gradient(lambda t=t: np.sum(gan_module.bce_logits_forward(logits, t)[0]),
                                 logits)
        assert rel_error(grad, num) < 1e-8


def test_a_generator_step_lowers_the_generator_loss_and_keeps_the_discriminator():
    gan = small_gan()
    _, z = batch(gan)
    before = float(gan.generator_loss(z).loss)
    gan.backward_generator()
    d_before = np.array(gan.D.params.flat, copy=True)
    gan.G.params.flat[...] -= 1e-2 * gan.G.grads.flat
    assert float(gan.generator_loss(z).loss) < before
    assert np.array_equal(gan.D.params.flat, d_before)


def test_the_saturating_gradient_in_place_of_the_non_saturating_one_is_caught(monkeypatch):
    """Backward of -log(1 - sigma(l)) (gradient sigma(l)) under the loss -log sigma(l)."""
    gan = small_gan()
    x, z = batch(gan)
    gan.generator_loss(z)
    gan.backward_generator()
    right = np.array(gan.G.grads.flat, copy=True)
    original = gan_module.bce_logits_backward

    def saturating(dloss, cache):
        logits, e, _ = cache
        return original(dloss, (logits, e, 0.0))

    monkeypatch.setattr(gan_module, "bce_logits_backward", saturating)
    errors = gradient_errors(gan, x, z)
    assert max(errors["L_G"][k] for k in gan.G.params) > 1e-2
    monkeypatch.undo()
    gan.generator_loss(z)
    gan.backward_generator()
    assert rel_error(gan.G.grads.flat, right) < 1e-14


def test_the_saturating_loss_has_its_own_correct_gradient():
    gan = small_gan()
    _, z = batch(gan)
    gan.generator_loss(z, saturating=True)
    gan.backward_generator()
    analytic = np.array(gan.G.grads["G.0.W"], copy=True)
    numeric = numerical_gradient(lambda: gan.generator_loss(z, saturating=True).loss,
                                 gan.G.params["G.0.W"])
    assert rel_error(analytic, numeric) < TOL
    # and it differs from the non-saturating gradient
    gan.generator_loss(z)
    gan.backward_generator()
    assert rel_error(gan.G.grads["G.0.W"], analytic) > 1e-2


def test_a_leaky_relu_backward_without_its_slope_is_caught(monkeypatch):
    gan = small_gan()
    x, z = batch(gan)

    def no_slope(dy, k):                     # the ReLU's mask: forgets the 0.01 below zero
        return dy * (k == 1.0)

    for layer in gan.D.net.layers:
        if getattr(layer, "kind", None) == "leaky_relu":
            monkeypatch.setattr(layer, "_backward", no_slope)
    errors = gradient_errors(gan, x, z)
    assert max(errors["L_D"].values()) > 1e-4
    assert max(errors["L_G"].values()) > 1e-4
    assert activations.LEAKY_SLOPE == 0.01


def test_a_backward_without_its_loss_is_refused():
    gan = small_gan()
    _, z = batch(gan)
    gan.generator_loss(z)
    with pytest.raises(RuntimeError, match="discriminator_loss"):
        gan.backward_discriminator()


def test_noise_is_uniform_on_minus_one_one():
    z = GAN(seed=0).noise(4000)
    assert z.shape == (4000, 96) and z.min() >= -1 and z.max() < 1
    assert abs(float(z.mean())) < 0.01 and abs(float(z.var()) - 1 / 3) < 0.01


def test_the_full_size_networks_have_the_common_mnist_shapes():
    gan = GAN(seed=0)
    assert {k: v for k, v in gan.D.params.shapes.items() if k.endswith(".W")} == \
        {"D.0.W": (784, 256), "D.1.W": (256, 256), "D.2.W": (256, 1)}
    assert {k: v for k, v in gan.G.params.shapes.items() if k.endswith(".W")} == \
        {"G.0.W": (96, 1024), "G.1.W": (1024, 1024), "G.2.W": (1024, 784)}
    images = gan.generate(5)
    assert images.shape == (5, 784) and float(np.abs(images).max()) <= 1.0


def test_training_resumes_from_its_checkpoint_as_if_never_stopped(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (64, 12)).astype(np.float32)
    kw = dict(noise_dim=3, g_hidden=(8,), d_hidden=(6,), batch_size=16, record_every=2,
              n_fixed=4, dtype="float64")
    whole, _ = train_gan(GANConfig(epochs=3, **kw), x, tmp_path / "a", log=lambda s: None,
                         threads=1)
    train_gan(GANConfig(epochs=1, **kw), x, tmp_path / "b", log=lambda s: None, threads=1)
    resumed, history = train_gan(GANConfig(epochs=3, **kw), x, tmp_path / "b",
                                 log=lambda s: None, threads=1)
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert np.array_equal(whole.G.params.flat, resumed.G.params.flat)
    assert np.array_equal(whole.D.params.flat, resumed.D.params.flat)
    assert sorted(p.name for p in (tmp_path / "b" / "samples").iterdir()) == \
        [f"epoch_{e:03d}.npy" for e in range(4)]
    with pytest.raises(ValueError, match="another configuration"):
        train_gan(GANConfig(epochs=3, **{**kw, "batch_size": 32}), x, tmp_path / "b",
                  log=lambda s: None, threads=1)


def test_gradients_and_a_training_epoch_on_every_backend(backend, device, tmp_path):
    """The same checks on the strict array-API stand-in (on a non-default device, so a
    silent host copy fails) and on CuPy where a GPU is present."""
    gan = GAN(data_dim=12, noise_dim=3, g_hidden=(8, 7), d_hidden=(6, 5), dtype="float64",
              seed=3, backend=backend, device=device)
    reference = small_gan()
    assert np.array_equal(np.asarray(to_numpy(gan.G.params.flat)), reference.G.params.flat)
    x, z = batch(reference)
    x, z = gan.asarray(to_numpy(x)), gan.asarray(to_numpy(z))
    errors = gradient_errors(gan, x, z)
    assert max(max(e.values()) for e in errors.values()) < TOL
    data = np.random.default_rng(1).uniform(0, 1, (48, 12)).astype(np.float32)
    config = GANConfig(epochs=2, noise_dim=3, g_hidden=(8,), d_hidden=(6,), batch_size=16,
                       record_every=2, n_fixed=4, dtype="float64")
    trained, history = train_gan(config, data, tmp_path, backend=backend, device=device,
                                 log=lambda s: None, threads=1)
    assert [h["steps"] for h in history] == [3, 3]
    assert all(np.isfinite(h["d_loss"]).all() for h in history)
    assert gan_module.sample_images(trained, 5).shape == (5, 12)
