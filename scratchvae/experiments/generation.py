r"""Generation: prior samples, interpolations and traversals of a VAE, beside an AE's.

A VAE is a generative model: draw :math:`z \sim p(z) = \mathcal N(0, I)` and decode,
:math:`\mathbb E[x \mid z]` (deck ``002_3facc1002d729879.txt`` §VIII *Applications of VAE:
Image Generation*). An autoencoder (AE) with the same decoder has no prior: nothing puts its
codes where :math:`\mathcal N(0, I)` draws. For MNIST and Fashion-MNIST this experiment trains
a VAE and an AE (784-400-20-400-784, ReLU, Bernoulli decoder on grey values) and measures:

* **samples** — decoder means at :math:`z \sim \mathcal N(0, I)` (VAE and AE), and at
  :math:`z \sim \mathcal N(m, C)` with :math:`(m, C)` fitted to the AE's training codes after
  training (the ex-post density estimate of Ghosh et al. 2020). Each set of images is scored
  against the training images by a Fréchet distance in the top principal components (below),
  by the distance to the nearest training image, and by the classes of those nearest images;
  held-out test images score the same way and give the reference. One more set tells the
  decoder's quality from the prior's fit: the VAE decoding draws
  :math:`z = \mu_\phi(x) + \sigma_\phi(x) \odot \varepsilon` for test images x, i.e. from
  the aggregate posterior :math:`q(z) = \tfrac1N \sum_n q_\phi(z \mid x_n)`; the same
  Fréchet distance in latent space, between the moments of these draws (or of the AE's codes)
  and :math:`\mathcal N(0, I)`, measures how far the codes are from the prior;
* **interpolations** between the codes of random pairs of test images (the posterior means
  :math:`\mu_\phi(x)` of the VAE, the codes :math:`f_\phi(x)` of the AE), linear and spherical
  (:func:`lerp`, :func:`slerp`): the norm of the code half-way, how far the decoded midpoint is
  from every training image, and how evenly the decoded path moves (:func:`path_stats`);
* **traversals** of single latent dimensions: for the VAE, :math:`z_j` from -3 to 3 (the
  prior's scale) in the dimensions of largest KL, with the others at a test image's posterior
  mean; for the AE, :math:`z_j` over mean ± 3 standard deviations of its codes (the AE has no
  scale of its own).

Fréchet distance in PCA space: the images are projected on the top ``k`` principal
components of the training images, and each set is summarized by the mean and covariance of
its projections; between two Gaussians

.. math::
    \mathrm{FD} = \lVert m_1 - m_2 \rVert^2 + \operatorname{tr}\big(C_1 + C_2
    - 2\,(C_1^{1/2} C_2 C_1^{1/2})^{1/2}\big)

(the formula of FID, Heusel et al. 2017, with PCA coordinates instead of Inception features:
a number to compare sets scored the same way here, not an FID).

Course notebook: ``notebooks/09_generation.ipynb``; the AE-versus-VAE picture behind it:
``notebooks/01_ae_vs_vae.ipynb``; test: ``tests/test_experiment_generation.py``.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass

import numpy as np

from .. import checkpoint, datasets
from ..evaluate import active_units, elbo, latent_means
from ..kl import kl_std_normal_forward
from ..threads import AUTO
from ..train import TrainConfig, build_model, choose_threads
from . import Experiment, ExperimentError, Outcome
from .common import (
    PCA,
    host,
    refuse_options,
    save_figure,
    train_ae,
    train_vae,
    training_budget,
)

DATASETS = ("mnist", "fashion-mnist")
TITLES = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST"}


@dataclass(frozen=True)
class Sizes:
    """How much of everything a run uses (quick or full)."""

    n_train: int | None       # training images (None: all 60 000)
    n_test: int | None        # test images (None: all 10 000)
    epochs: int               # of the VAE and of the AE
    n_samples: int            # images per set for the Fréchet distance
    n_nearest: int            # images per set for the nearest-training-image scores
    n_pairs: int              # test pairs interpolated
    n_bases: int              # test images each traversal starts from
    pca_k: int                # principal components of the Fréchet distance
    pca_fit: int              # training images the principal components are fitted to


QUICK = Sizes(n_train=10_000, n_test=1000, epochs=5, n_samples=1000, n_nearest=300,
              n_pairs=100, n_bases=20, pca_k=20, pca_fit=2000)
FULL = Sizes(n_train=None, n_test=None, epochs=30, n_samples=10_000, n_nearest=2000,
             n_pairs=500, n_bases=100, pca_k=20, pca_fit=10_000)
LATENT_DIM = 20
HIDDEN_DIMS = (400,)
BATCH_SIZE = 128
STEPS = 9            # points on every interpolation and traversal path, ends included
TRAVERSED = 5        # dimensions traversed, besides the least used one
RANGE = 3.0          # traversals: -3..3 (VAE), mean ± 3 std (AE)


# ---- the geometry of paths in latent space -----------------------------------------

def lerp(z0, z1, t):
    r"""Linear interpolation :math:`z(t) = (1 - t)\,z_0 + t\,z_1`.

    z0, z1: (n, d); t: (T,). Returns (T, n, d).
    """
    t = np.asarray(t, dtype=np.float64)[:, None, None]
    return (1 - t) * np.asarray(z0, np.float64) + t * np.asarray(z1, np.float64)


def slerp(z0, z1, t):
    r"""Spherical interpolation (Shoemake 1985; for generative models White 2016).

    .. math::
        z(t) = \frac{\sin((1 - t)\,\Omega)}{\sin\Omega}\, z_0
             + \frac{\sin(t\,\Omega)}{\sin\Omega}\, z_1, \qquad
        \cos\Omega = \frac{z_0 \cdot z_1}{\lVert z_0\rVert\,\lVert z_1\rVert}

    For :math:`\lVert z_0\rVert = \lVert z_1\rVert` the path keeps that norm and the angle to
    :math:`z_0` grows as :math:`t\,\Omega`; a straight line cuts through the inside of the
    sphere, where a high-dimensional Gaussian has little mass (its draws have norm close
    to :math:`\sqrt d`). Pairs that are (anti)parallel, :math:`\sin\Omega \approx 0`, are
    interpolated linearly.

    z0, z1: (n, d); t: (T,). Returns (T, n, d).
    """
    z0, z1 = np.asarray(z0, np.float64), np.asarray(z1, np.float64)
    t = np.asarray(t, dtype=np.float64)[:, None, None]
    norms = np.linalg.norm(z0, axis=1) * np.linalg.norm(z1, axis=1)
    cos = np.clip(np.sum(z0 * z1, axis=1) / np.maximum(norms, 1e-300), -1.0, 1.0)
    omega = np.arccos(cos)[None, :, None]                      # (1, n, 1)
    sin = np.sin(omega)
    curved = sin > 1e-6
    safe = np.where(curved, sin, 1.0)
    w0 = np.where(curved, np.sin((1 - t) * omega) / safe, 1 - t)
    w1 = np.where(curved, np.sin(t * omega) / safe, t)
    return w0 * z0 + w1 * z1


def path_stats(images) -> dict:
    r"""How a decoded path moves through pixel space.

    images: (T, n, D), the T images along each of n paths. With steps
    :math:`s_i = \lVert x_{i+1} - x_i\rVert`:

    * ``path_ratio``: :math:`\sum_i s_i / \lVert x_T - x_1\rVert`, at least 1; 1 for images
      that move along a straight line in pixel space (a cross-fade);
    * ``max_step_share``: :math:`\max_i s_i / \sum_i s_i`, :math:`1/(T - 1)` for even
      steps, close to 1 when the whole change happens in one jump.

    Both are means over the n paths.
    """
    images = np.asarray(images, dtype=np.float64)
    steps = np.linalg.norm(np.diff(images, axis=0), axis=2)    # (T - 1, n)
    length = steps.sum(axis=0)
    straight = np.linalg.norm(images[-1] - images[0], axis=1)
    return {"path_ratio": float(np.mean(length / np.maximum(straight, 1e-12))),
            "max_step_share": float(np.mean(steps.max(axis=0) / np.maximum(length, 1e-12)))}


# ---- scores of a set of images -----------------------------------------------------

def moments(codes) -> tuple[np.ndarray, np.ndarray]:
    """Mean (k,) and covariance (k, k) of the rows of ``codes`` (n, k), n >= 2."""
    codes = np.asarray(codes, dtype=np.float64)
    return codes.mean(axis=0), np.cov(codes, rowvar=False)


def _psd_sqrt(c) -> np.ndarray:
    """The symmetric square root of a covariance matrix, by its eigendecomposition."""
    w, v = np.linalg.eigh((c + c.T) / 2)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_distance(m1, c1, m2, c2) -> float:
    r"""Fréchet (2-Wasserstein) distance squared between :math:`\mathcal N(m_1, C_1)` and
    :math:`\mathcal N(m_2, C_2)`:
    :math:`\lVert m_1 - m_2\rVert^2 + \operatorname{tr}(C_1 + C_2 - 2 (C_1^{1/2} C_2
    C_1^{1/2})^{1/2})`.

    :math:`C_1^{1/2} C_2 C_1^{1/2}` is symmetric positive semi-definite, so the trace of its
    square root is the sum of the square roots of its eigenvalues (they equal those of
    :math:`C_1 C_2`, which is not symmetric). m: (k,); c: (k, k).
    """
    m1, m2 = np.asarray(m1, np.float64), np.asarray(m2, np.float64)
    c1, c2 = np.asarray(c1, np.float64), np.asarray(c2, np.float64)
    root = _psd_sqrt(c1)
    middle = root @ c2 @ root
    eig = np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0.0, None)
    return float(np.sum((m1 - m2) ** 2) + np.trace(c1) + np.trace(c2) - 2 * np.sum(np.sqrt(eig)))


def nearest(queries, reference, block: int = 500) -> tuple[np.ndarray, np.ndarray]:
    r"""For each row of ``queries`` (n, D), the Euclidean distance to the nearest row of
    ``reference`` (N, D) and that row's index: two arrays (n,).

    :math:`\lVert q - r\rVert^2 = \lVert q\rVert^2 - 2\,q\cdot r + \lVert r\rVert^2`, a block
    of ``block`` queries at a time (a (block, N) matrix of products).
    """
    reference = np.asarray(reference, dtype=np.float32)
    queries = np.asarray(queries, dtype=np.float32)
    r2 = np.einsum("ij,ij->i", reference, reference)
    dist, index = np.empty(len(queries)), np.empty(len(queries), dtype=np.int64)
    for start in range(0, len(queries), block):
        q = queries[start:start + block]
        d2 = np.einsum("ij,ij->i", q, q)[:, None] - 2 * q @ reference.T + r2[None, :]
        best = np.argmin(d2, axis=1)
        index[start:start + block] = best
        dist[start:start + block] = np.sqrt(np.clip(d2[np.arange(len(q)), best], 0, None))
    return dist, index


def total_variation(p, q) -> float:
    r"""Total variation distance :math:`\tfrac12 \sum_c |p_c - q_c|` between two
    distributions over the same classes (arrays (C,))."""
    return float(0.5 * np.sum(np.abs(np.asarray(p, np.float64) - np.asarray(q, np.float64))))


class Reference:
    """The training images a set of generated images is compared with.

    x_train: (N, D) host array; y_train: (N,) labels 0..9; ``k`` principal components for
    the Fréchet distance, fitted to the first ``n_fit`` training images (the top
    directions of a few thousand images are those of all of them, at a fraction of the
    cost); the reference moments are those of all N.
    """

    def __init__(self, x_train, y_train, k: int, n_fit: int):
        self.x, self.y = x_train, y_train
        self.pca = PCA(x_train[:n_fit], k)
        self.m, self.c = moments(self.pca.encode(x_train))
        self.shares = np.bincount(y_train, minlength=10) / len(y_train)

    def score(self, images, n_nearest: int) -> dict:
        """Scores of ``images`` (n, D): ``frechet_pca`` (all n images); the median distance
        to the nearest training image, the class shares of those nearest images and their
        total variation distance to the training set's class shares (``label_tv``), from
        the first ``n_nearest`` images."""
        m, c = moments(self.pca.encode(images))
        dist, index = nearest(images[:n_nearest], self.x)
        shares = np.bincount(self.y[index], minlength=10) / len(index)
        return {"frechet_pca": frechet_distance(m, c, self.m, self.c),
                "nearest_distance": float(np.median(dist)),
                "label_tv": total_variation(shares, self.shares),
                "label_shares": shares.tolist()}


# ---- the models ----------------------------------------------------------------------

def _decode(model, z) -> np.ndarray:
    """Decoder means at the codes z (n, d), on the host (n, D), in batches."""
    parts = [host(model.sample(len(zb), z=model.asarray(zb.astype(np.float32))))
             for zb in np.array_split(z, max(1, len(z) // 2000))]
    return np.concatenate(parts)


def _configs(exp: Experiment, name: str, sizes: Sizes) -> tuple[TrainConfig, TrainConfig]:
    """The VAE's and the AE's training configurations for data set ``name``; the VAE's
    is the run given with ``--from`` where that run was trained on ``name``."""
    vae = TrainConfig(dataset=name, epochs=sizes.epochs, batch_size=BATCH_SIZE,
                      latent_dim=LATENT_DIM, hidden_dims=HIDDEN_DIMS, seed=exp.seed,
                      n_train=sizes.n_train, n_test=sizes.n_test)
    if exp.from_run is not None and _from_config(exp).dataset == name:
        vae = _from_config(exp)
    ae = TrainConfig.from_json({**vae.to_json(), "epochs": sizes.epochs, "seed": exp.seed})
    return vae, ae


def _from_config(exp: Experiment) -> TrainConfig:
    config = TrainConfig.from_json(json.loads((exp.from_run / "config.json").read_text()))
    if config.dataset not in DATASETS:
        raise ExperimentError(f"--from {exp.from_run}: a model of {config.dataset!r}; the "
                              f"generation experiment uses {' or '.join(DATASETS)}")
    return config


def _vae(exp: Experiment, name: str, config: TrainConfig, input_dim: int):
    if exp.from_run is not None and _from_config(exp).dataset == name:
        config.backend = exp.backend
        model = build_model(config, input_dim)
        checkpoint.restore(exp.from_run / "checkpoint.npz", model)
        budget = training_budget(exp.from_run, config.epochs, config.batch_size)
        return model, {**budget, "from": str(exp.from_run)}
    return train_vae(exp, f"{name}-vae", config, input_dim)


# ---- one data set --------------------------------------------------------------------

def _one_dataset(exp: Experiment, name: str, sizes: Sizes, figures: list):
    ds = datasets.load(name, exp.data_dir)
    vae_config, ae_config = _configs(exp, name, sizes)
    x_train, y_train = ds.x_train[:vae_config.n_train], ds.y_train[:vae_config.n_train]
    x_test = ds.x_test[:sizes.n_test]
    vae, vae_budget = _vae(exp, name, vae_config, ds.input_dim)
    ae, ae_budget = train_ae(exp, f"{name}-ae", x_train, ae_config)
    # the scoring runs with the thread count chosen as training chooses it (two BLAS threads
    # are slower than one on a 2-core machine that is busy with other work)
    threads = choose_threads(AUTO, vae_config, vae, vae.asarray(x_train[:BATCH_SIZE]))
    exp.log(f"{TITLES[name]}: scoring")
    with threads or contextlib.nullcontext():
        numbers = _score(exp, name, sizes, ds, vae, ae, x_train, y_train, x_test, figures)
    setup = {"n_train": len(x_train), "n_test": len(x_test), "vae": vae_config.to_json(),
             "ae": ae_config.to_json(), "budget": {"vae": vae_budget, "ae": ae_budget}}
    for key in ("data_dir", "out"):
        setup["vae"].pop(key), setup["ae"].pop(key)
    return numbers, setup


def _score(exp, name, sizes, ds, vae, ae, x_train, y_train, x_test, figures) -> dict:
    """The numbers of one data set (see the module's docstring), and its four figures."""
    rng = np.random.default_rng(exp.seed + 100)
    ref = Reference(x_train, y_train, sizes.pca_k, sizes.pca_fit)
    test_elbo = elbo(vae, x_test)
    ae_recon = sum(float(ae.loss(ae.asarray(xb)).loss) * len(xb)
                   for xb in np.array_split(x_test, 10)) / len(x_test)

    # samples
    d = vae.latent_dim
    mu, logvar = (host(a).astype(np.float64) for a in vae.encode(vae.asarray(x_test)))
    ae_codes = latent_means(ae, x_train).astype(np.float64)
    code_m, code_c = moments(ae_codes)
    chol = np.linalg.cholesky(code_c + 1e-6 * np.eye(d))
    z_prior = rng.standard_normal((sizes.n_samples, d))
    z_fitted = code_m + rng.standard_normal((sizes.n_samples, d)) @ chol.T
    test_pick = rng.permutation(len(x_test))[:min(sizes.n_samples, len(x_test))]
    z_posterior = (mu[test_pick] + np.exp(0.5 * logvar[test_pick])
                   * rng.standard_normal((len(test_pick), d)))
    sets = {"test_images": x_test[test_pick], "vae_prior": _decode(vae, z_prior),
            "vae_posterior": _decode(vae, z_posterior), "ae_prior": _decode(ae, z_prior),
            "ae_fitted_gaussian": _decode(ae, z_fitted)}
    samples = {key: ref.score(images, sizes.n_nearest) for key, images in sets.items()}

    # latent statistics: where the codes are, against the prior N(0, I)
    vae_mu = mu
    ae_test_codes = latent_means(ae, x_test).astype(np.float64)
    latent = {key: {"mean_norm": float(np.linalg.norm(c.mean(axis=0))),
                    "std_min": float(c.std(axis=0).min()),
                    "std_max": float(c.std(axis=0).max()),
                    "median_norm": float(np.median(np.linalg.norm(c, axis=1))),
                    "frechet_to_prior": frechet_distance(*moments(c), np.zeros(d), np.eye(d))}
              for key, c in (("vae_means", vae_mu), ("vae_posterior_draws", z_posterior),
                             ("ae_codes", ae_test_codes))}
    latent["prior_median_norm"] = float(np.median(np.linalg.norm(z_prior, axis=1)))

    # interpolations
    a, b = rng.choice(len(x_test), size=(2, sizes.n_pairs), replace=True)
    b = np.where(a == b, (b + 1) % len(x_test), b)
    t = np.linspace(0.0, 1.0, STEPS)
    paths, interpolation = {}, {}
    for model_name, codes in (("vae", vae_mu), ("ae", ae_test_codes)):
        model = vae if model_name == "vae" else ae
        for how, fn in (("linear", lerp), ("spherical", slerp)):
            z = fn(codes[a], codes[b], t)                           # (T, n, d)
            images = _decode(model, z.reshape(-1, d)).reshape(STEPS, sizes.n_pairs, -1)
            ends = (np.linalg.norm(z[0], axis=1) + np.linalg.norm(z[-1], axis=1)) / 2
            mid_dist, _ = nearest(images[STEPS // 2], ref.x)
            end_dist, _ = nearest(images[0], ref.x)
            paths[f"{model_name}_{how}"] = (z, images)
            interpolation[f"{model_name}_{how}"] = {
                "midpoint_norm_ratio": float(np.mean(np.linalg.norm(z[STEPS // 2], axis=1)
                                                     / ends)),
                "midpoint_nearest_distance": float(np.median(mid_dist)),
                "endpoint_nearest_distance": float(np.median(end_dist)),
                **path_stats(images)}

    # traversals
    n_active, variances = active_units(vae, x_test)
    kl_dims = kl_std_normal_forward(mu, logvar, per_dim=True)[0].mean(axis=0)
    bases = vae_mu[:sizes.n_bases]
    vae_dims = [*np.argsort(kl_dims)[::-1][:TRAVERSED], int(np.argmin(kl_dims))]
    vae_values = [np.linspace(-RANGE, RANGE, STEPS)] * len(vae_dims)
    ae_std = ae_test_codes.std(axis=0)
    ae_dims = [*np.argsort(ae_std)[::-1][:TRAVERSED], int(np.argmin(ae_std))]
    ae_values = [np.linspace(m - RANGE * s, m + RANGE * s, STEPS)
                 for m, s in zip(ae_test_codes.mean(axis=0)[ae_dims], ae_std[ae_dims],
                                 strict=True)]
    vae_trav = [traverse(vae, bases, j, v) for j, v in zip(vae_dims, vae_values, strict=True)]
    ae_trav = [traverse(ae, ae_test_codes[:sizes.n_bases], j, v)
               for j, v in zip(ae_dims, ae_values, strict=True)]
    traversal = {
        "vae": {"active_units": n_active, "dims": [int(j) for j in vae_dims],
                "kl": [float(kl_dims[j]) for j in vae_dims],
                "variance_of_mean": [float(variances[j]) for j in vae_dims],
                "pixel_change": [_pixel_change(im) for im in vae_trav]},
        "ae": {"dims": [int(j) for j in ae_dims], "code_std": [float(ae_std[j]) for j in ae_dims],
               "pixel_change": [_pixel_change(im) for im in ae_trav]}}

    _figure_samples(exp, name, sets, ds.image_shape, figures)
    _figure_interpolations(exp, name, paths, x_test[a], x_test[b], ds.image_shape, figures)
    _figure_norms(exp, name, paths, t, figures)
    _figure_traversals(exp, name, vae_trav, ae_trav, traversal, ds.image_shape, figures)
    numbers = {"test": {"vae_neg_elbo": test_elbo["loss"], "vae_recon": test_elbo["recon"],
                        "vae_kl": test_elbo["kl"], "ae_recon": ae_recon},
               "samples": samples, "interpolation": interpolation, "traversal": traversal,
               "latent": latent}
    return _round(numbers)


def traverse(model, bases, dim: int, values) -> np.ndarray:
    r"""Decoder means along one latent dimension: :math:`z = \text{base}` with
    :math:`z_{\text{dim}}` set to each value in turn.

    bases: (n, d) codes; values: (T,). Returns (T, n, D).
    """
    values = np.asarray(values, dtype=np.float64)
    z = np.repeat(np.asarray(bases, np.float64)[None], len(values), axis=0)   # (T, n, d)
    z[:, :, dim] = values[:, None]
    return _decode(model, z.reshape(-1, z.shape[2])).reshape(len(values), len(bases), -1)


def _pixel_change(images) -> float:
    """Mean over the paths of the summed pixel-space steps along a traversal (T, n, D)."""
    return float(np.mean(np.linalg.norm(np.diff(images, axis=0), axis=2).sum(axis=0)))


def _round(value, digits: int = 4):
    """Floats rounded to ``digits`` significant digits, throughout a nested structure."""
    if isinstance(value, dict):
        return {k: _round(v, digits) for k, v in value.items()}
    if isinstance(value, list):
        return [_round(v, digits) for v in value]
    if isinstance(value, float):
        return float(f"{value:.{digits}g}")
    return value


# ---- figures -------------------------------------------------------------------------

SET_TITLES = {"test_images": "test images (real)", "vae_prior": "VAE: z ~ N(0, I)",
              "vae_posterior": "VAE: z ~ q(z|x), test x", "ae_prior": "AE: z ~ N(0, I)",
              "ae_fitted_gaussian": "AE: z ~ N(m, C) fitted"}
PATH_TITLES = {"vae_linear": "VAE linear", "vae_spherical": "VAE spherical",
               "ae_linear": "AE linear", "ae_spherical": "AE spherical"}


def _figure_samples(exp, name, sets, image_shape, figures):
    import matplotlib.pyplot as plt

    from ..plots import image_grid

    fig, axes = plt.subplots(1, len(sets), figsize=(3.2 * len(sets), 3.6))
    for ax, (key, images) in zip(axes, sets.items(), strict=True):
        ax.imshow(image_grid(images[:64], image_shape, ncols=8), cmap="gray", vmin=0, vmax=1)
        ax.set_title(SET_TITLES[key], fontsize=10)
        ax.axis("off")
    fig.suptitle(f"{TITLES[name]}: decoder means E[x | z] (first 64 of each set)")
    save_figure(exp, fig, f"{name}_samples.png", figures)


def _figure_interpolations(exp, name, paths, x_a, x_b, image_shape, figures, n_show=3):
    import matplotlib.pyplot as plt

    from ..plots import image_grid

    rows, labels = [], []
    for i in range(n_show):
        for key, (_, images) in paths.items():
            rows.append(np.concatenate([x_a[i:i + 1], images[:, i], x_b[i:i + 1]]))
            labels.append(f"pair {i + 1}: {PATH_TITLES[key]}")
    h = image_shape[0]
    fig, ax = plt.subplots(figsize=(0.55 * (STEPS + 2), 0.55 * len(rows) + 0.6))
    ax.imshow(image_grid(np.concatenate(rows), image_shape, ncols=STEPS + 2), cmap="gray",
              vmin=0, vmax=1)
    ax.set_yticks([(r + 0.5) * h for r in range(len(rows))], labels, fontsize=8)
    ax.set_xticks([(c + 0.5) * image_shape[1] for c in range(STEPS + 2)],
                  ["x_a", *[f"{v:.2g}" for v in np.linspace(0, 1, STEPS)], "x_b"], fontsize=8)
    ax.set_title(f"{TITLES[name]}: interpolations between test images (t from 0 to 1)")
    save_figure(exp, fig, f"{name}_interpolations.png", figures)


def _figure_norms(exp, name, paths, t, figures):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.4))
    for key, (z, _) in paths.items():
        norms = np.linalg.norm(z, axis=2)                           # (T, n)
        ax.plot(t, np.mean(norms / ((norms[0] + norms[-1]) / 2), axis=1), marker=".",
                label=PATH_TITLES[key], linestyle="-" if key.startswith("vae") else "--")
    ax.set_xlabel("t")
    ax.set_ylabel("||z(t)|| / mean of the end norms")
    ax.set_title(f"{TITLES[name]}: code norm along the path (mean)")
    ax.legend(fontsize=8)
    save_figure(exp, fig, f"{name}_interpolation_norms.png", figures)


def _figure_traversals(exp, name, vae_trav, ae_trav, traversal, image_shape, figures):
    import matplotlib.pyplot as plt

    from ..plots import image_grid

    vae, ae = traversal["vae"], traversal["ae"]
    panels = (
        (vae_trav, "VAE: z_j from -3 to 3",
         [f"z{j} (KL {kl:.2f})" for j, kl in zip(vae["dims"], vae["kl"], strict=True)]),
        (ae_trav, "AE: z_j from mean - 3 std to mean + 3 std",
         [f"z{j} (std {s:.2g})" for j, s in zip(ae["dims"], ae["code_std"], strict=True)]))
    h = image_shape[0]
    fig, axes = plt.subplots(1, 2, figsize=(STEPS + 3, 0.5 * len(vae_trav) + 1.2))
    for ax, (trav, title, labels) in zip(axes, panels, strict=True):
        ax.imshow(image_grid(np.concatenate([im[:, 0] for im in trav]), image_shape,
                             ncols=STEPS), cmap="gray", vmin=0, vmax=1)
        ax.set_yticks([(r + 0.5) * h for r in range(len(trav))], labels, fontsize=8)
        ax.set_xticks([])
        ax.set_title(title, fontsize=10)
    fig.suptitle(f"{TITLES[name]}: one latent dimension at a time (last row: the least used)")
    save_figure(exp, fig, f"{name}_traversals.png", figures)


# ---- the experiment --------------------------------------------------------------------

def run(exp: Experiment) -> Outcome:
    """Train (or reuse) a VAE and an AE per data set, score their samples, interpolations
    and traversals, and draw them (4 figures per data set)."""
    refuse_options(exp, takes_from=True)
    if exp.from_run is not None:
        _from_config(exp)
    sizes = QUICK if exp.quick else FULL
    figures, numbers, setup = [], {}, {}
    for name in DATASETS:
        numbers[name], setup[name] = _one_dataset(exp, name, sizes, figures)
    setup.update(architecture=f"784-{'-'.join(map(str, HIDDEN_DIMS))}-{LATENT_DIM} "
                              f"(decoder mirrored), ReLU, Bernoulli decoder on grey values",
                 sizes=sizes.__dict__, steps=STEPS, traversal_range=RANGE,
                 scores={"frechet_pca": f"Frechet distance to the training images in their top "
                                        f"{sizes.pca_k} principal components",
                         "nearest_distance": "median Euclidean pixel distance to the nearest "
                                             "training image (pixels in [0, 1])",
                         "label_tv": "total variation distance between the classes of the "
                                     "nearest training images and the training classes"})
    return Outcome(numbers, setup, table(numbers, setup), figures)


def table(numbers: dict, setup: dict) -> list[str]:
    """The printed summary of a run: per data set, the scores of every set of images, of
    every kind of interpolation, the latent Fréchet distances and the traversals."""
    lines = []
    for name in DATASETS:
        n, s = numbers[name], setup[name]
        b = s["budget"]
        lines += [f"{TITLES[name]}: {s['n_train']} training images; VAE {b['vae']['epochs']} "
                  f"epochs ({b['vae']['train_seconds']:.0f} s), AE {b['ae']['epochs']} epochs "
                  f"({b['ae']['train_seconds']:.0f} s); test: VAE -ELBO "
                  f"{n['test']['vae_neg_elbo']:.1f} nats, AE recon {n['test']['ae_recon']:.1f}",
                  f"  {'images':28s} {'FD (PCA)':>9s} {'NN dist.':>9s} {'class TV':>9s}"]
        for key, v in n["samples"].items():
            lines.append(f"  {SET_TITLES[key]:28s} {v['frechet_pca']:9.2f} "
                         f"{v['nearest_distance']:9.2f} {v['label_tv']:9.3f}")
        lines.append(f"  {'interpolation':28s} {'|z(.5)|/|z|':>11s} {'NN mid':>7s} "
                     f"{'NN end':>7s} {'path':>6s} {'max step':>8s}")
        for key, v in n["interpolation"].items():
            lines.append(f"  {PATH_TITLES[key]:28s} {v['midpoint_norm_ratio']:11.3f} "
                         f"{v['midpoint_nearest_distance']:7.2f} "
                         f"{v['endpoint_nearest_distance']:7.2f} {v['path_ratio']:6.2f} "
                         f"{v['max_step_share']:8.3f}")
        lat = n["latent"]
        lines.append(f"  latent: Frechet distance to N(0, I) of the VAE's posterior draws "
                     f"{lat['vae_posterior_draws']['frechet_to_prior']:.2f}, of the AE's codes "
                     f"{lat['ae_codes']['frechet_to_prior']:.2f}")
        tv, ta = n["traversal"]["vae"], n["traversal"]["ae"]
        lines.append(f"  traversals: VAE {tv['active_units']}/{LATENT_DIM} active units; pixel "
                     f"change along z{tv['dims'][0]} (KL {tv['kl'][0]:.2f}) "
                     f"{tv['pixel_change'][0]:.2f}, along z{tv['dims'][-1]} (KL "
                     f"{tv['kl'][-1]:.3f}) {tv['pixel_change'][-1]:.2f}; AE code std from "
                     f"{ta['code_std'][-1]:.2g} to {ta['code_std'][0]:.2g}")
    return lines
