r"""The experiments of Kingma & Welling (2014): AEVB against wake-sleep, manifolds, samples.

Deck 003 (*EXPERIMENTS*) shows the paper's learned manifolds and samples; the paper's
section 5 also measures the algorithm itself. This experiment redoes the three figures:

1. **Fig. 2, AEVB against wake-sleep.** For MNIST with :math:`N_z \in \{3, 5, 10, 20,
   200\}` (500 hidden units) and Frey Face with :math:`N_z \in \{2, 5, 10, 20\}` (200
   hidden units), the same model, tanh MLPs with a Gaussian :math:`q_\phi(z|x)`, a
   Bernoulli (MNIST) or Gaussian (Frey Face, a mean in (0, 1) and a variance per pixel)
   :math:`p_\theta(x|z)`, and :math:`p(z) = \mathcal N(0, I)`, is trained twice: by AEVB
   (:mod:`scratchvae.train`, the SGVB estimator B with L = 1) and by wake-sleep
   (:mod:`scratchvae.wake_sleep`). Both use the paper's optimizer: Adagrad on minibatches
   of 100, weights and biases drawn from :math:`\mathcal N(0, 0.01^2)`, and weight decay
   :math:`\theta / N` per example from the :math:`\mathcal N(0, I)` prior on the
   parameters (N the training set size, ``scratchvae train --preset kingma2014``). The
   bound

   .. math:: \mathcal L(\theta, \phi; x) = \mathbb E_{q_\phi(z|x)}[\log p_\theta(x|z)]
             - \mathrm{KL}(q_\phi(z|x) \,\|\, p(z))

   in nats per example (one draw of z, the KL in closed form) is recorded on a fixed
   subset of the training set and on the test set at about logarithmically spaced
   numbers of training samples evaluated (minibatch examples seen; wake-sleep's dreams
   are not counted), up to a budget of ``--samples`` per model.

   The Adagrad step size is picked per model from {0.01, 0.02, 0.1}, as the paper did
   "based on performance on the training set in the first few iterations": three short
   runs, the best training-set bound wins, and the winner's run continues to the full
   budget (a run that diverges loses).

2. **Fig. 4**: the learned 2-D manifolds of Frey Face and MNIST (AEVB, :math:`N_z = 2`),
   decoder means on a grid of normal quantiles (:func:`scratchvae.plots.plot_manifold`).
3. **Fig. 5**: decoder means at 100 draws from the prior for MNIST models with
   :math:`N_z = 2, 5, 10, 20` (AEVB).

Every model is trained into ``OUT/models/NAME/`` with a checkpoint after every epoch and
its curve in ``curve.json`` beside it: running the same command again with the same
``--out`` continues where it stopped. The course notebook
``notebooks/17_kingma2014_experiments.ipynb`` explains the setup and the two algorithms.

References
----------
Kingma & Welling (2014), *Auto-Encoding Variational Bayes*, ICLR, arXiv:1312.6114.
Hinton, Dayan, Frey & Neal (1995), *The "wake-sleep" algorithm for unsupervised neural
networks*, Science 268.
"""

from __future__ import annotations

import contextlib
import json
import math
import time

import numpy as np

from .. import checkpoint, datasets, plots
from ..cli import PRESETS
from ..evaluate import elbo
from ..files import atomic_write
from ..train import (
    TrainConfig,
    TrainingError,
    build_model,
    build_optimizer,
    choose_threads,
    restore_run,
)
from ..wake_sleep import WakeSleep, train_epoch
from . import Experiment, ExperimentError, Outcome
from .common import (
    check_configuration,
    finished_epochs,
    host,
    model_dir,
    refuse_options,
    save_figure,
    train_on_array,
    training_budget,
)

ALGORITHMS = ("aevb", "wake-sleep")
STEP_SIZES = (0.01, 0.02, 0.1)
#: What changes between the quick and the full version. ``sizes``: the latent sizes of
#: Fig. 2 (both algorithms); ``extra``: AEVB models for Fig. 4 and 5 only; ``samples``:
#: the default budget per model; ``pick_samples``: the short runs that pick the step size.
SETTINGS = {
    "quick": dict(
        mnist=dict(n_train=1000, n_test=300, n_train_eval=300, sizes=(2, 5), extra=()),
        frey=dict(n_train=None, n_test=None, n_train_eval=None, sizes=(2,), extra=()),
        samples=4000, pick_samples=1000, points=4, threads=1, fig5=(2, 5)),
    "full": dict(
        mnist=dict(n_train=None, n_test=None, n_train_eval=10000, sizes=(3, 5, 10, 20, 200),
                   extra=(2,)),
        frey=dict(n_train=None, n_test=None, n_train_eval=None, sizes=(2, 5, 10, 20),
                  extra=()),
        samples=1e7, pick_samples=3e5, points=16, threads="auto", fig5=(2, 5, 10, 20)),
}
DATASETS = ("mnist", "frey")
NAMES = {"mnist": "MNIST", "frey": "Frey Face"}


# ---- training, resumable --------------------------------------------------------------

def train_wake_sleep(exp: Experiment, name: str, x_train, config: TrainConfig):
    """A VAE's encoder and decoder trained by wake-sleep on the host array ``x_train``
    with ``config``'s architecture, optimizer, epochs and batch size (the dreams per
    iteration: one minibatch), kept in and resumed from ``exp.out/models/name`` as
    :func:`~scratchvae.experiments.common.train_on_array` keeps an AEVB run: a checkpoint
    (written atomically) and a line of ``metrics.jsonl`` after every epoch.
    Returns ``(model, budget)``."""
    config.backend = exp.backend
    config.validate()
    run_dir = model_dir(exp, name)
    run_dir.mkdir(parents=True, exist_ok=True)
    model = build_model(config, x_train.shape[1])
    ws = WakeSleep(model)
    opt = build_optimizer(config, model)
    done = finished_epochs(run_dir, config.to_json())
    threads_setting = config.threads
    if done:
        threads_setting = restore_run(run_dir, model, opt, config)
    else:
        text = json.dumps(config.to_json(), indent=2) + "\n"
        atomic_write(run_dir / "config.json", lambda f: f.write(text.encode()))
        (run_dir / "metrics.jsonl").unlink(missing_ok=True)
    if done < config.epochs:
        exp.log(f"training {name}: epochs {done + 1}-{config.epochs}")
        x = model.asarray(x_train)
        threads = choose_threads(threads_setting, config, model, x)
        with threads or contextlib.nullcontext():
            for epoch in range(done + 1, config.epochs + 1):
                t0 = time.perf_counter()
                metrics = train_epoch(ws, opt, x, config.batch_size, epoch)
                metrics = {"epoch": epoch, **metrics,
                           "epoch_seconds": time.perf_counter() - t0}
                with open(run_dir / "metrics.jsonl", "a") as f:
                    f.write(json.dumps(metrics) + "\n")
                checkpoint.save(run_dir / "checkpoint.npz", model, opt, epoch,
                                config.to_json(), threads=threads.choice if threads else None)
    return model, training_budget(run_dir, config.epochs, config.batch_size)


def _train(exp, name, algorithm, x_train, config):
    if algorithm == "aevb":
        return train_on_array(exp, name, x_train, config, "vae")
    return train_wake_sleep(exp, name, x_train, config)


def lower_bound(model, x, seed: int) -> float:
    """The ELBO in nats per example of ``x`` (host array), one draw of z per example
    from the model's generator restarted at ``seed`` (the same draws at every point of a
    curve)."""
    model.reseed(seed)
    return -elbo(model, x, batch_size=1000)["loss"]


def train_with_curve(exp, name, algorithm, data, config, points, need_model=True):
    """Train to each epoch count in ``points`` in turn and record the bound on the
    training subset and the test set there, in ``models/name/curve.json`` (written
    atomically after each point; a rerun skips the points it holds).

    Returns ``(model, curve, budget)``; ``curve`` is ``{"points": [{"epoch", "samples",
    "train", "test"}, ...], "diverged": None or the error}``. ``model`` is ``None`` if the
    run diverged before its first checkpoint, or if ``need_model`` is false: a curve
    that holds all its points then needs nothing else from the folder, so a finished
    run whose model no figure shows can be kept as its ``config.json`` and
    ``curve.json`` alone (its ``budget["train_seconds"]`` is ``None`` without its
    ``metrics.jsonl``).
    """
    run_dir = model_dir(exp, name)
    path = run_dir / "curve.json"
    curve = {"points": [], "diverged": None}
    if path.is_file():
        config.backend = exp.backend
        check_configuration(run_dir, config.to_json())
        curve = json.loads(path.read_text())

    def save():
        text = json.dumps(curve, indent=1) + "\n"
        atomic_write(path, lambda f: f.write(text.encode()))

    n = data["x_train"].shape[0]
    for e in points:
        if curve["diverged"] or any(p["epoch"] >= e for p in curve["points"]):
            continue
        config.epochs = e
        try:
            model, _ = _train(exp, name, algorithm, data["x_train"], config)
        except TrainingError as err:
            curve["diverged"] = str(err)
            save()
            break
        epoch = checkpoint.read(run_dir / "checkpoint.npz")["epoch"]  # > e after a stop
        train = lower_bound(model, data["x_eval"], exp.seed + 1000)
        test = lower_bound(model, data["x_test"], exp.seed + 2000)
        if not (math.isfinite(train) and math.isfinite(test)):
            curve["diverged"] = f"the bound became {train} (train), {test} (test) at epoch {epoch}"
        else:
            curve["points"].append({"epoch": epoch, "samples": epoch * n,
                                    "train": round(train, 3), "test": round(test, 3)})
        save()
    if not need_model and curve["points"]:
        epochs = curve["points"][-1]["epoch"]
        budget = {"epochs": epochs, "batch_size": config.batch_size, "train_seconds": None}
        if (run_dir / "metrics.jsonl").is_file():
            budget = training_budget(run_dir, epochs, config.batch_size)
        return None, curve, budget
    if not (run_dir / "checkpoint.npz").is_file():
        return None, curve, None
    config.epochs = checkpoint.read(run_dir / "checkpoint.npz")["epoch"]
    model, budget = _train(exp, name, algorithm, data["x_train"], config)  # loads it
    return model, curve, budget


def epoch_points(epochs: int, pick_epochs: int, n_points: int) -> list[int]:
    """About ``n_points`` epoch counts spaced logarithmically from 1 to ``epochs``, with
    ``pick_epochs`` (the end of the short runs) among them."""
    grid = np.unique(np.round(np.geomspace(1, epochs, n_points)).astype(int))
    return sorted({int(e) for e in grid} | {pick_epochs})


def _config(exp, dataset, d, lr, n_train, threads) -> TrainConfig:
    preset = {**PRESETS["kingma2014"][dataset]}
    preset.update(latent_dim=d, lr=lr, weight_decay=1 / n_train, seed=exp.seed,
                  threads=threads)
    return TrainConfig(dataset=dataset, **preset)


def run_model(exp, dataset, algorithm, d, data, s, epochs, pick_epochs,
              need_model=True) -> dict:
    """One model of Fig. 2: the step size picked on short runs, then the winner's run
    continued to ``epochs``. Returns ``{"model", "lr", "short_runs", "curve", "budget"}``
    (``model`` is ``None`` unless ``need_model``: a figure shows it).
    """
    points = epoch_points(epochs, pick_epochs, s["points"])
    short_points = [e for e in points if e <= pick_epochs]
    n_train = data["x_train"].shape[0]
    short, runs = {}, {}
    for lr in STEP_SIZES:
        name = f"{dataset}-{algorithm}-z{d}-lr{lr:g}"
        config = _config(exp, dataset, d, lr, n_train, s["threads"])
        config.extra = {"algorithm": algorithm}
        # a step size too large overflows Adagrad's sum of squares: the bound shows it
        with np.errstate(over="ignore", invalid="ignore"):
            _, curve, _ = train_with_curve(exp, name, algorithm, data, config, short_points,
                                           need_model=False)
        at_pick = [p["train"] for p in curve["points"] if p["epoch"] == pick_epochs]
        short[f"{lr:g}"] = at_pick[0] if at_pick and not curve["diverged"] else None
        runs[lr] = name, config
    finite = {lr: b for lr, b in short.items() if b is not None}
    if not finite:
        raise TrainingError(f"{dataset}, {algorithm}, N_z = {d}: every step size in "
                            f"{STEP_SIZES} diverged in the short runs")
    lr = float(max(finite, key=finite.get))
    exp.log(f"{dataset} {algorithm} N_z = {d}: bound after the short runs "
            + ", ".join(f"{k}: {'diverged' if b is None else f'{b:.4g}'}"
                        for k, b in short.items()) + f"; step size {lr:g}")
    name, config = runs[lr]
    model, curve, budget = train_with_curve(exp, name, algorithm, data, config, points,
                                            need_model)
    return {"model": model, "lr": lr, "short_runs": short, "curve": curve,
            "budget": {"name": name, **budget}}


# ---- the experiment -------------------------------------------------------------------

def _samples(exp: Experiment, default: float) -> float:
    refuse_options(exp, takes=("samples",))
    samples = exp.options.get("samples", default)
    if isinstance(samples, bool) or not isinstance(samples, (int, float)) or \
            not math.isfinite(samples) or samples < 1:
        raise ExperimentError(f"--samples must be a number >= 1 (training samples per "
                              f"model, e.g. 1e7), got {samples!r}")
    return float(samples)


def _data(exp, dataset, s) -> dict:
    ds = datasets.load(dataset, exp.data_dir)
    x_train = ds.x_train[:s["n_train"]]
    return {"x_train": x_train, "x_eval": x_train[:s["n_train_eval"]],
            "x_test": ds.x_test[:s["n_test"]], "image_shape": ds.image_shape}


def run(exp: Experiment) -> Outcome:
    """Fig. 2 (AEVB and wake-sleep, every latent size of both data sets), then Fig. 4
    and Fig. 5 from the AEVB models."""
    s = SETTINGS["quick" if exp.quick else "full"]
    samples = _samples(exp, s["samples"])
    results, budgets, data, setup_data = {}, {}, {}, {}
    for dataset in DATASETS:
        ds_s = s[dataset]
        data[dataset] = _data(exp, dataset, ds_s)
        n = data[dataset]["x_train"].shape[0]
        epochs = math.ceil(samples / n)
        pick_epochs = min(epochs, math.ceil(s["pick_samples"] / n))
        setup_data[dataset] = {
            "n_train": n, "n_test": int(data[dataset]["x_test"].shape[0]),
            "n_train_eval": int(data[dataset]["x_eval"].shape[0]),
            "epochs": epochs, "samples_per_model": epochs * n,
            "short_run_epochs": pick_epochs, "short_run_samples": pick_epochs * n,
            "latent_sizes_fig2": list(ds_s["sizes"]),
            "latent_sizes_aevb_only": list(ds_s["extra"])}
        jobs = [(a, d) for d in ds_s["sizes"] for a in ALGORITHMS] + \
               [("aevb", d) for d in ds_s["extra"]]
        shown = {2, *s["fig5"]} if dataset == "mnist" else {2}   # Fig. 4 and Fig. 5
        for algorithm, d in jobs:
            r = run_model(exp, dataset, algorithm, d, data[dataset], s, epochs, pick_epochs,
                          need_model=algorithm == "aevb" and d in shown)
            results[dataset, algorithm, d] = r
            budgets[r["budget"].pop("name")] = r["budget"]

    numbers = {"final_bound": {}, "curves": {}, "step_size": {}, "diverged": {}}
    for (dataset, algorithm, d), r in results.items():
        key = (dataset, algorithm, str(d))
        points = r["curve"]["points"]
        if points:
            _put(numbers["final_bound"], key, {k: points[-1][k] for k in ("samples", "train",
                                                                         "test")})
        _put(numbers["curves"], key, [{k: p[k] for k in ("samples", "train", "test")}
                                      for p in points])
        _put(numbers["step_size"], key, {"picked": r["lr"], "short_run_train_bound":
                                         r["short_runs"]})
        if r["curve"]["diverged"]:
            _put(numbers["diverged"], key, r["curve"]["diverged"])

    figures = []
    _fig2(exp, results, s, samples, setup_data, figures)
    for dataset in DATASETS:
        r = results.get((dataset, "aevb", 2))
        if r is not None and r["model"] is not None:
            fig = plots.plot_manifold(r["model"], data[dataset]["image_shape"], n=20)
            fig.axes[0].set_title(f"learned {NAMES[dataset]} manifold (AEVB, N_z = 2)")
            save_figure(exp, fig, f"fig4_manifold_{dataset}.png", figures)
    _fig5(exp, {d: results[("mnist", "aevb", d)]["model"] for d in s["fig5"]}, exp.seed,
          figures)

    setup = {
        "paper": "Kingma & Welling (2014), section 5, Fig. 2, 4 and 5",
        "budget_samples_per_model": samples,
        "samples_counted": "training examples in the minibatches (wake-sleep's dreams "
                           "not counted); whole epochs, so the budget is rounded up",
        "datasets": setup_data,
        "mnist_targets": "grey values in [0, 1] as Bernoulli targets (cross-entropy)",
        "bound": "ELBO in nats per example, one draw of z (KL in closed form), on the "
                 "first n_train_eval training images and on the test set",
        "models": {d: {k: v for k, v in PRESETS["kingma2014"][d].items()
                       if k not in ("lr", "latent_dim", "weight_decay")}
                   for d in DATASETS},
        "weight_decay": "1 / n_train (the N(0, I) prior on the parameters)",
        "step_sizes": list(STEP_SIZES),
        "step_size_rule": "the best training-set bound after the short run",
        "wake_sleep": "one wake and one sleep half-step per minibatch, as many dreams as "
                      "examples, one Adagrad step on both gradients",
        "budgets": budgets,
        "train_seconds_total": round(sum(b["train_seconds"] or 0 for b in budgets.values()),
                                     1),
    }
    unrecorded = sorted(name for name, b in budgets.items() if b["train_seconds"] is None)
    if unrecorded:  # runs kept as their curve alone: the total leaves them out
        setup["train_seconds_not_recorded"] = unrecorded
    if not numbers["diverged"]:
        del numbers["diverged"]
    return Outcome(numbers, setup, bound_table({"setup": setup, "numbers": numbers}),
                   figures)


def budget_text(samples: float) -> str:
    """A sample budget as people write it: ``1e7``, ``6000``."""
    return f"{samples:.0f}" if samples < 1e5 else f"{samples:.3g}".replace("e+0", "e")


def _put(tree: dict, key: tuple, value) -> None:
    for k in key[:-1]:
        tree = tree.setdefault(k, {})
    tree[key[-1]] = value


def bound_table(results: dict) -> list[str]:
    """The printed table: the final bounds, train and test, of both algorithms at every
    latent size, with the step sizes picked. ``results``: ``results.json``'s contents
    (or a dict with its ``setup`` and ``numbers``)."""
    setup, numbers = results["setup"], results["numbers"]
    final, picked = numbers["final_bound"], numbers["step_size"]
    lines = [f"lower bound (nats per example) after "
             f"{budget_text(setup['budget_samples_per_model'])} training samples per model "
             f"(whole epochs); train on a fixed subset",
             f"{'data':<9} {'N_z':>4}  {'AEVB train':>10} {'test':>9} {'lr':>5}   "
             f"{'WS train':>10} {'test':>9} {'lr':>5}"]
    for dataset in DATASETS:
        sizes = setup["datasets"][dataset]["latent_sizes_fig2"]
        for d in map(str, sizes):
            cells = []
            for a in ALGORITHMS:
                f, lr = final[dataset][a][d], picked[dataset][a][d]["picked"]
                cells.append(f"{f['train']:10.2f} {f['test']:9.2f} {lr:5g}")
            lines.append(f"{NAMES[dataset]:<9} {d:>4}  {cells[0]}   {cells[1]}")
    for key, why in numbers.get("diverged", {}).items():
        lines.append(f"diverged: {key}: {why}")
    return lines


def _fig2(exp, results, s, samples, setup_data, figures) -> None:
    import matplotlib.pyplot as plt

    cols = max(len(s[d]["sizes"]) for d in DATASETS)
    fig, axes = plt.subplots(len(DATASETS), cols, figsize=(3.2 * cols, 3.0 * len(DATASETS)),
                             squeeze=False)
    colours = {"aevb": "tab:red", "wake-sleep": "tab:blue"}
    labels = {"aevb": "AEVB", "wake-sleep": "wake-sleep"}
    for row, dataset in enumerate(DATASETS):
        sizes = s[dataset]["sizes"]
        for col in range(cols):
            ax = axes[row][col]
            if col >= len(sizes):
                ax.axis("off")
                continue
            d = sizes[col]
            for a in ALGORITHMS:
                pts = results[dataset, a, d]["curve"]["points"]
                x = [p["samples"] for p in pts]
                ax.plot(x, [p["train"] for p in pts], "-", color=colours[a],
                        label=f"{labels[a]} train")
                ax.plot(x, [p["test"] for p in pts], "--", color=colours[a],
                        label=f"{labels[a]} test")
            ax.set_xscale("log")
            ax.minorticks_off()
            ax.set_title(f"{NAMES[dataset]}, $N_z$ = {d}", fontsize=10)
            ax.set_xlabel("training samples evaluated")
            if col == 0:
                ax.set_ylabel(r"lower bound $\mathcal{L}$ (nats)")
            ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    sub = ", ".join(f"{NAMES[d]}: train bound on {setup_data[d]['n_train_eval']} training "
                    f"images" for d in DATASETS)
    fig.suptitle(f"AEVB vs wake-sleep (Kingma & Welling 2014, Fig. 2): budget "
                 f"{budget_text(samples)} training samples per model (the paper: 1e8)\n{sub}",
                 fontsize=10)
    fig.tight_layout()
    save_figure(exp, fig, "fig2_aevb_vs_wake_sleep.png", figures)


def _fig5(exp, models: dict, seed: int, figures) -> None:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(models), figsize=(3.2 * len(models), 3.6), squeeze=False)
    for ax, (d, model) in zip(axes[0], models.items(), strict=True):
        model.reseed(seed + 3000)
        means = host(model.sample(100))
        ax.imshow(plots.image_grid(means, (28, 28), ncols=10), cmap="gray", vmin=0, vmax=1)
        ax.set_title(f"{d}-D latent space", fontsize=10)
        ax.axis("off")
    fig.suptitle("MNIST: decoder means at z ~ N(0, I) (AEVB; Kingma & Welling 2014, Fig. 5)",
                 fontsize=10)
    save_figure(exp, fig, "fig5_samples_mnist.png", figures)
