r"""KL divergence between the diagonal Gaussian posterior and the standard normal prior.

.. math::
    \mathrm{KL}\big(\mathcal N(\mu, \operatorname{diag}\sigma^2)
    \,\|\,\mathcal N(0, I)\big)
    = \tfrac12 \sum_{j=1}^{d} \big(\sigma_j^2 + \mu_j^2 - 1 - \log\sigma_j^2\big),
    \qquad \log\sigma_j^2 = \text{logvar}_j

Derivation: ``derivations/04_kl_gaussians.ipynb``; test: ``tests/test_components.py``.
"""

from __future__ import annotations

from .backend import array_namespace


def kl_std_normal_forward(mu, logvar, per_dim: bool = False):
    """KL(q || p) per example, summed over latent dimensions.

    Parameters
    ----------
    mu, logvar : array, shape (n, d)
    per_dim : bool
        Return the d terms of the sum instead (for free bits).

    Returns
    -------
    kl : array, shape (n,), or (n, d) with ``per_dim``
    cache : ``(mu, var)`` for :func:`kl_std_normal_backward`.
    """
    xp = array_namespace(mu, logvar)
    var = xp.exp(logvar)
    terms = 0.5 * (var + mu * mu - 1 - logvar)
    return (terms if per_dim else xp.sum(terms, axis=-1)), (mu, var)


def kl_std_normal_backward(dkl, cache):
    r"""Gradients of the KL.

    .. math::
        \frac{\partial\,\mathrm{KL}}{\partial \mu_j} = \mu_j, \qquad
        \frac{\partial\,\mathrm{KL}}{\partial\,\text{logvar}_j} = \tfrac12(\sigma_j^2 - 1)

    dkl: (n,), or (n, d) for the per-dimension terms. Returns ``(dmu, dlogvar)``,
    each (n, d).

    Derivation: ``derivations/08_backprop.ipynb``, section 5, The KL term.
    """
    mu, var = cache
    if len(dkl.shape) < len(mu.shape):
        dkl = dkl[..., None]
    dmu = dkl * mu
    dlogvar = dkl * 0.5 * (var - 1)
    return dmu, dlogvar
