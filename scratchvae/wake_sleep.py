r"""The wake-sleep algorithm (Hinton, Dayan, Frey & Neal 1995) for the VAE's model.

Kingma & Welling (2014, Fig. 2) compare AEVB with wake-sleep on the *same* model: the
recognition model :math:`q_\phi(z|x) = \mathcal N(\mu_\phi(x), \operatorname{diag}
e^{v_\phi(x)})` (the VAE's encoder), the generative model :math:`p_\theta(x|z)` (the VAE's
decoder: Bernoulli for MNIST, Gaussian for Frey Face) and the prior :math:`p(z) =
\mathcal N(0, I)`. Only the learning rule differs. Each iteration takes a minibatch
:math:`x_{1..n}` (n, D) and makes two half-steps:

* **wake** (generative parameters θ): draw :math:`z_i \sim q_\phi(z|x_i)`, (n, d), and
  ascend

  .. math:: J_{\text{wake}}(\theta) = \frac1n \sum_{i=1}^n \log p_\theta(x_i | z_i)

  with the :math:`z_i` held fixed: no gradient flows into q. (The prior has no
  parameters here, so :math:`\log p(z_i)` adds nothing.) For the same noise this is
  exactly the decoder's gradient of the ELBO, so AEVB and wake-sleep move θ alike.

* **sleep** (recognition parameters φ): *dream* :math:`z_m \sim p(z)`,
  :math:`x_m \sim p_\theta(x|z_m)`, m = 1..M, and ascend

  .. math:: J_{\text{sleep}}(\phi) = \frac1M \sum_{m=1}^M \log q_\phi(z_m | x_m),

  a stochastic gradient of :math:`-\mathbb E_{p_\theta(x)}\,
  \mathrm{KL}(p_\theta(z|x) \,\|\, q_\phi(z|x))`: the KL in the *other* direction from
  the ELBO's :math:`\mathrm{KL}(q_\phi(z|x) \,\|\, p_\theta(z|x))`, on dreamt data rather
  than the training data. Wake-sleep therefore optimizes no single objective; its
  progress is measured, as in the paper, by the ELBO of the model it learns
  (:func:`scratchvae.evaluate.elbo` on :attr:`WakeSleep.model`).

Both gradients are summed into the model's one gradient buffer (they touch disjoint
parameters) and applied by one optimizer step; with an element-wise optimizer such as
Adagrad this is the same as two optimizers, one per phase.

The backward passes reuse the library's pieces: :meth:`Decoder.loglik_backward` and
:meth:`Decoder.backward` for the wake phase, :func:`~scratchvae.likelihoods.
gaussian_logpdf_backward` and :meth:`GaussianEncoder.backward` for the sleep phase
(derivations: ``derivations/08_backprop.ipynb``). Tests: ``tests/test_wake_sleep.py``;
the course notebook: ``notebooks/17_kingma2014_experiments.ipynb``.

References
----------
Hinton, Dayan, Frey & Neal (1995), *The "wake-sleep" algorithm for unsupervised neural
networks*, Science 268. Kingma & Welling (2014), *Auto-Encoding Variational Bayes*,
arXiv:1312.6114, section 5 and Fig. 2.
"""

from __future__ import annotations

import math

import numpy as np

from .backend import host_reads_are_free, on_device, to_numpy
from .likelihoods import gaussian_logpdf_backward, gaussian_logpdf_forward
from .train import TrainingError
from .vae import VAE


class WakeSleep:
    """Wake-sleep learning for a :class:`~scratchvae.VAE`'s encoder and decoder.

    Parameters
    ----------
    model : VAE
        The model learned; its parameters, gradients and generator are used in place
        (``model.params``, ``model.grads``, ``model.rng``), so the optimizers and
        checkpoints of the library work on it unchanged.
    """

    def __init__(self, model: VAE):
        if not isinstance(model, VAE):
            raise TypeError(f"model must be a scratchvae VAE, got {type(model).__name__}")
        self.model = model
        self._pending = None  # ("wake" or "sleep", cache) of the last forward pass

    # ---- wake phase: theta ----------------------------------------------------------
    def wake_loss(self, x, eps=None, check_values: bool = True):
        r""":math:`-J_{\text{wake}} = -\frac1n \sum_i \log p_\theta(x_i|z_i)` with
        :math:`z_i = \mu_\phi(x_i) + \sigma_\phi(x_i) \odot \varepsilon_i`, a sample of q
        taken as data (nothing is kept for a gradient into φ).

        x: (n, D); eps: (n, d) standard normal noise (drawn from ``model.rng`` if
        omitted). Returns the loss, a 0-d array; keeps what :meth:`wake_backward` needs.
        """
        m = self.model
        with on_device(m.xp, m.device):
            x = m.check_input(x, check_values)
            mu, logvar = m.encoder.forward(x)                                 # (n, d)
            if eps is None:
                eps = m.rng.normal(mu.shape, m.dtype)
            z = mu + m.xp.exp(0.5 * logvar) * eps                             # (n, d)
            log_px, c_px = m.decoder.loglik_forward(x, m.decoder.forward(z))  # (n,)
            m.clear_cache()
            self._pending = ("wake", (x.shape[0], c_px))
            return -m.xp.mean(log_px)

    def wake_backward(self) -> None:
        r"""The gradient of :meth:`wake_loss` w.r.t. every decoder parameter, into
        ``model.grads``; the encoder's gradients are left as they are.

        :math:`\partial(-J)/\partial \log p(x_i|z_i) = -1/n`, then the decoder's own
        backward pass (the gradient it returns for z is dropped: z is data here).
        """
        m = self.model
        n, c_px = self._take("wake")
        with on_device(m.xp, m.device):
            dlog_px = m.xp.full((n,), -1.0 / n, dtype=m.dtype, device=m.device)
            dout, dlogvar_dec = m.decoder.loglik_backward(dlog_px, c_px)
            m.decoder.backward(dout, dlogvar_dec)

    # ---- sleep phase: phi -----------------------------------------------------------
    def dream(self, n: int, z=None, noise=None):
        r"""``n`` draws :math:`z \sim \mathcal N(0, I)`, :math:`x \sim p_\theta(x|z)`.

        Bernoulli: :math:`x_i = [u_i < \sigma(l_i)]`, u uniform (n, D); Gaussian:
        :math:`x = m + e^{v/2} \odot \xi`, ξ standard normal (n, D), the standard
        deviation :math:`e^{v/2}` from the log-variance v. ``z`` (n, d) and ``noise``
        (``u`` or ``ξ``, (n, D)) may be given. Returns ``(z, x)``.
        """
        m = self.model
        with on_device(m.xp, m.device):
            if z is None:
                z = m.rng.normal((n, m.latent_dim), m.dtype)
            p = m.decoder.split(m.decoder.forward(z))
            m.clear_cache()
            self._pending = None  # the decoder's caches now hold the dream's pass
            if m.likelihood == "bernoulli":
                u = m.rng.uniform(p.mean.shape, m.dtype) if noise is None else noise
                return z, m.xp.astype(u < p.mean, m.dtype)
            xi = m.rng.normal(p.mean.shape, m.dtype) if noise is None else noise
            return z, p.mean + m.xp.exp(0.5 * p.logvar) * xi

    def sleep_loss(self, z, x):
        r""":math:`-J_{\text{sleep}} = -\frac1M \sum_m \log q_\phi(z_m|x_m)`, the dream
        ``(z, x)`` ((M, d), (M, D)) taken as data. Returns a 0-d array; keeps what
        :meth:`sleep_backward` needs."""
        m = self.model
        with on_device(m.xp, m.device):
            mu, logvar = m.encoder.forward(x)                                 # (M, d)
            log_q, c_q = gaussian_logpdf_forward(z, mu, logvar)               # (M,)
            m.clear_cache()
            self._pending = ("sleep", (x.shape[0], c_q))
            return -m.xp.mean(log_q)

    def sleep_backward(self) -> None:
        r"""The gradient of :meth:`sleep_loss` w.r.t. every encoder parameter, into
        ``model.grads``; the decoder's gradients are left as they are.

        With :math:`r = z - \mu` and :math:`v` the log-variance,
        :math:`\partial \log q/\partial \mu = r e^{-v}` and
        :math:`\partial \log q/\partial v = \tfrac12 (r^2 e^{-v} - 1)`
        (:func:`~scratchvae.likelihoods.gaussian_logpdf_backward`), each times
        :math:`-1/M`, then the encoder's backward pass through both heads.
        """
        m = self.model
        n, c_q = self._take("sleep")
        with on_device(m.xp, m.device):
            dlog_q = m.xp.full((n,), -1.0 / n, dtype=m.dtype, device=m.device)
            _, dmu, dlogvar = gaussian_logpdf_backward(dlog_q, c_q)           # (M, d) each
            m.encoder.backward(dmu, dlogvar)

    def _take(self, phase: str):
        if self._pending is None or self._pending[0] != phase:
            raise RuntimeError(f"call {phase}_loss() right before {phase}_backward()")
        cache, self._pending = self._pending[1], None
        return cache

    # ---- one iteration -------------------------------------------------------------
    def step(self, x, optimizer, check_values: bool = True):
        """One wake-sleep iteration on the minibatch ``x`` (n, D), dreaming n examples:
        both phases' gradients, then one ``optimizer`` step. Returns the two losses
        ``(wake, sleep)`` as 0-d arrays (on the model's device)."""
        wake = self.wake_loss(x, check_values=check_values)
        self.wake_backward()
        sleep = self.sleep_loss(*self.dream(x.shape[0]))
        self.sleep_backward()
        optimizer.step(self.model.grads)
        return wake, sleep


def train_epoch(ws: WakeSleep, optimizer, x_train, batch_size: int, epoch: int) -> dict:
    """One pass of wake-sleep over shuffled minibatches of ``x_train`` (on the model's
    device), as :func:`scratchvae.train.train_epoch` does for AEVB.

    Returns the epoch's means over the minibatches, ``wake_loss`` and ``sleep_loss``.
    Raises :class:`~scratchvae.train.TrainingError` on a non-finite loss.
    """
    m = ws.model
    xp = m.xp
    n = x_train.shape[0]
    starts = range(0, n, batch_size)
    stop_early = host_reads_are_free(xp)
    with on_device(xp, m.device):
        order = m.rng.permutation(n)
        per_step = xp.zeros((len(starts), 2), dtype=m.dtype, device=m.device)
        for step, i in enumerate(starts):
            x = xp.take(x_train, order[i:min(i + batch_size, n)], axis=0)
            wake, sleep = ws.step(x, optimizer, check_values=False)
            per_step[step, 0], per_step[step, 1] = wake, sleep
            if stop_early and not (math.isfinite(float(wake)) and math.isfinite(float(sleep))):
                break
        per_step = to_numpy(per_step).astype(np.float64)
    bad = np.flatnonzero(~np.all(np.isfinite(per_step), axis=1))
    if bad.size:
        raise TrainingError(f"wake-sleep's losses became {per_step[bad[0]].tolist()} at "
                            f"epoch {epoch}, step {int(bad[0]) + 1}; lower the step size")
    wake, sleep = per_step.mean(axis=0)
    return {"wake_loss": float(wake), "sleep_loss": float(sleep)}
