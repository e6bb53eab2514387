r"""The decoder p_theta(x|z): an MLP from z to the parameters of the likelihood.

``likelihood`` picks the observation model:

* ``"bernoulli"``: the network outputs logits :math:`l`, :math:`p(x|z) = \prod_i
  \mathrm{Bern}(x_i; \sigma(l_i))` (MNIST).
* ``"gaussian"``: the network outputs the mean; *one* variance :math:`\sigma^2` serves every
  pixel, fixed (``sigma_dec=0.1``, say) or learned as one parameter (``sigma_dec="learned"``,
  parameter ``dec.logvar`` = :math:`\log s^2`, as in the linear-Gaussian example).
* ``"gaussian_per_pixel"``: the network outputs a mean *and* a log-variance for every pixel,
  as the paper does for Frey Face. (Its former name, ``"gaussian_learned"``, still works
  with a deprecation warning.)

For the Gaussian likelihoods ``mean_activation="sigmoid"`` keeps the mean in (0, 1)
(the paper's Frey Face decoder); the default ``"identity"`` leaves it unbounded.

Derivations: ``derivations/08_backprop.ipynb`` (the likelihood gradients, the shared
``dec.logvar`` reduction, the sigmoid mean) and ``derivations/07_linear_gaussian.ipynb``
(the linear-Gaussian example).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

from .activations import sigmoid
from .backend import array_namespace, device
from .layers import Linear, mlp
from .likelihoods import (
    bernoulli_logpmf_backward,
    bernoulli_logpmf_forward,
    gaussian_logpdf_backward,
    gaussian_logpdf_forward,
)

LIKELIHOODS = ("bernoulli", "gaussian", "gaussian_per_pixel")
RENAMED = {"gaussian_learned": "gaussian_per_pixel"}
MEAN_ACTIVATIONS = ("identity", "sigmoid")


def check_likelihood(likelihood: str) -> str:
    """The likelihood's name, with a former spelling mapped to today's (and a warning)."""
    if likelihood in RENAMED:
        new = RENAMED[likelihood]
        warnings.warn(f"likelihood={likelihood!r} is now called {new!r} (the decoder outputs "
                      f"a mean and a variance per pixel); the old name will be removed",
                      DeprecationWarning, stacklevel=3)
        return new
    if likelihood not in LIKELIHOODS:
        raise ValueError(f"likelihood must be one of {LIKELIHOODS}, got {likelihood!r}")
    return likelihood


def check_sigma_dec(sigma_dec):
    """``sigma_dec`` must be a positive number or ``"learned"``."""
    if sigma_dec == "learned":
        return sigma_dec
    if isinstance(sigma_dec, (int, float)) and not isinstance(sigma_dec, bool) \
            and math.isfinite(sigma_dec) and sigma_dec > 0:
        return float(sigma_dec)
    raise ValueError(f"sigma_dec must be a positive number or 'learned', got {sigma_dec!r}")


@dataclass
class DecoderOutput:
    r"""The likelihood's parameters at some z, whatever the likelihood.

    Attributes
    ----------
    mean : (..., D) array, :math:`\mathbb E[x|z]`
    logits : (..., D) array for ``"bernoulli"`` (``mean = sigmoid(logits)``), else ``None``
    logvar : the Gaussian log-variance, (..., D) for ``"gaussian_per_pixel"``, (1,) for
        ``"gaussian"``; ``None`` for ``"bernoulli"``
    """

    mean: Any
    logits: Any = None
    logvar: Any = None


class Decoder:
    """MLP ``z -> hidden -> head`` plus the likelihood of ``x`` given the head's output;
    follows :class:`scratchvae.layers.Layer`.

    Parameters
    ----------
    latent_dim, output_dim : int
    hidden_dims : tuple of int
        Hidden sizes from z upwards; ``()`` makes the decoder affine.
    likelihood : str
        One of :data:`LIKELIHOODS`.
    """

    def __init__(self, latent_dim, hidden_dims, output_dim, likelihood, activation,
                 init="pytorch", sigma_dec=1.0, mean_activation="identity"):
        likelihood = check_likelihood(likelihood)
        if mean_activation not in MEAN_ACTIVATIONS:
            raise ValueError(f"mean_activation must be one of {MEAN_ACTIVATIONS}, "
                             f"got {mean_activation!r}")
        if mean_activation != "identity" and likelihood == "bernoulli":
            raise ValueError("mean_activation applies to the Gaussian likelihoods only")
        self.sigmoid_mean = mean_activation == "sigmoid"
        self.likelihood = likelihood
        self.output_dim = output_dim
        self.sigma_dec = sigma_dec
        self.body = mlp("dec", (latent_dim, *hidden_dims), activation, init)
        d_h = hidden_dims[-1] if hidden_dims else latent_dim
        n_out = 2 * output_dim if likelihood == "gaussian_per_pixel" else output_dim
        self.head = Linear("dec.out", d_h, n_out, init)
        self.learn_sigma = likelihood == "gaussian" and sigma_dec == "learned"

    def param_shapes(self) -> dict:
        shapes = {**self.body.param_shapes(), **self.head.param_shapes()}
        if self.learn_sigma:
            shapes["dec.logvar"] = (1,)
        return shapes

    def bind(self, params, grads) -> None:
        self.body.bind(params, grads)
        self.head.bind(params, grads)
        if self.learn_sigma:
            self.logvar, self.dlogvar = params["dec.logvar"], grads["dec.logvar"]

    def initialize(self, rng) -> None:
        self.body.initialize(rng)
        self.head.initialize(rng)
        if self.learn_sigma:
            self.logvar[...] = 0.0

    def forward(self, z):
        """z: (n, latent_dim) -> raw head output (n, n_out)."""
        return self.head.forward(self.body.forward(z))

    def backward(self, dout, dlogvar_shared=None):
        """dout: (n, n_out) -> dz: (n, latent_dim); writes the parameter gradients, the
        shared ``dec.logvar``'s included (``dlogvar_shared``, from :meth:`loglik_backward`).
        """
        if self.learn_sigma:
            self.dlogvar[...] = dlogvar_shared
        return self.body.backward(self.head.backward(dout))

    def _shared_logvar(self, like):
        """The one log-variance of ``"gaussian"``: the parameter, or the fixed value."""
        if self.learn_sigma:
            return self.logvar
        xp = array_namespace(like)
        return xp.full((1,), math.log(self.sigma_dec ** 2), dtype=like.dtype,
                       device=device(like))

    def split(self, out) -> DecoderOutput:
        """The likelihood's parameters from the head output ``out`` (..., n_out)."""
        if self.likelihood == "bernoulli":
            return DecoderOutput(mean=sigmoid(out), logits=out)
        if self.likelihood == "gaussian":
            mean, logvar = out, self._shared_logvar(out)
        else:
            mean, logvar = out[..., :self.output_dim], out[..., self.output_dim:]
        return DecoderOutput(mean=sigmoid(mean) if self.sigmoid_mean else mean, logvar=logvar)

    def mean(self, out):
        """E[x | z] from the head output: ``sigmoid(logits)`` or the Gaussian mean."""
        return self.split(out).mean

    def loglik_forward(self, x, out):
        r""":math:`\log p_\theta(x|z)` summed over pixels. x: (n, D); out: (..., n, n_out).
        Returns ``(logp (..., n), cache)``."""
        if self.likelihood == "bernoulli":
            return bernoulli_logpmf_forward(x, out)
        params = self.split(out)
        logp, cache = gaussian_logpdf_forward(x, params.mean, params.logvar)
        return logp, (cache, params.mean)

    def loglik_backward(self, dlogp, cache):
        """dlogp: (..., n) -> ``(dout, dlogvar_shared)``: the gradient for the head output
        (..., n, n_out), and for ``"gaussian"`` with a learned variance the gradient of the
        shared ``dec.logvar``, summed over every pixel and example (else ``None``)."""
        if self.likelihood == "bernoulli":
            return bernoulli_logpmf_backward(dlogp, cache), None
        xp = array_namespace(dlogp)
        cache, mean = cache
        _, dmean, dlogvar = gaussian_logpdf_backward(dlogp, cache)
        if self.sigmoid_mean:  # mean = sigmoid(a): da = dmean * mean * (1 - mean)
            dmean = dmean * mean * (1 - mean)
        if self.likelihood == "gaussian_per_pixel":
            return xp.concat([dmean, dlogvar], axis=-1), None
        dlogvar_shared = xp.reshape(xp.sum(dlogvar), (1,)) if self.learn_sigma else None
        return dmean, dlogvar_shared
