"""Array backends: one code path for NumPy, CuPy and the strict array-API stand-in.

Layers and losses never import NumPy directly. They ask the arrays they are given
for their namespace, ``xp = array_namespace(x)``, as Chainer, SciPy and scikit-learn
do, so the same function runs on the CPU (``"numpy"``), on the GPU (``"cupy"``) and
under ``"array_api_strict"``, a CPU library that refuses everything a device library
would refuse (implicit host copies, mixed devices, NumPy-only functions).

Host <-> device conversion happens only here, explicitly, at the edges:
:func:`asarray` puts host data on a backend's device, :func:`to_numpy` brings it back.

Everything that knows about CuPy in particular lives in this module and in
:mod:`scratchvae.rng`: finding the GPU (:func:`get_namespace`, :func:`normalize_device`),
the device context CuPy needs for allocations (:func:`on_device`), and the fused update
kernels of the optimizers (:func:`fused_kernel`). The rest of the package is written
against the array API alone, which is what the ``array_api_strict`` test runs prove.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import operator

import numpy as np
from array_api_compat import (
    array_namespace,
    device,
    is_array_api_obj,
    is_cupy_namespace,
    is_numpy_namespace,
    to_device,
)

BACKENDS = ("numpy", "cupy", "array_api_strict")
DTYPES = ("float32", "float64")
_STRICT_DEVICES = ("CPU_DEVICE", "device1", "device2")

CUPY_INSTALL = (
    "install CuPy for your CUDA version with its CUDA libraries: "
    "`pip install 'scratchvae[gpu]'` (CUDA 12: cupy-cuda12x[ctk]) or "
    "`pip install 'cupy-cuda13x[ctk]'` (CUDA 13)"
)

__all__ = [
    "BACKENDS",
    "DTYPES",
    "BackendUnavailableError",
    "array_namespace",
    "asarray",
    "check_backend",
    "default_device",
    "device",
    "fused_kernel",
    "get_dtype",
    "get_namespace",
    "host_reads_are_free",
    "normalize_device",
    "on_device",
    "to_numpy",
]


class BackendUnavailableError(ImportError, RuntimeError):
    """A backend that cannot run here (CuPy missing, no GPU, no CUDA driver or libraries).

    Its message is one line that names the fix. It is an ``ImportError`` (CuPy is not
    importable) and a ``RuntimeError`` (CUDA is not usable), so either ``except`` works.
    """


def check_backend(backend: str) -> str:
    """Return ``backend`` if it is a known backend name, else raise ``ValueError``."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    return backend


def get_namespace(backend: str):
    """The array namespace ``xp`` for a backend name.

    ``"numpy"`` and ``"cupy"`` are wrapped by array-api-compat so that all three
    backends speak the same standard API. For ``"cupy"`` this also checks, once per
    process, that a GPU is visible and that CUDA can compile and run a kernel; if not,
    it raises :class:`BackendUnavailableError` with one line naming the fix.
    """
    check_backend(backend)
    if backend == "numpy":
        import array_api_compat.numpy as xp

        return xp
    if backend == "array_api_strict":
        return importlib.import_module("array_api_strict")
    _check_cupy()
    import array_api_compat.cupy as xp

    return xp


@functools.cache
def _check_cupy() -> None:
    """Import CuPy, find a GPU and run one compiled kernel; raise one clear line if not.

    Cached: a process finds out once whether its GPU works.
    """
    try:
        import cupy
    except ImportError as err:
        raise BackendUnavailableError(
            f"the 'cupy' backend needs CuPy and an NVIDIA GPU, but CuPy is not "
            f"installed ({err}); {CUPY_INSTALL}") from None
    try:
        n_gpus = cupy.cuda.runtime.getDeviceCount()
    except Exception as err:  # no driver, or a driver too old for this CuPy
        raise BackendUnavailableError(
            f"the 'cupy' backend needs an NVIDIA GPU with a working driver, but CUDA "
            f"reports: {_one_line(err)}; check `nvidia-smi`, and that the CuPy wheel "
            f"matches the driver's CUDA version ({CUPY_INSTALL})") from None
    if n_gpus < 1:
        raise BackendUnavailableError(
            "the 'cupy' backend needs an NVIDIA GPU, but CUDA sees none; check "
            "`nvidia-smi` and CUDA_VISIBLE_DEVICES")
    try:  # a compiled elementwise kernel (NVRTC), a matrix product (cuBLAS), a draw (cuRAND)
        a = cupy.ones((2, 2), dtype=cupy.float32)
        float(((a * 0.5) @ a).sum() + cupy.random.default_rng(0).random(1)[0])
    except Exception as err:
        raise BackendUnavailableError(
            f"CuPy sees {n_gpus} GPU(s) but cannot compile or run a kernel "
            f"({type(err).__name__}: {_one_line(err)}); the CUDA libraries (NVRTC, "
            f"cuRAND, cuBLAS) are probably missing: {CUPY_INSTALL}") from None


def _one_line(err) -> str:
    text = " ".join(str(err).split())
    return text if len(text) <= 300 else text[:297] + "..."


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


def normalize_device(backend: str, dev=None):
    """The device object of ``backend`` that ``dev`` names (``None``: the default).

    * ``"numpy"``: ``None`` or ``"cpu"``.
    * ``"array_api_strict"``: ``None``, a device name such as ``"device1"``, or an
      ``array_api_strict.Device``.
    * ``"cupy"``: ``None`` (the current GPU), a GPU index ``int`` or a
      ``cupy.cuda.Device``; the result is always a ``cupy.cuda.Device``, so it compares
      equal to the ``.device`` of the arrays allocated on it.

    Raises ``ValueError`` naming the devices there are.
    """
    xp = get_namespace(backend)
    if dev is None:
        return default_device(xp)
    if backend == "numpy":
        if dev != "cpu":
            raise ValueError(f"device for backend 'numpy' must be None or 'cpu', got {dev!r}")
        return "cpu"
    if backend == "array_api_strict":
        if isinstance(dev, xp.Device):
            return dev
        if dev not in _STRICT_DEVICES:
            raise ValueError(f"device for backend 'array_api_strict' must be one of "
                             f"{_STRICT_DEVICES}, got {dev!r}")
        return xp.Device(dev)
    import cupy

    if isinstance(dev, cupy.cuda.Device):
        index = dev.id
    else:
        try:
            index = operator.index(dev)
        except TypeError:
            raise ValueError(f"device for backend 'cupy' must be a GPU index or a "
                             f"cupy.cuda.Device, got {dev!r}") from None
    n_gpus = cupy.cuda.runtime.getDeviceCount()
    if not 0 <= index < n_gpus:
        raise ValueError(f"device {index} does not exist: CUDA sees {n_gpus} GPU(s), "
                         f"numbered 0 to {n_gpus - 1}")
    return cupy.cuda.Device(index)


def device_label(dev):
    """A JSON-friendly name of a device (for configs and checkpoints): the GPU index on
    CuPy, the device's text elsewhere."""
    return int(dev.id) if hasattr(dev, "id") else str(dev)


def on_device(xp, dev):
    """A context manager under which ``xp`` allocates and runs on ``dev``.

    CuPy allocates on its *current* GPU whatever ``device=`` says (array-api-compat
    ignores the argument for CuPy), and launches kernels there, so every method that
    allocates or computes runs under ``with on_device(model.xp, model.device):``. The
    other backends need nothing.
    """
    if is_cupy_namespace(xp):
        return dev  # a cupy.cuda.Device is its own context manager
    return contextlib.nullcontext()


def host_reads_are_free(xp) -> bool:
    """Whether reading a value back (``float(x)``) is free: true on the CPU backends,
    false on CuPy, where it waits for every queued kernel (a loop that reads a number
    every step keeps the GPU idle between steps)."""
    return not is_cupy_namespace(xp)


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
            if dtype is not None:
                x = xp.astype(x, dtype, copy=False)
            if device is None or x.device == device:
                return x
            if is_cupy_namespace(xp):  # cupy.asarray would keep it on its own GPU
                with device:
                    return x.copy()
            return to_device(x, device)
        x = to_numpy(x)  # an array of another backend goes through the host
    if backend_name(xp) == "array_api_strict":
        # The strict library only accepts host data on its default (CPU) device.
        host = xp.asarray(np.asarray(x), dtype=dtype)
        return host if device is None else xp.asarray(host, device=device)
    return xp.asarray(x, dtype=dtype, device=device)


# ---- fused update kernels -------------------------------------------------------------
# An optimizer step written as array operations is one pass over the parameter vector per
# operation (13 for Adam). On a GPU, where this model's steps are launch-bound, the passes
# are fused into one CuPy kernel. On NumPy, where each pass streams the multi-megabyte
# vector through the cache, the same formula is written with ufuncs that write into a
# preallocated buffer (``out=``): 10 passes for Adam, 8 for Adagrad. The formulas are
# exactly those of the plain versions in optim.py, which other array libraries run, and
# they round as those do: the backends agree bit for bit.
_CUPY_KERNELS = {
    # Adam with scaled moments (see scratchvae.optim.Adam): c and eps_s are per-step scalars
    "adam": ("T g, T beta1, T beta2, T c, T eps_s", "T p, T m, T v",
             "m = beta1 * m + g; v = beta2 * v + g * g; p -= c * m / (sqrt(v) + eps_s);"),
    # Adagrad: G += g^2; p -= lr g / (sqrt(G) + eps)
    "adagrad": ("T g, T lr, T eps", "T p, T G",
                "G += g * g; p -= lr * g / (sqrt(G) + eps);"),
}


def _adam_numpy(buf, g, beta1, beta2, c, eps_s, p, m, v):
    """The CuPy ``adam`` kernel's formula in 10 NumPy passes (``buf``: scratch space)."""
    m *= beta1                          # m = beta1 m + g
    m += g
    np.multiply(g, g, out=buf)          # v = beta2 v + g^2
    v *= beta2
    v += buf
    np.sqrt(v, out=buf)                 # p -= c m / (sqrt(v) + eps_s)
    buf += eps_s
    np.divide(m, buf, out=buf)
    buf *= c
    p -= buf


def _adagrad_numpy(buf, g, lr, eps, p, G):
    """The CuPy ``adagrad`` kernel's formula in 8 NumPy passes (``buf``: scratch space)."""
    np.multiply(g, g, out=buf)          # G += g^2
    G += buf
    np.sqrt(G, out=buf)                 # p -= lr g / (sqrt(G) + eps)
    buf += eps
    np.reciprocal(buf, out=buf)         # 1 / (...) times g, as the plain form rounds it
    buf *= g
    buf *= lr
    p -= buf


_NUMPY_KERNELS = {"adam": _adam_numpy, "adagrad": _adagrad_numpy}


def fused_kernel(xp, name: str, like=None):
    """The fused update ``name`` (``"adam"``, ``"adagrad"``) for ``xp``, or ``None`` for
    an array library that has none (the caller then runs its plain array operations).

    On CuPy: one ``ElementwiseKernel``. On NumPy: the ufunc form above, given a scratch
    buffer shaped like ``like`` (the parameter vector). Both are called with the CuPy
    kernel's arguments, inputs first, then the arrays updated in place.
    """
    if name not in _CUPY_KERNELS:
        raise ValueError(f"name must be one of {tuple(_CUPY_KERNELS)}, got {name!r}")
    if is_cupy_namespace(xp):
        return _cupy_kernel(name)
    if is_numpy_namespace(xp):
        if like is None:
            raise ValueError("the NumPy form needs like=, the parameter vector")
        return functools.partial(_NUMPY_KERNELS[name], np.zeros_like(like))
    return None


@functools.cache
def _cupy_kernel(name: str):
    import cupy

    in_params, out_params, body = _CUPY_KERNELS[name]
    return cupy.ElementwiseKernel(in_params, out_params, body, f"scratchvae_{name}")
