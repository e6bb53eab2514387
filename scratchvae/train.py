"""The AEVB algorithm (Kingma & Welling 2014, Algorithm 1) as a training loop.

Each step: take a minibatch, draw the noise, compute the gradient of the minibatch
ELBO estimate by the hand-written backward pass, update the parameters. Each epoch
appends a line to ``metrics.jsonl`` and writes ``checkpoint.npz`` (atomically) in the
run directory, beside ``config.json``; resuming from that checkpoint continues
bit-for-bit as if the run had never stopped (on the CPU; on a GPU, on the same GPU
model with the same CuPy version, see :mod:`scratchvae.rng`).

On a GPU the loop never waits for the device between steps: the training, validation
and test sets are copied to the device once, the shuffle is drawn there, and the
per-step losses stay there until the end of the epoch.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import checkpoint, datasets
from .backend import host_reads_are_free, on_device, to_numpy
from .checks import check_unit_interval
from .decoder import check_likelihood
from .evaluate import elbo
from .files import keep_epochs_until
from .optim import OPTIMIZERS
from .threads import AUTO, Threads, check_threads
from .vae import VAE

BINARIZE = ("none", "dynamic", "fixed")


class TrainingError(RuntimeError):
    """Training cannot go on (a NaN or inf loss)."""


class ConfigError(ValueError):
    """A configuration that does not fit its data (found once the data set is read)."""


@dataclass
class TrainConfig:
    """Everything that defines a training run; saved as ``config.json``.

    The defaults are the pytorch/examples VAE recipe: MNIST grey values, 784-400-20,
    ReLU, Bernoulli likelihood, Adam with lr 1e-3, batch 128, 10 epochs.
    """

    dataset: str = "mnist"
    data_dir: str | None = None
    backend: str = "numpy"
    device: int | str | None = None
    dtype: str = "float32"
    threads: int | str = AUTO
    seed: int = 0
    out: str | None = None
    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    optimizer: str = "adam"
    weight_decay: float = 0.0
    latent_dim: int = 20
    hidden_dims: tuple = (400,)
    decoder_hidden_dims: tuple | None = None
    activation: str = "relu"
    likelihood: str = "bernoulli"
    sigma_dec: float | str = 1.0
    mean_activation: str = "identity"
    estimator: str = "B"
    n_samples: int = 1
    beta: float = 1.0
    warmup_epochs: int = 0
    free_bits: float = 0.0
    init: str = "pytorch"
    binarize: str = "none"
    n_train: int | None = None
    n_test: int | None = None
    n_validation: int = 0
    preset: str | None = None
    extra: dict = field(default_factory=dict)

    def validate(self) -> TrainConfig:
        """Raise ``ValueError`` naming the first bad field."""
        def positive_int(name):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {v!r}")

        for name in ("epochs", "batch_size", "latent_dim", "n_samples"):
            positive_int(name)
        for name in ("n_train", "n_test"):
            if getattr(self, name) is not None:
                positive_int(name)
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a number > 0, got {self.lr!r}")
        for name in ("weight_decay", "beta", "free_bits"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise ValueError(f"{name} must be a number >= 0, got {v!r}")
        if not isinstance(self.warmup_epochs, int) or self.warmup_epochs < 0:
            raise ValueError(f"warmup_epochs must be an integer >= 0, got {self.warmup_epochs!r}")
        if self.dataset not in datasets.DATASETS:
            raise ValueError(f"dataset must be one of {datasets.DATASETS}, got {self.dataset!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {tuple(OPTIMIZERS)}, "
                             f"got {self.optimizer!r}")
        if self.binarize not in BINARIZE:
            raise ValueError(f"binarize must be one of {BINARIZE}, got {self.binarize!r}")
        if self.binarize != "none" and self.likelihood != "bernoulli":
            raise ValueError(f"binarize={self.binarize!r} needs likelihood='bernoulli'")
        if not isinstance(self.n_validation, int) or self.n_validation < 0:
            raise ValueError(f"n_validation must be an integer >= 0, got {self.n_validation!r}")
        check_threads(self.threads)
        self.likelihood = check_likelihood(self.likelihood)  # a former name: warned, mapped
        for name in ("hidden_dims", "decoder_hidden_dims"):
            dims = getattr(self, name)
            if dims is not None and any(not isinstance(h, int) or isinstance(h, bool) or h < 1
                                        for h in dims):
                raise ValueError(f"{name} must be integers >= 1, got {dims!r}")
        return self

    def to_json(self) -> dict:
        d = dataclasses.asdict(self)
        d["hidden_dims"] = list(self.hidden_dims)
        if self.decoder_hidden_dims is None:  # a mirrored decoder: configs stay as they were
            del d["decoder_hidden_dims"]
        else:
            d["decoder_hidden_dims"] = list(self.decoder_hidden_dims)
        return d

    @classmethod
    def from_json(cls, d: dict) -> TrainConfig:
        d = dict(d)
        d["hidden_dims"] = tuple(d["hidden_dims"])
        if d.get("decoder_hidden_dims") is not None:
            d["decoder_hidden_dims"] = tuple(d["decoder_hidden_dims"])
        return cls(**d)


def build_model(config: TrainConfig, input_dim: int) -> VAE:
    """The VAE a configuration describes."""
    return VAE(input_dim=input_dim, hidden_dims=config.hidden_dims,
               latent_dim=config.latent_dim, likelihood=config.likelihood,
               activation=config.activation, estimator=config.estimator,
               n_samples=config.n_samples, beta=config.beta, free_bits=config.free_bits,
               sigma_dec=config.sigma_dec, mean_activation=config.mean_activation,
               init=config.init, backend=config.backend, device=config.device,
               dtype=config.dtype, seed=config.seed,
               decoder_hidden_dims=config.decoder_hidden_dims)


def build_optimizer(config: TrainConfig, model):
    return OPTIMIZERS[config.optimizer](model.params, lr=config.lr,
                                        weight_decay=config.weight_decay)


def load_data(config: TrainConfig, progress=None):
    """The data set of a configuration as host float arrays: subset, split, binarized.

    Returns ``(ds, x_train, x_val, x_test, y_test)``; ``x_val`` holds ``n_validation``
    training images set aside (``None`` when it is 0).
    """
    ds = datasets.load(config.dataset, config.data_dir, progress=progress)
    for name, split in (("n_train", ds.x_train), ("n_test", ds.x_test)):
        asked = getattr(config, name)
        if asked is not None and asked > split.shape[0]:
            raise ConfigError(f"{name}={asked} is more than the {split.shape[0]} "
                              f"{name[2:]} images of {config.dataset}")
    x_train, x_test = ds.x_train[:config.n_train], ds.x_test[:config.n_test]
    y_test = None if ds.y_test is None else ds.y_test[:config.n_test]
    x_val = None
    if config.n_validation:
        x_train, _, x_val, _ = datasets.train_validation_split(
            x_train, None, config.n_validation, np.random.default_rng(config.seed + 3))
    if config.binarize != "none":
        # held-out images are binarized once, with their own seed, in every protocol
        x_test = datasets.binarize(x_test, np.random.default_rng(config.seed + 1))
        if x_val is not None:
            x_val = datasets.binarize(x_val, np.random.default_rng(config.seed + 4))
    if config.binarize == "fixed":
        x_train = datasets.binarize(x_train, np.random.default_rng(config.seed + 2))
    return ds, x_train, x_val, x_test, y_test


def decoder_dims(config: TrainConfig) -> tuple:
    """The decoder's hidden layer sizes, from z to x."""
    if config.decoder_hidden_dims is None:
        return tuple(config.hidden_dims[::-1])
    return tuple(config.decoder_hidden_dims)


def param_count(config: TrainConfig) -> int:
    """The number of parameters of the model ``config`` describes (without building it)."""
    d_x = math.prod(datasets.IMAGE_SHAPES[config.dataset])
    d_out = 2 * d_x if config.likelihood == "gaussian_per_pixel" else d_x
    enc = (d_x, *config.hidden_dims)
    dec = (config.latent_dim, *decoder_dims(config))
    shared_logvar = config.likelihood == "gaussian" and config.sigma_dec == "learned"
    return (sum(a * b + b for a, b in itertools.pairwise(enc))
            + 2 * (enc[-1] + 1) * config.latent_dim       # the mu and logvar heads
            + sum(a * b + b for a, b in itertools.pairwise(dec))
            + (dec[-1] + 1) * d_out                       # the decoder's head
            + int(shared_logvar))


def training_bytes(config: TrainConfig) -> int:
    """About how much memory training ``config`` takes, in bytes, before it allocates:
    the parameters six times over (parameters, gradients, two optimizer moments and two
    scratch buffers), the data set, and a minibatch's activations and their gradients."""
    d_x = math.prod(datasets.IMAGE_SHAPES[config.dataset])
    itemsize = 8 if config.dtype == "float64" else 4
    n_data = {"frey": 1965}.get(config.dataset, 70_000)
    width = 3 * d_x + sum(config.hidden_dims) + sum(decoder_dims(config)) \
        + 4 * config.latent_dim
    return itemsize * (6 * param_count(config) + n_data * d_x
                       + 4 * config.batch_size * config.n_samples * width)


def kl_weight(config: TrainConfig, epoch: int) -> float:
    """beta, ramped linearly from beta/warmup to beta over the first warm-up epochs."""
    if config.warmup_epochs == 0:
        return config.beta
    return config.beta * min(1.0, epoch / config.warmup_epochs)


def train(config: TrainConfig, run_dir, resume: bool = False, quiet: bool = False,
          log=None) -> dict:
    """Train a VAE; write metrics, config, checkpoint into ``run_dir``.

    Returns the last epoch's metrics. With ``resume``, continues from the run's
    checkpoint up to ``config.epochs`` (nothing to do if it is already there). Raises
    :class:`TrainingError` on a NaN/inf loss (the last good checkpoint stays in place)
    and :class:`~scratchvae.checkpoint.CheckpointError` when there is nothing to resume.
    ``log`` receives one line per epoch (default: ``print``, flushed at once, so that a
    log file or a notebook shows each epoch as it ends).
    """
    log = log or _print_now
    config.validate()
    run_dir = Path(run_dir)
    ckpt_path = run_dir / "checkpoint.npz"
    done = 0
    if resume:
        if not ckpt_path.is_file():
            raise checkpoint.CheckpointError(
                f"{run_dir} has no checkpoint.npz to resume from (the run stopped before "
                f"its first epoch ended); start it again without --resume")
        done = checkpoint.read(ckpt_path)["epoch"]
        if done >= config.epochs:
            if not quiet:
                log(f"{run_dir} is already at epoch {done} of the {config.epochs} asked for: "
                    f"nothing to do (ask for more with --epochs)")
            return _last_metrics(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    show_progress = not quiet and sys.stderr.isatty()
    _, x_train_host, x_val_host, x_test_host, _ = load_data(config, progress=show_progress)
    if config.likelihood == "bernoulli":  # checked once here, not at every step
        try:
            check_unit_interval(x_train_host, f"data set {config.dataset}")
        except ValueError as err:
            raise ConfigError(f"{err} for likelihood='bernoulli'") from None
    model = build_model(config, x_train_host.shape[1])
    opt = build_optimizer(config, model)
    threads_setting = config.threads
    if resume:
        threads_setting = restore_run(run_dir, model, opt, config)
    else:
        (run_dir / "metrics.jsonl").unlink(missing_ok=True)
    (run_dir / "config.json").write_text(json.dumps(config.to_json(), indent=2) + "\n")
    with on_device(model.xp, model.device):
        # the one host -> device copy of each data set
        x_train, x_test = model.asarray(x_train_host), model.asarray(x_test_host)
        x_val = None if x_val_host is None else model.asarray(x_val_host)
        threads = choose_threads(threads_setting, config, model, x_train)
        n = x_train.shape[0]
        metrics = {}
        started = time.perf_counter()
        with threads or contextlib.nullcontext():
            for epoch in range(done + 1, config.epochs + 1):
                model.beta = kl_weight(config, epoch)
                t0 = time.perf_counter()
                try:
                    train_ = train_epoch(model, opt, x_train, config, epoch, show_progress)
                except TrainingError as err:
                    kept = (f"the checkpoint of epoch {epoch - 1} is kept" if epoch > 1 else
                            "no checkpoint was written")
                    raise TrainingError(f"{err}; {kept}") from None
                seconds = time.perf_counter() - t0  # train_epoch has waited for the device
                test = elbo(model, x_test, batch_size=1000)
                train_loss = train_["loss"]
                metrics = {"epoch": epoch, "train_loss": train_loss,
                           "train_recon": train_["recon"], "train_kl": train_["kl"],
                           "test_loss": test["loss"], "test_recon": test["recon"],
                           "test_kl": test["kl"], "beta": model.beta, "epoch_seconds": seconds,
                           "examples_per_second": n / seconds,
                           "threads": None if threads is None else threads.choice}
                if x_val is not None:
                    metrics["val_loss"] = elbo(model, x_val, batch_size=1000)["loss"]
                with open(run_dir / "metrics.jsonl", "a") as f:
                    f.write(json.dumps(metrics) + "\n")
                checkpoint.save(ckpt_path, model, opt, epoch, config.to_json(),
                                threads=None if threads is None else threads.choice)
                if not quiet:
                    val = f"  val {metrics['val_loss']:9.3f}" if "val_loss" in metrics else ""
                    left = config.epochs - epoch
                    per_epoch = (time.perf_counter() - started) / (epoch - done)
                    eta = f"  about {format_duration(left * per_epoch)} left" if left else ""
                    log(f"epoch {epoch:3d}  train {train_loss:9.3f}{val}  "
                        f"test {test['loss']:9.3f}  (recon {test['recon']:8.3f}, "
                        f"KL {test['kl']:7.3f})  {seconds:6.2f} s  {n / seconds:8.0f} ex/s"
                        f"{eta}")
    return metrics


def restore_run(run_dir: Path, model, optimizer, config: TrainConfig):
    """Continue a run: load ``run_dir``'s checkpoint into ``model`` and ``optimizer``, drop
    the lines of its ``metrics.jsonl`` written after that checkpoint, and return the
    thread setting to go on with: for ``"auto"``, the count the checkpoint was trained
    with when it records one (the thread count changes the rounding, so this makes the
    continued run the uninterrupted one, whatever the load now), else ``config.threads``.
    """
    ckpt = checkpoint.restore(run_dir / "checkpoint.npz", model, optimizer)
    keep_epochs_until(run_dir / "metrics.jsonl", ckpt["epoch"])
    if config.threads == AUTO and ckpt["threads"] is not None:
        return ckpt["threads"]
    return config.threads


def _print_now(line: str) -> None:
    print(line, flush=True)


def format_duration(seconds: float) -> str:
    """A duration as people say it: ``"40 s"``, ``"12 min"``, ``"1.5 h"``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _last_metrics(run_dir: Path) -> dict:
    path = run_dir / "metrics.jsonl"
    lines = path.read_text().splitlines() if path.is_file() else []
    return json.loads(lines[-1]) if lines else {}


def choose_threads(setting, config: TrainConfig, model, x_train, build=None):
    """The CPU threads for training ``model`` (``None`` on a GPU, where they do not matter).

    For ``"auto"``, :meth:`~scratchvae.threads.Threads.choose` times whole training steps
    (forward, backward, optimizer) on the first minibatch, taken by a scratch copy of the
    model and optimizer built from ``config`` (by ``build()`` if given, e.g. for an
    autoencoder): the run's parameters and generator are left untouched.
    """
    if not host_reads_are_free(model.xp):
        return None
    threads = Threads(setting)
    if threads.choice is not None:
        return threads
    # a scratch copy on the run's backend and device
    scratch = build() if build is not None else build_model(config, model.input_dim)
    scratch_opt = build_optimizer(config, scratch)
    xb = x_train[:min(config.batch_size, x_train.shape[0]), ...]

    def one_step():
        scratch.loss(xb, check_values=False)
        scratch.backward()
        scratch_opt.step(scratch.grads)

    threads.choose(one_step)
    return threads


def train_epoch(model, opt, x_train, config: TrainConfig, epoch: int,
                show_progress: bool = False) -> dict:
    """One pass over shuffled minibatches of ``x_train`` (on the model's device).

    Returns the epoch's means over the training examples: ``loss`` (the objective
    minimized), ``recon`` and ``kl``. Each step's values are written into an array on
    the device, which comes to the host once, at the end of the epoch: a GPU never waits
    for the host in between. On the CPU, where reading a number costs nothing, a
    non-finite loss stops the epoch at once. Either way :class:`TrainingError` names the
    epoch and the first bad step.
    """
    xp = model.xp
    n, batch_size = x_train.shape[0], config.batch_size
    starts = range(0, n, batch_size)
    stop_early = host_reads_are_free(xp)
    bar = None
    if show_progress:
        from tqdm import tqdm

        bar = tqdm(total=len(starts), desc=f"epoch {epoch}", leave=False, unit="batch")
    with on_device(xp, model.device):
        order = model.rng.permutation(n)  # drawn on the device
        per_step = xp.zeros((len(starts), 3), dtype=model.dtype, device=model.device)
        for step, i in enumerate(starts):
            x = xp.take(x_train, order[i:min(i + batch_size, n)], axis=0)
            if config.binarize == "dynamic":  # a fresh Bernoulli draw every time
                x = xp.astype(model.rng.uniform(x.shape, model.dtype) < x, model.dtype)
            res = model.loss(x, check_values=False)
            per_step[step, 0], per_step[step, 1], per_step[step, 2] = res.loss, res.recon, res.kl
            if stop_early and not math.isfinite(float(res.loss)):
                break
            model.backward()
            opt.step(model.grads)
            if bar is not None:
                bar.update()
                if stop_early or step % 50 == 0:  # on a GPU, an occasional look only
                    bar.set_postfix(loss=f"{float(res.loss):.2f}")
        per_step = to_numpy(per_step).astype(np.float64)  # waits for the device, once
    if bar is not None:
        bar.close()
    bad = np.flatnonzero(~np.isfinite(per_step[:, 0]))
    if bad.size:
        step = int(bad[0])
        raise TrainingError(
            f"the loss became {per_step[step, 0]} at epoch {epoch}, step {step + 1}; lower the "
            f"learning rate (--lr, now {config.lr}) or check the likelihood "
            f"({config.likelihood}) matches the data")
    sizes = np.minimum(batch_size, n - np.arange(0, n, batch_size))
    loss, recon, kl = (float(v) for v in sizes @ per_step / n)
    return {"loss": loss, "recon": recon, "kl": kl}
