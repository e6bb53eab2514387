r"""Posterior collapse and its remedies: KL per latent unit, active units, and their price.

Deck ``002_3facc1002d729879.txt`` §V *Key Objectives in Variational Autoencoders*
(*Prior Matching*) and §VII *VAE Training: ELBO Expression*, and deck
``004_a9997e39466fe772.txt`` *AE* / *VAE* ("reconstruction term + regularization term"),
present the KL term as the regularizer that pulls :math:`q_\phi(z|x)` towards
:math:`p(z) = \mathcal N(0, I)`. With a diagonal Gaussian posterior it is a sum over the
latent units,

.. math::
    \mathrm{KL}(q_\phi(z|x)\,\|\,p(z)) = \sum_{j=1}^{d} \mathrm{KL}_j(x), \qquad
    \mathrm{KL}_j(x) = \tfrac12\big(\sigma_j^2(x) + \mu_j^2(x) - 1 - \log\sigma_j^2(x)\big),

and the regularizer can win unit by unit: a unit with :math:`\mathrm{KL}_j(x) = 0` for
every x has :math:`q_\phi(z_j|x) = p(z_j)`, carries nothing about x, and the decoder
ignores it. This is *posterior collapse*. It is measured on the test set by

* the KL per unit, :math:`\overline{\mathrm{KL}}_j = \frac1N\sum_n \mathrm{KL}_j(x_n)`
  (:func:`kl_per_dimension`; the d values sum to the ELBO's KL term);
* the active units (Burda et al. 2016), :math:`A_j = \operatorname{Var}_x[\mu_j(x)] >
  0.01` (:func:`scratchvae.evaluate.active_units`).

Six VAEs with d = 50 are trained on dynamically binarized MNIST (a fresh Bernoulli draw of
every training image at every use; the test images binarized once, seed + 1, as
:func:`scratchvae.train.load_data` does), each minimizing a different objective per
minibatch :math:`\mathcal B` (``R`` = the reconstruction term
:math:`-\mathbb E_q[\log p_\theta(x|z)]`):

=============  ==========================================================================
plain          :math:`R + \sum_j \overline{\mathrm{KL}}_j` (the negative ELBO)
warm-up        :math:`R + \beta_t \sum_j \overline{\mathrm{KL}}_j`, :math:`\beta_t =
               \min(1, t / T)` at epoch t (Bowman et al. 2016; Sønderby et al. 2016)
free bits      :math:`R + \sum_j \max(\lambda, \overline{\mathrm{KL}}_j^{\mathcal B})`
               (Kingma et al. 2016): no pressure on a unit below λ nats
beta < 1       :math:`R + \beta \sum_j \overline{\mathrm{KL}}_j`, β = 0.5
beta > 1       the same with β = 2 (Higgins et al. 2017)
stronger       the plain objective with a 50-400-400-784 decoder instead of 50-200-784
               (the encoder stays 784-200-50)
=============  ==========================================================================

The stronger decoder is twice as wide with one more hidden layer
(``decoder_hidden_dims`` of :class:`~scratchvae.VAE`); the encoder is the plain one, so
only the decoder's power changes. Every variant is scored by the same numbers, whatever it
trained on: the test ELBO (β = 1, no floor) and the importance-weighted :math:`\log p(x)`
with K samples (Burda et al. 2016; :func:`scratchvae.evaluate.log_likelihood`), so a remedy
that buys active units with a worse likelihood shows it.

The course notebook ``notebooks/16_posterior_collapse.ipynb`` teaches it.

References
----------
Bowman et al. (2016), *Generating Sentences from a Continuous Space*, CoNLL.
Burda, Grosse & Salakhutdinov (2016), *Importance Weighted Autoencoders*, ICLR.
Higgins et al. (2017), *beta-VAE*, ICLR.
Kingma et al. (2016), *Improved Variational Inference with Inverse Autoregressive Flow*,
NeurIPS (free bits).
Sønderby et al. (2016), *Ladder Variational Autoencoders*, NeurIPS (warm-up).
"""

from __future__ import annotations

import contextlib
import json

import numpy as np

from .. import checkpoint
from ..evaluate import active_units, elbo, log_likelihood
from ..files import atomic_write
from ..kl import kl_std_normal_forward
from ..threads import AUTO, Threads
from ..train import TrainConfig, load_data
from . import Experiment, Outcome
from .common import host, model_dir, refuse_options, save_figure, train_vae

LATENT = 50
HIDDEN = (200,)
STRONGER = (400, 400)          # the decoder: twice the width, one more hidden layer
FREE_BITS = 0.25               # nats per unit: a floor of 12.5 nats in all
BATCH_SIZE = 100
THRESHOLD = 0.01               # active unit: Var_x[mu_j(x)] above this

#: What changes between the quick and the full version.
SETTINGS = {
    "quick": dict(n_train=5000, n_test=500, epochs=4, warmup_epochs=2, k=100, threads=1),
    "full": dict(n_train=60000, n_test=10000, epochs=50, warmup_epochs=10, k=1000,
                 threads=AUTO),
}

#: The variants, in the order of the table: name -> (label, TrainConfig fields).
VARIANTS = {
    "plain": ("plain ELBO", {}),
    "warmup": ("KL warm-up", {"warmup_epochs": None}),   # the setting's T
    "free-bits": (f"free bits, {FREE_BITS} nats/unit", {"free_bits": FREE_BITS}),
    "beta-0.5": ("beta = 0.5", {"beta": 0.5}),
    "beta-2": ("beta = 2", {"beta": 2.0}),
    "stronger": ("decoder 50-400-400-784", {"decoder_hidden_dims": STRONGER}),
}


def kl_per_dimension(model, x, batch_size: int = 1000) -> np.ndarray:
    r"""The KL of each latent unit, averaged over the data set.

    .. math::
        \overline{\mathrm{KL}}_j = \frac1N \sum_{n=1}^{N} \tfrac12\big(\sigma_j^2(x_n)
        + \mu_j^2(x_n) - 1 - \log\sigma_j^2(x_n)\big)

    Parameters
    ----------
    model : VAE
    x : host array, shape (N, D)

    Returns
    -------
    ndarray, shape (d,), float64: nats per example and unit; they sum to the KL term of
    :func:`scratchvae.evaluate.elbo`.
    """
    total = np.zeros(model.latent_dim)
    for start in range(0, x.shape[0], batch_size):
        mu, logvar = model.encode(model.asarray(x[start:start + batch_size]))
        terms, _ = kl_std_normal_forward(mu, logvar, per_dim=True)        # (n, d)
        total += host(terms).astype(np.float64).sum(axis=0)
    return total / x.shape[0]


def config(exp: Experiment, name: str, s: dict) -> TrainConfig:
    """The training configuration of variant ``name``."""
    fields = dict(VARIANTS[name][1])
    if "warmup_epochs" in fields:
        fields["warmup_epochs"] = s["warmup_epochs"]
    fields.setdefault("hidden_dims", HIDDEN)
    return TrainConfig(dataset="mnist", data_dir=exp.data_dir, epochs=s["epochs"],
                       batch_size=BATCH_SIZE, latent_dim=LATENT, binarize="dynamic",
                       seed=exp.seed, n_train=s["n_train"], n_test=s["n_test"],
                       threads=s["threads"], **fields)


def _check(exp: Experiment) -> None:
    refuse_options(exp, why_not_from="it trains its own six VAEs")


def run(exp: Experiment) -> Outcome:
    """Train the six variants, measure KL per unit, active units, test ELBO and
    importance-weighted log p(x), and draw the KL per unit of every variant."""
    _check(exp)
    s = SETTINGS["quick" if exp.quick else "full"]
    x_test = load_data(config(exp, "plain", s))[3]      # binarized once, seed + 1
    variants, budgets = {}, {}
    for name in VARIANTS:
        model, budgets[name] = train_vae(exp, name, config(exp, name, s), x_test.shape[1])
        variants[name] = _evaluated(exp, name, model, x_test, s["k"], s["threads"])
    figures = []
    _kl_figure(exp, variants, figures)
    _variance_figure(exp, variants, figures)
    numbers = {"variants": variants}
    setup = {
        "dataset": "mnist, dynamically binarized (a fresh Bernoulli draw of every training "
                   "image at every use; test images binarized once with seed + 1)",
        "n_train": s["n_train"], "n_test": s["n_test"],
        "latent_dim": LATENT,
        "architecture": f"784-{'-'.join(map(str, HIDDEN))}-{LATENT} ReLU encoder, mirrored "
                        f"decoder, Bernoulli likelihood; 'stronger': the same encoder and a "
                        f"{LATENT}-{'-'.join(map(str, STRONGER))}-784 decoder",
        "variants": {n: {"label": VARIANTS[n][0],
                         **{k: v for k, v in config(exp, n, s).to_json().items()
                            if k in ("beta", "warmup_epochs", "free_bits", "hidden_dims",
                                     "decoder_hidden_dims")}}
                     for n in VARIANTS},
        "optimizer": "adam", "lr": 1e-3, "batch_size": BATCH_SIZE, "epochs": s["epochs"],
        "evaluation": {"elbo": "beta = 1, no free bits, 10 samples of z per test image",
                       "log_px": f"importance sampling, K = {s['k']} (Burda et al. 2016)",
                       "active_units": f"Var over the test set of mu_j(x) > {THRESHOLD}",
                       "kl_per_dim": "mean over the test set of KL(q(z_j|x) || N(0, 1))"},
        "budgets": budgets,
        "train_seconds_total": round(sum(b["train_seconds"] for b in budgets.values()), 1),
    }
    return Outcome(numbers, setup, collapse_table({"setup": setup, "numbers": numbers}),
                   figures)


def evaluate_variant(model, x_test, k: int, threads=AUTO) -> dict:
    """The numbers of one trained variant on ``x_test`` (host, binarized): active units,
    the test ELBO and its two terms (10 samples of z per image), -log p(x) by importance
    sampling with ``k`` samples, the KL per unit and the variance of each posterior
    mean. ``threads``: the CPU threads (:mod:`scratchvae.threads`; ``"auto"`` lets the
    log-likelihood choose)."""
    with contextlib.nullcontext() if threads == AUTO else Threads(threads):
        e = elbo(model, x_test, n_samples=10)
        ll, ll_err = log_likelihood(model, x_test, k=k, threads=threads)
        n_active, variance = active_units(model, x_test, THRESHOLD)
        kl_d = kl_per_dimension(model, x_test)
    return {
        "active_units": n_active,
        "test_neg_elbo": round(e["loss"], 3),
        "test_recon": round(e["recon"], 3),
        "test_kl": round(e["kl"], 3),
        "test_nll": round(-ll, 3),
        "test_nll_stderr": round(ll_err, 3),
        "kl_per_dim": [round(float(v), 5) for v in kl_d],
        "posterior_mean_variance": [float(f"{v:.4g}") for v in variance],
    }


def _evaluated(exp: Experiment, name: str, model, x_test, k: int, threads) -> dict:
    """:func:`evaluate_variant`, kept in ``models/name/evaluation.json`` beside the
    checkpoint and reused when the run is given again (the evaluation of the full run
    takes minutes per model)."""
    path = model_dir(exp, name) / "evaluation.json"
    key = {"k": k, "n_test": int(x_test.shape[0]), "seed": exp.seed,
           "epoch": int(checkpoint.read(model_dir(exp, name) / "checkpoint.npz")["epoch"])}
    if path.is_file():
        saved = json.loads(path.read_text())
        if saved["key"] == key:
            return saved["numbers"]
    exp.log(f"evaluating {name}: ELBO, KL per unit, active units, log p(x) with K = {k}")
    numbers = evaluate_variant(model, x_test, k, threads)
    text = json.dumps({"key": key, "numbers": numbers}) + "\n"
    atomic_write(path, lambda f: f.write(text.encode()))
    return numbers


def collapse_table(results: dict) -> list[str]:
    """The printed table: per variant, active units, the two terms, -ELBO, -log p(x).
    ``results``: the contents of ``results.json`` (or its ``setup`` and ``numbers``)."""
    setup, rows = results["setup"], results["numbers"]["variants"]
    k = setup["evaluation"]["log_px"].rsplit("K = ", 1)[1].split()[0]
    lines = [f"posterior collapse, binarized MNIST, d = {setup['latent_dim']}, "
             f"{setup['n_test']} test images, nats per image; -log p(x): K = {k}",
             f"{'variant':<32} {'active':>6} {'KL':>7} {'recon':>7} {'-ELBO':>7} "
             f"{'-log p(x)':>9}  min KL_j"]
    for name, r in rows.items():
        label = setup["variants"][name]["label"]
        lines.append(f"{label:<32} {r['active_units']:>3d}/{len(r['kl_per_dim']):<2d} "
                     f"{r['test_kl']:7.2f} {r['test_recon']:7.2f} {r['test_neg_elbo']:7.2f} "
                     f"{r['test_nll']:9.2f}  {min(r['kl_per_dim']):.3f}")
    return lines


def _kl_figure(exp, variants, figures) -> None:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(13, 6.5), sharey=True)
    top = max(max(r["kl_per_dim"]) for r in variants.values())
    for ax, (name, r) in zip(axes.flat, variants.items(), strict=True):
        order = np.argsort(r["kl_per_dim"])[::-1]
        kl = np.asarray(r["kl_per_dim"])[order]
        active = np.asarray(r["posterior_mean_variance"])[order] > THRESHOLD
        ax.bar(np.arange(kl.size), kl, width=0.85,
               color=np.where(active, "tab:blue", "tab:grey"))
        if name == "free-bits":
            ax.axhline(FREE_BITS, color="tab:red", linestyle="--", linewidth=1,
                       label=f"λ = {FREE_BITS}")
            ax.legend(fontsize=8)
        ax.set_title(f"{VARIANTS[name][0]}\n{r['active_units']} active units, "
                     f"KL {r['test_kl']:.1f}, -log p(x) {r['test_nll']:.1f}", fontsize=9)
        ax.set_ylim(0, 1.05 * top)
        ax.set_xlabel("latent unit, sorted by KL")
    for ax in axes[:, 0]:
        ax.set_ylabel("mean KL per unit (nats)")
    fig.suptitle("KL(q(z_j|x) || p(z_j)) per latent unit on the test set "
                 f"(blue: active, Var[mu_j] > {THRESHOLD})")
    fig.tight_layout()
    save_figure(exp, fig, "kl_per_unit.png", figures)


def _variance_figure(exp, variants, figures) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for name, r in variants.items():
        v = np.sort(np.asarray(r["posterior_mean_variance"]))[::-1]
        ax.plot(np.arange(1, v.size + 1), np.maximum(v, 1e-8), marker=".",
                label=VARIANTS[name][0])
    ax.axhline(THRESHOLD, color="black", linestyle="--", linewidth=1,
               label=f"threshold {THRESHOLD}")
    ax.set_yscale("log")
    ax.set_xlabel("latent unit, sorted")
    ax.set_ylabel("Var over test images of mu_j(x)")
    ax.set_title("activity of the latent units")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    save_figure(exp, fig, "unit_activity.png", figures)
