r"""A softmax classifier written with the library's parts, for the experiments that
score learned features (linear probes, semi-supervised learning, a feature space for
comparing generators).

The affine map is a :class:`scratchvae.layers.Linear` bound to a
:class:`scratchvae.Parameters` buffer, the update is :class:`scratchvae.optim.Adam`, and
the loss is the softmax cross-entropy, written out with its gradient. Everything runs on
the host in float64.
"""

from __future__ import annotations

import numpy as np

from .layers import Linear
from .optim import Adam
from .parameters import Parameters
from .rng import Generator


def softmax_cross_entropy_forward(logits, y):
    r"""Mean negative log-probability of the true classes under a softmax.

    .. math::
        \ell = \frac1n \sum_{i=1}^n \Big(\log \sum_{c} e^{a_{ic}} - a_{i y_i}\Big)

    computed with the maximum of each row subtracted first, so no ``exp`` overflows.

    Parameters
    ----------
    logits : ndarray, shape (n, C)
        :math:`a = h W + b`.
    y : ndarray of int, shape (n,)
        True classes in ``0 .. C-1``.

    Returns
    -------
    loss : float
    cache : tuple ``(p, y)``, the softmax probabilities (n, C) and the classes.
    """
    shifted = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    total = e.sum(axis=1, keepdims=True)
    log_p = shifted - np.log(total)
    n = logits.shape[0]
    loss = -float(np.mean(log_p[np.arange(n), y]))
    return loss, (e / total, y)


def softmax_cross_entropy_backward(cache):
    r"""Gradient of :func:`softmax_cross_entropy_forward` w.r.t. the logits.

    .. math::
        \frac{\partial \ell}{\partial a_{ic}} = \frac1n\big(p_{ic} - [c = y_i]\big)

    Returns an (n, C) array.
    """
    p, y = cache
    n = p.shape[0]
    da = p.copy()
    da[np.arange(n), y] -= 1.0
    return da / n


class SoftmaxRegression:
    r"""A linear classifier :math:`p(y \mid h) = \operatorname{softmax}(hW + b)`.

    Parameters
    ----------
    d_in : int
        Width of the features :math:`h`.
    n_classes : int
    seed : int
        Seed of the initial weights (PyTorch's uniform initialization) and of the
        minibatch order.
    """

    def __init__(self, d_in: int, n_classes: int = 10, seed: int = 0):
        self.layer = Linear("clf", d_in, n_classes)
        shapes = self.layer.param_shapes()
        self.params = Parameters.zeros(shapes, np, np.float64)
        self.grads = Parameters.zeros(shapes, np, np.float64)
        self.layer.bind(self.params, self.grads)
        self.rng = Generator(seed)
        self.layer.initialize(self.rng)

    def loss(self, h, y) -> float:
        """Cross-entropy of a minibatch; keeps what :meth:`backward` needs."""
        loss, self._cache = softmax_cross_entropy_forward(self.layer.forward(h), y)
        return loss

    def backward(self) -> None:
        """Gradients of the last :meth:`loss` into :attr:`grads`."""
        self.layer.backward(softmax_cross_entropy_backward(self._cache))

    def fit(self, h, y, steps: int, batch_size: int, lr: float, weight_decay: float) -> float:
        """``steps`` Adam steps on minibatches drawn by reshuffling ``h`` every pass;
        ``weight_decay`` adds :math:`\\lambda \\theta` to the gradient (an L2 penalty).
        Returns the mean cross-entropy of the last 50 steps."""
        opt = Adam(self.params, lr=lr, weight_decay=weight_decay)
        n = h.shape[0]
        order, start, losses = self.rng.permutation(n), 0, []
        for _ in range(steps):
            if start >= n:
                order, start = self.rng.permutation(n), 0
            idx = order[start:start + batch_size]
            start += batch_size
            losses.append(self.loss(h[idx], y[idx]))
            self.backward()
            opt.step(self.grads)
        return float(np.mean(losses[-50:]))

    def predict(self, h) -> np.ndarray:
        """The most probable class of each row of ``h``: an (n,) int array."""
        return np.argmax(h @ self.params["clf.W"] + self.params["clf.b"], axis=1)


def standardize(h_train, h_test):
    r"""Centre and scale each feature by its training mean and standard deviation,
    :math:`(h - \bar h) / s`; a feature constant on the training set is only centred.
    Returns the two float64 arrays."""
    h_train = np.asarray(h_train, dtype=np.float64)
    mean, std = h_train.mean(axis=0), h_train.std(axis=0)
    scale = np.where(std > 1e-8, std, 1.0)
    return (h_train - mean) / scale, (np.asarray(h_test, dtype=np.float64) - mean) / scale
