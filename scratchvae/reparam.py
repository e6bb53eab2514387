r"""The reparameterization trick: a sample of q(z|x) as a differentiable function.

.. math::
    z = \mu + \sigma \odot \varepsilon,\quad \sigma = \exp(\tfrac12\,\text{logvar}),
    \quad \varepsilon \sim \mathcal N(0, I)

The standard deviation is ``exp(0.5 * logvar)``, not ``exp(logvar)``: ``logvar`` is
a log-*variance*, the same quantity the KL uses. Derivation:
``derivations/05_reparameterization.ipynb``; tests: ``tests/test_components.py``.
"""

from __future__ import annotations

from .backend import array_namespace


def reparameterize_forward(mu, logvar, eps):
    """Draw ``z`` from the noise ``eps``.

    Parameters
    ----------
    mu, logvar : array, shape (n, d)
    eps : array, shape (L, n, d)
        ``L >= 1`` standard normal draws per data point.

    Returns
    -------
    z : array, shape (L, n, d)
    cache : ``(sigma, eps)`` for :func:`reparameterize_backward`.
    """
    xp = array_namespace(mu, logvar, eps)
    sigma = xp.exp(0.5 * logvar)
    z = mu + sigma * eps
    return z, (sigma, eps)


def reparameterize_backward(dz, cache):
    r"""Pathwise gradients through the sampler.

    .. math::
        \frac{\partial \ell}{\partial \mu} = \sum_{l} dz_l, \qquad
        \frac{\partial \ell}{\partial\,\text{logvar}}
        = \sum_{l} dz_l \odot \tfrac12\,\sigma \odot \varepsilon_l

    since :math:`\partial z / \partial \mu = 1` and
    :math:`\partial z / \partial\,\text{logvar} = \tfrac12 \sigma \varepsilon`.
    dz: (L, n, d). Returns ``(dmu, dlogvar)``, each (n, d).

    Derivation: ``derivations/08_backprop.ipynb``, section 6, The reparameterisation.
    """
    xp = array_namespace(dz)
    sigma, eps = cache
    dmu = xp.sum(dz, axis=0)
    dlogvar = xp.sum(dz * eps, axis=0) * (0.5 * sigma)
    return dmu, dlogvar
