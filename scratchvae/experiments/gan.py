r"""A GAN on MNIST, written with the library's layers: how its two players learn.

Deck ``000_a112e0488c5566e6.txt`` closes its overview with a *Comparison with AE and GAN*.
This experiment trains the GAN of :mod:`scratchvae.gan` (discriminator 784-256-256-1,
LeakyReLU 0.01; generator from 96-d uniform noise through 1024-1024-784, ReLU, tanh;
Adam :math:`10^{-3}`, :math:`\beta_1 = 0.5`; minibatches of 128; the non-saturating
generator loss) on the MNIST training images scaled to :math:`[-1, 1]`, and records

* the two losses, :math:`L_D` and :math:`L_G`, every ``record_every`` steps;
* the discriminator's mean verdicts :math:`\overline{\sigma(D(x))}` on real images and
  :math:`\overline{\sigma(D(G(z)))}` on generated ones (at the equilibrium of the game both
  are 1/2, and :math:`L_D = 2\log 2`, :math:`L_G = \log 2`);
* the images of 64 fixed noise vectors after every epoch (the sample grids per epoch count);
* how far generated images are from the training images: the median Euclidean distance
  of a generated image to its nearest training image, before training and after, beside
  the same distance for held-out test images (the reference a good generator approaches),
  and the mean grey value of the generated images beside the data's.

The comparison with the AE and the VAE is the ``compare`` experiment. Course notebook:
``notebooks/15_vae_ae_gan.ipynb``; test: ``tests/test_experiment_gan.py``.
"""

from __future__ import annotations

import numpy as np

from .. import datasets
from ..gan import GANConfig, sample_images, train_gan
from ..threads import Threads
from . import Experiment, Outcome
from .common import model_dir, refuse_options, save_figure
from .generation import nearest

#: What changes between the quick and the full version.
SETTINGS = {
    "quick": dict(n_train=4096, n_test=500, epochs=3, n_nearest=200, record_every=4),
    "full": dict(n_train=60000, n_test=10000, epochs=50, n_nearest=2000, record_every=20),
}
GRID_EPOCHS = (0, 1, 2, 3, 5, 10, 20, 30, 50)


def run(exp: Experiment) -> Outcome:
    """Train the GAN (or resume it from ``OUT/models/gan``), then draw its curves and
    sample grids and score its images."""
    refuse_options(exp)
    s = SETTINGS["quick" if exp.quick else "full"]
    ds = datasets.load("mnist", exp.data_dir)
    x_train, x_test = ds.x_train[:s["n_train"]], ds.x_test[:s["n_test"]]
    config = GANConfig(epochs=s["epochs"], seed=exp.seed, n_train=len(x_train),
                       record_every=s["record_every"])
    run_dir = model_dir(exp, "gan")
    gan, history = train_gan(config, x_train, run_dir, backend=exp.backend, log=exp.log)

    n = s["n_nearest"]
    samples = sample_images(gan, n)
    untrained = np.load(run_dir / "samples" / "epoch_000.npy").astype(np.float64)
    with Threads(1):
        d_samples = nearest(samples, x_train)[0]
        d_untrained = nearest(untrained, x_train)[0]
        d_test = nearest(x_test[:n], x_train)[0]
    last = history[-1]
    numbers = {
        "final_epoch": {key: round(float(np.mean(last[key])), 4)
                        for key in ("d_loss", "g_loss", "d_real", "d_fake")},
        "per_epoch": {key: [round(float(np.mean(h[key])), 4) for h in history]
                      for key in ("d_loss", "g_loss", "d_real", "d_fake")},
        "equilibrium": {"d_loss": round(2 * np.log(2), 4), "g_loss": round(np.log(2), 4),
                        "d_real": 0.5, "d_fake": 0.5},
        "nearest_train_distance": {
            "gan_samples": round(float(np.median(d_samples)), 3),
            "untrained_generator": round(float(np.median(d_untrained)), 3),
            "test_images": round(float(np.median(d_test)), 3)},
        "mean_grey": {"gan_samples": round(float(samples.mean()), 4),
                      "untrained_generator": round(float(untrained.mean()), 4),
                      "training_images": round(float(x_train.mean()), 4)},
    }
    seconds = sum(h["epoch_seconds"] for h in history)
    setup = {
        "dataset": "mnist", "n_train": len(x_train), "n_test": len(x_test),
        "gan": {**config.to_json(),
                "discriminator": f"784-{'-'.join(map(str, config.d_hidden))}-1, "
                                 f"LeakyReLU 0.01, logit output",
                "generator": f"{config.noise_dim} (U(-1,1))-"
                             f"{'-'.join(map(str, config.g_hidden))}-784, ReLU, tanh",
                "loss": "discriminator: binary cross-entropy on logits; generator: "
                        "non-saturating, -log sigmoid(D(G(z)))",
                "optimizer": f"adam, lr {config.lr}, betas ({config.beta1}, {config.beta2})",
                "steps_per_epoch": last["steps"]},
        "budget": {"epochs": config.epochs, "batch_size": config.batch_size,
                   "train_seconds": round(seconds, 1)},
        "n_nearest": n,
    }
    figures = []
    _figure_grids(exp, run_dir, config.epochs, ds.image_shape, figures)
    _figure_curves(exp, history, config, figures)
    return Outcome(numbers, setup, table({"numbers": numbers, "setup": setup}), figures)


def table(results: dict) -> list[str]:
    """The printed summary of a run (``results``: ``results.json`` or its two parts)."""
    numbers, setup = results["numbers"], results["setup"]
    f, eq = numbers["final_epoch"], numbers["equilibrium"]
    near, grey = numbers["nearest_train_distance"], numbers["mean_grey"]
    return [
        f"GAN on MNIST: {setup['budget']['epochs']} epochs of {setup['n_train']} images, "
        f"batch {setup['budget']['batch_size']}, {setup['budget']['train_seconds']:.0f} s",
        f"{'last epoch':<22}{'L_D':>8}{'L_G':>8}{'D(x)':>8}{'D(G(z))':>9}",
        f"{'  mean':<22}{f['d_loss']:8.3f}{f['g_loss']:8.3f}{f['d_real']:8.3f}"
        f"{f['d_fake']:9.3f}",
        f"{'  at the equilibrium':<22}{eq['d_loss']:8.3f}{eq['g_loss']:8.3f}"
        f"{eq['d_real']:8.3f}{eq['d_fake']:9.3f}",
        f"median distance to the nearest training image: GAN samples "
        f"{near['gan_samples']:.2f}, untrained generator {near['untrained_generator']:.2f}, "
        f"test images {near['test_images']:.2f}",
        f"mean grey value: GAN samples {grey['gan_samples']:.3f}, untrained generator "
        f"{grey['untrained_generator']:.3f}, training images {grey['training_images']:.3f}",
    ]


def _figure_grids(exp, run_dir, epochs: int, image_shape, figures) -> None:
    import matplotlib.pyplot as plt

    from ..plots import image_grid

    shown = [e for e in GRID_EPOCHS if e <= epochs]
    if epochs not in shown:
        shown.append(epochs)
    fig, axes = plt.subplots(1, len(shown), figsize=(2.2 * len(shown), 2.6))
    for ax, e in zip(np.atleast_1d(axes), shown, strict=True):
        images = np.load(run_dir / "samples" / f"epoch_{e:03d}.npy")[:36]
        ax.imshow(image_grid(images, image_shape, ncols=6), cmap="gray", vmin=0, vmax=1)
        ax.set_title("untrained" if e == 0 else f"epoch {e}")
        ax.axis("off")
    fig.suptitle("GAN: images of the same 36 noise vectors after each number of epochs")
    save_figure(exp, fig, "samples_by_epoch.png", figures)


def _figure_curves(exp, history, config, figures) -> None:
    import matplotlib.pyplot as plt

    k = config.record_every
    steps_per_epoch = history[0]["steps"]
    x = np.concatenate([(h["epoch"] - 1) * steps_per_epoch + k * np.arange(len(h["d_loss"]))
                        + min(k, steps_per_epoch) / 2 for h in history]) / steps_per_epoch
    series = {key: np.concatenate([h[key] for h in history])
              for key in ("d_loss", "g_loss", "d_real", "d_fake")}
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4))
    ax1.plot(x, series["d_loss"], label="$L_D$ (discriminator)", lw=0.8)
    ax1.plot(x, series["g_loss"], label="$L_G$ (generator, non-saturating)", lw=0.8)
    ax1.axhline(2 * np.log(2), color="C0", ls=":", label="$2\\log 2$ (equilibrium $L_D$)")
    ax1.axhline(np.log(2), color="C1", ls=":", label="$\\log 2$ (equilibrium $L_G$)")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("loss (nats)")
    ax1.set_title(f"losses, means over {k} steps")
    ax1.legend(fontsize=8)
    ax2.plot(x, series["d_real"], label="$\\sigma(D(x))$, real images", lw=0.8)
    ax2.plot(x, series["d_fake"], label="$\\sigma(D(G(z)))$, generated", lw=0.8)
    ax2.axhline(0.5, color="grey", ls=":", label="1/2 (equilibrium)")
    ax2.set_ylim(0, 1)
    ax2.set_xlabel("epoch")
    ax2.set_title("the discriminator's mean verdicts")
    ax2.legend(fontsize=8)
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
    save_figure(exp, fig, "curves.png", figures)
