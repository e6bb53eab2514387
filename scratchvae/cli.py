"""Command line: ``scratchvae train|evaluate|sample|plot|gradcheck|exercises``.

Bad values exit with status 2 and a one-line message; a failure while running
(missing data offline, a diverging loss) exits with status 1 and says what to do.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shlex
import sys
import time
from pathlib import Path

from .activations import ACTIVATIONS
from .backend import BACKENDS, DTYPES
from .datasets import DATASETS
from .decoder import LIKELIHOODS, MEAN_ACTIVATIONS, RENAMED
from .layers import INITS
from .optim import OPTIMIZERS
from .train import BINARIZE, TrainConfig, format_duration
from .vae import ESTIMATORS

USER_BACKENDS = tuple(b for b in BACKENDS if b != "array_api_strict")  # the stand-in: tests

PRESETS = {
    # Kingma & Welling (2014), section 5 and appendix C: tanh MLPs, Adagrad with a step
    # size from {0.01, 0.02, 0.1}, minibatches of 100, L = 1, weights from N(0, 0.01^2),
    # and a N(0, I) prior on the parameters (weight decay 1/N per example).
    "kingma2014": {
        "mnist": dict(activation="tanh", hidden_dims=(500,), optimizer="adagrad", lr=0.02,
                      batch_size=100, n_samples=1, init="normal", weight_decay=1 / 60000),
        "fashion-mnist": dict(activation="tanh", hidden_dims=(500,), optimizer="adagrad",
                              lr=0.02, batch_size=100, n_samples=1, init="normal",
                              weight_decay=1 / 60000),
        "frey": dict(activation="tanh", hidden_dims=(200,), optimizer="adagrad", lr=0.02,
                     batch_size=100, n_samples=1, init="normal", weight_decay=1 / 1765,
                     likelihood="gaussian_per_pixel", mean_activation="sigmoid",
                     latent_dim=10),
    },
}


class UsageError(Exception):
    """A bad command-line value: reported in one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(f"{self.prog}: error: {message}")


def _int_list(text: str) -> tuple:
    if text.strip().lower() == "none":
        return ()  # no hidden layer: affine encoder and decoder
    if not text.strip():
        raise argparse.ArgumentTypeError("expected sizes such as 400 or 500,500 (or none "
                                         "for an affine VAE), got an empty value")
    try:
        dims = tuple(int(t) for t in text.replace(",", " ").split())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected integers separated by commas, e.g. 400 or 500,500; got {text!r}") from None
    if any(d < 1 for d in dims):
        raise argparse.ArgumentTypeError(f"hidden sizes must be >= 1, got {text!r}")
    return dims


def _sigma(text: str):
    if text == "learned":
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a positive number or 'learned', got {text!r}") from None


def _device_options(parser) -> None:
    parser.add_argument("--backend", choices=USER_BACKENDS, help="where to load the "
                        "model (default: where it was trained); a GPU run opens on the CPU "
                        "with --backend numpy")
    parser.add_argument("--device", type=int, help="GPU index for --backend cupy (default: "
                        "the current GPU)")


def _threads(text: str):
    if text == "auto":
        return text
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected 'auto' or an integer >= 1, got {text!r}")
    return value


def _threads_option(parser) -> None:
    parser.add_argument("--threads", type=_threads, help="CPU threads for the matrix "
                        "products: a number, or auto to time 1 and all cores on the work at "
                        "hand and keep the faster (default: auto; a resumed run keeps the "
                        "count it was trained with)")


MAX_SAMPLES = 2500  # a 50 x 50 grid: more images than this make an unreadable, huge PNG


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="scratchvae", description="Train and inspect variational autoencoders "
                "written from scratch (Kingma & Welling 2014).")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def d(name):  # the default of a training option, as --help shows it
        value = TrainConfig.__dataclass_fields__[name].default
        if isinstance(value, tuple):
            value = ",".join(str(v) for v in value)
        return f"(default: {value})"

    t = sub.add_parser("train", help="train a VAE (AEVB) and write its pictures",
                       description="Train a VAE with the AEVB algorithm. Defaults: the "
                       "pytorch/examples recipe (MNIST, 784-400-20, ReLU, Bernoulli, "
                       "Adam 1e-3, batch 128, 10 epochs); --preset kingma2014 sets the "
                       "paper's instead, and any option given overrides both.")
    t.add_argument("--dataset", choices=DATASETS,
                   help=f"data set {d('dataset')}")
    t.add_argument("--data-dir", help="folder holding mnist/, fashion-mnist/, frey/ "
                   "(default: $SCRATCHVAE_DATA, then a per-user cache; missing files "
                   "are downloaded)")
    t.add_argument("--backend", choices=USER_BACKENDS,
                   help="numpy (CPU) or cupy (NVIDIA GPU); with --resume, continue a run "
                   f"on another device {d('backend')}")
    t.add_argument("--device", type=int, help="GPU index for --backend cupy (default: "
                   "the current GPU, 0 unless CUDA_VISIBLE_DEVICES says otherwise)")
    _threads_option(t)
    t.add_argument("--dtype", choices=DTYPES,
                   help=f"floating-point precision {d('dtype')}")
    t.add_argument("--seed", type=int, help=f"seed of the model's generator {d('seed')}")
    t.add_argument("--out", help="run directory (default: runs/<dataset>-<time>)")
    t.add_argument("--epochs", type=int, help="passes over the training set; with "
                   f"--resume, the total to reach {d('epochs')}")
    t.add_argument("--batch-size", type=int, help=f"minibatch size M {d('batch_size')}")
    t.add_argument("--lr", type=float, help=f"learning rate {d('lr')}")
    t.add_argument("--optimizer", choices=tuple(OPTIMIZERS),
                   help=f"optimizer {d('optimizer')}")
    t.add_argument("--weight-decay", type=float, help="L2 penalty on the parameters (a "
                   f"Gaussian prior on them) {d('weight_decay')}")
    t.add_argument("--latent-dim", type=int, help=f"dimension of z {d('latent_dim')}")
    t.add_argument("--hidden-dims", type=_int_list, help="hidden sizes of the encoder, "
                   "mirrored by the decoder, e.g. 400 or 500,500; none for an affine "
                   f"(linear-Gaussian) VAE {d('hidden_dims')}")
    t.add_argument("--activation", choices=tuple(ACTIVATIONS),
                   help=f"hidden activation {d('activation')}")
    t.add_argument("--likelihood", choices=LIKELIHOODS + tuple(RENAMED),
                   help=f"decoder distribution p(x|z) {d('likelihood')}")
    t.add_argument("--sigma-dec", type=_sigma, help="decoder standard deviation for "
                   f"--likelihood gaussian, or 'learned' {d('sigma_dec')}")
    t.add_argument("--mean-activation", choices=MEAN_ACTIVATIONS,
                   help="sigmoid keeps a Gaussian decoder's mean in (0, 1) "
                   f"{d('mean_activation')}")
    t.add_argument("--estimator", choices=ESTIMATORS, help="SGVB estimator: B uses the "
                   f"analytic KL {d('estimator')}")
    t.add_argument("--samples", type=int, dest="n_samples", help="L, samples of z per "
                   f"data point {d('n_samples')}")
    t.add_argument("--beta", type=float, help=f"KL weight {d('beta')}")
    t.add_argument("--warmup-epochs", type=int, help="ramp the KL weight up linearly "
                   f"over this many epochs {d('warmup_epochs')}")
    t.add_argument("--free-bits", type=float, help="free bits per latent dimension "
                   f"{d('free_bits')}")
    t.add_argument("--init", choices=INITS,
                   help=f"weight initialization {d('init')}")
    t.add_argument("--binarize", choices=BINARIZE,
                   help="binarize grey values: afresh at every use (dynamic) or once "
                   f"(fixed) {d('binarize')}")
    t.add_argument("--n-train", type=int, help="use only the first N training images "
                   "(default: all)")
    t.add_argument("--n-test", type=int, help="use only the first N test images "
                   "(default: all)")
    t.add_argument("--n-validation", type=int, help="hold out N random training images "
                   f"and report their negative ELBO (val_loss) each epoch {d('n_validation')}")
    t.add_argument("--preset", choices=tuple(PRESETS), help="kingma2014: the paper's setup "
                   "(tanh MLP, Adagrad, minibatch 100, N(0, 0.01^2) init; see the README) "
                   "(default: none)")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its checkpoint; "
                   "only --epochs, --backend, --device, --threads, --data-dir, --quiet and "
                   "--no-plots may be given with it")
    t.add_argument("--quiet", action="store_true", help="no progress bar or epoch lines")
    t.add_argument("--no-plots", action="store_true", help="skip the pictures")

    e = sub.add_parser("evaluate", help="test ELBO, importance-weighted log p(x), "
                       "active units of a trained run")
    e.add_argument("run_dir", help="a run directory written by scratchvae train")
    _device_options(e)
    _threads_option(e)
    e.add_argument("--k", type=int, default=5000, help="importance samples per image "
                   "(default: 5000, as Burda et al.)")
    e.add_argument("--n-test", type=int, help="evaluate the first N test images only "
                   "(default: all)")
    e.add_argument("--data-dir", help="folder holding the data sets (default: the run's, "
                   "then $SCRATCHVAE_DATA)")
    e.add_argument("--quiet", action="store_true", help="no progress lines")

    s = sub.add_parser("sample", help="decode samples from the prior into a PNG grid")
    s.add_argument("run_dir", help="a run directory written by scratchvae train")
    _device_options(s)
    s.add_argument("--n", type=int, default=64, help=f"number of images, 1 to {MAX_SAMPLES} "
                   "(default: 64)")
    s.add_argument("--seed", type=int, default=0, help="seed of the draws of z (default: 0)")
    s.add_argument("--out", help="PNG path (default: RUN_DIR/samples.png)")

    pl = sub.add_parser("plot", help="write all pictures of a trained run")
    pl.add_argument("run_dir", help="a run directory written by scratchvae train")
    _device_options(pl)
    pl.add_argument("--data-dir", help="folder holding the data sets (default: the run's, "
                    "then $SCRATCHVAE_DATA)")

    g = sub.add_parser("gradcheck", help="check the hand-written gradients of a small "
                       "VAE against finite differences")
    g.add_argument("--likelihood", default="bernoulli", choices=LIKELIHOODS,
                   help="decoder distribution (default: bernoulli)")
    g.add_argument("--estimator", default="B", choices=ESTIMATORS,
                   help="SGVB estimator (default: B)")
    g.add_argument("--activation", default="tanh", choices=tuple(ACTIVATIONS),
                   help="hidden activation (default: tanh, smooth everywhere)")
    g.add_argument("--samples", type=int, default=2, dest="n_samples",
                   help="L, samples of z per data point (default: 2)")
    g.add_argument("--hidden-dims", type=_int_list, default=(7, 5),
                   help="hidden sizes (default: 7,5)")
    g.add_argument("--latent-dim", type=int, default=3, help="dimension of z (default: 3)")
    g.add_argument("--seed", type=int, default=0, help="seed of the model and the data "
                   "(default: 0)")
    g.add_argument("--tol", type=float, default=1e-6, help="largest relative error that "
                   "passes (default: 1e-6)")
    g.add_argument("--backend", default="numpy", choices=USER_BACKENDS,
                   help="where to run the check: float64 on the GPU with cupy "
                   "(default: numpy)")
    g.add_argument("--device", type=int, help="GPU index for --backend cupy (default: the "
                   "current GPU)")

    x = sub.add_parser("exercises", help="write student versions of the notebooks "
                       "(solutions replaced by `raise NotImplementedError`)")
    x.add_argument("--out", required=True, help="folder to write them to")
    x.add_argument("--root", default=".", help="folder holding notebooks/ and derivations/ "
                   "(default: the current folder)")

    from .experiments import NAMES

    ex = sub.add_parser("experiment", help="run an experiment on what VAEs are for: "
                        + ", ".join(NAMES))
    ex.add_argument("name", metavar="NAME", help="one of: " + ", ".join(NAMES))
    ex.add_argument("--quick", action="store_true", help="the small version (under a minute "
                    "on a 2-core CPU; default: the full setup)")
    ex.add_argument("--out", help="folder for results.json, the figures and the trained "
                    "models (default: runs/NAME, or runs/NAME-quick); the same command with the "
                    "same --out reuses finished models and resumes unfinished ones")
    ex.add_argument("--data-dir", help="folder holding the data sets (default: "
                    "$SCRATCHVAE_DATA or the download cache)")
    ex.add_argument("--backend", default="numpy", choices=("numpy", "cupy"),
                    help="where the models train (default: numpy)")
    ex.add_argument("--seed", type=int, default=0, help="seed of every model and random draw "
                    "(default: 0)")
    ex.add_argument("--from", dest="from_run", metavar="RUN", help="a trained run to use as "
                    "the experiment's main VAE, where the experiment allows it (default: the "
                    "experiment trains its own)")
    ex.add_argument("--digit", type=int, help="anomaly: only this held-out MNIST digit "
                    "(0-9; default: every digit)")
    ex.add_argument("--beta", type=float, help="compression: only this KL weight (> 0; "
                    "default: the whole sweep)")
    ex.add_argument("--labels", type=int, help="semi-supervised: only this number of "
                    "labelled training images (default: every count of the experiment)")
    ex.add_argument("--samples", type=float, help="kingma2014: training samples evaluated per "
                    "model, e.g. 1e7 (default: the experiment's budget)")
    return p


# what may be given with --resume; every other option is fixed by the run's config.json
RESUME_OPTIONS = {"resume", "epochs", "backend", "device", "threads", "data_dir", "quiet",
                  "no_plots", "command"}


def _train_config(args) -> TrainConfig:
    if args.resume:
        given = [k for k, v in vars(args).items()
                 if k not in RESUME_OPTIONS and v not in (None, False)]
        if given:
            flags = ", ".join(_flag(k) for k in given)
            raise UsageError(f"scratchvae train: error: {flags} cannot change when resuming "
                             f"(the run's config.json fixes them); start a new run with "
                             f"--out to change them")
        path = Path(args.resume) / "config.json"
        if not path.is_file():
            raise UsageError(f"scratchvae train: error: --resume {args.resume}: "
                             f"no config.json there (not a run directory)")
        config = TrainConfig.from_json(json.loads(path.read_text()))
        if args.epochs is not None:
            config.epochs = args.epochs
        if args.threads is not None:
            config.threads = args.threads
        if args.data_dir is not None:
            config.data_dir = args.data_dir
        _move_config(config, args.backend, args.device)
        return config
    if getattr(args, "likelihood", None) in RENAMED:
        new = RENAMED[args.likelihood]
        print(f"scratchvae: note: --likelihood {args.likelihood} is now called {new}",
              file=sys.stderr)
        args.likelihood = new
    fields = {k: v for k, v in vars(args).items()
              if k in TrainConfig.__dataclass_fields__ and v is not None}
    dataset = fields.get("dataset", "mnist")
    preset = PRESETS[args.preset][dataset] if args.preset else {}
    config = TrainConfig(**{**preset, **fields})
    if config.out is None:
        config.out = str(Path("runs") / f"{dataset}-{time.strftime('%Y%m%d-%H%M%S')}")
    return config


def _flag(name: str) -> str:
    """The command-line flag of a configuration field: ``n_train`` -> ``--n-train``."""
    return "--samples" if name == "n_samples" else "--" + name.replace("_", "-")


_FIELD = re.compile(r"\b(" + "|".join(sorted(TrainConfig.__dataclass_fields__, key=len,
                                              reverse=True)) + r")\b(=('[^']*'|\S+))?")


def _in_flags(message: str) -> str:
    """A message about configuration fields in the words of the command line:
    ``lr must be > 0`` -> ``--lr must be > 0``, ``binarize='dynamic'`` ->
    ``--binarize dynamic``, ``n_train`` -> ``--n-train``. A plain word such as "backend"
    is a field only at the start of the message or before ``=``."""
    def flag(m):
        name, value = m.group(1), m.group(3)
        if value is None and "_" not in name and m.start() > 0:
            return m.group(0)  # an ordinary word of the sentence
        return _flag(name) + ("" if value is None else " " + value.strip("'"))
    return _FIELD.sub(flag, message)


def _move_config(config: TrainConfig, backend, device) -> None:
    """Put a stored run's configuration on another backend or device, if asked."""
    if backend is not None and backend != config.backend:
        config.backend, config.device = backend, None
    if device is not None:
        config.device = device


def _build(config: TrainConfig, input_dim: int, command: str):
    """The model of ``config``; a bad value or a missing GPU is a usage error (exit 2)."""
    from .train import build_model

    try:
        return build_model(config, input_dim)
    except (ValueError, ImportError, RuntimeError) as err:  # bad value, or no GPU for cupy
        raise UsageError(f"scratchvae {command}: error: {_in_flags(str(err))}") from None


def _writable_dir(path: Path, option: str) -> Path:
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise UsageError(f"scratchvae: error: {option} {path}: not a writable folder "
                         f"({err.strerror})") from None
    return path


def _available_bytes() -> int | None:
    """Memory the machine can still give (Linux's MemAvailable), or None if unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _check_fits(config: TrainConfig) -> None:
    """Refuse a model that cannot fit in memory before anything is allocated."""
    from .train import training_bytes

    need, have = training_bytes(config), _available_bytes()
    if have is not None and need > have:
        raise UsageError(f"scratchvae train: error: this model needs about {need / 2**30:.1f} "
                         f"GiB to train (parameters, gradients, optimizer state and a "
                         f"minibatch) but {have / 2**30:.1f} GiB are available; lower "
                         f"--hidden-dims or --batch-size")


def _cmd_train(args) -> int:
    from .checkpoint import CheckpointError
    from .datasets import DataNotFoundError, DatasetError
    from .train import ConfigError, TrainingError, train

    config = _train_config(args)
    try:
        config.validate()
    except ValueError as err:
        raise UsageError(f"scratchvae train: error: {_in_flags(str(err))}") from None
    _check_fits(config)
    _build(config, 1, "train")  # the model's own checks, before any data is read
    run_dir = Path(args.resume or config.out)
    existed = run_dir.exists()
    _writable_dir(run_dir, "--resume" if args.resume else "--out")
    if not args.quiet:
        print(f"training a {config.likelihood} VAE on {config.dataset} -> {run_dir}",
              flush=True)
    try:
        metrics = train(config, run_dir, resume=bool(args.resume), quiet=args.quiet)
    except ConfigError as err:
        _forget_failed_run(run_dir, existed)
        raise UsageError(f"scratchvae train: error: {_in_flags(str(err))}") from None
    except (DataNotFoundError, DatasetError, CheckpointError, TrainingError, MemoryError):
        _forget_failed_run(run_dir, existed)
        raise
    except KeyboardInterrupt:
        _forget_failed_run(run_dir, existed)
        print(f"scratchvae train: interrupted; {_what_is_kept(run_dir)}", file=sys.stderr)
        return 130
    if not args.no_plots and (run_dir / "checkpoint.npz").is_file():
        written = _write_plots(run_dir, config.data_dir, config.backend, config.device)
        if not args.quiet:
            print("wrote " + ", ".join(p.name for p in written))
    if metrics:
        print(f"final test loss (negative ELBO): {metrics['test_loss']:.3f} nats per example "
              f"(epoch {metrics['epoch']})")
    return 0


def _what_is_kept(run_dir: Path) -> str:
    from . import checkpoint

    path = run_dir / "checkpoint.npz"
    if not path.is_file():
        return ("no epoch had ended, so there is no checkpoint; start again with the same "
                "command")
    epoch = checkpoint.read(path)["epoch"]
    return (f"the checkpoint of epoch {epoch} is kept; continue with "
            f"scratchvae train --resume {run_dir}")


def _forget_failed_run(run_dir: Path, existed: bool) -> None:
    """A new run that failed before its first checkpoint leaves no folder behind."""
    if existed or (run_dir / "checkpoint.npz").exists():
        return
    for name in ("config.json", "metrics.jsonl"):
        (run_dir / name).unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # not empty: something else is in there
        run_dir.rmdir()


def _load_run(run_dir, data_dir=None, backend=None, device=None, command="plot"):
    from . import checkpoint
    from .train import TrainConfig, load_data

    run_dir = Path(run_dir)
    path = run_dir / "config.json"
    if not path.is_file():
        raise UsageError(f"scratchvae: error: {run_dir}: no config.json (not a run directory)")
    config = TrainConfig.from_json(json.loads(path.read_text()))
    if data_dir is not None:
        config.data_dir = data_dir
    _move_config(config, backend, device)
    _build(config, 1, command)  # a missing GPU is reported before the data are read
    ds, _, _, x_test, y_test = load_data(config, progress=False)
    model = _build(config, x_test.shape[1], command)
    checkpoint.restore(run_dir / "checkpoint.npz", model)
    return config, ds, model, x_test, y_test


def _write_plots(run_dir, data_dir=None, backend=None, device=None) -> list:
    import numpy as np

    from . import datasets, plots
    from .evaluate import latent_means

    run_dir = Path(run_dir)
    config, ds, model, x_test, y_test = _load_run(run_dir, data_dir, backend, device)
    shape = ds.image_shape
    written = [run_dir / "reconstructions.png", run_dir / "samples.png",
               run_dir / "latent.png", run_dir / "curves.png"]
    spread = np.linspace(0, x_test.shape[0] - 1, 8).round().astype(int)  # across the set
    plots.plot_reconstructions(model, x_test[spread], shape, path=written[0])
    plots.plot_samples(model, shape, n=64, path=written[1])
    plots.plot_latent(model, x_test[:5000], None if y_test is None else y_test[:5000],
                      path=written[2], class_names=datasets.CLASS_NAMES.get(config.dataset))
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    plots.plot_curves([json.loads(line) for line in lines if line.strip()], path=written[3])
    if model.latent_dim == 2:
        written.append(run_dir / "manifold.png")
        x_train = ds.x_train[:5000]  # the training images span the data set; Frey's test
        means = latent_means(model, x_train).astype(np.float64)  # set is one short clip
        limits = np.percentile(means, [1, 99], axis=0).T  # where the data actually lie
        plots.plot_manifold(model, shape, n=20, path=written[-1], limits=limits)
    return written


class _Progress:
    """Progress of a long computation in units: an estimate of the total time after the
    first unit, then a bar on a terminal, or a line at every tenth otherwise (a log
    file, ``nohup``, a notebook's ``!`` command)."""

    def __init__(self, what: str, quiet: bool = False):
        self.what, self.quiet = what, quiet
        self.tty = sys.stderr.isatty()
        self.start, self.bar, self.tenths = time.perf_counter(), None, 0

    def __call__(self, done: int, total: int) -> None:
        if done == 0:  # the work proper starts: time from here
            self.start = time.perf_counter()
            return
        if self.quiet:
            return
        elapsed = time.perf_counter() - self.start
        if done == 1:
            print(f"{self.what}: about {format_duration(elapsed * total)} "
                  f"(timed on the first of {total} chunks)", flush=True)
            if self.tty:
                from tqdm import tqdm

                self.bar = tqdm(total=total, initial=1, desc=self.what, leave=False,
                                unit="chunk")
        elif self.bar is not None:
            self.bar.update()
        elif done * 10 // total > self.tenths:
            self.tenths = done * 10 // total
            left = elapsed / done * (total - done)
            print(f"{self.what}: {done}/{total} chunks, {format_duration(elapsed)} so far, "
                  f"about {format_duration(left)} left", flush=True)
        if done == total and self.bar is not None:
            self.bar.close()


def _cmd_evaluate(args) -> int:
    from .evaluate import active_units, elbo, log_likelihood

    if args.k < 1:
        raise UsageError(f"scratchvae evaluate: error: --k must be >= 1, got {args.k}")
    if args.n_test is not None and args.n_test < 1:
        raise UsageError("scratchvae evaluate: error: --n-test must be >= 1")
    config, _, model, x_test, _ = _load_run(args.run_dir, args.data_dir, args.backend,
                                            args.device, "evaluate")
    if args.n_test is not None:
        if args.n_test > x_test.shape[0]:
            raise UsageError(f"scratchvae evaluate: error: --n-test {args.n_test} is more "
                             f"than the {x_test.shape[0]} test images of the run")
        x_test = x_test[:args.n_test]
    epoch = _checkpoint_epoch(args.run_dir)
    e = elbo(model, x_test)
    what = f"log p(x) with K={args.k} on {x_test.shape[0]} images"
    ll, se = log_likelihood(model, x_test, k=args.k, progress=_Progress(what, args.quiet),
                            threads=config.threads if args.threads is None else args.threads)
    au, _ = active_units(model, x_test)
    result = {"epoch": epoch, "n_test": int(x_test.shape[0]), "test_elbo": -e["loss"],
              "test_recon": e["recon"], "test_kl": e["kl"], "log_likelihood": ll,
              "log_likelihood_stderr": se, "k": args.k, "active_units": int(au),
              "latent_dim": model.latent_dim}
    print(f"evaluated the checkpoint of epoch {epoch}")
    print(f"test ELBO          {-e['loss']:10.3f} nats  (recon {e['recon']:.3f}, "
          f"KL {e['kl']:.3f})")
    print(f"log p(x), K={args.k:<5d} {ll:10.3f} ± {se:.3f} nats (importance weighted)")
    print(f"active units       {au} of {model.latent_dim}")
    (Path(args.run_dir) / "evaluation.json").write_text(json.dumps(result, indent=2) + "\n")
    return 0


def _checkpoint_epoch(run_dir) -> int:
    from . import checkpoint

    return checkpoint.read(Path(run_dir) / "checkpoint.npz")["epoch"]


def _cmd_sample(args) -> int:
    from . import plots

    if not 1 <= args.n <= MAX_SAMPLES:
        raise UsageError(f"scratchvae sample: error: --n must be between 1 and {MAX_SAMPLES} "
                         f"(a grid of at most 50 x 50 images), got {args.n}")
    _, ds, model, _, _ = _load_run(args.run_dir, None, args.backend, args.device, "sample")
    model.reseed(args.seed)
    out = Path(args.out) if args.out else Path(args.run_dir) / "samples.png"
    _writable_dir(out.parent, "--out")
    plots.plot_samples(model, ds.image_shape, n=args.n, path=out)
    print(f"wrote {out}")
    return 0


def _cmd_plot(args) -> int:
    written = _write_plots(args.run_dir, args.data_dir, args.backend, args.device)
    print("wrote " + ", ".join(str(p) for p in written))
    return 0


def _cmd_gradcheck(args) -> int:
    import numpy as np

    from .gradcheck import check_model
    from .vae import VAE

    try:
        model = VAE(input_dim=12, hidden_dims=args.hidden_dims, latent_dim=args.latent_dim,
                    likelihood=args.likelihood, activation=args.activation,
                    estimator=args.estimator, dtype="float64", seed=args.seed,
                    sigma_dec=0.5, backend=args.backend, device=args.device)
    except (ValueError, ImportError, RuntimeError) as err:  # bad value, or no GPU for cupy
        raise UsageError(f"scratchvae gradcheck: error: {err}") from None
    rng = np.random.default_rng(args.seed)
    x = model.asarray(rng.random((5, 12)))
    eps = model.asarray(rng.standard_normal((args.n_samples, 5, args.latent_dim)))
    report = check_model(model, x, eps)
    print(report)
    ok = report.passed(args.tol)
    print(f"{'PASS' if ok else 'FAIL'}: largest relative error {report.max_error:.2e} "
          f"(tolerance {args.tol:.0e})")
    return 0 if ok else 1


def _cmd_exercises(args) -> int:
    from .student import write_student_versions

    out = _writable_dir(Path(args.out), "--out")
    try:
        written = write_student_versions(out, root=args.root)
    except (FileNotFoundError, ValueError) as err:
        raise UsageError(f"scratchvae exercises: error: {err}") from None
    for path in written:
        print(f"wrote {path}")
    others = [p for folder in ("notebooks", "derivations")
              for p in sorted((Path(args.root) / folder).glob("*.ipynb"))
              if p.name not in {w.name for w in written}]
    if others:
        print(f"{len(others)} notebooks have no exercises to fill in and were not copied "
              f"(read them where they are): " + ", ".join(p.name for p in others))
    return 0


def _cmd_experiment(args, argv) -> int:
    from .experiments import Experiment, ExperimentError, run_experiment

    out = Path(args.out or f"runs/{args.name}{'-quick' if args.quick else ''}")
    options = {k: v for k, v in (("digit", args.digit), ("beta", args.beta),
                                            ("labels", args.labels),
                                            ("samples", args.samples)) if v is not None}
    try:
        exp = Experiment(args.name, out, quick=args.quick, data_dir=args.data_dir,
                         backend=args.backend, seed=args.seed, from_run=args.from_run,
                         options=options)
        _writable_dir(out, "--out")
        run_experiment(exp, command=shlex.join(["scratchvae", *argv]))
    except ExperimentError as err:
        raise UsageError(f"scratchvae experiment: error: {_in_flags(str(err))}") from None
    return 0


COMMANDS = {"train": _cmd_train, "evaluate": _cmd_evaluate, "sample": _cmd_sample,
            "plot": _cmd_plot, "gradcheck": _cmd_gradcheck, "exercises": _cmd_exercises}


def main(argv=None) -> int:
    from .checkpoint import CheckpointError
    from .datasets import DataNotFoundError, DatasetError
    from .train import TrainingError

    try:
        argv = sys.argv[1:] if argv is None else list(argv)
        args = build_parser().parse_args(argv)
        if args.command == "experiment":  # its results.json quotes the command line
            return _cmd_experiment(args, argv)
        return COMMANDS[args.command](args)
    except UsageError as err:
        print(err, file=sys.stderr)
        return 2
    except (DataNotFoundError, DatasetError, CheckpointError, TrainingError) as err:
        print(f"scratchvae: error: {err}", file=sys.stderr)
        return 1
    except MemoryError as err:  # host memory, or the GPU's (CuPy's OutOfMemoryError)
        detail = " ".join(str(err).split())[:200]
        print(f"scratchvae: error: out of memory ({type(err).__name__}{': ' if detail else ''}"
              f"{detail}); lower --batch-size (or --k for evaluate); the last checkpoint is "
              f"kept", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("scratchvae: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
