"""scratchvae: the Variational Autoencoder from scratch, in NumPy and CuPy.

>>> import scratchvae as sv
>>> model = sv.VAE(input_dim=784, hidden_dims=(400,), latent_dim=20)
>>> opt = sv.optim.Adam(model.params, lr=1e-3)

The math modules load with the package; the heavier ones (``plots`` with matplotlib,
``datasets``, ``train``, ``exercises``, ``threads``) load on first use, so that
``import scratchvae`` stays quick.
"""

import importlib

from . import activations, backend, evaluate, gradcheck, kl, layers, likelihoods, optim, reparam
from .ae import AE
from .backend import BACKENDS, to_numpy
from .parameters import Parameters
from .results import LossResult
from .rng import Generator
from .vae import VAE

__version__ = "0.1.0"

_LAZY = ("datasets", "exercises", "plots", "threads", "train")

__all__ = [
    "AE",
    "BACKENDS",
    "VAE",
    "Generator",
    "LossResult",
    "Parameters",
    "__version__",
    "activations",
    "backend",
    "datasets",
    "evaluate",
    "exercises",
    "gradcheck",
    "kl",
    "layers",
    "likelihoods",
    "optim",
    "plots",
    "reparam",
    "threads",
    "to_numpy",
    "train",
]


def __getattr__(name):
    """Import the heavier submodules on first use (PEP 562)."""
    if name in _LAZY:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
