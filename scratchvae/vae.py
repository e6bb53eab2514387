r"""The variational autoencoder (Kingma & Welling, 2014) with a hand-written backward pass.

Objective, per data point x (the ELBO, in nats):

.. math::
    \mathcal L(\theta, \phi; x) = \mathbb E_{q_\phi(z|x)}[\log p_\theta(x|z)]
    - \mathrm{KL}(q_\phi(z|x) \,\|\, p(z)) \le \log p_\theta(x)

estimated with ``L`` reparameterized samples :math:`z_l = \mu + \sigma\odot\varepsilon_l`:

* SGVB-B (default): :math:`\tfrac1L \sum_l \log p_\theta(x|z_l) - \mathrm{KL}` with the KL
  in closed form;
* SGVB-A: :math:`\tfrac1L \sum_l [\log p_\theta(x|z_l) + \log p(z_l) - \log q_\phi(z_l|x)]`.

``loss`` is the negative ELBO averaged over the batch, with the KL term weighted by
``beta``. Derivations: ``derivations/02_elbo_jensen.ipynb`` (the bound),
``derivations/03_elbo_decomposition.ipynb`` (the recon/KL split),
``derivations/05_reparameterization.ipynb`` (estimators) and
``derivations/08_backprop.ipynb`` (this backward pass); tests: ``tests/test_vae.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .checks import check_choice, check_int
from .decoder import Decoder, check_sigma_dec
from .encoder import GaussianEncoder
from .kl import kl_std_normal_backward, kl_std_normal_forward
from .likelihoods import (
    gaussian_logpdf_backward,
    gaussian_logpdf_forward,
    std_normal_logpdf_backward,
    std_normal_logpdf_forward,
)
from .model import Model, on_model_device
from .reparam import reparameterize_backward, reparameterize_forward
from .results import LossResult

ESTIMATORS = ("A", "B")


class VAE(Model):
    r"""Variational autoencoder with Gaussian encoder and a choice of decoder likelihood.

    Parameters
    ----------
    input_dim : int
        Data dimension D (784 for MNIST).
    hidden_dims : tuple of int
        Hidden layer sizes of the encoder; the decoder mirrors them unless
        ``decoder_hidden_dims`` is given. ``()`` gives affine encoder and decoder (the
        linear-Gaussian VAE).
    latent_dim : int
        Dimension d of z.
    likelihood : {"bernoulli", "gaussian", "gaussian_per_pixel"}
        ``"gaussian"`` has one variance for every pixel (``sigma_dec``: fixed, or
        ``"learned"``); ``"gaussian_per_pixel"`` outputs a variance per pixel (the
        paper's Frey Face decoder; formerly ``"gaussian_learned"``).
    activation : {"relu", "leaky_relu", "tanh", "sigmoid", "softplus"}
    estimator : {"A", "B"}
        SGVB estimator (B: analytic KL, the default).
    n_samples : int
        Default number L of samples of z per data point.
    beta : float
        Weight of the KL term (1 gives the ELBO).
    free_bits : float
        Free bits per latent dimension (Kingma et al. 2016), estimator "B" only: the
        KL term becomes :math:`\sum_j \max(\lambda, \overline{\mathrm{KL}}_j)` with
        :math:`\overline{\mathrm{KL}}_j` the batch mean of dimension j's KL.
    sigma_dec : float or "learned"
        Decoder standard deviation for ``likelihood="gaussian"``.
    mean_activation : {"identity", "sigmoid"}
        For the Gaussian likelihoods: ``"sigmoid"`` keeps the decoder mean in (0, 1), as
        the paper's Frey Face decoder does.
    init : {"pytorch", "glorot", "normal"}
        Weight initializer (see :class:`scratchvae.layers.Linear`).
    backend : {"numpy", "cupy", "array_api_strict"}
    dtype : {"float32", "float64"}
        float32 trains faster; float64 is for gradient checks.
    seed : int
        Seed of the model's generator (initialization and noise). The initial
        parameters are drawn on the host, so a seed gives the same ones on every
        backend and device.
    device : optional
        Where the model lives: a GPU index or ``cupy.cuda.Device`` for ``"cupy"``
        (default: the current GPU), a device of ``"array_api_strict"``.
    decoder_hidden_dims : tuple of int, optional
        Hidden layer sizes of the decoder, from z to x (default: ``hidden_dims``
        reversed). A decoder stronger than its encoder is one way to provoke posterior
        collapse (``notebooks/16_posterior_collapse.ipynb``).
    """

    def __init__(self, input_dim: int, hidden_dims=(400,), latent_dim: int = 20,
                 likelihood: str = "bernoulli", activation: str = "relu",
                 estimator: str = "B", n_samples: int = 1, beta: float = 1.0,
                 free_bits: float = 0.0, sigma_dec=1.0, mean_activation: str = "identity",
                 init: str = "pytorch", backend: str = "numpy",
                 dtype: str = "float32", seed: int = 0, device=None,
                 decoder_hidden_dims=None):
        super().__init__(input_dim, backend, dtype, seed, device)
        self._architecture(hidden_dims, latent_dim, likelihood, activation, init)
        self.decoder_hidden_dims = self.hidden_dims[::-1] if decoder_hidden_dims is None else \
            tuple(check_int(h, "decoder_hidden_dims entries") for h in decoder_hidden_dims)
        self.estimator = check_choice(estimator, "estimator", ESTIMATORS)
        self.n_samples = check_int(n_samples, "n_samples")
        self.beta = float(beta)
        if not self.beta >= 0:
            raise ValueError(f"beta must be a number >= 0, got {beta!r}")
        self.free_bits = float(free_bits)
        if not self.free_bits >= 0:
            raise ValueError(f"free_bits must be a number >= 0, got {free_bits!r}")
        if self.free_bits and self.estimator != "B":
            raise ValueError("free_bits needs estimator='B' (the analytic KL per dimension)")
        self.sigma_dec = check_sigma_dec(sigma_dec)
        self.encoder = GaussianEncoder(input_dim, self.hidden_dims, latent_dim,
                                       activation, init)
        self.mean_activation = mean_activation
        self.decoder = Decoder(latent_dim, self.decoder_hidden_dims, input_dim,
                               self.likelihood, activation, init, self.sigma_dec,
                               mean_activation)
        self._build([self.encoder, self.decoder])

    def config(self) -> dict:
        """The constructor arguments that define this model: ``sv.VAE(**model.config())``
        builds the same architecture, with the same initial parameters."""
        config = dict(input_dim=self.input_dim, hidden_dims=list(self.hidden_dims),
                      latent_dim=self.latent_dim, likelihood=self.likelihood,
                      activation=self.activation, estimator=self.estimator,
                      n_samples=self.n_samples, beta=self.beta, free_bits=self.free_bits,
                      sigma_dec=self.sigma_dec, mean_activation=self.mean_activation,
                      init=self.init, dtype=self.dtype_name, seed=self.seed)
        if self.decoder_hidden_dims != self.hidden_dims[::-1]:  # only when it is not a mirror
            config["decoder_hidden_dims"] = list(self.decoder_hidden_dims)
        return config

    # ---- noise ------------------------------------------------------------------
    def _noise(self, eps, n: int, n_samples, check_values: bool = True):
        """The noise (L, n, d): drawn, or the given ``eps`` checked (its values only with
        ``check_values``: reading them back would synchronize a GPU)."""
        d = self.latent_dim
        if eps is None:
            L = self.n_samples if n_samples is None else check_int(n_samples, "n_samples")
            return self.rng.normal((L, n, d), self.dtype)
        if n_samples is not None:
            raise ValueError("pass either eps or n_samples, not both")
        if len(getattr(eps, "shape", ())) == 2:
            eps = self._check_array(eps, "eps", (n, d), check_values)
            return self.xp.reshape(eps, (1, n, d))
        return self._check_array(eps, "eps", (None, n, d), check_values)

    # ---- public pieces ----------------------------------------------------------
    @on_model_device
    def reconstruct(self, x):
        """E[x | z = mu(x)]: the decoder mean at the posterior mean, (n, D)."""
        mu, _ = self.encode(x)
        return self.decoder.mean(self.decoder.forward(mu))

    def _decode_samples(self, x, mu, logvar, eps):
        """Steps 2-3 of the forward pass (``derivations/08_backprop.ipynb``, section 8):
        z = mu + sigma * eps (L, n, d), the decoder at every z, log p(x | z) (L, n)."""
        xp = self.xp
        L, n, d = eps.shape
        z, c_z = reparameterize_forward(mu, logvar, eps)                 # (L, n, d)
        out = self.decoder.forward(xp.reshape(z, (L * n, d)))
        out = xp.reshape(out, (L, n, out.shape[-1]))
        log_px, c_px = self.decoder.loglik_forward(x, out)                # (L, n)
        return z, c_z, log_px, c_px

    @on_model_device
    def log_weights(self, x, n_samples=None, mu=None, logvar=None, eps=None,
                    check_values: bool = True):
        r"""Log importance weights :math:`\log w_l = \log p(x|z_l) + \log p(z_l)
        - \log q(z_l|x)`, :math:`z_l \sim q(z|x)`, for the importance-weighted bound.

        x: (n, D); ``mu``, ``logvar`` (n, d): the encoder's outputs, if already computed;
        ``eps`` (L, n, d) and ``n_samples`` and ``check_values`` as in :meth:`loss`.
        Returns an (L, n) array; caches nothing for :meth:`backward`.
        """
        x = self.check_input(x, check_values)
        if mu is None or logvar is None:
            mu, logvar = self.encoder.forward(x)
        eps = self._noise(eps, x.shape[0], n_samples, check_values)
        z, _, log_px, _ = self._decode_samples(x, mu, logvar, eps)
        log_pz, _ = std_normal_logpdf_forward(z)                          # (L, n)
        log_qz, _ = gaussian_logpdf_forward(z, mu, logvar)                # (L, n)
        self.clear_cache()
        return log_px + log_pz - log_qz

    # ---- objective --------------------------------------------------------------
    @on_model_device
    def loss(self, x, eps=None, n_samples=None, check_values: bool = True) -> LossResult:
        """Negative ELBO of a batch and its parts; caches what :meth:`backward` needs.

        Parameters
        ----------
        x : array (n, D) of the model's backend and dtype
        eps : array (n, d) or (L, n, d), optional
            Fixed noise (for exact checks); drawn from the model's generator if omitted.
        n_samples : int, optional
            L when ``eps`` is drawn (default ``self.n_samples``).
        check_values : bool
            Check x for NaN/inf and, for Bernoulli, the range [0, 1]. Training loops
            that checked their data once may turn this off (it synchronizes a GPU).
        """
        xp = self.xp
        x = self.check_input(x, check_values)
        eps = self._noise(eps, x.shape[0], n_samples, check_values)
        mu, logvar = self.encoder.forward(x)                               # step 1
        z, c_z, log_px, c_px = self._decode_samples(x, mu, logvar, eps)   # steps 2-3
        recon = -xp.mean(log_px)                                           # step 4
        cache = _BackwardCache(L=eps.shape[0], n=x.shape[0], c_z=c_z, c_px=c_px)
        penalty = None
        if self.estimator == "B":
            kl_nd, cache.c_kl = kl_std_normal_forward(mu, logvar, per_dim=True)  # (n, d)
            cache.kl_d = xp.mean(kl_nd, axis=0)                            # (d,)
            kl = xp.sum(cache.kl_d)
            if self.free_bits:
                penalty = xp.sum(xp.maximum(cache.kl_d, self.free_bits))
        else:
            log_pz, cache.c_pz = std_normal_logpdf_forward(z)              # (L, n)
            log_qz, cache.c_qz = gaussian_logpdf_forward(z, mu, logvar)    # (L, n)
            kl = xp.mean(log_qz - log_pz)
        self._cache = cache
        loss = recon + self.beta * (kl if penalty is None else penalty)    # step 5
        return LossResult(loss, recon, kl, mu, logvar, z)

    @on_model_device
    def backward(self) -> None:
        """Gradients of the last :meth:`loss` w.r.t. every parameter, into :attr:`grads`.

        Reads line by line against the table of ``derivations/08_backprop.ipynb``,
        section 8: each line is one gradient, named ``d<quantity>``, and the step labels
        are the table's.
        """
        xp = self.xp
        c = self._backward_cache()
        L, n, d = c.L, c.n, self.latent_dim
        w = 1.0 / (L * n)                    # loss = mean over L samples and n points
        dlog_px = xp.full((L, n), -w, dtype=self.dtype, device=self.device)       # step 1
        dout, dlogvar_dec = self.decoder.loglik_backward(dlog_px, c.c_px)         # step 2
        dz = self.decoder.backward(xp.reshape(dout, (L * n, dout.shape[-1])),     # step 3
                                   dlogvar_dec)
        dz = xp.reshape(dz, (L, n, d))
        if self.estimator == "B":
            dmu, dlogvar = reparameterize_backward(dz, c.c_z)                     # step 4B
            dkl_nd = xp.full((n, d), self.beta / n, dtype=self.dtype, device=self.device)
            if self.free_bits:  # a dimension below its free bits gets no KL gradient
                dkl_nd = xp.where(c.kl_d > self.free_bits, dkl_nd, 0.0)
            dmu_kl, dlogvar_kl = kl_std_normal_backward(dkl_nd, c.c_kl)           # step 5B
            dmu = dmu + dmu_kl
            dlogvar = dlogvar + dlogvar_kl
        else:
            dlog_pz = xp.full((L, n), -self.beta * w, dtype=self.dtype, device=self.device)
            dz = dz + std_normal_logpdf_backward(dlog_pz, c.c_pz)                 # step 4A
            dlog_qz = xp.full((L, n), +self.beta * w, dtype=self.dtype, device=self.device)
            dz_q, dmu_q, dlogvar_q = gaussian_logpdf_backward(dlog_qz, c.c_qz)    # step 5A
            dz = dz + dz_q
            dmu, dlogvar = reparameterize_backward(dz, c.c_z)                     # step 6A
            dmu = dmu + xp.sum(dmu_q, axis=0)
            dlogvar = dlogvar + xp.sum(dlogvar_q, axis=0)
        self.encoder.backward(dmu, dlogvar)                                       # step 7


@dataclass
class _BackwardCache:
    """What :meth:`VAE.loss` keeps for :meth:`VAE.backward`, by name.

    ``L``, ``n``: samples and examples; ``c_z``: the reparameterization's cache;
    ``c_px``: the decoder likelihood's; estimator B: ``c_kl`` (the KL's) and ``kl_d``
    (the batch-mean KL per latent dimension, for free bits); estimator A: ``c_pz``,
    ``c_qz`` (the prior's and the posterior's log-densities at z).
    """

    L: int
    n: int
    c_z: Any
    c_px: Any
    c_kl: Any = None
    kl_d: Any = None
    c_pz: Any = None
    c_qz: Any = None
