"""What the experiments share: models trained once and reused, PCA, figures.

A model an experiment needs is trained into ``exp.out/models/NAME/`` (a run folder like
``scratchvae train`` writes) and reused from there: the same command with the same
``--out`` finds a finished model and loads it, and resumes an unfinished one from its last
checkpoint. A model found there with another configuration is an error, never silently
reused.
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path

import numpy as np

from .. import checkpoint
from ..ae import AE
from ..backend import to_numpy
from ..train import (
    TrainConfig,
    build_model,
    build_optimizer,
    choose_threads,
    restore_run,
    train,
    train_epoch,
)
from . import Experiment, ExperimentError


def model_dir(exp: Experiment, name: str) -> Path:
    return exp.out / "models" / name


def finished_epochs(run_dir: Path, config: dict) -> int:
    """Epochs already trained in ``run_dir`` for ``config`` (0: nothing there)."""
    path = run_dir / "checkpoint.npz"
    if not path.is_file():
        return 0
    check_configuration(run_dir, config)
    return int(checkpoint.read(path)["epoch"])


def check_configuration(run_dir: Path, config: dict) -> None:
    """Refuse a run folder whose ``config.json`` differs from ``config`` in anything but
    the number of epochs (which grows as a run is continued)."""
    saved = json.loads((run_dir / "config.json").read_text())
    if {k: v for k, v in saved.items() if k != "epochs"} != \
            {k: v for k, v in config.items() if k != "epochs"}:
        raise ExperimentError(f"{run_dir} holds a model trained with another configuration; "
                              f"use another --out or delete that folder")


def train_vae(exp: Experiment, name: str, config: TrainConfig, input_dim: int):
    """A VAE trained with ``config`` (on ``exp``'s data folder and backend), from
    ``exp.out/models/name`` when it is there. Returns ``(model, budget)``: the model,
    and its training budget (epochs, batch size, training seconds as recorded when it was
    trained)."""
    config.data_dir = exp.data_dir
    config.backend = exp.backend
    run_dir = model_dir(exp, name)
    config.validate()
    done = finished_epochs(run_dir, config.to_json())
    if done < config.epochs:
        exp.log(f"training {name}: epochs {done + 1}-{config.epochs}")
        train(config, run_dir, resume=done > 0, quiet=True)
    model = build_model(config, input_dim)
    checkpoint.restore(run_dir / "checkpoint.npz", model)
    return model, training_budget(run_dir, config.epochs, config.batch_size)


def train_ae(exp: Experiment, name: str, x_train, config: TrainConfig):
    """An :class:`~scratchvae.AE` trained on ``x_train``: :func:`train_on_array`."""
    return train_on_array(exp, name, x_train, config, "ae")


def train_on_array(exp: Experiment, name: str, x_train, config: TrainConfig, kind: str):
    """A model (``kind``: ``"ae"`` or ``"vae"``) with ``config``'s architecture, optimizer,
    epochs and batch size trained on the host array ``x_train`` (a training set that is
    no data set of its own, e.g. MNIST without one digit), kept in and reused from
    ``exp.out/models/name`` like :func:`train_vae` (a checkpoint after every epoch).
    Returns ``(model, budget)``."""
    if kind not in ("ae", "vae"):
        raise ValueError(f"kind must be 'ae' or 'vae', got {kind!r}")
    config.backend = exp.backend
    config.validate()
    run_dir = model_dir(exp, name)
    run_dir.mkdir(parents=True, exist_ok=True)
    ae = _build_ae(config, x_train.shape[1]) if kind == "ae" else \
        build_model(config, x_train.shape[1])
    opt = build_optimizer(config, ae)
    done = finished_epochs(run_dir, config.to_json())
    threads_setting = config.threads
    if done:
        threads_setting = restore_run(run_dir, ae, opt, config)
    else:
        (run_dir / "config.json").write_text(json.dumps(config.to_json(), indent=2) + "\n")
        (run_dir / "metrics.jsonl").unlink(missing_ok=True)
    if done < config.epochs:
        exp.log(f"training {name}: epochs {done + 1}-{config.epochs}")
    x = ae.asarray(x_train)
    threads = _threads(threads_setting, config, ae, x) if done < config.epochs else None
    with threads or contextlib.nullcontext():
        for epoch in range(done + 1, config.epochs + 1):
            t0 = time.perf_counter()
            metrics = train_epoch(ae, opt, x, config, epoch)
            metrics = {"epoch": epoch, "train_loss": metrics["loss"],
                       "train_recon": metrics["recon"], "train_kl": metrics["kl"],
                       "epoch_seconds": time.perf_counter() - t0}
            with open(run_dir / "metrics.jsonl", "a") as f:
                f.write(json.dumps(metrics) + "\n")
            checkpoint.save(run_dir / "checkpoint.npz", ae, opt, epoch, config.to_json(),
                            threads=threads.choice if threads else None)
    return ae, training_budget(run_dir, config.epochs, config.batch_size)


def _build_ae(config: TrainConfig, input_dim: int) -> AE:
    return AE(input_dim, config.hidden_dims, config.latent_dim, config.likelihood,
              config.activation, sigma_dec=config.sigma_dec, init=config.init,
              backend=config.backend, dtype=config.dtype, seed=config.seed)


def _threads(setting, config: TrainConfig, model, x):
    """The CPU threads for training ``model`` with ``setting`` (``"auto"`` or a count),
    chosen as ``scratchvae train`` chooses them (:func:`scratchvae.train.choose_threads`);
    ``None`` on a GPU."""
    build = (lambda: _build_ae(config, model.input_dim)) if isinstance(model, AE) else None
    return choose_threads(setting, config, model, x, build=build)


def training_budget(run_dir: Path, epochs: int, batch_size: int) -> dict:
    """The budget a run folder records: epochs, batch size and the training seconds summed
    over its ``metrics.jsonl``."""
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    seconds = sum(json.loads(line)["epoch_seconds"] for line in lines if line.strip())
    return {"epochs": epochs, "batch_size": batch_size, "train_seconds": round(seconds, 3)}


class PCA:
    """Principal component analysis fitted by the SVD of the centred data.

    ``PCA(x, k)``: ``x`` (N, D) host array; ``encode(x)`` gives the (N, k) coordinates in
    the top-k principal directions, ``decode(c)`` maps them back, ``reconstruct(x)`` does
    both.
    """

    def __init__(self, x, k: int):
        x = np.asarray(x, dtype=np.float64)
        if not 1 <= k <= min(x.shape):
            raise ExperimentError(f"PCA needs 1 <= k <= {min(x.shape)}, got k={k}")
        self.mean = x.mean(axis=0)
        _, s, vt = np.linalg.svd(x - self.mean, full_matrices=False)
        self.components = vt[:k]                       # (k, D)
        self.explained_variance = s[:k] ** 2 / (x.shape[0] - 1)

    def encode(self, x):
        return (np.asarray(x, dtype=np.float64) - self.mean) @ self.components.T

    def decode(self, c):
        return c @ self.components + self.mean

    def reconstruct(self, x):
        return self.decode(self.encode(x))


def save_figure(exp: Experiment, fig, filename: str, figures: list) -> None:
    """Write ``fig`` as ``exp.out/filename`` (PNG), close it, and add the name to
    ``figures``."""
    import matplotlib.pyplot as plt

    fig.savefig(exp.out / filename, dpi=120, bbox_inches="tight")
    plt.close(fig)
    figures.append(filename)


def host(a) -> np.ndarray:
    """A model's array on the host."""
    return to_numpy(a)


def few_labels(y, per_class: int, seed: int) -> np.ndarray:
    """Indices of ``per_class`` training examples of each class, drawn at random
    (sorted)."""
    rng = np.random.default_rng(seed)
    picks = []
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        if members.size < per_class:
            raise ExperimentError(f"class {c} has only {members.size} training images, "
                                  f"fewer than the {per_class} labels asked for")
        picks.append(rng.choice(members, per_class, replace=False))
    return np.sort(np.concatenate(picks))


def vae_from_run(exp: Experiment, purpose: str, likelihood: str | None = None):
    """The VAE of ``--from RUN`` (a folder written by ``scratchvae train``, trained on
    MNIST, with ``likelihood`` when one is named), on ``exp``'s backend.

    Returns ``(model, config, budget)``; raises :class:`ExperimentError` naming the run
    and what ``purpose`` needs when the run does not fit."""
    path = exp.from_run / "config.json"
    if not path.is_file():
        raise ExperimentError(f"--from {exp.from_run}: no config.json there (give a folder "
                              f"written by scratchvae train)")
    config = TrainConfig.from_json(json.loads(path.read_text()))
    if config.dataset != "mnist" or likelihood not in (None, config.likelihood):
        kind = f"a {likelihood.capitalize()} VAE" if likelihood else "a VAE"
        raise ExperimentError(f"--from {exp.from_run}: {purpose} needs {kind} trained on "
                              f"mnist, this one is {config.likelihood} on {config.dataset}")
    config.backend = exp.backend
    model = build_model(config, 784)
    epoch = checkpoint.restore(exp.from_run / "checkpoint.npz", model)["epoch"]
    budget = {"epochs": epoch, "batch_size": config.batch_size}
    if (exp.from_run / "metrics.jsonl").is_file():
        budget = training_budget(exp.from_run, epoch, config.batch_size)
    return model, config, budget


#: The options of ``scratchvae experiment`` that only some experiments take.
OPTIONS = ("digit", "beta", "labels", "samples")


def refuse_options(exp: Experiment, takes: tuple = (), takes_from: bool = False,
                   why_not_from: str = "it trains its own models") -> None:
    """Raise :class:`ExperimentError` naming the first option given to ``exp`` that it
    does not take (of :data:`OPTIONS`; ``takes`` lists those it does), and ``--from``
    unless ``takes_from``. Experiments call it before reading any data."""
    unused = [k for k in exp.options if k not in takes]
    if unused:
        offers = ", ".join(f"--{k}" for k in takes) or \
            "none of " + ", ".join(f"--{k}" for k in OPTIONS)
        raise ExperimentError(f"{', '.join('--' + k for k in unused)}: not an option of the "
                              f"{exp.name} experiment (it takes {offers})")
    if exp.from_run is not None and not takes_from:
        raise ExperimentError(f"--from: the {exp.name} experiment takes no trained run "
                              f"({why_not_from})")
