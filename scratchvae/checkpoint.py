"""Checkpoints: one ``.npz`` file, read with ``allow_pickle=False``.

A checkpoint holds the parameters, the optimizer's state, the generator's state, the
run configuration and the epoch, as plain arrays and JSON strings, so loading one can
never execute code. Files are written atomically (temporary file, then rename): an
interrupted save leaves the previous checkpoint intact.

Checkpoints are portable: everything is stored as host NumPy arrays, so a checkpoint
written on a GPU loads into a CPU model and the reverse. Parameters and optimizer state
carry over exactly (in the model's dtype); the generator's state restores exactly on the
same kind of generator and is re-seeded from it otherwise (see :mod:`scratchvae.rng`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .backend import asarray, device_label, on_device, to_numpy
from .files import atomic_write

FORMAT_VERSION = 2  # 2: generator state tagged with its kind; where it was written


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used (missing, corrupt, other architecture)."""


def save(path, model, optimizer, epoch: int, config: dict, threads: int | None = None) -> None:
    """Write model parameters, optimizer and generator state, config and epoch, and the
    CPU thread count the run computed with (``None``: on a GPU or not recorded)."""
    arrays = {
        "format_version": np.array(FORMAT_VERSION),
        "epoch": np.array(epoch),
        "config": np.array(json.dumps(config)),
        "param_shapes": np.array(json.dumps({k: list(s) for k, s in model.params.shapes.items()})),
        "params": to_numpy(model.params.flat),
        "rng_state": np.array(model.rng.get_state()),
        "written_on": np.array(json.dumps({"backend": model.backend,
                                           "device": device_label(model.device)})),
        "optimizer": np.array(type(optimizer).__name__),
        "optimizer_t": np.array(optimizer.t),
        "threads": np.array(-1 if threads is None else threads),
    }
    for key, value in optimizer.state.items():
        arrays[f"optimizer_state.{key}"] = to_numpy(value)
    atomic_write(path, lambda f: np.savez(f, **arrays))


def read(path) -> dict:
    """The raw contents of a checkpoint as a dict (arrays and decoded JSON)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as data:
            raw = {k: data[k] for k in data.files}
        out = {
            "epoch": int(raw["epoch"]),
            "config": json.loads(str(raw["config"])),
            "param_shapes": {k: tuple(v) for k, v in
                             json.loads(str(raw["param_shapes"])).items()},
            "params": raw["params"],
            "rng_state": str(raw["rng_state"]),
            "optimizer": str(raw["optimizer"]),
            "optimizer_t": int(raw["optimizer_t"]),
            "threads": (int(raw["threads"]) if "threads" in raw and int(raw["threads"]) > 0
                        else None),
            "written_on": (json.loads(str(raw["written_on"])) if "written_on" in raw
                           else {"backend": "numpy", "device": "cpu"}),
            "optimizer_state": {k.split(".", 1)[1]: v for k, v in raw.items()
                                if k.startswith("optimizer_state.")},
        }
    except CheckpointError:
        raise
    except Exception as err:
        raise CheckpointError(f"checkpoint {path} is not a readable scratchvae "
                              f"checkpoint ({type(err).__name__}: {err})") from None
    return out


def restore(path, model, optimizer=None) -> dict:
    """Load a checkpoint into ``model`` (and ``optimizer``); returns :func:`read`'s dict.

    Raises :class:`CheckpointError` if the checkpoint was written by a model of
    another architecture or another optimizer.
    """
    ckpt = read(path)
    if ckpt["param_shapes"] != model.params.shapes:
        raise CheckpointError(
            f"checkpoint {path} holds another architecture: parameters "
            f"{_describe(ckpt['param_shapes'])}, but the model has "
            f"{_describe(model.params.shapes)}")
    if optimizer is not None and ckpt["optimizer"] != type(optimizer).__name__:
        raise CheckpointError(f"checkpoint {path} was written with optimizer "
                              f"{ckpt['optimizer']}, not {type(optimizer).__name__}")
    try:
        model.rng.set_state(ckpt["rng_state"])
    except ValueError as err:
        raise CheckpointError(f"checkpoint {path}: {err}") from None
    with on_device(model.xp, model.device):
        model.params.flat[...] = asarray(ckpt["params"], model.xp, dtype=model.dtype,
                                         device=model.device)
        if optimizer is not None:
            state = {k: asarray(v, model.xp, dtype=model.dtype, device=model.device)
                     for k, v in ckpt["optimizer_state"].items()}
            optimizer.load_state_dict({"t": ckpt["optimizer_t"], **state})
    return ckpt


def _describe(shapes: dict) -> str:
    return ", ".join(f"{k} {tuple(s)}" for k, s in shapes.items())
