r"""The M2 model of Kingma, Rezende, Mohamed & Welling (2014): a VAE whose latent state
has a discrete part, the class y, and a continuous part, z, for semi-supervised learning.

Generative model and inference networks (their eqs. 2 and 4):

.. math::
    p(y) = \mathrm{Cat}(y; \tfrac1C), \quad p(z) = \mathcal N(z; 0, I), \quad
    p_\theta(x \mid y, z) = f(x; y, z, \theta), \\
    q_\phi(y \mid x) = \mathrm{Cat}(y; \pi_\phi(x)), \quad
    q_\phi(z \mid x, y) = \mathcal N(z; \mu_\phi(x, y), \operatorname{diag} e^{v_\phi(x, y)}).

The networks read the class as a one-hot vector concatenated to their input, so their
first affine map is :math:`[x, y]\,W + b = xW_x + yW_y + b`: the data part :math:`xW_x`
is computed once per image and the class part :math:`yW_y` (a row of :math:`W_y`) is
added for every class tried.

**Labelled point** (x, y) (their eq. 6): the ELBO with y observed,

.. math::
    \mathcal L(x, y) = \mathbb E_{q(z|x,y)}[\log p(x \mid y, z)] + \log p(y)
    - \mathrm{KL}(q(z \mid x, y) \,\|\, p(z)) \le \log p(x, y).

**Unlabelled point** x (their eq. 7): y is a latent variable too; the expectation over
:math:`q(y|x)` is a sum over the C classes, and the entropy of :math:`q(y|x)` enters,

.. math::
    \mathcal U(x) = \sum_{c=1}^{C} \pi_c(x)\,\mathcal L(x, c) + \mathcal H(q(y \mid x))
    \le \log p(x), \qquad \mathcal H = -\sum_c \pi_c \log \pi_c.

**Objective** (their eq. 9), per data point: with N images of which :math:`N_l` are
labelled, :math:`f = N_l / N` and the paper's :math:`\alpha = 0.1\,N` divided by N,

.. math::
    J = f\,\overline{(-\mathcal L(x, y))}_{\,l} + (1 - f)\,\overline{(-\mathcal U(x))}_{\,u}
    + \frac{\alpha}{N}\,\overline{(-\log q(y \mid x))}_{\,l},

bars being means over the labelled and the unlabelled minibatch. The last term is the
only one that trains :math:`q(y|x)` on the labels; the unlabelled term trains it too,
through :math:`\pi_c` (a class whose ELBO is high gets more weight) and the entropy.

Shapes: a labelled batch (n_l, D) with classes (n_l,), an unlabelled batch (n_u, D);
the joint batch that runs through :math:`q(z|x,y)` and the decoder has
:math:`m = n_l + C n_u` rows: the labelled rows, then C blocks of the n_u unlabelled
images, block c with class c. One sample of z per row.

The backward pass is written by hand and reads line by line against the derivation in
``notebooks/14_semi_supervised.ipynb`` (section *The gradients of M2*); every
gradient is named ``d<quantity>``. Tests: ``tests/test_m2.py`` (finite differences for
every parameter, both losses and the classification term).

References
----------
Kingma, Rezende, Mohamed & Welling (2014), *Semi-supervised Learning with Deep
Generative Models*, NeurIPS, arXiv:1406.5298.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .activations import ACTIVATIONS, sigmoid
from .backend import asarray, to_numpy
from .checks import check_choice, check_int
from .kl import kl_std_normal_backward, kl_std_normal_forward
from .layers import Activation, Linear, Sequential, mlp
from .likelihoods import (
    bernoulli_logpmf_backward,
    bernoulli_logpmf_forward,
    gaussian_logpdf_backward,
    gaussian_logpdf_forward,
)
from .model import Model, on_model_device
from .reparam import reparameterize_backward, reparameterize_forward

#: ``"gaussian_per_pixel"``: a mean and a log-variance per input dimension (for M1+M2,
#: where the "pixels" are the latent coordinates of M1).
LIKELIHOODS = ("bernoulli", "gaussian_per_pixel")


class ClassEmbedding:
    r"""The class part :math:`y W_y` of an affine map on :math:`[x, y]`: y one-hot
    (m, C), :math:`W_y` (C, d_out), no bias (the data part's :class:`Linear` has it).
    Follows :class:`scratchvae.layers.Layer`; nothing upstream needs dy.

    ``fan_in``: the width of :math:`[x, y]`; :math:`W_y` is drawn like a
    :class:`Linear` on it (PyTorch's :math:`U(\pm 1/\sqrt{\text{fan\_in}})`).
    """

    def __init__(self, name: str, n_classes: int, d_out: int, fan_in: int):
        self.name, self.n_classes, self.d_out, self.fan_in = name, n_classes, d_out, fan_in
        self.cache = None

    def param_shapes(self) -> dict:
        return {f"{self.name}.W": (self.n_classes, self.d_out)}

    def bind(self, params, grads) -> None:
        self.W, self.dW = params[f"{self.name}.W"], grads[f"{self.name}.W"]

    def initialize(self, rng) -> None:
        a = 1 / math.sqrt(self.fan_in)
        self.W[...] = rng.uniform(self.W.shape, self.W.dtype, -a, a)

    def forward(self, y):
        """y: (m, C) -> y W_y: (m, d_out)."""
        self.cache = y
        return y @ self.W

    def backward(self, dout) -> None:
        r""":math:`\partial\ell/\partial W_y = y^\top\,dout`."""
        self.dW[...] = self.cache.T @ dout


class M2(Model):
    r"""The semi-supervised generative model M2 with hand-written gradients.

    Parameters
    ----------
    input_dim : int
        D (784 for MNIST pixels; M1's latent size for M1+M2).
    n_classes : int
        C.
    hidden_dims : tuple of int, at least one
        Hidden sizes of q(y|x) and q(z|x,y); the decoder mirrors them.
    latent_dim : int
        Dimension of z.
    likelihood : {"bernoulli", "gaussian_per_pixel"}
    activation : str
        Hidden activation (the paper: softplus, smooth, which also keeps gradient
        checks away from kinks).
    alpha : float
        Weight of the classification term per data point, the paper's
        :math:`\alpha / N` (their :math:`\alpha = 0.1 N` gives 0.1).
    backend, dtype, seed, device : as for :class:`scratchvae.VAE`.
    """

    def __init__(self, input_dim: int, n_classes: int = 10, hidden_dims=(500,),
                 latent_dim: int = 50, likelihood: str = "bernoulli",
                 activation: str = "softplus", alpha: float = 0.1, backend: str = "numpy",
                 dtype: str = "float32", seed: int = 0, device=None):
        super().__init__(input_dim, backend, dtype, seed, device)
        self.hidden_dims = tuple(check_int(h, "hidden_dims entries") for h in hidden_dims)
        if not self.hidden_dims:
            raise ValueError("hidden_dims must hold at least one size")
        self.n_classes = check_int(n_classes, "n_classes", minimum=2)
        self.latent_dim = check_int(latent_dim, "latent_dim")
        self.likelihood = check_choice(likelihood, "likelihood", LIKELIHOODS)
        self.activation = check_choice(activation, "activation", ACTIVATIONS)
        self.alpha = float(alpha)
        if not self.alpha >= 0:
            raise ValueError(f"alpha must be a number >= 0, got {alpha!r}")
        D, C, d, h = input_dim, self.n_classes, self.latent_dim, self.hidden_dims
        act = self.activation
        # q(y|x): an MLP to the C logits
        self.qy = mlp("qy", (D, *h, C), act, final_activation=False, input_grad=False)
        # q(z|x,y): [x, y] W + b -> act -> further hidden layers -> the two heads
        self.qz_x = Linear("qz.x", D, h[0], need_dx=False)
        self.qz_y = ClassEmbedding("qz.y", C, h[0], fan_in=D + C)
        self.qz_body = Sequential([Activation(act), mlp("qz.h", h, act)])
        self.qz_mu = Linear("qz.mu", h[-1], d)
        self.qz_logvar = Linear("qz.logvar", h[-1], d)
        # p(x|y,z): [z, y] W + b -> act -> further hidden layers -> the likelihood's head
        hd = h[::-1]
        self.px_z = Linear("px.z", d, hd[0])
        self.px_y = ClassEmbedding("px.y", C, hd[0], fan_in=d + C)
        self.px_body = Sequential([Activation(act), mlp("px.h", hd, act)])
        n_out = D if self.likelihood == "bernoulli" else 2 * D
        self.px_out = Linear("px.out", hd[-1], n_out)
        self._build([self.qy, self.qz_x, self.qz_y, self.qz_body, self.qz_mu, self.qz_logvar,
                     self.px_z, self.px_y, self.px_body, self.px_out])

    def config(self) -> dict:
        """The constructor arguments: ``M2(**model.config())`` builds the same model."""
        return dict(input_dim=self.input_dim, n_classes=self.n_classes,
                    hidden_dims=list(self.hidden_dims), latent_dim=self.latent_dim,
                    likelihood=self.likelihood, activation=self.activation,
                    alpha=self.alpha, dtype=self.dtype_name, seed=self.seed)

    # ---- input ------------------------------------------------------------------
    def _classes(self, y, n: int):
        """Classes (n,) as an int array of the model's backend; checked on the host."""
        host = np.asarray(to_numpy(y))
        if host.shape != (n,) or not np.issubdtype(host.dtype, np.integer):
            raise ValueError(f"y must be {n} integer classes, got {host.dtype} {host.shape}")
        if host.size and not (0 <= host.min() and host.max() < self.n_classes):
            raise ValueError(f"y must lie in 0..{self.n_classes - 1}")
        return asarray(host.astype(np.int64), self.xp, device=self.device)

    def one_hot(self, y):
        """y: (n,) classes -> (n, C) one-hot rows in the model's dtype."""
        eye = self.xp.eye(self.n_classes, dtype=self.dtype, device=self.device)
        return self.xp.take(eye, self._classes(y, y.shape[0]), axis=0)

    def _every_class(self, n_u: int):
        """(C n_u, C): C blocks of n_u rows, block c all equal to the one-hot e_c."""
        xp, C = self.xp, self.n_classes
        eye = xp.eye(C, dtype=self.dtype, device=self.device)
        return xp.reshape(xp.broadcast_to(eye[:, None, :], (C, n_u, C)), (C * n_u, C))

    def _expand(self, a, n_l: int):
        """Rows of the image batch (n_l + n_u, k) -> rows of the joint batch
        (n_l + C n_u, k): the labelled rows, then the unlabelled rows C times."""
        return self.xp.concat([a[:n_l, ...]] + [a[n_l:, ...]] * self.n_classes, axis=0)

    def _collapse(self, da, n_l: int):
        """The adjoint of :meth:`_expand`: the C blocks' gradients summed."""
        xp, C = self.xp, self.n_classes
        n_u = (da.shape[0] - n_l) // C
        blocks = xp.reshape(da[n_l:, ...], (C, n_u, da.shape[1]))
        return xp.concat([da[:n_l, ...], xp.sum(blocks, axis=0)], axis=0)

    # ---- the networks -----------------------------------------------------------
    @on_model_device
    def classify(self, x):
        """q(y|x): the (n, C) class probabilities."""
        x = self.check_input(x)
        self.clear_cache()
        logits = self.qy.forward(x)
        e = self.xp.exp(logits - self.xp.max(logits, axis=1, keepdims=True))
        return e / self.xp.sum(e, axis=1, keepdims=True)

    @on_model_device
    def predict(self, x):
        """The most probable class of each row: an (n,) int array of the backend."""
        return self.xp.argmax(self.classify(x), axis=1)

    @on_model_device
    def encode(self, x, y):
        """q(z|x,y): x (n, D), y (n,) classes -> ``(mu, logvar)``, each (n, d)."""
        x = self.check_input(x)
        self.clear_cache()
        h = self.qz_body.forward(self.qz_x.forward(x) + self.qz_y.forward(self.one_hot(y)))
        return self.qz_mu.forward(h), self.qz_logvar.forward(h)

    @on_model_device
    def decode(self, z, y):
        r""":math:`\mathbb E[x \mid y, z]`: z (n, d), y (n,) classes -> (n, D)."""
        z = self._check_array(z, "z", (None, self.latent_dim))
        self.clear_cache()
        h = self.px_body.forward(self.px_z.forward(z) + self.px_y.forward(self.one_hot(y)))
        out = self.px_out.forward(h)
        D = self.input_dim
        return sigmoid(out) if self.likelihood == "bernoulli" else out[:, :D]

    # ---- objective --------------------------------------------------------------
    @on_model_device
    def loss(self, x, y, x_u=None, eps=None, label_fraction=None, alpha=None,
             check_values: bool = True) -> M2LossResult:
        r"""The objective J of a labelled and an unlabelled minibatch; caches what
        :meth:`backward` needs.

        Parameters
        ----------
        x : array (n_l, D), the labelled images; y : (n_l,) ints, their classes
        x_u : array (n_u, D), optional, the unlabelled images
        eps : array (n_l + C n_u, d), optional
            The noise of z for every row of the joint batch (drawn if omitted).
        label_fraction : float, optional
            f, the weight of the labelled ELBO (default: 1 without ``x_u``, else
            :math:`n_l / (n_l + n_u)`; give :math:`N_l / N` for the data set's).
        alpha : float, optional
            Weight of the classification term (default: ``self.alpha``).
        """
        xp, C, d = self.xp, self.n_classes, self.latent_dim
        x = self.check_input(x, check_values)
        n_l = x.shape[0]
        y_l = self.one_hot(y)                                               # (n_l, C)
        if x_u is None:
            n_u, x_all, y_joint = 0, x, y_l
        else:
            x_u = self.check_input(x_u, check_values)
            n_u = x_u.shape[0]
            x_all = xp.concat([x, x_u], axis=0)                             # (n_l + n_u, D)
            y_joint = xp.concat([y_l, self._every_class(n_u)], axis=0)      # (m, C)
        f = (1.0 if n_u == 0 else n_l / (n_l + n_u)) if label_fraction is None \
            else float(label_fraction)
        alpha = self.alpha if alpha is None else float(alpha)
        m = n_l + C * n_u
        if eps is None:
            eps = self.rng.normal((m, d), self.dtype)
        eps = self._check_array(eps, "eps", (m, d), check_values)

        # step 1: q(y|x) for every image
        logits = self.qy.forward(x_all)                                     # (n_l + n_u, C)
        # step 2: q(z|x,y) for every row of the joint batch, z = mu + sigma * eps
        pre_q = self._expand(self.qz_x.forward(x_all), n_l) + self.qz_y.forward(y_joint)
        h_q = self.qz_body.forward(pre_q)                                   # (m, h)
        mu, logvar = self.qz_mu.forward(h_q), self.qz_logvar.forward(h_q)   # (m, d)
        z, c_z = reparameterize_forward(mu, logvar, xp.reshape(eps, (1, m, d)))
        z = z[0, ...]                                                       # (m, d)
        # step 3: log p(x|y,z), the KL, log p(y): the ELBO of every row
        h_p = self.px_body.forward(self.px_z.forward(z) + self.px_y.forward(y_joint))
        out = self.px_out.forward(h_p)                                      # (m, n_out)
        log_px, c_px = self._loglik_forward(self._expand(x_all, n_l), out)  # (m,)
        kl, c_kl = kl_std_normal_forward(mu, logvar)                        # (m,)
        elbo = log_px - kl - math.log(C)                                    # (m,)
        # step 4: the three terms
        nelbo_l = -xp.mean(elbo[:n_l, ...])
        ce, c_ce = self._cross_entropy(logits[:n_l, ...], y_l)
        loss = f * nelbo_l + alpha * ce
        cache = _Cache(n_l=n_l, n_u=n_u, f=f, alpha=alpha, c_z=c_z, c_px=c_px, c_kl=c_kl,
                       c_ce=c_ce, y_l=y_l)
        unlabelled = None
        if n_u:
            elbo_u = xp.reshape(elbo[n_l:, ...], (C, n_u)).T                     # (n_u, C)
            lu = logits[n_l:, ...]
            log_pi = lu - xp.max(lu, axis=1, keepdims=True)
            log_pi = log_pi - xp.log(xp.sum(xp.exp(log_pi), axis=1, keepdims=True))
            pi = xp.exp(log_pi)                                             # (n_u, C)
            u_loss = xp.sum(pi * (-elbo_u + log_pi), axis=1)                # -U(x): (n_u,)
            unlabelled = xp.mean(u_loss)
            loss = loss + (1 - f) * unlabelled
            cache.pi, cache.log_pi, cache.elbo_u = pi, log_pi, elbo_u
        self._cache = cache
        return M2LossResult(loss=loss, labelled=nelbo_l, unlabelled=unlabelled,
                            cross_entropy=ce, mu=mu, logvar=logvar)

    def _cross_entropy(self, logits, y_onehot):
        r"""The mean softmax cross-entropy :math:`-\overline{\log q(y|x)}` against one-hot
        classes, on the model's backend (:mod:`scratchvae.classifier` has the same formula
        for host arrays and integer classes): ``(loss, cache (p, onehot))``."""
        xp = self.xp
        shifted = logits - xp.max(logits, axis=1, keepdims=True)
        log_p = shifted - xp.log(xp.sum(xp.exp(shifted), axis=1, keepdims=True))
        return -xp.mean(xp.sum(log_p * y_onehot, axis=1)), (xp.exp(log_p), y_onehot)

    def _loglik_forward(self, x, out):
        """log p(x|y,z) per row, from the head's output."""
        if self.likelihood == "bernoulli":
            return bernoulli_logpmf_forward(x, out)
        D = self.input_dim
        return gaussian_logpdf_forward(x, out[:, :D], out[:, D:])

    def _loglik_backward(self, dlog_px, cache):
        """d log p(x|y,z) -> d out (m, n_out)."""
        if self.likelihood == "bernoulli":
            return bernoulli_logpmf_backward(dlog_px, cache)
        _, dmean, dlogvar = gaussian_logpdf_backward(dlog_px, cache)
        return self.xp.concat([dmean, dlogvar], axis=1)

    @on_model_device
    def backward(self) -> None:
        r"""Gradients of the last :meth:`loss` w.r.t. every parameter, into :attr:`grads`.

        One line per gradient, in the order of the derivation (notebook 14, *The
        gradients of M2*): the three terms give the gradients of the per-row ELBOs and
        of the classifier's logits; the ELBOs' gradients then run back through the
        decoder, the sampler, the KL and q(z|x,y), as in the VAE.
        """
        xp, c = self.xp, self._backward_cache()
        n_l, n_u, f, C = c.n_l, c.n_u, c.f, self.n_classes
        # step 4, back: the labelled ELBOs and the classification term
        delbo_l = xp.full((n_l,), -f / n_l, dtype=self.dtype, device=self.device)
        dlogits_l = c.alpha * self._cross_entropy_backward(c.c_ce)          # (n_l, C)
        if n_u:
            # -U = sum_c pi_c (-L_c + log pi_c): dpi_c = (1-f)/n_u (-L_c + log pi_c + 1)
            delbo_u = -(1 - f) / n_u * c.pi                                 # (n_u, C)
            dpi = (1 - f) / n_u * (-c.elbo_u + c.log_pi + 1)                # (n_u, C)
            # softmax: dlogits_k = pi_k (dpi_k - sum_c pi_c dpi_c)
            dlogits_u = c.pi * (dpi - xp.sum(c.pi * dpi, axis=1, keepdims=True))
            dlogits = xp.concat([dlogits_l, dlogits_u], axis=0)
            delbo = xp.concat([delbo_l, xp.reshape(delbo_u.T, (C * n_u,))])  # (m,)
        else:
            dlogits, delbo = dlogits_l, delbo_l
        self.qy.backward(dlogits)                                           # step 1, back
        # step 3, back: ELBO = log p(x|y,z) - KL - log C
        dlog_px = delbo                                                     # (m,)
        dkl = -delbo                                                        # (m,)
        dout = self._loglik_backward(dlog_px, c.c_px)                       # (m, n_out)
        dpre_p = self.px_body.backward(self.px_out.backward(dout))          # (m, h)
        self.px_y.backward(dpre_p)
        dz = self.px_z.backward(dpre_p)                                     # (m, d)
        # step 2, back: the sampler and the KL, then q(z|x,y)
        dmu, dlogvar = reparameterize_backward(xp.reshape(dz, (1, *dz.shape)), c.c_z)
        dmu_kl, dlogvar_kl = kl_std_normal_backward(dkl, c.c_kl)
        dmu = dmu + dmu_kl
        dlogvar = dlogvar + dlogvar_kl
        dh_q = self.qz_mu.backward(dmu) + self.qz_logvar.backward(dlogvar)  # (m, h)
        dpre_q = self.qz_body.backward(dh_q)                                # (m, h)
        self.qz_y.backward(dpre_q)
        self.qz_x.backward(self._collapse(dpre_q, n_l))                     # (n_l + n_u, h)

    @staticmethod
    def _cross_entropy_backward(cache):
        """d mean cross-entropy / d logits = (p - onehot) / n."""
        p, onehot = cache
        return (p - onehot) / p.shape[0]


@dataclass
class M2LossResult:
    r"""What :meth:`M2.loss` computed (0-d arrays of the model's backend).

    ``loss``: J; ``labelled``: the mean of :math:`-\mathcal L(x, y)` over the labelled
    batch; ``unlabelled``: the mean of :math:`-\mathcal U(x)` over the unlabelled batch
    (``None`` without one); ``cross_entropy``: the mean of :math:`-\log q(y|x)` on the
    labelled batch; ``mu``, ``logvar``: q(z|x,y) for every row of the joint batch.
    """

    loss: Any
    labelled: Any
    unlabelled: Any
    cross_entropy: Any
    mu: Any
    logvar: Any


@dataclass
class _Cache:
    """What :meth:`M2.loss` keeps for :meth:`M2.backward`."""

    n_l: int
    n_u: int
    f: float
    alpha: float
    c_z: Any
    c_px: Any
    c_kl: Any
    c_ce: Any
    y_l: Any
    pi: Any = None
    log_pi: Any = None
    elbo_u: Any = None
