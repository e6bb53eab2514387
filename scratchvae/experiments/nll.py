r"""A test log-likelihood comparable to the literature: binarized MNIST, K = 5000.

The course's MNIST runs report a "test loss" on grey values: the negative ELBO with a
Bernoulli decoder applied to pixels in [0, 1], which is neither a likelihood (a grey
value has no Bernoulli probability) nor the ELBO of any data set others use. The
density-estimation literature reports instead :math:`-\log p(x)` on *binarized* MNIST,
estimated by importance sampling. This experiment reproduces the reference number of
Burda, Grosse & Salakhutdinov (2016), Table 1 (VAE, one stochastic layer, k = 1):
**86.76 nats**, with 19 active units.

**Data.** MNIST grey values :math:`x \in [0, 1]^{784}`, binarized as
:math:`\tilde x_i = [u_i < x_i]`, :math:`u_i \sim U[0, 1)`, so that
:math:`P(\tilde x_i = 1) = x_i`. 400 training images are held out for validation
(59,600 / 400, as Burda et al.). Two protocols:

* *dynamic* (Burda et al.): a fresh binarization of every training image every time it
  is used (``TrainConfig.binarize = "dynamic"``);
* *fixed*: one binarization of the training set drawn once (generator seed ``seed + 2``)
  and used in every epoch, which lets the model memorize its training images: the
  train–test gap measures that.

In both, the 10,000 test images are binarized once (seed ``seed + 1``), the validation
images once (seed ``seed + 4``).

**Model.** 784-200-200-50 with tanh hidden units, a diagonal Gaussian encoder, a
Bernoulli decoder (``hidden_dims=(200, 200)``, ``latent_dim=50``); the decoder's output
bias starts at the log-odds of the mean training image, as in Burda et al.'s code.

**Training.** Adam with :math:`\beta_1 = 0.9`, :math:`\beta_2 = 0.999`,
:math:`\epsilon = 10^{-4}`, minibatches of 20, and the paper's schedule: stage
:math:`i = 0, \dots, 7` runs :math:`3^i` epochs at learning rate
:math:`10^{-3} \cdot 10^{-i/7}`, 3,280 epochs in all (:func:`iwae_schedule`), for the
dynamic model. The fixed model, there for its train–test gap, runs the first six stages
(364 epochs, ``SETTINGS["full"]["stages"]``): all eight would add 2,916 epochs, most of a
day on one CPU core; the per-stage probes below compare the two models at equal epochs. The
library's :class:`~scratchvae.train.TrainConfig` has one learning rate and Adam's default
:math:`\epsilon`, so the stages are trained here (:func:`train_staged`): one optimizer
whose ``lr`` is set at the start of each stage, a checkpoint after every epoch. The same
command with the same ``--out`` resumes a stopped run at its last epoch, in its stage,
with the optimizer's moments and the generator's state as they were: the continuation is
the run that never stopped. The full run trains the two models in two processes at once,
one core each (:func:`train_and_evaluate`).

**Evaluation.** The importance-weighted estimate (:func:`scratchvae.evaluate.log_likelihood`)

.. math::
    \log p(x) \approx \log \frac1K \sum_{k=1}^K
    \frac{p_\theta(x \mid z_k)\, p(z_k)}{q_\phi(z_k \mid x)}, \qquad z_k \sim q_\phi(z \mid x),

with :math:`K = 5000` on the test set, the bound at several K on the first test images
(it rises with K from the ELBO, K = 1, towards :math:`\log p(x)`), the number of active
units (:func:`scratchvae.evaluate.active_units`), and the same estimate on as many
training images as there are test images (the train–test gap). At the end of every
stage, :math:`-\log p(x)` with K = 100 on 1000 test images is recorded too (:data:`PROBE`):
the first stages of the schedule are a shorter schedule, so one run shows what each
shorter schedule would give. The test numbers are
computed exactly as ``scratchvae evaluate OUT/models/NAME`` computes them from the
saved checkpoint, so that command reproduces them.

Where Burda et al.'s published code differs, we follow the paper: their Adam has
:math:`\beta_1 = 0.99` and starts the second moments at 1, they hold out the *last* 400
training images (we draw 400 at random, seed ``seed + 3``), and they binarize the test
images afresh at every evaluation (we draw them once, so that every evaluation of a
checkpoint sees the same binary images and ``scratchvae evaluate`` reproduces the number).

The course notebook ``notebooks/18_test_likelihood.ipynb`` teaches it step by step.

References
----------
Burda, Grosse & Salakhutdinov (2016), *Importance Weighted Autoencoders*, ICLR,
arXiv:1509.00519 (Table 1, section 5; code: github.com/yburda/iwae).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from .. import checkpoint, datasets
from ..evaluate import active_units, elbo, log_likelihood
from ..files import keep_epochs_until
from ..optim import Adam
from ..threads import Threads
from ..train import TrainConfig, build_model, format_duration, load_data, train_epoch
from . import Experiment, ExperimentError, Outcome
from .common import model_dir, refuse_options, save_figure

#: Burda et al. (2016), Table 1: VAE with one stochastic layer, k = 1, MNIST.
PUBLISHED = {"test_nll": 86.76, "active_units": 19,
             "source": "Burda, Grosse & Salakhutdinov (2016), Importance Weighted "
                       "Autoencoders, Table 1, VAE (1 stochastic layer, k = 1), MNIST"}
PROTOCOLS = ("dynamic", "fixed")
ADAM = {"betas": (0.9, 0.999), "eps": 1e-4}
#: What changes between the quick and the full version. ``n_gap``: training images whose
#: log p(x) is estimated for the train–test gap (as many as test images); ``ks``: the K
#: of the bound-against-K curve, on the first ``n_curve`` test images; ``workers``: how
#: many processes train and evaluate the two models at once (each uses one core).
SETTINGS = {
    "quick": dict(n_train=900, n_validation=100, n_test=200,
                  stages={"dynamic": 3, "fixed": 3}, batch_size=20, workers=1,
                  k=100, ks=(1, 10, 100), n_curve=200, n_gap=200),
    "full": dict(n_train=None, n_validation=400, n_test=None,
                 stages={"dynamic": 8, "fixed": 6}, batch_size=20, workers=2,
                 k=5000, ks=(1, 5, 50, 500, 5000), n_curve=1000, n_gap=10_000),
}
#: Seed offset of the one binarization of the training images the gap is measured on for
#: the dynamic model (the fixed model's are its own training images). ``load_data``
#: uses ``seed + 1`` (test), ``+ 2`` (fixed training set), ``+ 3`` (validation split),
#: ``+ 4`` (validation).
GAP_SEED_OFFSET = 5
#: A progress line every this many epochs (and at the end of every stage).
LOG_EVERY = 50
#: At the end of every stage, -log p(x) with K = 100 on the first 1000 test images: what
#: the schedule cut after that stage would give (its first stages are these), at a small
#: cost (about 1/500 of the final evaluation's).
PROBE = {"k": 100, "n": 1000}


def iwae_schedule(stages: int = 8) -> list[tuple[int, float]]:
    r"""Burda et al.'s schedule: stage :math:`i` runs :math:`3^i` epochs at learning rate
    :math:`10^{-3} \cdot 10^{-i/7}`, for :math:`i < ` ``stages``.

    Returns ``[(epochs, lr), ...]``; the 8 stages of the paper sum to 3,280 epochs and end
    at :math:`10^{-4}`. (Their code rounds the rates to two digits, 7.2e-4 for
    7.197e-4; we follow the paper's formula.)
    """
    if not isinstance(stages, int) or not 1 <= stages <= 8:
        raise ValueError(f"stages must be an integer 1-8, got {stages!r}")
    return [(3 ** i, 1e-3 * 10 ** (-i / 7)) for i in range(stages)]


def stage_of(schedule, epoch: int) -> tuple[int, float]:
    """The stage (0-based) epoch ``epoch`` (1-based) falls in, and its learning rate."""
    end = 0
    for i, (epochs, lr) in enumerate(schedule):
        end += epochs
        if epoch <= end:
            return i, lr
    raise ValueError(f"epoch {epoch} is past the schedule's {end} epochs")


def model_config(protocol: str, settings: dict, seed: int) -> TrainConfig:
    """The :class:`TrainConfig` of one protocol's model: the architecture, the data
    (subset, split, binarization) and the budget. ``lr`` is the first stage's; the
    schedule and Adam's settings are in ``extra``."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    schedule = iwae_schedule(settings["stages"][protocol])
    return TrainConfig(
        dataset="mnist", seed=seed, threads=1, binarize=protocol,
        n_train=settings["n_train"], n_test=settings["n_test"],
        n_validation=settings["n_validation"],
        hidden_dims=(200, 200), latent_dim=50, activation="tanh", likelihood="bernoulli",
        epochs=sum(e for e, _ in schedule), batch_size=settings["batch_size"],
        lr=schedule[0][1], optimizer="adam",
        extra={"schedule": [[e, lr] for e, lr in schedule],
               "adam": {"betas": list(ADAM["betas"]), "eps": ADAM["eps"]},
               "decoder_bias_init": "log-odds of the mean training image"})


def fingerprint(x) -> str:
    """A short hash of a binary data set (its bits, packed): equal arrays, equal hashes."""
    bits = np.packbits(np.asarray(x) > 0.5, axis=None)
    return hashlib.sha256(bits.tobytes()).hexdigest()[:16]


# ---- training, stage by stage, resumable --------------------------------------------------

def _saved_config(config: TrainConfig) -> dict:
    """What ``config.json`` holds: the configuration without the data folder, which
    belongs to the machine (``scratchvae evaluate --data-dir`` or ``$SCRATCHVAE_DATA``
    gives it)."""
    return {**config.to_json(), "data_dir": None}


def _epochs_done(run_dir, saved: dict) -> int:
    path = run_dir / "checkpoint.npz"
    if not path.is_file():
        return 0
    if json.loads((run_dir / "config.json").read_text()) != saved:
        raise ExperimentError(f"{run_dir} holds a model trained with another configuration; "
                              f"use another --out or delete that folder")
    return checkpoint.read(path)["epoch"]


def _init_decoder_bias(model, x_train) -> None:
    """Start the decoder's output bias at :math:`\\log(m / (1 - m))`, m the mean training
    image clipped to [0.001, 0.999]: before training, every z decodes to about the
    average digit rather than to grey noise (Burda et al.'s code does this)."""
    m = np.clip(np.mean(np.asarray(x_train, dtype=np.float64), axis=0), 0.001, 0.999)
    model.params["dec.out.b"][...] = model.asarray(np.log(m / (1 - m)))


def train_staged(exp: Experiment, name: str, config: TrainConfig, until: int | None = None,
                 data=None):
    """Train ``config``'s model through the stages of ``config.extra["schedule"]`` into
    ``exp.out/models/name`` (``config.json``, ``metrics.jsonl``, ``checkpoint.npz``),
    or resume it there.

    Each epoch appends a line to ``metrics.jsonl`` (stage, learning rate, training and
    validation negative ELBO, seconds; the test negative ELBO at the end of each stage)
    and rewrites the checkpoint (atomically). ``until``: stop after that many epochs in
    all (default: the whole schedule). ``data``: ``load_data(config)``'s result, if the
    caller has it already. Returns ``(model, budget)``.
    """
    config.data_dir = exp.data_dir
    config.backend = exp.backend
    config.validate()
    schedule = [tuple(s) for s in config.extra["schedule"]]
    total = sum(e for e, _ in schedule)
    if total != config.epochs:
        raise ValueError(f"the schedule has {total} epochs, the configuration {config.epochs}")
    until = total if until is None else until
    run_dir = model_dir(exp, name)
    saved = _saved_config(config)
    done = _epochs_done(run_dir, saved)
    if done < until:
        _, x_train_host, x_val_host, x_test_host, _ = data or load_data(config)
        model = build_model(config, x_train_host.shape[1])
        opt = Adam(model.params, lr=schedule[0][1], betas=ADAM["betas"], eps=ADAM["eps"])
        if done:
            checkpoint.restore(run_dir / "checkpoint.npz", model, opt)
            keep_epochs_until(run_dir / "metrics.jsonl", done)
        else:
            _init_decoder_bias(model, x_train_host)
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / "config.json").write_text(json.dumps(saved, indent=2) + "\n")
            (run_dir / "metrics.jsonl").unlink(missing_ok=True)
        exp.log(f"training {name}: epochs {done + 1}-{until} of {total} "
                f"(stage {stage_of(schedule, done + 1)[0] + 1} of {len(schedule)})")
        x_train, x_val = model.asarray(x_train_host), model.asarray(x_val_host)
        threads = Threads(config.threads) if model.backend == "numpy" else None
        started = time.perf_counter()
        with threads or contextlib.nullcontext():
            for epoch in range(done + 1, until + 1):
                stage, opt.lr = stage_of(schedule, epoch)
                t0 = time.perf_counter()
                result = train_epoch(model, opt, x_train, config, epoch)
                seconds = time.perf_counter() - t0
                metrics = {"epoch": epoch, "stage": stage, "lr": opt.lr,
                           "train_loss": result["loss"], "train_recon": result["recon"],
                           "train_kl": result["kl"],
                           "val_loss": elbo(model, x_val, batch_size=1000)["loss"],
                           "epoch_seconds": seconds}
                stage_ends = epoch == _stage_end(schedule, stage)
                if stage_ends:  # the test ELBO and a quick log p(x), once per stage
                    metrics["test_loss"] = elbo(model, x_test_host, batch_size=1000)["loss"]
                    metrics["test_nll_probe"] = -log_likelihood(
                        model, x_test_host[:PROBE["n"]], k=PROBE["k"],
                        threads=config.threads)[0]
                if stage_ends or epoch % LOG_EVERY == 0:  # a sign of life in long stages
                    left = (time.perf_counter() - started) / (epoch - done) * (until - epoch)
                    test = (f", test {metrics['test_loss']:.2f}; -log p(x) "
                            f"{metrics['test_nll_probe']:.2f} (K={PROBE['k']})"
                            if stage_ends else "")
                    exp.log(f"  {name}: epoch {epoch} (stage {stage + 1}, lr {opt.lr:.2e}"
                            f"{', done' if stage_ends else ''}): train "
                            f"{metrics['train_loss']:.2f}, validation "
                            f"{metrics['val_loss']:.2f}{test} (-ELBO, nats); {seconds:.1f} s "
                            f"per epoch, about {format_duration(left)} left")
                with open(run_dir / "metrics.jsonl", "a") as f:
                    f.write(json.dumps(metrics) + "\n")
                checkpoint.save(run_dir / "checkpoint.npz", model, opt, epoch, saved,
                                threads=None if threads is None else threads.choice)
    model = build_model(config, 784)
    checkpoint.restore(run_dir / "checkpoint.npz", model)
    return model, _budget(run_dir, config)


def _stage_end(schedule, stage: int) -> int:
    """The last epoch (1-based) of stage ``stage``."""
    return sum(e for e, _ in schedule[:stage + 1])


def _budget(run_dir, config: TrainConfig) -> dict:
    """Epochs, stages, batch size, optimizer steps and the training seconds summed over
    ``metrics.jsonl`` (over every sitting of a resumed run)."""
    lines = [json.loads(line) for line in
             (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    n = (config.n_train or 60_000) - config.n_validation  # the training split's images
    return {"epochs": config.epochs, "stages": len(config.extra["schedule"]),
            "batch_size": config.batch_size,
            "steps": config.epochs * -(-n // config.batch_size),
            "train_seconds": round(sum(m["epoch_seconds"] for m in lines), 3)}


# ---- evaluation ------------------------------------------------------------------------------

def evaluate_as_cli(model, config: TrainConfig, x_test, k: int) -> dict:
    """The test numbers of a model just restored from its checkpoint, computed as
    ``scratchvae evaluate RUN --k K`` computes them (same calls, same order, so the same
    draws from the generator the checkpoint restored): the ELBO, the importance-weighted
    log p(x) and the active units."""
    e = elbo(model, x_test)
    ll, se = log_likelihood(model, x_test, k=k, threads=config.threads)
    au, variances = active_units(model, x_test)
    return {"test_nll": -ll, "test_nll_stderr": se, "test_neg_elbo": e["loss"],
            "test_recon": e["recon"], "test_kl": e["kl"], "k": k,
            "n_test": int(x_test.shape[0]), "active_units": au,
            "unit_variances": variances}


def bound_against_k(model, x, ks, threads) -> dict:
    """:math:`-\\mathcal L_K`, the importance-weighted bound negated (nats per image, an
    upper bound on :math:`-\\log p(x)` in expectation), on ``x`` for each K of ``ks``;
    K = 1 estimates the negative ELBO."""
    return {str(k): -log_likelihood(model, x, k=k, threads=threads)[0] for k in ks}


def _evaluate(exp: Experiment, protocol: str, model, config: TrainConfig, s: dict,
              data) -> dict:
    """Every number of one model, cached in its folder (``evaluations.json``, keyed by
    the checkpoint's epoch and the settings) so that a rerun does not redo them."""
    run_dir = model_dir(exp, protocol)
    epoch = checkpoint.read(run_dir / "checkpoint.npz")["epoch"]
    key = json.dumps({"epoch": epoch, **{k: s[k] for k in ("k", "ks", "n_curve", "n_gap")}},
                     sort_keys=True)
    cache = run_dir / "evaluations.json"
    stored = json.loads(cache.read_text()) if cache.is_file() else {}
    if key in stored:
        return stored[key]
    _, x_train, _, x_test, _ = data
    exp.log(f"evaluating {protocol}: log p(x) with K={s['k']} on {x_test.shape[0]} test "
            f"images, then on {s['n_gap']} training images and the bound at K="
            f"{', '.join(map(str, s['ks']))}")
    r = evaluate_as_cli(model, config, x_test, s["k"])
    variances = r.pop("unit_variances")
    r["unit_variances_sorted"] = [round(float(v), 5) for v in np.sort(variances)[::-1]]
    if protocol == "dynamic":  # one binarization of training images, as the test set's
        x_gap = datasets.binarize(x_train[:s["n_gap"]],
                                  np.random.default_rng(config.seed + GAP_SEED_OFFSET))
    else:  # the very images the model trained on
        x_gap = x_train[:s["n_gap"]]
    ll, se = log_likelihood(model, x_gap, k=s["k"], threads=config.threads)
    r.update(train_nll=-ll, train_nll_stderr=se, n_gap=int(x_gap.shape[0]),
             train_test_gap=r["test_nll"] + ll,
             neg_bound_by_k=bound_against_k(model, x_test[:s["n_curve"]], s["ks"],
                                             config.threads),
             n_curve=min(s["n_curve"], int(x_test.shape[0])),
             epoch=epoch, training_set=fingerprint(x_train) if protocol == "fixed" else None)
    stored[key] = r
    cache.write_text(json.dumps(stored, indent=2) + "\n")
    return r


# ---- the experiment ----------------------------------------------------------------------

def train_and_evaluate(exp: Experiment, protocol: str, config: TrainConfig,
                       settings: dict) -> tuple[dict, dict]:
    """Train one protocol's model (or resume it) and compute its numbers: returns
    ``(budget, numbers)``. The full run calls it in two processes at once
    (``settings["workers"]``), the two models sharing nothing but the data files."""
    data = load_data(config)
    model, budget = train_staged(exp, protocol, config, data=data)
    return budget, _evaluate(exp, protocol, model, config, settings, data)


def _check(exp: Experiment) -> None:
    refuse_options(exp, why_not_from="it trains its own two models, with the paper's "
                   "architecture and schedule")


def run(exp: Experiment) -> Outcome:
    """Train the paper's VAE on dynamically and on statically binarized MNIST, estimate
    the test log-likelihood with K importance samples, and draw the training curves and
    the bound against K."""
    _check(exp)
    s = SETTINGS["quick" if exp.quick else "full"]
    configs = {p: model_config(p, s, exp.seed) for p in PROTOCOLS}
    for p, c in configs.items():  # a folder trained otherwise is refused before any work
        _epochs_done(model_dir(exp, p), _saved_config(c))
    numbers, budgets, curves = {"published": PUBLISHED}, {}, {}
    if s["workers"] > 1:  # one process per model; each prints its own progress lines
        child = dataclasses.replace(exp, log=None)
        with ProcessPoolExecutor(min(s["workers"], len(PROTOCOLS)),
                                 mp_context=multiprocessing.get_context("spawn")) as pool:
            jobs = {p: pool.submit(train_and_evaluate, child, p, configs[p], s)
                    for p in PROTOCOLS}
            finished = {p: job.result() for p, job in jobs.items()}
    else:
        finished = {p: train_and_evaluate(exp, p, configs[p], s) for p in PROTOCOLS}
    for p in PROTOCOLS:
        budgets[p], r = finished[p]
        numbers[p] = _rounded(r)
        numbers[p]["distance_to_published"] = round(r["test_nll"] - PUBLISHED["test_nll"], 2)
        lines = (model_dir(exp, p) / "metrics.jsonl").read_text().splitlines()
        curves[p] = [json.loads(line) for line in lines if line.strip()]
        numbers[p]["by_stage"] = [
            {"stage": m["stage"], "epoch": m["epoch"], "lr": m["lr"],
             "test_neg_elbo": round(m["test_loss"], 3),
             "test_nll_probe": round(m["test_nll_probe"], 3)}
            for m in curves[p] if "test_nll_probe" in m]

    figures = []
    schedule = iwae_schedule(max(s["stages"].values()))
    _curves_figure(exp, curves, numbers, schedule, figures)
    _bound_figure(exp, numbers, figures)
    setup = {
        "data": "MNIST, binarized: pixel i is 1 with probability equal to its grey value",
        "split": (f"{configs['dynamic'].n_train or 60_000} training images, "
                  f"{s['n_validation']} of them held out for validation (chosen at random "
                  f"with seed {exp.seed + 3}); {s['n_test'] or 10_000} test images"),
        "binarization": {
            "dynamic": "a fresh draw of every training image at every use",
            "fixed": f"one draw of the training set, generator seed {exp.seed + 2}",
            "test": f"one draw, generator seed {exp.seed + 1} (both models)",
            "validation": f"one draw, generator seed {exp.seed + 4}",
            "dynamic_gap_train_images": f"one draw, generator seed "
                                        f"{exp.seed + GAP_SEED_OFFSET}"},
        "fixed_training_set_sha256_16": numbers["fixed"]["training_set"],
        "model": "784-200-200-50, tanh, Gaussian encoder, Bernoulli decoder "
                 "(decoder output bias initialized to the log-odds of the mean training "
                 "image)",
        "optimizer": f"Adam, betas {ADAM['betas']}, eps {ADAM['eps']}, batch "
                     f"{s['batch_size']}",
        "schedule": [{"stage": i, "epochs": e, "lr": lr} for i, (e, lr) in enumerate(schedule)],
        "schedule_name": {p: ("Burda et al. (2016): 3^i epochs at 1e-3 * 10^(-i/7), i = 0..7"
                              if n == 8 else
                              f"the first {n} stages of Burda et al.'s schedule")
                          for p, n in s["stages"].items()},
        "k": s["k"], "ks": list(s["ks"]), "n_curve": numbers["dynamic"]["n_curve"],
        "by_stage": f"at the end of every stage: the test -ELBO on every test image and "
                    f"test_nll_probe, -log p(x) with K = {PROBE['k']} on the first "
                    f"{min(PROBE['n'], s['n_test'] or 10_000)} test images: what the "
                    f"schedule cut after that stage gives",
        "n_gap": s["n_gap"],
        "gap": f"train_test_gap = test_nll - train_nll, train_nll on the first "
               f"{s['n_gap']} images of the training split (as many as test images in the "
               f"full run), with K = {s['k']}",
        "budgets": budgets,
        "evaluate": {p: f"scratchvae evaluate {model_dir(exp, p).as_posix()} --k {s['k']}"
                     for p in PROTOCOLS},
    }
    table = _table(numbers, budgets, s)
    return Outcome(numbers=numbers, setup=setup, table=table, figures=figures)


def _rounded(r: dict) -> dict:
    out = {}
    for k, v in r.items():
        if isinstance(v, float):
            out[k] = round(v, 3)
        elif isinstance(v, dict):
            out[k] = {a: round(b, 3) for a, b in v.items()}
        else:
            out[k] = v
    return out


def _table(numbers: dict, budgets: dict, s: dict) -> list[str]:
    rows = [f"-log p(x) of binarized MNIST (nats; K = {s['k']}); published "
            f"{PUBLISHED['test_nll']} ({PUBLISHED['active_units']} active units)",
            f"{'binarization':>12s} {'test -ELBO':>10s} {'test':>14s} {'train':>14s} "
            f"{'gap':>6s} {'active':>6s} {'epochs':>6s} {'training':>9s}"]
    for p in PROTOCOLS:
        n = numbers[p]
        rows.append(f"{p:>12s} {n['test_neg_elbo']:10.2f} "
                    f"{n['test_nll']:8.2f} ± {n['test_nll_stderr']:.2f} "
                    f"{n['train_nll']:8.2f} ± {n['train_nll_stderr']:.2f} "
                    f"{n['train_test_gap']:6.2f} {n['active_units']:6d} "
                    f"{budgets[p]['epochs']:6d} "
                    f"{format_duration(budgets[p]['train_seconds']):>9s}")
    ks = list(numbers["dynamic"]["neg_bound_by_k"])
    rows.append(f"-L_K on the first {numbers['dynamic']['n_curve']} test images (nats) at "
                f"K = {', '.join(ks)}:")
    for p in PROTOCOLS:
        rows.append(f"{p:>12s} " + " ".join(f"{numbers[p]['neg_bound_by_k'][k]:8.2f}"
                                            for k in ks))
    return rows


def _curves_figure(exp: Experiment, curves: dict, numbers: dict, schedule,
                   figures: list) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for p, colour in zip(PROTOCOLS, ("C0", "C3"), strict=True):
        epochs = [m["epoch"] for m in curves[p]]
        ax.plot(epochs, [m["train_loss"] for m in curves[p]], color=colour, lw=1,
                label=f"{p}: training -ELBO")
        ax.plot(epochs, [m["val_loss"] for m in curves[p]], color=colour, lw=1, ls="--",
                label=f"{p}: validation -ELBO")
        ends = numbers[p]["by_stage"]
        ax.plot([m["epoch"] for m in ends], [m["test_nll_probe"] for m in ends], "o",
                color=colour, ms=4, label=f"{p}: test -log p(x) at stage ends, K={PROBE['k']}")
        ax.axhline(numbers[p]["test_nll"], color=colour, lw=0.8, ls=":",
                   label=f"{p}: final test -log p(x), K={numbers[p]['k']}")
    ax.axhline(PUBLISHED["test_nll"], color="k", lw=0.8,
               label=f"Burda et al. 2016: {PUBLISHED['test_nll']}")
    for end in np.cumsum([e for e, _ in schedule])[:-1]:
        ax.axvline(end + 0.5, color="0.85", lw=0.8, zorder=0)
    top = max(m["val_loss"] for c in curves.values() for m in c[len(c) // 10:])
    ax.set(xscale="log", xlabel="epoch (grey lines: the learning rate steps down)",
           ylabel="nats per image", ylim=(PUBLISHED["test_nll"] - 10, top + 5),
           title="binarized MNIST, 784-200-200-50 VAE")
    ax.legend(fontsize=7, ncol=2)
    save_figure(exp, fig, "curves.png", figures)


def _bound_figure(exp: Experiment, numbers: dict, figures: list) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for p, colour in zip(PROTOCOLS, ("C0", "C3"), strict=True):
        curve = numbers[p]["neg_bound_by_k"]
        ax.plot([int(k) for k in curve], list(curve.values()), "o-", color=colour, label=p)
    lowest = min(min(numbers[p]["neg_bound_by_k"].values()) for p in PROTOCOLS)
    if lowest < PUBLISHED["test_nll"] + 10:  # in the picture's range: drawn, not squashing it
        ax.axhline(PUBLISHED["test_nll"], color="k", lw=0.8,
                   label=f"Burda et al. 2016 (K = 5000): {PUBLISHED['test_nll']}")
    ax.set(xscale="log", xlabel="K, importance samples per image",
           ylabel=r"$-\mathcal{L}_K$ (nats; K = 1: the negative ELBO)",
           title=f"the bound tightens with K (first {numbers['dynamic']['n_curve']} "
                 f"test images)")
    ax.legend(fontsize=8)
    save_figure(exp, fig, "bound_against_k.png", figures)
