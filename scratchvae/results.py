"""What a model's ``loss`` returns: the objective and its parts, for every model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class LossResult:
    r"""What :meth:`VAE.loss <scratchvae.VAE.loss>` (or :meth:`AE.loss
    <scratchvae.AE.loss>`) computed. Scalars are 0-d arrays of the model's backend
    (``float(res.loss)`` brings one to the host).

    Attributes
    ----------
    loss : negative ELBO (recon + beta * kl), averaged over the batch, nats per example
    recon : :math:`-\tfrac1L\sum_l \log p(x|z_l)`, averaged over the batch
    kl : KL(q(z|x) || p(z)) averaged over the batch (analytic for "B", Monte Carlo for "A")
    mu, logvar : (n, latent_dim) encoder outputs (``None`` for the plain autoencoder)
    z : (L, n, latent_dim) latent samples used (the codes (n, latent_dim) for the AE)
    """

    loss: Any
    recon: Any
    kl: Any
    mu: Any
    logvar: Any
    z: Any
