"""Array backends: one code path for NumPy, CuPy and the strict array-API stand-in.

Layers and losses never import NumPy directly. They ask the arrays they are given
for their namespace, ``xp = array_namespace(x)``, as Chainer, SciPy and scikit-learn
do, so the same function runs on the CPU (``"numpy"``), on the GPU (``"cupy"``) and
under ``"array_api_strict"``, a CPU library that refuses everything a device library
would refuse (implicit host copies, mixed devices, NumPy-only functions).

Host <-> device conversion happens only here, explicitly, at the edges:
:func:`asarray` puts host data on a backend's device, :func:`to_numpy` brings it back.
"""

from __future__ import annotations

import importlib

import numpy as np
from array_api_compat import array_namespace, device, is_array_api_obj, is_cupy_namespace

BACKENDS = ("numpy", "cupy", "array_api_strict")
DTYPES = ("float32", "float64")

_CUPY_HINT = (
    "the 'cupy' backend needs CuPy and an NVIDIA GPU: install the wheel matching "
    "your CUDA toolkit, e.g. `pip install 'scratchvae[gpu]'` (CUDA 12, cupy-cuda12x) "
    "or `pip install cupy-cuda13x` (CUDA 13)"
)

__all__ = [
    "BACKENDS",
    "DTYPES",
    "array_namespace",
    "asarray",
    "check_backend",
    "default_device",
    "device",
    "get_dtype",
    "get_namespace",
    "to_numpy",
]


def check_backend(backend: str) -> str:
    """Return ``backend`` if it is a known backend name, else raise ``ValueError``."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    return backend


def get_namespace(backend: str):
    """The array namespace ``xp`` for a backend name.

    ``"numpy"`` and ``"cupy"`` are wrapped by array-api-compat so that all three
    backends speak the same standard API.
    """
    check_backend(backend)
    if backend == "numpy":
        import array_api_compat.numpy as xp

        return xp
    if backend == "array_api_strict":
        return importlib.import_module("array_api_strict")
    try:
        import cupy
    except ImportError as err:
        raise ImportError(_CUPY_HINT) from err
    try:
        n_gpus = cupy.cuda.runtime.getDeviceCount()
    except Exception as err:  # CUDA driver missing or broken
        raise RuntimeError(f"{_CUPY_HINT}; CUDA reports: {err}") from err
    if n_gpus < 1:
        raise RuntimeError(f"{_CUPY_HINT}; no GPU is visible")
    import array_api_compat.cupy as xp

    return xp


def backend_name(xp) -> str:
    """The backend name of a namespace (inverse of :func:`get_namespace`)."""
    if is_cupy_namespace(xp):
        return "cupy"
    if xp.__name__.startswith("array_api_strict"):
        return "array_api_strict"
    return "numpy"


def get_dtype(xp, dtype: str):
    """The floating dtype object of ``xp`` named ``dtype`` (``"float32"``/``"float64"``)."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    return getattr(xp, dtype)


def default_device(xp):
    """The device new arrays of ``xp`` land on when none is named."""
    return device(xp.empty(0))


def to_numpy(x) -> np.ndarray:
    """Copy an array of any backend to a host NumPy array (an explicit edge crossing)."""
    if isinstance(x, np.ndarray):
        return x
    xp = array_namespace(x)
    if is_cupy_namespace(xp):
        return x.get()
    if backend_name(xp) == "array_api_strict":
        return np.asarray(xp.asarray(x, device=xp.Device("CPU_DEVICE")))
    return np.asarray(x)


def asarray(x, xp, dtype=None, device=None):
    """Put host data ``x`` (NumPy array, list, scalar) on ``xp``'s ``device``.

    This is the one explicit host -> device crossing. ``dtype`` is a dtype object
    of ``xp`` (or ``None`` to keep ``x``'s).
    """
    if is_array_api_obj(x) and not isinstance(x, np.ndarray):
        if array_namespace(x) is xp:  # already on this backend: at most a device move
            return xp.asarray(xp.astype(x, dtype) if dtype is not None else x, device=device)
        x = to_numpy(x)  # an array of another backend goes through the host
    if backend_name(xp) == "array_api_strict":
        # The strict library only accepts host data on its default (CPU) device.
        host = xp.asarray(np.asarray(x), dtype=dtype)
        return host if device is None else xp.asarray(host, device=device)
    return xp.asarray(x, dtype=dtype, device=device)
