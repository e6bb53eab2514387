r"""A deterministic autoencoder built from the same layers, for the AE-vs-VAE comparison.

The code :math:`z = f_\phi(x)` is a point, not a distribution; the loss is the
reconstruction term alone, :math:`-\log p_\theta(x \mid z = f_\phi(x))`, with the same
likelihoods as the VAE. Nothing pulls the codes towards a prior, which is why decoding
random z ~ N(0, I) gives poor samples. The backward pass is the VAE's without the
reparameterization and the KL (``derivations/08_backprop.ipynb``).
"""

from __future__ import annotations

from .decoder import Decoder, check_sigma_dec
from .layers import mlp
from .model import Model, on_model_device
from .results import LossResult


class AE(Model):
    """Deterministic autoencoder. Arguments as for :class:`scratchvae.VAE`."""

    def __init__(self, input_dim: int, hidden_dims=(400,), latent_dim: int = 20,
                 likelihood: str = "bernoulli", activation: str = "relu",
                 sigma_dec=1.0, init: str = "pytorch", backend: str = "numpy",
                 dtype: str = "float32", seed: int = 0, device=None):
        super().__init__(input_dim, backend, dtype, seed, device)
        self._architecture(hidden_dims, latent_dim, likelihood, activation, init)
        self.encoder = mlp("enc", (input_dim, *self.hidden_dims, latent_dim), activation,
                           init, final_activation=False, input_grad=False)
        self.decoder = Decoder(latent_dim, self.hidden_dims[::-1], input_dim, self.likelihood,
                               activation, init, check_sigma_dec(sigma_dec))
        self._build([self.encoder, self.decoder])

    @on_model_device
    def reconstruct(self, x):
        """Decoder mean at the code of x: (n, D)."""
        return self.decoder.mean(self.decoder.forward(self.encode(x)))

    @on_model_device
    def loss(self, x, check_values: bool = True) -> LossResult:
        r"""Reconstruction loss :math:`-\log p(x | f(x))` averaged over the batch."""
        xp = self.xp
        x = self.check_input(x, check_values)
        z = self.encoder.forward(x)
        out = self.decoder.forward(z)
        log_px, c_px = self.decoder.loglik_forward(x, out)
        self._cache = (x.shape[0], c_px)
        recon = -xp.mean(log_px)
        zero = xp.zeros((), dtype=self.dtype, device=self.device)
        return LossResult(recon, recon, zero, None, None, z)

    @on_model_device
    def backward(self) -> None:
        """Gradients of the last :meth:`loss` into :attr:`grads`."""
        n, c_px = self._backward_cache()
        dlog_px = self.xp.full((n,), -1.0 / n, dtype=self.dtype, device=self.device)
        dout, dlogvar_dec = self.decoder.loglik_backward(dlog_px, c_px)
        dz = self.decoder.backward(dout, dlogvar_dec)
        self.encoder.backward(dz)
