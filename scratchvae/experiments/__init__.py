"""Experiments: what VAEs are for, on real data, with numbers that can be reproduced.

Each experiment is a module of this package with a function ``run(exp) -> Outcome``,
started by ``scratchvae experiment NAME`` (or :func:`run_experiment`). The shared part is
here: the settings every experiment takes (:class:`Experiment`), the record it leaves
(``results.json``: the numbers, the setup and training budget, the seed, the code version,
the wall time and the exact command) and the table it prints. The helpers the experiments
share (training a model once and reusing it, PCA, figures) are in
:mod:`scratchvae.experiments.common`.

``--quick`` runs a small version in under a minute on a 2-core CPU, which the tests run;
without it, the full setup, whose results are committed under ``results/NAME/``. Models
trained by an experiment are kept under ``OUT/models/``: running the same command again
with the same ``--out`` reuses the finished ones and resumes the unfinished ones, so a full
run can be stopped and continued.
"""

from __future__ import annotations

import importlib
import json
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..files import atomic_write

#: The experiments, in the order the course teaches them.
NAMES = ("generation", "anomaly", "compression", "features", "bits-back", "semi-supervised",
         "gan", "compare", "collapse", "kingma2014", "nll")


class ExperimentError(ValueError):
    """A setting an experiment cannot run with (the command line exits 2 with it)."""


@dataclass
class Experiment:
    """The settings every experiment takes.

    Parameters
    ----------
    name : str
        One of :data:`NAMES`.
    out : path
        Folder for ``results.json``, the figures and the trained models.
    quick : bool
        The small version (under a minute on a 2-core CPU).
    data_dir : str, optional
        Where the data sets are (default: ``SCRATCHVAE_DATA`` or the download cache).
    backend : {"numpy", "cupy"}
    seed : int
        Seed of every model and of every random draw of the experiment.
    from_run : path, optional
        A trained run (``scratchvae train --out RUN``) to use instead of training the
        experiment's main VAE, where the experiment allows it.
    options : dict
        Experiment-specific settings (e.g. ``{"digit": 3}``), checked by the experiment.
    log : callable
        Receives progress lines (default: ``print``, flushed).
    """

    name: str
    out: Path
    quick: bool = False
    data_dir: str | None = None
    backend: str = "numpy"
    seed: int = 0
    from_run: Path | None = None
    options: dict = field(default_factory=dict)
    log: object = None

    def __post_init__(self):
        if self.name not in NAMES:
            raise ExperimentError(f"NAME must be one of {', '.join(NAMES)}, got {self.name!r}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise ExperimentError(f"seed must be an integer >= 0, got {self.seed!r}")
        if self.backend not in ("numpy", "cupy"):
            raise ExperimentError(f"backend must be 'numpy' or 'cupy', got {self.backend!r}")
        self.out = Path(self.out)
        if self.from_run is not None:
            self.from_run = Path(self.from_run)
            if not (self.from_run / "checkpoint.npz").is_file():
                raise ExperimentError(f"--from {self.from_run}: no checkpoint.npz there "
                                      f"(give a folder written by scratchvae train)")
        if self.log is None:
            self.log = _print_now


@dataclass
class Outcome:
    """What an experiment returns to :func:`run_experiment`.

    ``numbers``: the results (JSON-serializable); ``setup``: what was run, including the
    training budget of every model (epochs, batch size, wall time); ``table``: the lines
    printed at the end; ``figures``: the PNG files written into ``exp.out``.
    """

    numbers: dict
    setup: dict
    table: list[str]
    figures: list[str] = field(default_factory=list)


def module_name(name: str) -> str:
    """The module of this package that holds experiment ``name`` ("bits-back" is in
    ``bits_back``)."""
    return name.replace("-", "_")


def code_version() -> str:
    """The package version and, inside a git checkout, the commit (``+dirty`` when the
    working tree has changes)."""
    from .. import __version__

    root = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=root,
                                capture_output=True, text=True, timeout=10, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=root, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return __version__
    return f"{__version__}+git.{commit.stdout.strip()}" + ("-dirty" if dirty.stdout.strip()
                                                          else "")


def run_experiment(exp: Experiment, command: str | None = None) -> dict:
    """Run one experiment; write ``exp.out/results.json`` and return its contents.

    ``command`` is recorded as the command that reproduces the run (default: this
    process's command line).
    """
    module = importlib.import_module(f"{__name__}.{module_name(exp.name)}")
    exp.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    outcome = module.run(exp)
    wall = time.perf_counter() - started
    results = {
        "experiment": exp.name,
        "quick": exp.quick,
        "command": command or " ".join(shlex.quote(a) for a in ["scratchvae", *sys.argv[1:]]),
        "code_version": code_version(),
        "seed": exp.seed,
        "backend": exp.backend,
        "wall_seconds": round(wall, 1),
        "setup": outcome.setup,
        "numbers": outcome.numbers,
        "figures": outcome.figures,
    }
    text = json.dumps(results, indent=2, allow_nan=True) + "\n"
    atomic_write(exp.out / "results.json", lambda f: f.write(text.encode()))
    for line in outcome.table:
        exp.log(line)
    exp.log(f"wrote {exp.out / 'results.json'} and {len(outcome.figures)} figures "
            f"in {wall:.0f} s")
    return results


def _print_now(line: str) -> None:
    print(line, flush=True)
