r"""Semi-supervised learning on MNIST: M1 and M2 of Kingma, Rezende, Mohamed & Welling
(2014) with 100, 600, 1000 and 3000 labels, beside classifiers that see the labelled
images only.

Deck 000 (*Applications and Use Cases*) names semi-supervised learning as an application
of VAEs; deck 002 (§I *Why Choose Variational Autoencoders (VAE)?*, *Feature Learning for
Classification*) says how the simplest version works. The labels are drawn balanced
(the same number per class, :func:`common.few_labels`), five random draws per count; the
test error is reported as mean ± std over the draws, on the 10 000 test images.

* **Baselines.** A softmax regression (:class:`scratchvae.classifier.SoftmaxRegression`)
  on the 784 grey values, and on the top 50 principal components (fitted on every
  training image without labels; standardized), trained on the labelled images only.
* **M1.** A VAE (784-600-600-50, softplus, as the paper's M1) trained on every training
  image without labels; the same softmax regression on its posterior means
  :math:`\mu_\phi(x)` (the active units, Var_x(mu_j) > 0.01, standardized). The paper puts
  a transductive SVM there; we keep one classifier for every representation, so that the
  rows of the table differ by the features only.
* **M2** (:class:`scratchvae.m2.M2`): the generative model
  :math:`p(y)p(z)p_\theta(x|y,z)` with :math:`q_\phi(y|x)` and :math:`q_\phi(z|x,y)`, trained
  on the labelled and the unlabelled images together, its classifier
  :math:`q_\phi(y|x)` scored on the test set. Beside it, the same networks trained on the
  labelled images alone (the unlabelled term left out), which shows what the
  unlabelled images add. The weights of the three terms are :func:`loss_weights`'s
  ``"balanced"``: the paper's ratio of a labelled image's classification term to its
  bound (:math:`\alpha = 0.1 N`), with the labelled images oversampled to half of
  each step's weight. With the paper's own mixture (``"paper"``, the labelled images
  1/600 of the weight at 100 labels) the classifier had not yet fitted its 100 labels
  after 1200 steps (training cross-entropy 1.0, test error 39 %, on 10 000 unlabelled
  images), where the balanced weights fit them in the first 100 steps (30 %): the
  paper trained for thousands of epochs, this budget is tens.
* **M1+M2**: M2 on M1's latent space: its "images" are draws
  :math:`z_1 \sim q(z_1|x)` of M1's posterior, a fresh draw every epoch (as the paper's
  code does), with a Gaussian likelihood; its classifier is scored on the test images'
  posterior means. It uses the paper's weights (``"paper"``): on M1's 50 numbers the
  classifier learns fast enough without oversampling, and with the balanced weights it
  overfitted its 100 labelled images (test error 14.7 % after 5 epochs, 26.9 % after
  20, while the unlabelled bound got worse), where the paper's weights kept it improving
  (10.2 % after 20 epochs, the full run's 50 epochs in ``results/semi-supervised/``).

M2 sums over the ten classes for every unlabelled image, so an epoch costs about ten VAE
epochs: it runs at one label count (100, or ``--labels``), on one draw of the labels.
M2 and M1+M2 write a checkpoint after every epoch (atomically); the same command with
the same ``--out`` resumes them.

The course notebook ``notebooks/14_semi_supervised.ipynb`` derives both objectives and
teaches the experiment step by step.

References
----------
Kingma, Rezende, Mohamed & Welling (2014), *Semi-supervised Learning with Deep
Generative Models*, NeurIPS, arXiv:1406.5298 (Table 1: the published errors).
"""

from __future__ import annotations

import json
import time

import numpy as np

from .. import checkpoint, datasets
from ..backend import on_device, to_numpy
from ..classifier import SoftmaxRegression, standardize
from ..evaluate import latent_means
from ..files import keep_epochs_until
from ..m2 import M2
from ..optim import Adam
from ..threads import Threads
from ..train import TrainConfig
from . import Experiment, ExperimentError, Outcome
from .common import (
    PCA,
    few_labels,
    finished_epochs,
    host,
    model_dir,
    refuse_options,
    save_figure,
    train_vae,
    training_budget,
)

#: What changes between the quick and the full version.
SETTINGS = {
    "quick": dict(n_train=4000, n_test=1000, counts=(100, 300), draws=2, pca_k=20,
                  m1=dict(hidden=(256,), latent=16, epochs=6),
                  m2=dict(hidden=(64,), latent=8, epochs=8, n_unlabelled=1000,
                          batch_unlabelled=50, batch_labelled=50, weighting="balanced"),
                  m1m2=dict(hidden=(64,), latent=8, epochs=8, n_unlabelled=None,
                            batch_unlabelled=50, batch_labelled=50, weighting="paper"),
                  steps=600),
    "full": dict(n_train=60000, n_test=10000, counts=(100, 600, 1000, 3000), draws=5,
                 pca_k=50,
                 m1=dict(hidden=(600, 600), latent=50, epochs=20),
                 m2=dict(hidden=(500,), latent=50, epochs=100, n_unlabelled=None,
                         batch_unlabelled=100, batch_labelled=100, weighting="balanced"),
                 m1m2=dict(hidden=(500,), latent=50, epochs=50, n_unlabelled=None,
                           batch_unlabelled=100, batch_labelled=100, weighting="paper"),
                 steps=2000),
}
M1_BATCH = 100
M2_LR = 1e-3
ALPHA = 0.1            # the paper's alpha = 0.1 N, per data point
CLASSIFIER = dict(batch_size=256, lr=1e-2, weight_decay=1e-4)
METHODS = ("pixels", "pca", "m1")
#: Kingma et al. (2014), Table 1: MNIST test error (%) with 100 labels.
PUBLISHED_100 = {"M1+TSVM": 11.82, "M2": 11.97, "M1+M2": 3.33}
#: The same table's rows for 600, 1000 and 3000 labels (M1+TSVM, M2, M1+M2).
PUBLISHED = {100: (11.82, 11.97, 3.33), 600: (5.72, 4.94, 2.59),
             1000: (4.24, 3.60, 2.40), 3000: (3.49, 3.92, 2.18)}


# ---- the classifier on fixed features ----------------------------------------------------

def probe(h_train, y_train, h_test, y_test, steps: int, seed: int,
          standardized: bool = True) -> float:
    """Test error of a :class:`SoftmaxRegression` trained on ``(h_train, y_train)``."""
    if standardized:
        h_train, h_test = standardize(h_train, h_test)
    else:
        h_train = np.asarray(h_train, dtype=np.float64)
        h_test = np.asarray(h_test, dtype=np.float64)
    clf = SoftmaxRegression(h_train.shape[1], 10, seed=seed)
    clf.fit(h_train, y_train, steps, **CLASSIFIER)
    return float(np.mean(clf.predict(h_test) != y_test))


def mean_std(values) -> dict:
    """``{"mean", "std", "runs"}`` of a list of errors (std: the sample standard deviation,
    0 for one run), in percent, rounded to 0.01."""
    v = 100 * np.asarray(values, dtype=np.float64)
    std = float(np.std(v, ddof=1)) if v.size > 1 else 0.0
    return {"mean": round(float(np.mean(v)), 2), "std": round(std, 2),
            "runs": [round(float(e), 2) for e in v]}


# ---- M2 training, resumable ---------------------------------------------------------------

def train_m2(exp: Experiment, name: str, x_l, y_l, x_u, x_test, y_test, spec: dict,
             likelihood: str = "bernoulli", resample=None, use_unlabelled: bool = True,
             input_dim: int | None = None):
    r"""An :class:`M2` trained on the labelled ``(x_l, y_l)`` and the unlabelled ``x_u``
    (host arrays), kept in ``exp.out/models/name`` with a checkpoint after every epoch;
    the same call resumes an unfinished one and reuses a finished one.

    ``spec``: ``hidden``, ``latent``, ``epochs``, ``batch_unlabelled``, ``batch_labelled``.
    One epoch is one pass over the unlabelled images in minibatches of
    ``batch_unlabelled`` (each runs through q(z|x,y) and the decoder once per class),
    each step with ``batch_labelled`` labelled images drawn at random; the labelled ELBO
    is weighted by :math:`f = N_l / N` and the classification term by :data:`ALPHA`, so
    that a step estimates the paper's objective per data point. ``resample(x, rng)``, if
    given, redraws the inputs every epoch (M1+M2: a fresh draw of M1's posterior).
    ``use_unlabelled=False`` trains the same model on the labelled images alone (f = 1;
    epochs of as many steps).
    ``input_dim``: the width of the model's data (default: that of ``x_l``).

    Returns ``(model, budget, history)``: the budget of :func:`training_budget` and the
    per-epoch lines of ``metrics.jsonl`` (losses and the test error of q(y|x)).
    """
    run_dir = model_dir(exp, name)
    run_dir.mkdir(parents=True, exist_ok=True)
    input_dim = int(x_l.shape[1]) if input_dim is None else input_dim
    config = {"model": "m2", "input_dim": input_dim, "hidden_dims": list(spec["hidden"]),
              "latent_dim": spec["latent"], "likelihood": likelihood,
              "weighting": spec["weighting"],
              "lr": M2_LR, "batch": [spec["batch_unlabelled"], spec["batch_labelled"]],
              "n_labelled": int(x_l.shape[0]),
              "n_unlabelled": int(x_u.shape[0]), "use_unlabelled": use_unlabelled,
              "resampled_inputs": resample is not None, "seed": exp.seed,
              "backend": exp.backend, "epochs": spec["epochs"]}
    model = M2(input_dim, 10, spec["hidden"], spec["latent"], likelihood,
               alpha=ALPHA, backend=exp.backend, seed=exp.seed)
    opt = Adam(model.params, lr=M2_LR)
    done = finished_epochs(run_dir, config)
    if done:
        checkpoint.restore(run_dir / "checkpoint.npz", model, opt)
        keep_epochs_until(run_dir / "metrics.jsonl", done)
    else:
        (run_dir / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        (run_dir / "metrics.jsonl").unlink(missing_ok=True)
    epochs = spec["epochs"]
    if done < epochs:
        exp.log(f"training {name}: epochs {done + 1}-{epochs}")
    n_l, n_u = x_l.shape[0], x_u.shape[0]
    f, alpha = loss_weights(n_l, n_u, spec["weighting"], use_unlabelled)
    b_u, b_l = spec["batch_unlabelled"], min(spec["batch_labelled"], n_l)
    steps = -(-n_u // b_u)
    # one BLAS thread: M2's products are small enough that two threads mostly wait for
    # each other on a shared machine (a GPU ignores this)
    xp = model.xp
    with Threads(1), on_device(xp, model.device):
        for epoch in range(done + 1, epochs + 1):
            rng = np.random.default_rng([exp.seed, epoch])  # the epoch's order, resumable
            t0 = time.perf_counter()
            xl = resample(x_l, rng) if resample else x_l
            xu = resample(x_u, rng) if resample else x_u
            order = rng.permutation(n_u)
            # the step's losses stay on the model's device; read back once per epoch
            per_step = xp.full((steps, 4), xp.nan, dtype=xp.float64, device=model.device)
            for s in range(steps):
                idx_l = rng.choice(n_l, b_l, replace=False)
                xb = model.asarray(xl[idx_l])
                xub = model.asarray(xu[order[s * b_u:(s + 1) * b_u]]) if use_unlabelled \
                    else None
                res = model.loss(xb, y_l[idx_l], x_u=xub, label_fraction=f, alpha=alpha,
                                 check_values=False)
                model.backward()
                opt.step(model.grads)
                per_step[s, 0], per_step[s, 1] = res.loss, res.labelled
                per_step[s, 2] = res.cross_entropy
                if xub is not None:
                    per_step[s, 3] = res.unlabelled
            loss, labelled, ce, unlabelled = to_numpy(per_step).mean(axis=0).tolist()
            seconds = time.perf_counter() - t0
            line = {"epoch": epoch, "train_loss": loss, "labelled_nelbo": labelled,
                    "cross_entropy": ce, "unlabelled_bound": unlabelled,
                    "test_error": classifier_error(model, x_test, y_test), "epoch_seconds": seconds}
            if not np.isfinite(loss):
                raise ExperimentError(f"{name}: the loss is not finite in epoch {epoch}")
            with open(run_dir / "metrics.jsonl", "a") as fh:
                fh.write(json.dumps(line) + "\n")
            checkpoint.save(run_dir / "checkpoint.npz", model, opt, epoch, config)
    history = [json.loads(s) for s in (run_dir / "metrics.jsonl").read_text().splitlines()
               if s.strip()]
    budget = training_budget(run_dir, epochs, b_u)
    budget.update(labelled_batch=b_l, steps_per_epoch=steps)
    return model, budget, history


def loss_weights(n_l: int, n_u: int, weighting: str, use_unlabelled: bool = True) -> tuple:
    r"""The weights ``(f, alpha)`` of :meth:`M2.loss` for :math:`N_l` labelled and
    :math:`N_u` unlabelled images (:math:`N = N_l + N_u`).

    * ``"paper"``: the paper's objective per data point, :math:`f = N_l / N` and
      :math:`\alpha / N = 0.1`. Each labelled image's classification term weighs
      :math:`0.1 N / N_l` times one image's bound (60 for 100 labels), but the labelled
      images hold :math:`N_l / N` of the weight of a step: with 100 labels, 1/600.
    * ``"balanced"``: the labelled images oversampled to half of each step's weight,
      :math:`f = 1/2`, with the paper's ratio of a labelled image's classification
      term to its bound kept, :math:`\alpha = f \cdot 0.1 N / N_l`.

    Without the unlabelled images (the labelled-only twin), f = 1 and the same alpha.
    """
    n = n_l + n_u
    if weighting == "paper":
        f, alpha = n_l / n, ALPHA
    elif weighting == "balanced":
        f = 0.5
        alpha = f * ALPHA * n / n_l
    else:
        raise ValueError(f"weighting must be 'paper' or 'balanced', got {weighting!r}")
    return (f if use_unlabelled else 1.0), alpha


def classifier_error(model: M2, x, y, batch_size: int = 1000) -> float:
    """The error of q(y|x)'s most probable class on the host data ``(x, y)``."""
    with Threads(1):
        wrong = 0
        for i in range(0, x.shape[0], batch_size):
            pred = host(model.predict(model.asarray(x[i:i + batch_size])))
            wrong += int(np.sum(pred != y[i:i + batch_size]))
    return wrong / x.shape[0]


def posterior(vae, x, batch_size: int = 1000):
    """M1's q(z|x) on the host: ``(mu, logvar)``, each (N, d)."""
    mus, logvars = [], []
    with on_device(vae.xp, vae.device):
        for i in range(0, x.shape[0], batch_size):
            mu, logvar = vae.encode(vae.asarray(x[i:i + batch_size]))
            mus.append(host(mu))
            logvars.append(host(logvar))
    return np.concatenate(mus), np.concatenate(logvars)


# ---- the experiment ----------------------------------------------------------------------

def _check(exp: Experiment) -> None:
    """Refuse the options this experiment does not take (before any data is read)."""
    refuse_options(exp, takes=("labels",), why_not_from="it trains its own M1 and M2")


def _label_counts(exp: Experiment, s: dict, y_train) -> tuple:
    """The label counts to run: ``--labels`` (checked) or the setting's."""
    if "labels" not in exp.options:
        return s["counts"]
    n = exp.options["labels"]
    most = 10 * int(np.bincount(y_train).min())
    if not isinstance(n, int) or isinstance(n, bool) or n < 10 or n % 10 or n > most:
        raise ExperimentError(f"--labels must be a multiple of 10 from 10 to {most} (the "
                              f"labels are drawn balanced, the same number per class), "
                              f"got {n!r}")
    return (n,)


def run(exp: Experiment) -> Outcome:
    """Baselines and M1 at every label count and draw, then M2 and M1+M2 at one count."""
    _check(exp)
    s = SETTINGS["quick" if exp.quick else "full"]
    ds = datasets.load("mnist", exp.data_dir)
    x_train, y_train = ds.x_train[:s["n_train"]], ds.y_train[:s["n_train"]]
    x_test, y_test = ds.x_test[:s["n_test"]], ds.y_test[:s["n_test"]]
    counts = _label_counts(exp, s, y_train)
    budgets = {}

    # the representations, learned without labels on every training image
    with Threads(1):
        pca = PCA(x_train, s["pca_k"])
    m1_config = TrainConfig(dataset="mnist", epochs=s["m1"]["epochs"], batch_size=M1_BATCH,
                            latent_dim=s["m1"]["latent"], hidden_dims=s["m1"]["hidden"],
                            activation="softplus", seed=exp.seed, n_train=s["n_train"],
                            n_test=s["n_test"])
    m1, budgets["m1_vae"] = train_vae(exp, "m1_vae", m1_config, x_train.shape[1])
    mu_train, mu_test = latent_means(m1, x_train), latent_means(m1, x_test)
    active = np.var(mu_train.astype(np.float64), axis=0) > 0.01
    features = {"pixels": (x_train, x_test), "pca": (pca.encode(x_train), pca.encode(x_test)),
                "m1": (mu_train[:, active], mu_test[:, active])}

    exp.log(f"training {len(METHODS) * len(counts) * s['draws']} softmax regressions "
            f"({s['steps']} Adam steps each)")
    draws, errors = {}, {m: {} for m in METHODS}
    with Threads(1):
        for n in counts:
            for k in range(s["draws"]):
                draws[n, k] = few_labels(y_train, n // 10, exp.seed + 1000 * k + n)
            for m in METHODS:
                h_train, h_test = features[m]
                errors[m][str(n)] = mean_std([
                    probe(h_train[draws[n, k]], y_train[draws[n, k]], h_test, y_test,
                          s["steps"], exp.seed + k, standardized=m != "pixels")
                    for k in range(s["draws"])])

    # M2 and M1+M2 at one count, on the first draw of its labels
    n_m2 = counts[0]
    idx = draws[n_m2, 0]
    rest = np.setdiff1d(np.arange(x_train.shape[0]), idx)
    if s["m2"]["n_unlabelled"]:
        rest = rest[:s["m2"]["n_unlabelled"]]
    curves = {}
    m2, budgets["m2"], curves["m2"] = train_m2(
        exp, f"m2_labels{n_m2}", x_train[idx], y_train[idx], x_train[rest], x_test, y_test,
        s["m2"])
    _, budgets["m2_labelled_only"], curves["m2_labelled_only"] = train_m2(
        exp, f"m2_labels{n_m2}_labelled_only", x_train[idx], y_train[idx], x_train[rest],
        x_test, y_test, s["m2"], use_unlabelled=False)
    lv_train = posterior(m1, x_train)[1]
    rest12 = np.setdiff1d(np.arange(x_train.shape[0]), idx)
    if s["m1m2"]["n_unlabelled"]:
        rest12 = rest12[:s["m1m2"]["n_unlabelled"]]
    z1 = np.concatenate([mu_train, lv_train], axis=1)  # M2's data: M1's posterior

    def draw_z1(x, rng):
        d = mu_train.shape[1]
        return (x[:, :d] + np.exp(0.5 * x[:, d:]) * rng.standard_normal((x.shape[0], d))
                ).astype(np.float32)

    _, budgets["m1m2"], curves["m1m2"] = train_m2(
        exp, f"m1m2_labels{n_m2}", z1[idx], y_train[idx], z1[rest12], mu_test, y_test,
        s["m1m2"], likelihood="gaussian_per_pixel", resample=draw_z1,
        input_dim=mu_train.shape[1])

    figures = []
    _error_figure(exp, counts, errors, curves, n_m2, figures)
    _curve_figure(exp, curves, n_m2, figures)
    _analogy_figure(exp, m2, x_test, y_test, figures)

    final = {k: round(100 * v[-1]["test_error"], 2) for k, v in curves.items()}
    numbers = {
        "test_error_percent": errors,
        "m2_labels": n_m2,
        "m2_test_error_percent": final["m2"],
        "m2_labelled_only_test_error_percent": final["m2_labelled_only"],
        "m1m2_test_error_percent": final["m1m2"],
        "m2_unlabelled_changes_predictions": round(_disagreement(exp, m2, x_test, n_m2), 4),
        "curves": {k: [{key: (round(val, 4) if isinstance(val, float) else val)
                        for key, val in line.items()} for line in v]
                   for k, v in curves.items()},
        "m1_active_units": int(active.sum()),
        "published_percent": {str(n): dict(zip(("M1+TSVM", "M2", "M1+M2"), PUBLISHED[n],
                                               strict=True)) for n in PUBLISHED},
    }
    setup = {
        "dataset": "mnist (grey values in [0, 1])",
        "n_train": s["n_train"], "n_test": s["n_test"],
        "label_counts": list(counts), "draws_per_count": s["draws"],
        "labels_rule": "n/10 random training images per class; draw k of count n uses "
                       f"seed {exp.seed} + 1000 k + n",
        "classifier": {"model": "softmax regression (scratchvae.classifier)",
                       "steps": s["steps"], **CLASSIFIER, "optimizer": "adam",
                       "features": {"pixels": "784 grey values, as they are",
                                    "pca": f"top {s['pca_k']} principal components of every "
                                           f"training image, standardized",
                                    "m1": "M1's posterior means, active units "
                                          "(Var_x mu_j > 0.01), standardized"},
                       "why": "one classifier for every row, so the rows differ by their "
                              "features only; the paper used a transductive SVM on M1"},
        "m1": {"architecture": f"784-{'-'.join(map(str, s['m1']['hidden']))}-"
                               f"{s['m1']['latent']} softplus VAE, Bernoulli likelihood",
               "epochs": s["m1"]["epochs"], "batch_size": M1_BATCH, "lr": 1e-3,
               "optimizer": "adam"},
        "m2": _m2_setup(s["m2"], 784, "bernoulli", n_m2, len(rest)),
        "m1m2": _m2_setup(s["m1m2"], mu_train.shape[1], "gaussian_per_pixel (on a fresh "
                          "draw of M1's q(z|x) each epoch)", n_m2, len(rest12)),
        "budgets": budgets,
        "train_seconds_total": round(sum(b["train_seconds"] for b in budgets.values()), 1),
    }
    table = error_table({"setup": setup, "numbers": numbers})
    return Outcome(numbers, setup, table, figures)


def _m2_setup(spec, d_in, likelihood, n_labels, n_unlabelled) -> dict:
    weights = loss_weights(n_labels, n_unlabelled, spec["weighting"])
    return {"architecture": f"q(y|x) {d_in}-{'-'.join(map(str, spec['hidden']))}-10, "
                            f"q(z|x,y) [{d_in}+10]-{'-'.join(map(str, spec['hidden']))}-"
                            f"{spec['latent']}, p(x|y,z) mirrored; softplus",
            "likelihood": likelihood, "labels": n_labels, "unlabelled_images": n_unlabelled,
            "label_draws": 1, "epochs": spec["epochs"], "optimizer": "adam", "lr": M2_LR,
            "weighting": spec["weighting"],
            "label_fraction_f": round(weights[0], 6), "alpha": round(weights[1], 6),
            "batch": {"unlabelled": spec["batch_unlabelled"],
                      "labelled": spec["batch_labelled"]},
            "labelled_only_control": "the same M2 with the unlabelled term left out"}


def _disagreement(exp, m2, x_test, n) -> float:
    """Fraction of test images that M2 and its labelled-only twin classify differently."""
    twin = M2(784, 10, m2.hidden_dims, m2.latent_dim, backend=exp.backend, alpha=ALPHA,
              seed=exp.seed)
    checkpoint.restore(model_dir(exp, f"m2_labels{n}_labelled_only") / "checkpoint.npz", twin)
    with Threads(1):
        a = host(m2.predict(m2.asarray(x_test)))
        b = host(twin.predict(twin.asarray(x_test)))
    return float(np.mean(a != b))


def error_table(results: dict) -> list[str]:
    """The printed table: test error (%) per label count and method, then M2."""
    setup, numbers = results["setup"], results["numbers"]
    counts = setup["label_counts"]
    err = numbers["test_error_percent"]
    lines = [f"MNIST test error (%), {setup['n_test']} test images, mean ± std over "
             f"{setup['draws_per_count']} label draws; softmax regression on the features",
             f"{'labels':<22}" + "".join(f"{n:>16d}" for n in counts)]
    names = {"pixels": "pixels (labelled only)", "pca": "PCA (labelled only)", "m1": "M1"}
    for m in METHODS:
        lines.append(f"{names[m]:<22}" + "".join(
            f"{err[m][str(n)]['mean']:>9.2f} ± {err[m][str(n)]['std']:<4.2f}" for n in counts))
    n = numbers["m2_labels"]
    pub = numbers["published_percent"].get(str(n))
    lines.append(f"at {n} labels, one draw:  M2 {numbers['m2_test_error_percent']:.2f}  "
                 f"(labelled only: {numbers['m2_labelled_only_test_error_percent']:.2f})  "
                 f"M1+M2 {numbers['m1m2_test_error_percent']:.2f}")
    if pub:
        lines.append(f"published (Kingma et al. 2014, Table 1): M1+TSVM {pub['M1+TSVM']:.2f}  "
                     f"M2 {pub['M2']:.2f}  M1+M2 {pub['M1+M2']:.2f}")
    b = setup["budgets"]
    lines.append("budget: " + ", ".join(f"{k} {v['epochs']} epochs {v['train_seconds']:.0f} s"
                                        for k, v in b.items()))
    return lines


def _error_figure(exp, counts, errors, curves, n_m2, figures) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    styles = {"pixels": ("grey", "pixels (labelled only)"), "pca": ("tab:blue", "PCA"),
              "m1": ("tab:green", "M1 (VAE means)")}
    for m, (colour, label) in styles.items():
        mean = [errors[m][str(n)]["mean"] for n in counts]
        std = [errors[m][str(n)]["std"] for n in counts]
        ax.errorbar(counts, mean, yerr=std, marker="o", color=colour, label=label, capsize=3)
    for key, colour, label in (("m2", "tab:red", "M2"), ("m1m2", "tab:purple", "M1+M2")):
        ax.plot([n_m2], [100 * curves[key][-1]["test_error"]], "*", ms=12, color=colour,
                label=f"{label} (ours)")
    pub = [n for n in counts if n in PUBLISHED]
    for j, (label, marker) in enumerate((("M1+TSVM", "x"), ("M2", "+"), ("M1+M2", "1"))):
        ax.plot(pub, [PUBLISHED[n][j] for n in pub], marker, color="k", ms=8, linestyle="none",
                label=f"{label}, Kingma et al. 2014")
    ax.set_xscale("log")
    ax.set_xticks(counts, labels=[str(n) for n in counts])
    ax.minorticks_off()
    ax.set_xlabel("labelled training images")
    ax.set_ylabel("test error (%)")
    ax.set_title("semi-supervised MNIST")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    save_figure(exp, fig, "test_error.png", figures)


def _curve_figure(exp, curves, n_m2, figures) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    names = {"m2": "M2", "m2_labelled_only": "M2, labelled images only", "m1m2": "M1+M2"}
    for key, label in names.items():
        ax.plot([c["epoch"] for c in curves[key]], [100 * c["test_error"] for c in curves[key]],
                marker=".", label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel("test error of q(y|x) (%)")
    ax.set_title(f"M2 with {n_m2} labels")
    ax.grid(alpha=0.3)
    ax.legend()
    save_figure(exp, fig, "m2_learning_curves.png", figures)


def _analogy_figure(exp, m2, x_test, y_test, figures, n_rows: int = 6) -> None:
    """Style and class apart (the paper's Figure 1): z from q(z|x, y) of a test image
    (with its predicted class), decoded with every class."""
    import matplotlib.pyplot as plt

    picks = np.array([np.flatnonzero(y_test == c)[0] for c in range(n_rows)])
    x = m2.asarray(x_test[picks])
    with on_device(m2.xp, m2.device):
        z, _ = m2.encode(x, host(m2.predict(x)))
        grid = [host(m2.decode(z, np.full(n_rows, c))) for c in range(10)]
    fig, axes = plt.subplots(n_rows, 11, figsize=(8.8, 0.85 * n_rows))
    for i in range(n_rows):
        axes[i, 0].imshow(x_test[picks[i]].reshape(28, 28), cmap="gray")
        for c in range(10):
            axes[i, c + 1].imshow(grid[c][i].reshape(28, 28), cmap="gray")
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0, 0].set_title("test image", fontsize=7)
    for c in range(10):
        axes[0, c + 1].set_title(f"y = {c}", fontsize=7)
    fig.suptitle("M2: z of each test image decoded with every class y", fontsize=9)
    save_figure(exp, fig, "m2_analogies.png", figures)
