"""Shared fixtures: the array backends every test can run on.

Tests that take the ``backend`` fixture (or ``xp``, ``device``, ``put``, ``move``) run
once per backend:

* ``"numpy"``;
* ``"array_api_strict"`` on its non-default device ``"device1"``, so that any silent
  host <-> device copy or device mix fails the test as it would on a GPU;
* ``"cupy"``, marked ``gpu`` and skipped cleanly when CuPy or a GPU is missing.
"""

from __future__ import annotations

import numpy as np
import pytest

from scratchvae.backend import asarray, get_dtype, get_namespace

BACKEND_PARAMS = ["numpy", "array_api_strict", pytest.param("cupy", marks=pytest.mark.gpu)]


def gpu_available() -> bool:
    """Whether CuPy imports and sees at least one GPU."""
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # no CuPy, no driver, or a broken CUDA install
        return False


def skip_unless_available(backend: str) -> None:
    """Skip the calling test when ``backend`` cannot run on this machine."""
    if backend == "cupy":
        pytest.importorskip("cupy")
        if not gpu_available():
            pytest.skip("CuPy is installed but no GPU is visible")


def backend_device(backend: str):
    """The device tests use: ``device1`` for the strict stand-in, the default elsewhere."""
    if backend == "array_api_strict":
        import array_api_strict

        return array_api_strict.Device("device1")
    return None


@pytest.fixture(params=BACKEND_PARAMS)
def backend(request) -> str:
    """Each backend name in turn (CuPy skipped without a GPU)."""
    skip_unless_available(request.param)
    return request.param


@pytest.fixture
def xp(backend):
    """The array namespace of ``backend``."""
    return get_namespace(backend)


@pytest.fixture
def device(backend):
    """The device arrays of ``backend`` are put on in tests."""
    return backend_device(backend)


@pytest.fixture
def put(xp, device):
    """``put(host_array, dtype="float64")``: host data on the test backend and device."""

    def _put(a, dtype: str = "float64"):
        return asarray(np.asarray(a), xp, dtype=get_dtype(xp, dtype), device=device)

    return _put


@pytest.fixture
def move(backend, device):
    """``move(model)``: the model on the test backend and device."""

    def _move(model):
        return model.to(backend, device=device)

    return _move


@pytest.fixture(scope="session")
def data_dir():
    """The folder with the real data sets: ``$SCRATCHVAE_DATA``, else ``shared/data`` beside
    the checkout. Tests that need it are skipped, with the reason, when it is absent."""
    import os
    from pathlib import Path

    path = Path(os.environ.get("SCRATCHVAE_DATA") or
                Path(__file__).resolve().parents[2] / "shared" / "data")
    if not (path / "mnist" / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"MNIST not found under {path}; set SCRATCHVAE_DATA")
    os.environ.setdefault("SCRATCHVAE_DATA", str(path))
    return path
