r"""Learned features: 2-D embeddings and linear classification on PCA, AE and VAE codes.

Deck 002 (§I *Why Choose Variational Autoencoders (VAE)?*, §VIII *Applications of VAE*)
and deck 000 (*Applications and Use Cases*) name two uses of the latent space besides
generation: dimensionality reduction, and features for a downstream classifier. This
experiment measures both on MNIST:

1. **Embeddings.** The test images mapped to two dimensions by PCA (the top two
   principal components), by an AE (its codes :math:`f_\phi(x)`) and by a VAE (its
   posterior means :math:`\mu_\phi(x)`), side by side, coloured by digit.
2. **Linear probes.** For each code size :math:`d`, a softmax regression

   .. math::
       p(y = c \mid h) = \operatorname{softmax}(h W + b)_c, \qquad
       h \in \mathbb R^{d},\ W \in \mathbb R^{d \times 10},\ b \in \mathbb R^{10}

   is trained on the features :math:`h` of the labelled training images (PCA
   coordinates, AE codes, VAE means; the 784 grey values as the baseline) and scored by
   its accuracy on the test set. The representations are learned without labels on the
   whole training set; the classifier sees either every label or only a few per class
   (the semi-supervised setting of Kingma et al. 2014, their "M1" model with a linear
   classifier in place of their SVM).

The classifier is written with the library's parts: the affine map is a
:class:`scratchvae.layers.Linear` bound to a :class:`scratchvae.Parameters` buffer,
the update is :class:`scratchvae.optim.Adam`, and the loss is the softmax cross-entropy
below, written out with its gradient. It runs on the host in float64 (features are at
most 784 wide; the models that make them run on ``exp.backend``).

The course notebook ``notebooks/12_features.ipynb`` teaches it step by step.

References
----------
Kingma, Rezende, Mohamed & Welling (2014), *Semi-supervised Learning with Deep
Generative Models*, NeurIPS, arXiv:1406.5298.
"""

from __future__ import annotations

import numpy as np

from .. import datasets
from ..classifier import SoftmaxRegression, standardize
from ..evaluate import active_units, latent_means
from ..threads import Threads
from ..train import TrainConfig
from . import Experiment, Outcome
from .common import PCA, few_labels, refuse_options, save_figure, train_ae, train_vae

#: What changes between the quick and the full version.
SETTINGS = {
    "quick": dict(n_train=5000, n_test=2000, code_sizes=(2, 10), epochs=3,
                  labels_per_class=10, steps=800),
    "full": dict(n_train=60000, n_test=10000, code_sizes=(2, 5, 10, 20, 50), epochs=25,
                 labels_per_class=100, steps=6000),
}
HIDDEN = (400,)
BATCH_SIZE = 128
CLASSIFIER = dict(batch_size=256, lr=1e-2, weight_decay=1e-4)
METHODS = ("pca", "ae", "vae")
LABELS = ("all", "few")


def linear_probe(h_train, y_train, h_test, y_test, steps: int, seed: int,
                 standardized: bool = True) -> dict:
    """Train a :class:`SoftmaxRegression` on ``(h_train, y_train)`` and score it.

    Returns ``{"test_accuracy", "train_accuracy", "train_loss"}``.
    """
    if standardized:
        h_train, h_test = standardize(h_train, h_test)
    else:
        h_train = np.asarray(h_train, dtype=np.float64)
        h_test = np.asarray(h_test, dtype=np.float64)
    clf = SoftmaxRegression(h_train.shape[1], int(y_train.max()) + 1, seed=seed)
    loss = clf.fit(h_train, y_train, steps, **CLASSIFIER)
    return {"test_accuracy": float(np.mean(clf.predict(h_test) == y_test)),
            "train_accuracy": float(np.mean(clf.predict(h_train) == y_train)),
            "train_loss": loss}


# ---- the experiment ----------------------------------------------------------------------

def _check(exp: Experiment) -> None:
    refuse_options(exp, why_not_from="it trains its own AE and VAE at every code size")


def _config(exp: Experiment, s: dict, d: int) -> TrainConfig:
    return TrainConfig(dataset="mnist", epochs=s["epochs"], batch_size=BATCH_SIZE,
                       latent_dim=d, hidden_dims=HIDDEN, seed=exp.seed,
                       n_train=s["n_train"], n_test=s["n_test"])


def run(exp: Experiment) -> Outcome:
    """Embed MNIST with PCA, AE and VAE at every code size, probe each embedding with a
    linear classifier, and draw the 2-D embeddings and the accuracy curves."""
    _check(exp)
    s = SETTINGS["quick" if exp.quick else "full"]
    ds = datasets.load("mnist", exp.data_dir)
    x_train, y_train = ds.x_train[:s["n_train"]], ds.y_train[:s["n_train"]]
    x_test, y_test = ds.x_test[:s["n_test"]], ds.y_test[:s["n_test"]]
    few = few_labels(y_train, s["labels_per_class"], exp.seed + 11)
    sizes = s["code_sizes"]
    budgets, codes, n_active = {}, {}, {}

    # one BLAS thread for the SVD, the AE's training loop and the small products of the
    # probes: with two, OpenBLAS's threads wait for each other whenever another process
    # keeps a core busy (10 to 30 times slower on a shared 2-core machine), and one thread
    # loses about a quarter when the machine is idle (the VAE's loop chooses for itself)
    with Threads(1):
        pca = PCA(x_train, max(sizes))
    for d in sizes:
        top = pca.components[:d].T                  # (784, d): the top-d directions
        codes["pca", d] = (x_train - pca.mean) @ top, (x_test - pca.mean) @ top
        with Threads(1):
            ae, budgets[f"ae_d{d}"] = train_ae(exp, f"ae_d{d}", x_train, _config(exp, s, d))
        codes["ae", d] = latent_means(ae, x_train), latent_means(ae, x_test)
        vae, budgets[f"vae_d{d}"] = train_vae(exp, f"vae_d{d}", _config(exp, s, d),
                                              x_train.shape[1])
        codes["vae", d] = latent_means(vae, x_train), latent_means(vae, x_test)
        n_active[str(d)] = active_units(vae, x_test)[0]

    exp.log(f"training {(len(METHODS) * len(sizes) + 1) * len(LABELS)} linear classifiers "
            f"({s['steps']} Adam steps each)")
    accuracy = {lab: {m: {} for m in METHODS} for lab in LABELS}
    train_accuracy = {lab: {m: {} for m in METHODS} for lab in LABELS}
    with Threads(1):
        for lab, idx in (("all", slice(None)), ("few", few)):
            for (method, d), (h_train, h_test) in codes.items():
                r = linear_probe(h_train[idx], y_train[idx], h_test, y_test, s["steps"],
                                 exp.seed)
                accuracy[lab][method][str(d)] = round(r["test_accuracy"], 4)
                train_accuracy[lab][method][str(d)] = round(r["train_accuracy"], 4)
            r = linear_probe(x_train[idx], y_train[idx], x_test, y_test, s["steps"], exp.seed,
                             standardized=False)
            accuracy[lab]["pixels"] = round(r["test_accuracy"], 4)
            train_accuracy[lab]["pixels"] = round(r["train_accuracy"], 4)

    figures = []
    embeddings = {m: codes[m, 2][1] for m in METHODS} if 2 in sizes else {}
    if embeddings:
        _embedding_figure(exp, embeddings, y_test, accuracy["all"], figures)
    _accuracy_figure(exp, sizes, accuracy, s, figures)

    numbers = {
        "test_accuracy": accuracy,
        "train_accuracy": train_accuracy,
        "vae_active_units": n_active,
        "embedding_2d_rms_radius": {m: round(float(np.sqrt(np.mean(np.sum(
            (e - e.mean(axis=0)) ** 2, axis=1)))), 3) for m, e in embeddings.items()},
    }
    setup = {
        "dataset": "mnist",
        "n_train": s["n_train"], "n_test": s["n_test"],
        "code_sizes": list(sizes),
        "labels": {"all": s["n_train"], "few": int(few.size),
                   "few_rule": f"{s['labels_per_class']} random training images per class "
                               f"(seed {exp.seed + 11})"},
        "models": {"architecture": f"784-{'-'.join(map(str, HIDDEN))}-d (ReLU), "
                                   f"Bernoulli decoder on grey values",
                   "epochs": s["epochs"], "batch_size": BATCH_SIZE, "lr": 1e-3,
                   "optimizer": "adam", "vae_features": "posterior means mu(x)",
                   "ae_features": "codes f(x)", "pca": "top-d principal components"},
        "classifier": {"model": "softmax regression (scratchvae.layers.Linear)",
                       "steps": s["steps"], **CLASSIFIER, "optimizer": "adam",
                       "features": "standardized per dimension with the labelled "
                                   "training set's mean and std; pixels as grey values"},
        "budgets": budgets,
        "train_seconds_total": round(sum(b["train_seconds"] for b in budgets.values()), 1),
    }
    table = accuracy_table({"setup": setup, "numbers": numbers})
    return Outcome(numbers, setup, table, figures)


def accuracy_table(results: dict) -> list[str]:
    """The printed table of a run: test accuracy per labelled-set size, representation and
    code size, then the active VAE units. ``results``: the contents of ``results.json``
    (or a dict with its ``setup`` and ``numbers``)."""
    setup, numbers = results["setup"], results["numbers"]
    sizes, accuracy = setup["code_sizes"], numbers["test_accuracy"]
    head = "  ".join(f"d={d:<4d}" for d in sizes)
    lines = [f"test accuracy of a linear classifier (softmax regression), MNIST, "
             f"{setup['n_test']} test images",
             f"{'labels':>7}  {'features':<8}  {head}"]
    for lab in LABELS:
        n = setup["labels"][lab]
        for i, m in enumerate(METHODS):
            row = "  ".join(f"{accuracy[lab][m][str(d)]:.4f}" for d in sizes)
            lines.append(f"{n if i == 0 else '':>7}  {m.upper():<8}  {row}")
        lines.append(f"{'':>7}  {'pixels':<8}  {accuracy[lab]['pixels']:.4f} (all 784)")
    units = numbers["vae_active_units"]
    lines.append("active VAE units: " + ", ".join(f"{units[str(d)]}/{d}" for d in sizes))
    return lines


def _embedding_figure(exp, embeddings, labels, accuracy, figures) -> None:
    import matplotlib.pyplot as plt

    names = {"pca": "PCA: top 2 principal components", "ae": "AE: codes $f_\\phi(x)$",
             "vae": "VAE: means $\\mu_\\phi(x)$"}
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6))
    for ax, (m, e) in zip(axes, embeddings.items(), strict=True):
        dots = ax.scatter(e[:, 0], e[:, 1], c=labels, s=3, alpha=0.6, cmap="tab10",
                          vmin=-0.5, vmax=9.5)
        ax.set_title(f"{names[m]}\nlinear test accuracy {accuracy[m]['2']:.3f}")
        ax.set_aspect("equal", adjustable="datalim")
    fig.colorbar(dots, ax=axes, label="digit", ticks=range(10))
    save_figure(exp, fig, "embeddings_2d.png", figures)


def _accuracy_figure(exp, sizes, accuracy, s, figures) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    colours = {"pca": "tab:blue", "ae": "tab:orange", "vae": "tab:green", "pixels": "grey"}
    for lab, style in (("all", "-"), ("few", "--")):
        n = s["n_train"] if lab == "all" else 10 * s["labels_per_class"]
        for m in METHODS:
            ax.plot(sizes, [accuracy[lab][m][str(d)] for d in sizes], style, marker="o",
                    color=colours[m], label=f"{m.upper()}, {n} labels")
        ax.axhline(accuracy[lab]["pixels"], linestyle=style, color=colours["pixels"],
                   label=f"784 pixels, {n} labels")
    ax.set_xscale("log")
    ax.minorticks_off()
    ax.set_xticks(sizes, labels=[str(d) for d in sizes])
    ax.set_xlabel("code size d")
    ax.set_ylabel("test accuracy")
    ax.set_title("linear classifier on learned features (MNIST)")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    save_figure(exp, fig, "accuracy.png", figures)

