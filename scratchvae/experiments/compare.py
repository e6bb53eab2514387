r"""AE, VAE and GAN side by side on the same MNIST training images.

Deck ``000_a112e0488c5566e6.txt`` ends with a *Comparison with AE and GAN*, deck
``004_a9997e39466fe772.txt`` (*AE vs VAE face generation*) with why an AE is a poor
generative model. The three models here are trained on the same training images for the
same number of epochs: an AE and a VAE 784-400-20 (ReLU, Bernoulli decoder on grey values,
:func:`~scratchvae.experiments.common.train_ae` / ``train_vae``) and the GAN of
:mod:`scratchvae.gan` (trained under ``OUT/models/gan`` with the code of the ``gan``
experiment). They are compared on

* **samples**: VAE, decoder means at :math:`z \sim \mathcal N(0, I)`; AE, decoder outputs at
  codes drawn from the Gaussian :math:`\mathcal N(m, C)` fitted to its training codes (its
  main row; at :math:`z \sim \mathcal N(0, I)` as a second row, which the AE was never asked
  to fill); GAN, :math:`G(z)` at :math:`z \sim U(-1, 1)^{96}`, mapped to [0, 1];
* **Fréchet distance in the features of our MNIST classifier**: an MLP 784-256-128-10
  (ReLU) trained here with the library's layers; each set of images is summarized by the
  mean :math:`m` and covariance :math:`C` of its 128 features (the last hidden layer), and

  .. math::
      d^2 = \lVert m_1 - m_2 \rVert^2 + \operatorname{tr}\big(C_1 + C_2
      - 2\,(C_1^{1/2} C_2 C_1^{1/2})^{1/2}\big),

  the squared 2-Wasserstein distance between two Gaussians, against the test images
  (:func:`scratchvae.experiments.generation.frechet_distance`: symmetric square roots by
  eigendecompositions). This is the formula of FID with our own classifier in place of the
  Inception network: comparable between the rows of this table, not with published FIDs.
  Real training images scored the same way give the floor;
* **interpolations**: between the codes (AE) or posterior means (VAE) of pairs of test
  images, and between pairs of noise vectors (GAN: it has no encoder, so it cannot
  interpolate between given images);
* **memorization**: the distance from each sample to its nearest training image, beside
  the same distance for test images (a model that copies its training images would
  produce samples much nearer to them than new images are);
* **reconstruction error** (AE and VAE; the GAN has no encoder): squared error summed over
  the pixels, at the code (AE) or the posterior mean (VAE);
* **test log-likelihood** (VAE only): the importance-weighted estimate of
  :math:`\log p(x)` (:func:`scratchvae.evaluate.log_likelihood`) under the Bernoulli
  decoder on grey values, beside the ELBO. Neither the AE nor the GAN defines a
  likelihood;
* and what each model can do at all (:data:`CAPABILITIES`).

Course notebook: ``notebooks/15_vae_ae_gan.ipynb``; test: ``tests/test_experiment_compare.py``.
"""

from __future__ import annotations

import json

import numpy as np

from .. import datasets
from ..backend import to_numpy
from ..classifier import softmax_cross_entropy_backward, softmax_cross_entropy_forward
from ..evaluate import elbo, latent_means, log_likelihood
from ..files import atomic_write
from ..gan import GANConfig, sample_images, to_unit, train_gan
from ..layers import mlp
from ..optim import Adam
from ..parameters import Parameters
from ..rng import Generator
from ..threads import Threads
from ..train import TrainConfig
from . import Experiment, Outcome
from .common import host, model_dir, refuse_options, save_figure, train_ae, train_vae
from .generation import frechet_distance, lerp, moments, nearest, path_stats

SETTINGS = {
    "quick": dict(n_train=4096, n_test=1000, epochs=3, n_samples=1000, n_nearest=200,
                  n_ll=100, ll_k=50, clf_epochs=2, n_pairs=20),
    "full": dict(n_train=60000, n_test=10000, epochs=30, n_samples=10000, n_nearest=2000,
                 n_ll=2000, ll_k=1000, clf_epochs=10, n_pairs=200),
}
LATENT_DIM, HIDDEN_DIMS, BATCH_SIZE = 20, (400,), 128
CLASSIFIER_SIZES = (784, 256, 128, 10)
STEPS = 9                      # images on every interpolation path, ends included
SETS = ("train_images", "vae", "ae_fitted", "ae_prior", "gan")
SET_TITLES = {"train_images": "training images (real)", "vae": "VAE, z ~ N(0, I)",
              "ae_fitted": "AE, z ~ N(m, C) fitted to its codes",
              "ae_prior": "AE, z ~ N(0, I)", "gan": "GAN, z ~ U(-1, 1)^96"}

#: What each model can and cannot do.
CAPABILITIES = {
    "AE": {"encoder": "yes: a point code f(x)",
           "likelihood": "no (reconstruction error only)",
           "sampling": "no prior: needs a density fitted to its codes afterwards"},
    "VAE": {"encoder": "yes: a distribution q(z|x)",
            "likelihood": "yes: ELBO, and log p(x) by importance sampling",
            "sampling": "yes: z ~ N(0, I), then the decoder"},
    "GAN": {"encoder": "no (cannot map an image to its z)",
            "likelihood": "no (no density; the discriminator is not one)",
            "sampling": "yes: z ~ U(-1, 1)^96, then the generator"},
}


# ---- the classifier whose features score the images ------------------------------------

class MNISTClassifier:
    r"""An MLP :math:`784 \to 256 \to 128 \to 10` (ReLU) from :func:`scratchvae.layers.mlp`,
    trained with the softmax cross-entropy of :mod:`scratchvae.classifier` and Adam, on the
    host in float32. :meth:`features` is the last hidden layer, :math:`h \in \mathbb
    R^{128}` (after its ReLU), where the Fréchet distance is measured."""

    def __init__(self, seed: int = 0):
        self.net = mlp("clf", CLASSIFIER_SIZES, "relu", final_activation=False,
                       input_grad=False)
        shapes = self.net.param_shapes()
        self.params = Parameters.zeros(shapes, np, np.float32)
        self.grads = Parameters.zeros(shapes, np, np.float32)
        self.net.bind(self.params, self.grads)
        self.rng = Generator(seed)
        self.net.initialize(self.rng)

    def fit(self, x, y, epochs: int, batch_size: int = 128, lr: float = 1e-3) -> float:
        """Adam on shuffled minibatches; returns the mean loss of the last epoch."""
        opt = Adam(self.params, lr=lr)
        x = np.asarray(x, dtype=np.float32)
        for _ in range(epochs):
            order, losses = self.rng.permutation(len(x)), []
            for i in range(0, len(x), batch_size):
                idx = order[i:i + batch_size]
                loss, cache = softmax_cross_entropy_forward(self.net.forward(x[idx]), y[idx])
                self.net.backward(softmax_cross_entropy_backward(cache).astype(np.float32))
                opt.step(self.grads)
                losses.append(loss)
        return float(np.mean(losses))

    def _hidden(self, x):
        h = np.asarray(x, dtype=np.float32)
        for layer in self.net.layers[:-1]:
            h = layer.forward(h)
        return h

    def features(self, x, batch: int = 2000) -> np.ndarray:
        """The 128 features of every row of ``x`` (n, 784): (n, 128) float64."""
        return np.concatenate([self._hidden(x[i:i + batch]) for i in range(0, len(x), batch)
                               ]).astype(np.float64)

    def predict(self, x, batch: int = 2000) -> np.ndarray:
        return np.concatenate([np.argmax(self.net.layers[-1].forward(self._hidden(
            x[i:i + batch])), axis=1) for i in range(0, len(x), batch)])

    def save(self, path) -> None:
        atomic_write(path, lambda f: np.save(f, self.params.flat))

    def load(self, path) -> None:
        self.params.flat[...] = np.load(path)


def _classifier(exp: Experiment, s: dict, x_train, y_train) -> MNISTClassifier:
    """Trained once into ``OUT/models/classifier/`` and reused from there."""
    folder = model_dir(exp, "classifier")
    folder.mkdir(parents=True, exist_ok=True)
    config = {"sizes": list(CLASSIFIER_SIZES), "epochs": s["clf_epochs"], "seed": exp.seed,
              "n_train": len(x_train), "batch_size": 128, "lr": 1e-3}
    clf = MNISTClassifier(exp.seed)
    path, config_path = folder / "params.npy", folder / "config.json"
    if path.is_file() and json.loads(config_path.read_text()) == config:
        clf.load(path)
        return clf
    exp.log(f"training the MNIST classifier: {s['clf_epochs']} epochs")
    clf.fit(x_train, y_train, s["clf_epochs"])
    config_path.write_text(json.dumps(config, indent=2) + "\n")
    clf.save(path)
    return clf


# ---- the experiment ----------------------------------------------------------------------

def _decode(model, z) -> np.ndarray:
    """Decoder means at the host codes z (n, d): (n, D) on the host, in batches."""
    return np.concatenate([host(model.sample(len(zb), z=model.asarray(zb)))
                           for zb in np.array_split(z, max(1, len(z) // 2000))]
                          ).astype(np.float64)


def _samples(vae, ae, gan, codes_ae, n: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    m, c = moments(codes_ae)
    return {"vae": _decode(vae, rng.standard_normal((n, LATENT_DIM))),
            "ae_fitted": _decode(ae, rng.multivariate_normal(m, c, size=n)),
            "ae_prior": _decode(ae, rng.standard_normal((n, LATENT_DIM))),
            "gan": sample_images(gan, n)}


def _reconstruction_error(model, x, codes) -> float:
    """Mean over images of the squared error summed over pixels, at the given codes."""
    return float(np.mean(np.sum((_decode(model, codes) - x) ** 2, axis=1)))


def run(exp: Experiment) -> Outcome:
    """Train (or reuse) the AE, the VAE, the GAN and the classifier, then score the three
    models and draw the figures."""
    refuse_options(exp)
    s = SETTINGS["quick" if exp.quick else "full"]
    ds = datasets.load("mnist", exp.data_dir)
    x_train, y_train = ds.x_train[:s["n_train"]], ds.y_train[:s["n_train"]]
    x_test, y_test = ds.x_test[:s["n_test"]], ds.y_test[:s["n_test"]]
    config = TrainConfig(dataset="mnist", epochs=s["epochs"], batch_size=BATCH_SIZE,
                         latent_dim=LATENT_DIM, hidden_dims=HIDDEN_DIMS, seed=exp.seed,
                         n_train=s["n_train"], n_test=s["n_test"])
    vae, vae_budget = train_vae(exp, "vae", config, ds.input_dim)
    with Threads(1):
        ae, ae_budget = train_ae(exp, "ae", x_train, TrainConfig.from_json(config.to_json()))
    gan_config = GANConfig(epochs=s["epochs"], seed=exp.seed, n_train=len(x_train))
    gan, history = train_gan(gan_config, x_train, model_dir(exp, "gan"),
                             backend=exp.backend, log=exp.log)
    gan_budget = {"epochs": gan_config.epochs, "batch_size": gan_config.batch_size,
                  "train_seconds": round(sum(h["epoch_seconds"] for h in history), 1)}
    with Threads(1):
        clf = _classifier(exp, s, x_train, y_train)
        exp.log("scoring")
        numbers, shown = _score(exp, s, vae, ae, gan, clf, x_train, x_test, y_test)
    exp.log("test log-likelihood of the VAE")
    ll, ll_se = log_likelihood(vae, x_test[:s["n_ll"]], k=s["ll_k"], threads="auto")
    bound = elbo(vae, x_test[:s["n_ll"]])
    numbers["vae_test_log_likelihood"] = {"log_px": round(ll, 2), "stderr": round(ll_se, 2),
                                          "elbo": round(-float(bound["loss"]), 2),
                                          "n_images": s["n_ll"], "k": s["ll_k"]}
    numbers["capabilities"] = CAPABILITIES

    figures = []
    _figure_samples(exp, shown["samples"], ds.image_shape, figures)
    _figure_interpolations(exp, shown["paths"], ds.image_shape, figures)
    _figure_nearest(exp, shown["nearest"], ds.image_shape, figures)
    setup = {
        "dataset": "mnist", "n_train": len(x_train), "n_test": len(x_test),
        "ae_vae": f"784-{'-'.join(map(str, HIDDEN_DIMS))}-{LATENT_DIM} ReLU, Bernoulli decoder "
                  f"on grey values, adam lr 1e-3, batch {BATCH_SIZE}",
        "gan": "discriminator 784-256-256-1 LeakyReLU 0.01; generator 96-1024-1024-784 "
               "ReLU, tanh; non-saturating loss; adam lr 1e-3, betas (0.5, 0.999), batch 128",
        "classifier": f"MLP {'-'.join(map(str, CLASSIFIER_SIZES))} ReLU, features: the "
                      f"128-wide last hidden layer; {s['clf_epochs']} epochs, adam lr 1e-3",
        "ae_sampling": "main row: z ~ N(m, C) fitted to the AE's training codes; also "
                       "z ~ N(0, I)",
        "n_samples": s["n_samples"], "n_nearest": s["n_nearest"],
        "interpolation_pairs": s["n_pairs"], "interpolation_steps": STEPS,
        "log_likelihood": f"importance sampling, K = {s['ll_k']}, first {s['n_ll']} test "
                          f"images; Bernoulli decoder on grey values (not comparable with "
                          f"binarized-MNIST likelihoods)",
        "budgets": {"ae": ae_budget, "vae": vae_budget, "gan": gan_budget},
    }
    return Outcome(numbers, setup, table({"numbers": numbers, "setup": setup}), figures)


def _score(exp, s, vae, ae, gan, clf, x_train, x_test, y_test):
    n, n_near = s["n_samples"], s["n_nearest"]
    codes_ae = latent_means(ae, x_train)
    samples = _samples(vae, ae, gan, codes_ae, n, exp.seed + 3)
    rng = np.random.default_rng(exp.seed + 5)
    samples["train_images"] = x_train[rng.choice(len(x_train), min(n, len(x_train)),
                                                 replace=False)].astype(np.float64)
    m_test, c_test = moments(clf.features(x_test))
    frechet, near = {}, {}
    d_test = nearest(x_test[:n_near], x_train)[0]
    for key in SETS:
        m, c = moments(clf.features(samples[key]))
        frechet[key] = round(frechet_distance(m, c, m_test, c_test), 3)
        if key != "train_images":
            d = nearest(samples[key][:n_near], x_train)[0]
            near[key] = {"median": round(float(np.median(d)), 3),
                         "p05": round(float(np.percentile(d, 5)), 3),
                         "ratio_to_test": round(float(np.median(d) / np.median(d_test)), 3)}
    near["test_images"] = {"median": round(float(np.median(d_test)), 3),
                           "p05": round(float(np.percentile(d_test, 5)), 3),
                           "ratio_to_test": 1.0}

    # interpolations: pairs of test images (AE, VAE), pairs of noise vectors (GAN)
    pairs = rng.choice(len(x_test), size=(s["n_pairs"], 2), replace=False)
    t = np.linspace(0.0, 1.0, STEPS)
    mu = latent_means(vae, x_test[pairs.ravel()]).reshape(s["n_pairs"], 2, -1)
    code = latent_means(ae, x_test[pairs.ravel()]).reshape(s["n_pairs"], 2, -1)
    z_gan = rng.uniform(-1.0, 1.0, (s["n_pairs"], 2, gan.noise_dim))
    paths = {}
    for key, model, z in (("vae", vae, mu), ("ae", ae, code)):
        zs = lerp(z[:, 0], z[:, 1], t)                               # (T, pairs, d)
        paths[key] = _decode(model, zs.reshape(-1, zs.shape[-1])).reshape(STEPS, -1, 784)
    zs = lerp(z_gan[:, 0], z_gan[:, 1], t).reshape(-1, gan.noise_dim)
    paths["gan"] = to_numpy(to_unit(gan.generate(z=gan.asarray(zs)))).astype(
        np.float64).reshape(STEPS, -1, 784)
    interpolation = {key: {k: round(v, 4) for k, v in path_stats(p).items()}
                     for key, p in paths.items()}

    recon = {"ae": round(_reconstruction_error(ae, x_test, latent_means(ae, x_test)), 3),
             "vae": round(_reconstruction_error(vae, x_test, latent_means(vae, x_test)), 3)}
    accuracy = float(np.mean(clf.predict(x_test) == y_test))
    numbers = {"frechet_classifier_features": frechet, "nearest_train_distance": near,
               "interpolation": interpolation, "test_reconstruction_sq_error": recon,
               "classifier_test_accuracy": round(accuracy, 4)}
    shown = {"samples": {k: v[:36] for k, v in samples.items()},
             "paths": {k: p[:, :3] for k, p in paths.items()},
             "nearest": {k: (samples[k][:8], x_train[nearest(samples[k][:8], x_train)[1]])
                         for k in ("vae", "ae_fitted", "gan")}}
    return numbers, shown


def table(results: dict) -> list[str]:
    """The printed comparison (``results``: ``results.json`` or its two parts)."""
    numbers, setup = results["numbers"], results["setup"]
    fd, near = numbers["frechet_classifier_features"], numbers["nearest_train_distance"]
    recon, ll = numbers["test_reconstruction_sq_error"], numbers["vae_test_log_likelihood"]
    interp = numbers["interpolation"]
    b = setup["budgets"]
    lines = [f"AE, VAE and GAN on MNIST ({setup['n_train']} training images; epochs AE "
             f"{b['ae']['epochs']}, VAE {b['vae']['epochs']}, GAN {b['gan']['epochs']})",
             f"Fréchet distance in the features of our MNIST classifier (test accuracy "
             f"{numbers['classifier_test_accuracy']:.3f}), to the test images; nearest "
             f"training image (median distance, ratio to test images')",
             f"{'images':<40}{'Fréchet':>9}{'nearest':>9}{'ratio':>7}"]
    for key in SETS:
        nd = near.get(key, {})
        lines.append(f"{SET_TITLES[key]:<40}{fd[key]:9.2f}"
                     + (f"{nd['median']:9.2f}{nd['ratio_to_test']:7.2f}" if nd else ""))
    lines.append(f"{'test images (real)':<40}{'':>9}{near['test_images']['median']:9.2f}"
                 f"{1.0:7.2f}")
    lines.append("interpolation path ratio (1 = straight cross-fade): "
                 + ", ".join(f"{k.upper()} {v['path_ratio']:.2f}" for k, v in interp.items()))
    lines.append(f"test reconstruction, squared error per image: AE {recon['ae']:.2f}, "
                 f"VAE {recon['vae']:.2f}, GAN n/a (no encoder)")
    lines.append(f"VAE test log p(x) {ll['log_px']:.2f} ± {ll['stderr']:.2f} nats (K = "
                 f"{ll['k']}, {ll['n_images']} images; ELBO {ll['elbo']:.2f}); AE, GAN: "
                 f"no likelihood")
    lines.append(f"{'':<5}{'encoder':<37}{'likelihood':<48}sampling")
    for model, cap in numbers["capabilities"].items():
        lines.append(f"{model:<5}{cap['encoder']:<37}{cap['likelihood']:<48}{cap['sampling']}")
    return lines


def _figure_samples(exp, samples, image_shape, figures) -> None:
    import matplotlib.pyplot as plt

    from ..plots import image_grid

    fig, axes = plt.subplots(1, len(SETS), figsize=(3.2 * len(SETS), 3.6))
    for ax, key in zip(axes, SETS, strict=True):
        ax.imshow(image_grid(samples[key], image_shape, ncols=6), cmap="gray", vmin=0, vmax=1)
        ax.set_title(SET_TITLES[key], fontsize=9)
        ax.axis("off")
    save_figure(exp, fig, "samples.png", figures)


def _figure_interpolations(exp, paths, image_shape, figures) -> None:
    import matplotlib.pyplot as plt

    from ..plots import image_grid

    names = {"vae": "VAE: between posterior means of two test images",
             "ae": "AE: between codes of the same test images",
             "gan": "GAN: between two noise vectors (no encoder)"}
    fig, axes = plt.subplots(3, 1, figsize=(7, 7.5))
    for ax, key in zip(axes, ("vae", "ae", "gan"), strict=True):
        p = paths[key]                                    # (T, 3, D)
        rows = np.transpose(p, (1, 0, 2)).reshape(-1, p.shape[-1])
        ax.imshow(image_grid(rows, image_shape, ncols=p.shape[0]), cmap="gray", vmin=0, vmax=1)
        ax.set_title(names[key], fontsize=9)
        ax.axis("off")
    save_figure(exp, fig, "interpolations.png", figures)


def _figure_nearest(exp, nearest, image_shape, figures) -> None:
    import matplotlib.pyplot as plt

    from ..plots import image_grid

    fig, axes = plt.subplots(1, len(nearest), figsize=(4.2 * len(nearest), 1.9))
    for ax, (key, (samples, neighbours)) in zip(axes, nearest.items(), strict=True):
        ax.imshow(image_grid(np.concatenate([samples, neighbours]), image_shape,
                             ncols=len(samples)), cmap="gray", vmin=0, vmax=1)
        ax.set_title(f"{SET_TITLES[key]}\ntop: samples, bottom: nearest training image",
                     fontsize=8)
        ax.axis("off")
    save_figure(exp, fig, "nearest_neighbours.png", figures)
