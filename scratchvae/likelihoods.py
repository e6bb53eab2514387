r"""Log-densities with their exact constants, in nats, summed over the last axis.

* Bernoulli from logits, for binary or [0, 1] data (MNIST):

  .. math:: \log p(x \mid l) = \sum_i x_i l_i - \log(1 + e^{l_i})
            = -\sum_i \big[\max(l_i, 0) - l_i x_i + \log(1 + e^{-|l_i|})\big]

* Gaussian with diagonal covariance (decoder output, prior, posterior):

  .. math:: \log \mathcal N(x; m, e^{v}) = -\tfrac12 \sum_i
            \Big[\log 2\pi + v_i + \frac{(x_i - m_i)^2}{e^{v_i}}\Big]

  The constant is :math:`\tfrac d2 \log(2\pi\sigma^2)` for d dimensions with a shared
  variance :math:`\sigma^2`.

Derivations: ``derivations/08_backprop.ipynb``; tests: ``tests/test_components.py``.
"""

from __future__ import annotations

import math

from .activations import sigmoid
from .backend import array_namespace

LOG_2PI = math.log(2 * math.pi)


def bernoulli_logpmf_forward(x, logits):
    r"""Bernoulli log-likelihood from logits, stable for any logit size.

    .. math::
        \log p(x \mid l) = \sum_i \big[x_i l_i - \operatorname{softplus}(l_i)\big],
        \qquad \operatorname{softplus}(l) = \max(l, 0) + \log(1 + e^{-|l|})

    ``e = exp(-|l|)`` lies in (0, 1], so nothing overflows. The textbook writes
    ``log1p(e)``; here the sum :math:`\sum_i \log(1 + e_i)` is taken by
    :func:`sum_log_one_plus`, a few times faster and as accurate as the float allows
    (this line dominates the evaluation of the importance-weighted log-likelihood).

    Parameters
    ----------
    x : array, shape (..., D)
        Targets in [0, 1] (grey values are allowed: the cross-entropy form).
    logits : array, shape (..., D)
        Broadcasts against ``x``.

    Returns
    -------
    logp : array, shape (...)
    cache : ``(x, logits, e)`` with ``e = exp(-|logits|)``, reused by the backward.
    """
    xp = array_namespace(x, logits)
    e = xp.exp(-xp.abs(logits))
    nll = xp.maximum(logits, 0.0) - logits * x   # has the broadcast shape of x and logits
    return -(xp.sum(nll, axis=-1) + sum_log_one_plus(e)), (x, logits, e)


def sum_log_one_plus(e, levels: int = 4):
    r""":math:`\sum_i \log(1 + e_i)` over the last axis, for :math:`e_i \in [0, 1]`.

    A logarithm costs several times a multiplication, and a sum of logarithms is the
    logarithm of a product, :math:`\log a + \log b = \log(ab)`. So the factors
    :math:`1 + e_i \in [1, 2]` are first multiplied in pairs, the first half of the axis
    by the second, ``levels`` times while the length is even: :math:`2^{levels}` factors
    per product, at most :math:`2^{16}`, far from overflow in any float. Then one
    logarithm per product. Each multiplication rounds once, as each addition of the plain
    sum would, so the result is as accurate as ``sum(log1p(e))``; it needs ``D / 16``
    logarithms instead of ``D`` (for MNIST's 784 pixels, 49).

    e: (..., D). Returns (...). Tests: ``tests/test_components.py``.
    """
    xp = array_namespace(e)
    p = 1 + e
    for _ in range(levels):
        half, odd = divmod(p.shape[-1], 2)
        if odd or not half:
            break
        p = p[..., :half] * p[..., half:]
    return xp.sum(xp.log(p), axis=-1)


def bernoulli_logpmf_backward(dlogp, cache):
    r""":math:`\partial \log p / \partial l_i = x_i - \sigma(l_i)`.

    dlogp: shape (...). Returns ``dlogits`` with the shape of ``logits``. The sigmoid
    reuses ``e = exp(-|l|)`` from the forward pass.

    Derivation: ``derivations/08_backprop.ipynb``, section 3, The Bernoulli
    log-likelihood from logits.
    """
    x, logits, e = cache
    return dlogp[..., None] * (x - sigmoid(logits, e))


def gaussian_logpdf_forward(x, mean, logvar):
    r"""Diagonal Gaussian log-density :math:`\log \mathcal N(x; m, \operatorname{diag} e^{v})`.

    Parameters
    ----------
    x, mean, logvar : arrays broadcasting to a common shape (..., D)
        ``logvar`` may be a shape-(1,) array for one shared variance.

    Returns
    -------
    logp : array, shape (...)
    cache : ``(r, inv_var)`` with ``r = x - mean``, for :func:`gaussian_logpdf_backward`.
    """
    xp = array_namespace(x, mean, logvar)
    r = x - mean
    inv_var = xp.exp(-logvar)
    quad = r * r * inv_var
    logp = -0.5 * xp.sum(LOG_2PI + logvar + quad, axis=-1)
    return logp, (r, inv_var)


def gaussian_logpdf_backward(dlogp, cache):
    r"""Gradients of the Gaussian log-density (full broadcast shape; callers reduce).

    .. math::
        \frac{\partial \log p}{\partial x_i} = -\frac{x_i - m_i}{e^{v_i}},\quad
        \frac{\partial \log p}{\partial m_i} = \frac{x_i - m_i}{e^{v_i}},\quad
        \frac{\partial \log p}{\partial v_i}
        = \tfrac12\Big[\frac{(x_i - m_i)^2}{e^{v_i}} - 1\Big]

    dlogp: shape (...). Returns ``(dx, dmean, dlogvar)``, each of shape (..., D).

    Derivation: ``derivations/08_backprop.ipynb``, section 4, Gaussian log-densities.
    """
    r, inv_var = cache
    dlogp = dlogp[..., None]
    dmean = dlogp * r * inv_var
    dx = -dmean
    dlogvar = dlogp * 0.5 * (r * r * inv_var - 1)
    return dx, dmean, dlogvar


def std_normal_logpdf_forward(z):
    r""":math:`\log \mathcal N(z; 0, I) = -\tfrac12 \sum_j (z_j^2 + \log 2\pi)`.

    z: (..., d). Returns ``(logp (...), z)``.
    """
    xp = array_namespace(z)
    return -0.5 * xp.sum(z * z + LOG_2PI, axis=-1), z


def std_normal_logpdf_backward(dlogp, z):
    r""":math:`\partial \log \mathcal N(z; 0, I) / \partial z = -z`. Returns dz (..., d).

    Derivation: ``derivations/08_backprop.ipynb``, section 4, Gaussian log-densities."""
    return -dlogp[..., None] * z
