"""KL divergence between the diagonal Gaussian posterior and the standard normal prior.

.. math::
    \\mathrm{KL}\\big(\\mathcal N(\\mu, \\operatorname{diag}\\sigma^2)\\,\\|\\,\\mathcal N(0, I)\\big)
    = \\tfrac12 \\sum_{j=1}^{d} \\big(\\sigma_j^2 + \\mu_j^2 - 1 - \\log\\sigma_j^2\\big),
    \\qquad \\log\\sigma_j^2 = \\text{logvar}_j

Derivation: ``derivations/04_kl_gaussians.ipynb``; test: ``tests/test_components.py``.
"""

from __future__ import annotations

from .backend import array_namespace


def kl_std_normal_forward(mu, logvar):
    """KL(q || p) per example, summed over latent dimensions.

    Parameters
    ----------
    mu, logvar : array, shape (n, d)

    Returns
    -------
    kl : array, shape (n,)
    cache : ``(mu, var)`` for :func:`kl_std_normal_backward`.
    """
    xp = array_namespace(mu, logvar)
    var = xp.exp(logvar)
    kl = 0.5 * xp.sum(var + mu * mu - 1 - logvar, axis=-1)
    return kl, (mu, var)


def kl_std_normal_backward(dkl, cache):
    """Gradients of the KL.

    .. math::
        \\frac{\\partial\\,\\mathrm{KL}}{\\partial \\mu_j} = \\mu_j, \\qquad
        \\frac{\\partial\\,\\mathrm{KL}}{\\partial\\,\\text{logvar}_j} = \\tfrac12(\\sigma_j^2 - 1)

    dkl: (n,). Returns ``(dmu, dlogvar)``, each (n, d).
    """
    mu, var = cache
    dkl = dkl[..., None]
    dmu = dkl * mu
    dlogvar = dkl * 0.5 * (var - 1)
    return dmu, dlogvar
