r"""Anomaly detection: a VAE trained on normal data flags what it finds improbable.

Deck ``002_3facc1002d729879.txt`` §VIII *Applications of VAE: Anomaly Detection*: "VAE
learns the normal distribution of data. Any data point with low reconstruction probability
is flagged as an anomaly." Course notebook: ``notebooks/10_anomaly.ipynb``.

Every image x of a test set gets five **anomaly scores**, higher meaning more anomalous,
all computed on the same binarized test images:

.. math::
    s_{\text{ELBO}}(x) &= \mathrm{KL}\big(q_\phi(z|x)\,\|\,p(z)\big)
        - \frac1K \sum_{k=1}^K \log p_\theta(x|z_k)
        \qquad (-\text{ELBO, analytic KL}) \\
    s_{\log p}(x) &= -\log \frac1K \sum_{k=1}^K
        \frac{p_\theta(x|z_k)\,p(z_k)}{q_\phi(z_k|x)}
        \qquad (-\log p(x),\ \text{importance weighted, Burda et al. 2016}) \\
    s_{\text{RP}}(x) &= -\frac1K \sum_{k=1}^K \log p_\theta(x|z_k)
        \qquad (\text{An \& Cho 2015's reconstruction probability, negated}) \\
    s_{\text{AE}}(x) &= \lVert x - g(f(x)) \rVert^2, \qquad
    s_{\text{PCA}}(x) = \lVert x - \hat x_{\text{PCA}} \rVert^2

with :math:`z_k = \mu_\phi(x) + \sigma_\phi(x) \odot \varepsilon_k` drawn afresh for every k
(the three VAE scores share the same K draws), an autoencoder ``g∘f`` of the same
architecture and a PCA with as many components as the latent size. K = 100 is enough to
*rank* images, not to report a test log-likelihood: on a quick model (held-out 0, latent
size 20, 300 test images) the K = 100 estimate of -log p(x) was 0.6 nats above the K = 2000
one on average, their per-image values correlated at 0.9996, the AUROC moved by 0.002,
while the scores themselves spread over a standard deviation of 47 nats.

How well a score separates anomalies (label 1) from normal images (label 0) is measured by
the **AUROC**, the probability that a random anomaly scores above a random normal image
(ties count one half; Mann-Whitney),

.. math:: \text{AUROC} = \frac{1}{n_1 n_0} \sum_{i: y_i = 1} \sum_{j: y_j = 0}
          \big([s_i > s_j] + \tfrac12 [s_i = s_j]\big)
          = \frac{R_1 - n_1(n_1 + 1)/2}{n_1 n_0}

(:math:`R_1`: the sum of the anomalies' ranks among all scores, ties given their average
rank), 0.5 for chance, below 0.5 when the score prefers the anomalies; and the **AUPRC**
(average precision), :math:`\sum_t (R_t - R_{t-1}) P_t` over the distinct thresholds t in
decreasing order, whose chance level is the fraction of anomalies.

Two protocols:

* **held-out class** (MNIST): for each digit c, models trained on the training images of
  the other nine digits; the whole test set scored, the images of digit c being the
  anomalies (about 10 %); latent sizes 2 and 20.
* **out of distribution**: models trained on all of MNIST score the MNIST test set
  (normal) against the Fashion-MNIST test set (anomalies), and models trained on
  Fashion-MNIST the other way round.

The images are binarized (dynamically while training, once with a fixed seed for the test
sets), so that the Bernoulli decoder's :math:`\log p_\theta(x|z)` is the log-probability
of a binary image and :math:`-\log p(x)` a number of nats a reader can compare.
"""

from __future__ import annotations

import contextlib
import math

import numpy as np

from .. import datasets
from ..backend import on_device, to_numpy
from ..kl import kl_std_normal_forward
from ..likelihoods import gaussian_logpdf_forward, std_normal_logpdf_forward
from ..reparam import reparameterize_forward
from ..threads import AUTO, Threads
from ..train import TrainConfig, build_model, choose_threads
from . import Experiment, ExperimentError, Outcome
from .common import PCA, refuse_options, save_figure, train_ae, train_on_array, train_vae

#: The five scores, in the order of every table.
SCORES = ("neg_elbo", "neg_log_px", "recon_prob", "ae_error", "pca_error")
LABELS = {"neg_elbo": "-ELBO", "neg_log_px": "-log p(x)", "recon_prob": "-recon. prob.",
          "ae_error": "AE error", "pca_error": "PCA error"}
LATENT_DIMS = (2, 20)
#: The two out-of-distribution directions: (training data set, foreign data set).
OOD = (("mnist", "fashion-mnist"), ("fashion-mnist", "mnist"))

#: The full and the quick setup. ``n_train``: the first images of the training split
#: (``None``: all 60000); ``n_test``: the first images of each test split.
FULL = dict(digits=tuple(range(10)), epochs=15, batch_size=128, n_train=None, n_test=None,
            k=100, hidden_dims=(400,))
QUICK = dict(digits=(0, 1), epochs=2, batch_size=128, n_train=3000, n_test=500, k=20,
             hidden_dims=(400,))

#: Published per-digit AUROC of the -ELBO score on the MNIST held-out-class protocol:
#: L. Tonnaer, PhD thesis, ch. 3, Table 3.3 (a VAE with a Gaussian decoder, sigma = 1/sqrt 2,
#: latent sizes 2 and 32, ELBO from 128 samples),
#: https://books.ipskampprinting.nl/thesis/603556-Tonnaer/65
PUBLISHED = {
    "source": "Tonnaer, PhD thesis, ch. 3, Table 3.3 (-ELBO, Gaussian decoder), "
              "https://books.ipskampprinting.nl/thesis/603556-Tonnaer/65",
    "auroc_neg_elbo": {
        "latent_2": [0.96, 0.73, 0.97, 0.94, 0.73, 0.92, 0.95, 0.77, 0.92, 0.66],
        "latent_32": [0.81, 0.09, 0.92, 0.87, 0.78, 0.86, 0.87, 0.51, 0.89, 0.58],
    },
}


# ---- the metrics, by hand ------------------------------------------------------------

def _check_scores(scores, labels):
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels)
    if s.ndim != 1 or s.shape != y.shape:
        raise ValueError(f"scores and labels must be 1-D of one length, got {s.shape} "
                         f"and {y.shape}")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores must be finite")
    y = y.astype(bool)
    if y.all() or not y.any():
        raise ValueError("labels must hold both anomalies (1) and normal examples (0)")
    return s, y


def average_ranks(a) -> np.ndarray:
    """1-based ranks of the values of ``a`` (N,), tied values sharing their average rank."""
    _, inverse, counts = np.unique(a, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)                      # the last rank of each distinct value
    return (ends - (counts - 1) / 2)[inverse]


def auroc(scores, labels) -> float:
    r"""Area under the ROC curve, by the rank sum (Mann-Whitney U):
    :math:`(R_1 - n_1(n_1+1)/2) / (n_1 n_0)`.

    scores: (N,), higher = more anomalous; labels: (N,), 1 for an anomaly.
    """
    s, y = _check_scores(scores, labels)
    n1, n0 = int(y.sum()), int((~y).sum())
    r1 = average_ranks(s)[y].sum()
    return float((r1 - n1 * (n1 + 1) / 2) / (n1 * n0))


def _counts(s, y):
    """True and false positives when flagging every score >= t, for each distinct t in
    decreasing order: ``(tp, fp)``, each (T,)."""
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s)), s.size - 1]   # the end of each tied group
    tp = np.cumsum(y)[last]
    return tp, last + 1 - tp


def roc_curve(scores, labels) -> tuple[np.ndarray, np.ndarray]:
    """``(fpr, tpr)``, each (T + 1,), from (0, 0) to (1, 1), one point per distinct score."""
    s, y = _check_scores(scores, labels)
    tp, fp = _counts(s, y)
    return np.r_[0.0, fp / (~y).sum()], np.r_[0.0, tp / y.sum()]


def auprc(scores, labels) -> float:
    r"""Average precision :math:`\sum_t (R_t - R_{t-1}) P_t`: precision P and recall R
    at every distinct threshold t in decreasing order (:math:`R_0 = 0`)."""
    s, y = _check_scores(scores, labels)
    tp, fp = _counts(s, y)
    recall = tp / y.sum()
    precision = tp / (tp + fp)
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


# ---- the scores --------------------------------------------------------------------------

def vae_scores(model, x, k: int = 100, batch_size: int = 100, chunk: int = 10) -> dict:
    r"""The three VAE scores of every row of ``x`` (N, D), from the same K draws per image.

    Per minibatch: the encoder gives :math:`\mu, \log\sigma^2` (n, d); the noise
    :math:`\varepsilon` (K, n, d) is drawn in one piece from the model's generator (as
    :meth:`~scratchvae.VAE.log_weights` draws it, so the two agree draw for draw); the
    decoder runs on ``chunk`` samples at a time, giving :math:`\log p(x|z_k)` (K, n) and
    the log weights :math:`\log w_k = \log p(x|z_k) + \log p(z_k) - \log q(z_k|x)`.

    Returns host float64 arrays (N,): ``neg_elbo`` = KL - mean_k log p(x|z_k),
    ``neg_log_px`` = -(logsumexp_k log w_k - log K), ``recon_prob`` = -mean_k log p(x|z_k).
    """
    xp = model.xp
    parts = {name: [] for name in SCORES[:3]}
    with on_device(xp, model.device):
        for start in range(0, x.shape[0], batch_size):
            xb = model.check_input(model.asarray(x[start:start + batch_size]))
            mu, logvar = model.encoder.forward(xb)
            n, d = mu.shape
            eps = model.rng.normal((k, n, d), model.dtype)
            log_px, log_w = [], []
            for s in range(0, k, chunk):
                z, _ = reparameterize_forward(mu, logvar, eps[s:s + chunk])   # (L, n, d)
                L = z.shape[0]
                out = model.decoder.forward(xp.reshape(z, (L * n, d)))
                lp, _ = model.decoder.loglik_forward(xb, xp.reshape(out, (L, n, -1)))
                log_px.append(lp)                                               # (L, n)
                log_w.append(lp + std_normal_logpdf_forward(z)[0]
                             - gaussian_logpdf_forward(z, mu, logvar)[0])
            log_px = xp.astype(xp.concat(log_px), xp.float64)                   # (K, n)
            log_w = xp.astype(xp.concat(log_w), xp.float64)
            m = xp.max(log_w, axis=0)
            log_mean_w = m + xp.log(xp.sum(xp.exp(log_w - m), axis=0)) - math.log(k)
            kl = xp.astype(kl_std_normal_forward(mu, logvar)[0], xp.float64)   # (n,)
            recon = -xp.mean(log_px, axis=0)
            parts["neg_elbo"].append(to_numpy(kl + recon))
            parts["neg_log_px"].append(to_numpy(-log_mean_w))
            parts["recon_prob"].append(to_numpy(recon))
    model.clear_cache()
    return {name: np.concatenate(p) for name, p in parts.items()}


def squared_error(x, x_hat) -> np.ndarray:
    r""":math:`\lVert x - \hat x \rVert^2` per row: (N, D), (N, D) -> (N,) float64."""
    r = np.asarray(x, dtype=np.float64) - np.asarray(x_hat, dtype=np.float64)
    return np.einsum("nd,nd->n", r, r)


def ae_error(ae, x, batch_size: int = 1000) -> np.ndarray:
    """The autoencoder's squared reconstruction error of every row of ``x``: (N,)."""
    return np.concatenate([squared_error(xb, to_numpy(ae.reconstruct(ae.asarray(xb))))
                           for xb in (x[i:i + batch_size] for i in range(0, len(x),
                                                                         batch_size))])


def pca_error(pca, x, k: int) -> np.ndarray:
    r"""Squared error of the reconstruction from the top ``k`` principal components of
    ``pca`` (fitted with k or more): :math:`\hat x = m + C_k^\top C_k (x - m)`, (N,)."""
    c = pca.encode(x)[:, :k]
    return squared_error(x, c @ pca.components[:k] + pca.mean)


def fit_pca(x) -> PCA:
    """The PCA of the training images with the largest latent size's components (the top
    k of them are the PCA with k components). LAPACK's SVD runs on one thread: on two
    cores shared with other work, that is several times faster than two."""
    with Threads(1):
        return PCA(x, max(LATENT_DIMS))


def all_scores(vae, ae, pca, x, k: int) -> dict:
    """The five scores of every row of the host array ``x``: name -> (N,) float64; the
    PCA keeps as many components as the VAE has latent dimensions."""
    scores = vae_scores(vae, x, k)
    scores["ae_error"] = ae_error(ae, x)
    scores["pca_error"] = pca_error(pca, x, vae.latent_dim)
    return scores


def ink(x) -> np.ndarray:
    """The number of pixels that are on, per row of binary images (N,)."""
    return np.asarray(x, dtype=np.float64).sum(axis=1)


def separation(scores: dict, labels) -> dict:
    """AUROC and AUPRC of every score, rounded for the record."""
    return {"auroc": {n: round(auroc(s, labels), 4) for n, s in scores.items()},
            "auprc": {n: round(auprc(s, labels), 4) for n, s in scores.items()}}


# ---- training ----------------------------------------------------------------------------

def _config(exp: Experiment, setup: dict, dataset: str, latent_dim: int, **extra):
    return TrainConfig(dataset=dataset, epochs=setup["epochs"],
                       batch_size=setup["batch_size"], latent_dim=latent_dim,
                       hidden_dims=setup["hidden_dims"], likelihood="bernoulli",
                       binarize="dynamic", seed=exp.seed, n_train=setup["n_train"],
                       extra=extra)


def _threads(exp: Experiment, setup: dict, x):
    """The BLAS threads of the whole run (training, scoring), chosen once by timing a
    training step of the latent-size-20 VAE (:func:`~scratchvae.train.choose_threads`);
    on a GPU, where they do not matter, the process's setting."""
    config = _config(exp, setup, "mnist", max(LATENT_DIMS))
    config.backend = exp.backend
    model = build_model(config, x.shape[1])
    return choose_threads(AUTO, config, model, model.asarray(x)) or contextlib.nullcontext()


def _check_options(exp: Experiment) -> tuple:
    """The digits of the held-out-class protocol: all of the setup's, or ``--digit``."""
    refuse_options(exp, takes=("digit",), why_not_from="its models are trained without "
                   "one digit, or on one data set each")
    if "digit" not in exp.options:
        return (QUICK if exp.quick else FULL)["digits"]
    digit = exp.options["digit"]
    if not isinstance(digit, int) or isinstance(digit, bool) or not 0 <= digit <= 9:
        raise ExperimentError(f"--digit must be an integer 0-9, got {digit!r}")
    return (digit,)


def _test_set(exp: Experiment, ds, n_test):
    """The first ``n_test`` test images, binarized once (the same draw on every run)."""
    x = datasets.binarize(ds.x_test[:n_test], np.random.default_rng(exp.seed + 1))
    return x, ds.y_test[:n_test]


# ---- the two protocols ----------------------------------------------------------------

def held_out_class(exp: Experiment, setup: dict, digits, mnist, budgets: dict):
    """For each digit and latent size: models trained without the digit, every test image
    scored. Returns ``(numbers, curves)``; curves[d][digit][score] = (fpr, tpr)."""
    x_test, y_test = _test_set(exp, mnist, setup["n_test"])
    x_pool, y_pool = mnist.x_train[:setup["n_train"]], mnist.y_train[:setup["n_train"]]
    ink_test = ink(x_test)
    numbers, curves = {}, {d: {} for d in LATENT_DIMS}
    for digit in digits:
        x_train = x_pool[y_pool != digit]
        labels = (y_test == digit).astype(np.int64)
        pca = fit_pca(x_train)
        entry = {"n_train": int(x_train.shape[0]), "n_test": int(labels.size),
                 "anomaly_fraction": round(float(labels.mean()), 4),
                 "ink_auroc": round(auroc(ink_test, labels), 4)}
        for d in LATENT_DIMS:
            name = f"held-out-{digit}-z{d}"
            cfg = _config(exp, setup, "mnist", d, held_out_digit=digit)
            vae, budgets[f"{name}-vae"] = train_on_array(exp, f"{name}-vae", x_train, cfg, "vae")
            cfg = _config(exp, setup, "mnist", d, held_out_digit=digit)
            ae, budgets[f"{name}-ae"] = train_ae(exp, f"{name}-ae", x_train, cfg)
            exp.log(f"scoring {len(x_test)} test images: digit {digit}, latent size {d}")
            scores = all_scores(vae, ae, pca, x_test, setup["k"])
            nlp = scores["neg_log_px"]
            entry[f"latent_{d}"] = {
                **separation(scores, labels),
                "mean_neg_log_px": {"normal": round(float(nlp[labels == 0].mean()), 2),
                                    "anomaly": round(float(nlp[labels == 1].mean()), 2)},
                "corr_neg_log_px_ink": round(float(np.corrcoef(nlp, ink_test)[0, 1]), 3),
            }
            curves[d][digit] = {n: roc_curve(s, labels) for n, s in scores.items()}
        numbers[str(digit)] = entry
    return numbers, curves


def out_of_distribution(exp: Experiment, setup: dict, data: dict, budgets: dict):
    """Models trained on one data set score its test set against the other's. Returns
    ``(numbers, curves, histograms)``."""
    tests = {name: _test_set(exp, ds, setup["n_test"])[0] for name, ds in data.items()}
    numbers, curves, hists = {}, {}, {}
    for trained, foreign in OOD:
        key = f"{trained}->{foreign}"
        x_train = data[trained].x_train[:setup["n_train"]]
        x = np.concatenate([tests[trained], tests[foreign]])
        labels = np.r_[np.zeros(len(tests[trained]), np.int64),
                       np.ones(len(tests[foreign]), np.int64)]
        pca = fit_pca(x_train)
        entry = {"n_normal": len(tests[trained]), "n_anomaly": len(tests[foreign]),
                 "ink_auroc": round(auroc(ink(x), labels), 4)}
        for d in LATENT_DIMS:
            name = f"ood-{trained}-z{d}"
            vae, budgets[f"{name}-vae"] = train_vae(exp, f"{name}-vae",
                                                    _config(exp, setup, trained, d),
                                                    x_train.shape[1])
            ae, budgets[f"{name}-ae"] = train_ae(exp, f"{name}-ae", x_train,
                                                 _config(exp, setup, trained, d))
            exp.log(f"scoring {len(x)} test images: {key}, latent size {d}")
            scores = all_scores(vae, ae, pca, x, setup["k"])
            nlp = scores["neg_log_px"]
            entry[f"latent_{d}"] = {
                **separation(scores, labels),
                "mean_neg_log_px": {trained: round(float(nlp[labels == 0].mean()), 2),
                                    foreign: round(float(nlp[labels == 1].mean()), 2)},
                "foreign_preferred": round(float(np.mean(
                    nlp[labels == 1] < np.median(nlp[labels == 0]))), 4),
            }
            curves[(key, d)] = {n: roc_curve(s, labels) for n, s in scores.items()}
            hists[(key, d)] = (nlp[labels == 0], nlp[labels == 1])
        numbers[key] = entry
    return numbers, curves, hists


# ---- figures and table ------------------------------------------------------------------

def _roc_axes(ax, curves: dict, title: str) -> None:
    for n, (fpr, tpr) in curves.items():
        ax.plot(fpr, tpr, lw=1.2, label=LABELS[n])
    ax.plot([0, 1], [0, 1], color="0.6", lw=0.8, ls="--")
    ax.set_title(title, fontsize=9)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_aspect("equal")


def _figures(exp: Experiment, held_curves, held, ood_curves, hists, figures: list) -> None:
    import matplotlib.pyplot as plt

    for d in LATENT_DIMS:
        digits = sorted(held_curves[d])
        ncols = min(5, len(digits))
        nrows = -(-len(digits) // ncols)
        fig, axes = plt.subplots(nrows, ncols, figsize=(2.6 * ncols, 2.8 * nrows),
                                 squeeze=False)
        for ax, digit in zip(axes.flat, digits, strict=False):
            auc = held[str(digit)][f"latent_{d}"]["auroc"]["neg_log_px"]
            _roc_axes(ax, held_curves[d][digit], f"digit {digit} held out "
                                                 f"(AUROC -log p {auc:.2f})")
        for ax in axes.flat[len(digits):]:
            ax.axis("off")
        axes[0, 0].legend(fontsize=7, loc="lower right")
        fig.supxlabel("false positive rate")
        fig.supylabel("true positive rate")
        fig.suptitle(f"MNIST, one digit held out: ROC curves, latent size {d}")
        save_figure(exp, fig, f"roc_held_out_z{d}.png", figures)

    fig, axes = plt.subplots(len(OOD), 1 + len(LATENT_DIMS), figsize=(11, 3.6 * len(OOD)),
                             squeeze=False)
    for row, (trained, foreign) in enumerate(OOD):
        key = f"{trained}->{foreign}"
        normal, foreign_nlp = hists[(key, LATENT_DIMS[-1])]
        bins = np.linspace(min(normal.min(), foreign_nlp.min()),
                           np.percentile(np.r_[normal, foreign_nlp], 99.5), 60)
        ax = axes[row, 0]
        ax.hist(normal, bins=bins, alpha=0.6, density=True, label=f"{trained} test (normal)")
        ax.hist(foreign_nlp, bins=bins, alpha=0.6, density=True, label=f"{foreign} test")
        ax.set_xlabel(f"-log p(x), nats (latent size {LATENT_DIMS[-1]})")
        ax.set_title(f"trained on {trained}", fontsize=9)
        ax.legend(fontsize=7)
        for col, d in enumerate(LATENT_DIMS, start=1):
            _roc_axes(axes[row, col], ood_curves[(key, d)],
                      f"{key}, latent size {d}")
        axes[row, 1].legend(fontsize=7, loc="lower right")
    fig.suptitle("out of distribution: the foreign test set as the anomalies")
    fig.tight_layout()
    save_figure(exp, fig, "ood.png", figures)


def _table(held: dict, ood: dict) -> list[str]:
    head = "".join(f"{LABELS[n]:>14s}" for n in SCORES)
    lines = []
    for d in LATENT_DIMS:
        lines.append(f"held-out digit, latent size {d}: AUROC")
        lines.append(f"{'digit':>6s}{head}{'ink':>8s}")
        for digit, entry in held.items():
            row = entry[f"latent_{d}"]["auroc"]
            lines.append(f"{digit:>6s}" + "".join(f"{row[n]:14.3f}" for n in SCORES)
                         + f"{entry['ink_auroc']:8.3f}")
    lines.append("out of distribution: AUROC (the foreign test set as the anomalies)")
    lines.append(f"{'trained -> foreign, d':>30s}{head}")
    for key, entry in ood.items():
        for d in LATENT_DIMS:
            row = entry[f"latent_{d}"]["auroc"]
            lines.append(f"{key + ', ' + str(d):>30s}" + "".join(f"{row[n]:14.3f}"
                                                                 for n in SCORES))
    return lines


def run(exp: Experiment) -> Outcome:
    """Both protocols in the setup of ``exp`` (:data:`FULL` or :data:`QUICK`, ``--digit``
    for one held-out digit); numbers, ROC figures and the AUROC table."""
    digits = _check_options(exp)
    setup = dict(QUICK if exp.quick else FULL, digits=digits)
    data = {name: datasets.load(name, exp.data_dir) for name in ("mnist", "fashion-mnist")}
    budgets: dict = {}
    with _threads(exp, setup, data["mnist"].x_train[:setup["batch_size"]]):
        held, held_curves = held_out_class(exp, setup, digits, data["mnist"], budgets)
        ood, ood_curves, hists = out_of_distribution(exp, setup, data, budgets)
    figures: list = []
    _figures(exp, held_curves, held, ood_curves, hists, figures)
    summary = {f"latent_{d}": {n: round(float(np.mean([held[g][f"latent_{d}"]["auroc"][n]
                                                       for g in held])), 4)
                               for n in SCORES} for d in LATENT_DIMS}
    worse = {f"latent_{d}": {n: [int(g) for g in held
                                 if held[g][f"latent_{d}"]["auroc"][n] < 0.5]
                             for n in SCORES} for d in LATENT_DIMS}
    numbers = {"held_out": held, "held_out_mean_auroc": summary,
               "held_out_worse_than_chance": worse, "ood": ood, "published": PUBLISHED}
    train_seconds = sum(b["train_seconds"] for b in budgets.values())
    setup_record = {
        "scores": {n: LABELS[n] for n in SCORES}, "k_importance_samples": setup["k"],
        "latent_dims": list(LATENT_DIMS), "held_out_digits": list(digits),
        "architecture": f"784-{'-'.join(map(str, setup['hidden_dims']))}-d (ReLU), "
                        f"Bernoulli decoder; AE of the same architecture; PCA with d "
                        f"components",
        "data": "binarized: dynamically while training, once (seed + 1) for the test sets",
        "n_train": setup["n_train"] or "all", "n_test": setup["n_test"] or "all",
        "optimizer": "Adam, lr 1e-3",
        "training_budget": {"epochs": setup["epochs"], "batch_size": setup["batch_size"],
                            "train_seconds_all_models": round(train_seconds, 1),
                            "models": budgets},
    }
    return Outcome(numbers=numbers, setup=setup_record, table=_table(held, ood),
                   figures=figures)
