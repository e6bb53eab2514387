"""The derivation notebooks' checks can fail: each classic VAE bug, put into the library, makes a
derivation notebook fail with an ``AssertionError``.

For each bug a code cell is prepended to a derivation notebook. It imports the library and
replaces one function by a mutant in every ``scratchvae`` module that holds it by name
(``scratchvae.vae`` imports ``kl_std_normal_forward`` from ``scratchvae.kl``, so both names
are replaced), before the notebook's own imports run. The notebook then executes as in
``tests/test_notebooks.py`` (quick mode, the repository on ``PYTHONPATH``) and must stop at a
failed ``assert``. The same notebook with the same prepended cell but no mutation (the mutant
is the original function) must run through, so that the failure is the bug's, not the cell's.
Only the notebooks that derive the mutated function run, and the first one that fails ends
the search.
"""

from __future__ import annotations

import os
import re
import textwrap
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
CellExecutionError = pytest.importorskip("nbclient.exceptions").CellExecutionError

ROOT = Path(__file__).resolve().parents[1]
DERIVATIONS = ROOT / "derivations"
CELL_TIMEOUT_S = 300

PATCH = '''\
import importlib
import pkgutil
import sys

import numpy as _np

import scratchvae
from {module} import {name} as _original
from scratchvae.likelihoods import LOG_2PI as _LOG_2PI

for _info in pkgutil.iter_modules(scratchvae.__path__):
    if not _info.name.startswith("_"):
        importlib.import_module("scratchvae." + _info.name)

{mutant}

_holders = [_mod for _mod_name, _mod in sorted(sys.modules.items())
            if _mod_name.split(".")[0] == "scratchvae"
            and getattr(_mod, "{name}", None) is _original]
assert "{module}" in [_mod.__name__ for _mod in _holders]
for _mod in _holders:
    setattr(_mod, "{name}", _mutant)
'''

IDENTITY = "_mutant = _original"

# bug -> (module, function, mutant, the derivation notebooks that check the function, in order)
BUGS = {
    "KL without its 1/2": (
        "scratchvae.kl", "kl_std_normal_forward", """
        def _mutant(mu, logvar, per_dim=False):
            kl, cache = _original(mu, logvar, per_dim)
            return 2 * kl, cache            # sum_j (sigma_j^2 + mu_j^2 - 1 - logvar_j), no 1/2
        """, ("04_kl_gaussians", "03_elbo_decomposition", "02_elbo_jensen")),
    "variance used as the standard deviation": (
        "scratchvae.reparam", "reparameterize_forward", """
        def _mutant(mu, logvar, eps):
            return _original(mu, 2 * logvar, eps)   # z = mu + exp(logvar) * eps
        """, ("05_reparameterization", "08_backprop")),
    "chain factor without its 1/2 (dz/dlogvar = sigma eps)": (
        "scratchvae.reparam", "reparameterize_backward", """
        def _mutant(dz, cache):
            dmu, dlogvar = _original(dz, cache)
            return dmu, 2 * dlogvar
        """, ("05_reparameterization", "08_backprop")),
    "Gaussian constant with d instead of d/2": (
        "scratchvae.likelihoods", "gaussian_logpdf_forward", """
        def _mutant(x, mean, logvar):
            logp, cache = _original(x, mean, logvar)
            shape = _np.broadcast_shapes(_np.shape(x), _np.shape(mean), _np.shape(logvar))
            half_constant = 0.5 * _np.sum(_np.broadcast_to(_LOG_2PI + logvar, shape), axis=-1)
            return logp - half_constant, cache    # -d log(2 pi sigma^2) instead of -d/2 ...
        """, ("08_backprop", "07_linear_gaussian", "05_reparameterization")),
    "a backward pass 1 % off": (
        "scratchvae.likelihoods", "bernoulli_logpmf_backward", """
        def _mutant(dlogp, cache):
            return 1.01 * _original(dlogp, cache)
        """, ("08_backprop",)),
}


@pytest.fixture(scope="module")
def kernel_env():
    """Quick mode and the repository importable, for the kernels of this module."""
    saved = {key: os.environ.get(key) for key in ("SCRATCHVAE_QUICK", "PYTHONPATH", "MPLBACKEND")}
    os.environ["SCRATCHVAE_QUICK"] = "1"
    paths = [str(ROOT), *filter(None, (saved["PYTHONPATH"] or "").split(os.pathsep))]
    os.environ["PYTHONPATH"] = os.pathsep.join(paths)
    os.environ.pop("MPLBACKEND", None)
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def _run(stem: str, module: str, name: str, mutant: str) -> CellExecutionError | None:
    """Execute derivation ``stem`` with the patch cell in front; the error it stopped at."""
    notebook = nbformat.read(DERIVATIONS / f"{stem}.ipynb", as_version=4)
    source = PATCH.format(module=module, name=name, mutant=textwrap.dedent(mutant).strip())
    notebook.cells.insert(0, nbformat.v4.new_code_cell(source))
    client = nbclient.NotebookClient(notebook, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                                     resources={"metadata": {"path": str(DERIVATIONS)}})
    start = time.perf_counter()
    try:
        client.execute()
    except CellExecutionError as error:
        return error
    finally:
        print(f"{stem} ({'unchanged' if mutant == IDENTITY else name}): "
              f"{time.perf_counter() - start:.1f} s")
    return None


@pytest.fixture(scope="module")
def unchanged_runs(kernel_env):
    """``run(stem, module, name)``: the notebook with the patch cell but no mutation passes."""
    passed: dict[str, bool] = {}

    def run(stem, module, name):
        if stem not in passed:
            error = _run(stem, module, name, IDENTITY)
            assert error is None, f"{stem} fails without any bug:\n{error}"
            passed[stem] = True
        return passed[stem]
    return run


def _failed_assert(error: CellExecutionError) -> str:
    """The line the traceback points at (``---->``), without the terminal's colours."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(error))
    arrows = [line.split(">", 1)[1].strip() for line in text.splitlines()
              if re.match(r"\s*-+>", line)]
    return arrows[-1] if arrows else text.splitlines()[-1]


@pytest.mark.slow
@pytest.mark.parametrize("bug", BUGS)
def test_a_derivation_fails_on_the_bug(bug, kernel_env, unchanged_runs):
    module, name, mutant, stems = BUGS[bug]
    for stem in stems:
        error = _run(stem, module, name, mutant)
        if error is not None:
            assert error.ename == "AssertionError", \
                f"{stem} stopped on {error.ename}, not on a check:\n{error}"
            print(f"{bug}: {stem} fails at {_failed_assert(error)}")
            assert unchanged_runs(stem, module, name)
            return
    pytest.fail(f"no derivation notebook of {stems} catches the bug '{bug}' "
                f"(mutant of {module}.{name})")
