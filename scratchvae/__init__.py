"""scratchvae: the Variational Autoencoder from scratch, in NumPy and CuPy.

>>> import scratchvae as sv
>>> model = sv.VAE(input_dim=784, hidden_dims=(400,), latent_dim=20)
>>> opt = sv.optim.Adam(model.params, lr=1e-3)
"""

from . import datasets, evaluate, gradcheck, optim, plots
from .ae import AE
from .backend import BACKENDS, to_numpy
from .parameters import Parameters
from .rng import Generator
from .vae import VAE, LossResult

__version__ = "0.1.0"

__all__ = [
           "AE",
           "BACKENDS",
           "VAE",
           "Generator",
           "LossResult",
           "Parameters",
           "__version__",
           "datasets",
           "evaluate",
           "gradcheck",
           "optim",
           "plots",
           "to_numpy",
]
