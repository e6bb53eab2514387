"""Evaluating a trained VAE: the test ELBO, the importance-weighted log-likelihood and
the number of active latent units.

Every function takes a data set ``x`` of shape (N, D), either host data (a NumPy float
array, moved to the model's device minibatch by minibatch with
:meth:`~scratchvae.model.Model.asarray`) or an array already on the model's backend,
device and dtype (which a training loop copies there once), walks through it in
minibatches, keeps the running sums on the device, and returns Python numbers or host
NumPy arrays, so the same call works on every backend.

These functions run forward passes that overwrite the caches of the model's layers,
so they call ``model.clear_cache()``: a ``model.backward()`` after an evaluation raises
instead of using stale values. Call ``model.loss(x)`` again before ``backward``.

References
----------
Kingma & Welling (2014), *Auto-Encoding Variational Bayes*, arXiv:1312.6114.
Burda, Grosse & Salakhutdinov (2016), *Importance Weighted Autoencoders*,
arXiv:1509.00519 (the estimator in :func:`log_likelihood`, active units in
:func:`active_units`).
"""

from __future__ import annotations

import contextlib
import math

import numpy as np

from .backend import array_namespace, on_device, to_numpy
from .checks import check_int
from .model import Model
from .parallel import Split
from .threads import Threads
from .vae import VAE

__all__ = ["active_units", "elbo", "latent_means", "log_likelihood"]

#: On the CPU, the decoder rows (samples x examples) computed in one piece by the
#: importance-weighted evaluation: about 1.5 MB of logits for 784 pixels, so that a
#: block's element-wise passes (the likelihood's exp, products and sums) read their
#: input from the core's cache rather than from main memory.
CACHE_ROWS = 500


def _check_model(model, vae_only: bool = True):
    kind = VAE if vae_only else Model
    if not isinstance(model, kind):
        raise TypeError(f"model must be a scratchvae.{kind.__name__}, "
                        f"got {type(model).__name__}")
    return model


def _check_data(model, x):
    """``x`` must be host floating data (a NumPy array) of shape (N, D), N >= 1, or an
    array of shape (N, D) on the model's backend, device and dtype."""
    if not isinstance(x, np.ndarray):
        try:
            array_namespace(x)
        except TypeError:
            raise TypeError(f"x must be a host NumPy array of shape (N, {model.input_dim}) or "
                            f"an array on the model's device, got {type(x).__name__}") from None
        return model.check_input(x, check_values=False)
    if not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"x must be a floating array, got dtype {x.dtype}; "
                        f"scale integer images to [0, 1] first")
    if x.ndim != 2 or x.shape[1] != model.input_dim or x.shape[0] == 0:
        raise ValueError(f"x must have shape (N, {model.input_dim}) with N >= 1, "
                         f"got {x.shape}")
    return x


def _batches(model, x, batch_size: int):
    """Consecutive minibatches of at most ``batch_size`` rows of ``x``, on the model's
    device (host rows are copied there one minibatch at a time)."""
    n = x.shape[0]
    for start in range(0, n, batch_size):
        yield model.asarray(x[start:min(start + batch_size, n), ...])


def elbo(model, x, batch_size: int = 1000, n_samples: int = 1) -> dict:
    r"""Negative ELBO of a data set, in nats per example, and its two parts.

    .. math::
        -\mathcal L(x) = \underbrace{-\mathbb E_{q(z|x)}[\log p(x|z)]}_{\text{recon}}
        + \underbrace{\mathrm{KL}(q(z|x)\,\|\,p(z))}_{\text{kl}}

    estimated by :meth:`VAE.loss` on each minibatch with ``n_samples`` draws of z
    (SGVB-B, the analytic KL, unless the model was built with ``estimator="A"``) and
    averaged over all N examples, each batch weighted by its size.

    Parameters
    ----------
    model : VAE
    x : array, shape (N, D)
        Host data, or data on the model's device.
    batch_size : int
    n_samples : int
        Samples L of z per example.

    Returns
    -------
    dict with float values ``loss`` (= recon + kl: the negative ELBO, whatever the
    model's ``beta`` and ``free_bits``), ``recon`` and ``kl``.
    """
    model = _check_model(model)
    x = _check_data(model, x)
    batch_size = check_int(batch_size, "batch_size")
    n_samples = check_int(n_samples, "n_samples")
    xp = model.xp
    recon = kl = 0.0  # running sums in float64, on the device after the first batch
    try:
        with on_device(xp, model.device):
            for xb in _batches(model, x, batch_size):
                res = model.loss(xb, n_samples=n_samples)
                recon = recon + xp.astype(res.recon, xp.float64) * xb.shape[0]
                kl = kl + xp.astype(res.kl, xp.float64) * xb.shape[0]
            n = x.shape[0]
            recon, kl = float(recon) / n, float(kl) / n  # the one device -> host copy
    finally:
        model.clear_cache()
    return dict(loss=recon + kl, recon=recon, kl=kl)


def _logsumexp(a):
    r""":math:`\log \sum_l e^{a_l}` over axis 0, shifted by the maximum to avoid overflow."""
    xp = array_namespace(a)
    m = xp.max(a, axis=0, keepdims=True)
    return m[0, ...] + xp.log(xp.sum(xp.exp(a - m), axis=0))


def _iw_log_likelihood(model, x, k: int, k_batch: int, tick=None, split=None):
    r"""Importance-weighted log p(x) of one minibatch x (n, D): an (n,) array.

    The K weights are drawn in chunks of ``k_batch``; a running log-sum-exp,
    :math:`s \leftarrow \log(e^{s} + \sum_{l \in \text{chunk}} w_l)`, combines them,
    so memory grows with ``k_batch``, not with K. ``tick()`` is called after each chunk.
    With a :class:`~scratchvae.parallel.Split`, each chunk's samples are shared among its
    threads; the noise is drawn first, in one piece, so the numbers do not depend on it.
    On the CPU each share is computed in blocks of about :data:`CACHE_ROWS` decoder rows.
    """
    xp = model.xp
    mu, logvar = model.encoder.forward(x)
    n, d = mu.shape
    log_sum = xp.full((n,), -math.inf, dtype=model.dtype, device=model.device)
    block = max(1, CACHE_ROWS // n) if model.backend == "numpy" else k_batch  # samples

    def log_weights(eps):
        L = eps.shape[0]
        return xp.concat([model.log_weights(x, mu=mu, logvar=logvar, check_values=False,
                                            eps=eps[i:min(i + block, L), ...])
                          for i in range(0, L, block)])

    for start in range(0, k, k_batch):
        eps = model.rng.normal((min(k_batch, k - start), n, d), model.dtype)  # (l, n, d)
        if split is None:
            log_w = log_weights(eps)                                          # (l, n)
        else:
            pieces = split.map(lambda a, b, e=eps: log_weights(e[a:b, ...]), eps.shape[0])
            log_w = xp.concat(pieces)
        log_sum = xp.logaddexp(log_sum, _logsumexp(log_w))
        if tick is not None:
            tick()
    return log_sum - math.log(k)


def log_likelihood(model, x, k: int = 5000, batch_size: int = 100,
                   k_batch: int = 100, progress=None, threads=None) -> tuple[float, float]:
    r"""Importance-weighted estimate of the test log-likelihood (Burda et al., 2016).

    .. math::
        \log p(x) \approx \log \frac1K \sum_{k=1}^{K}
        \frac{p(x|z_k)\,p(z_k)}{q(z_k|x)}, \qquad z_k \sim q(z|x)

    computed per example with a stable log-sum-exp. For K = 1 it is an unbiased
    estimate of the ELBO; its expectation increases with K and tends to
    :math:`\log p(x)` as :math:`K \to \infty`. It is a stochastic *lower* bound:
    :math:`\mathbb E[\text{estimate}] \le \log p(x)` for every K.

    Parameters
    ----------
    model : VAE
    x : array, shape (N, D)
        Host data, or data on the model's device.
    k : int
        Number K of importance samples per example (Burda et al. use 5000).
    batch_size : int
        Examples per minibatch.
    k_batch : int
        Samples per chunk; one chunk holds ``batch_size * k_batch`` decoder rows,
        which bounds the memory used.
    progress : callable, optional
        ``progress(0, total)`` when the work starts, then ``progress(done, total)`` after
        each chunk (``total`` chunks in all): for
        progress bars and time estimates (the evaluation of a full test set with
        K = 5000 takes tens of minutes on a CPU).
    threads : "auto", int or None
        CPU cores to use (:mod:`scratchvae.threads`, :mod:`scratchvae.parallel`): every
        chunk's samples are shared among that many threads, each with one BLAS thread.
        ``"auto"`` times chunks with one core and with all of them first (for
        evaluations of 100 chunks or more, all cores otherwise); the trial leaves the
        generator's stream as it was. ``None`` leaves the process's setting alone.

    Returns
    -------
    (mean, stderr) : floats, nats per example
        The average over the N examples and its standard error, the sample standard
        deviation over examples divided by :math:`\sqrt N` (``nan`` for N = 1).
    """
    model = _check_model(model)
    x = _check_data(model, x)
    k = check_int(k, "k")
    batch_size = check_int(batch_size, "batch_size")
    k_batch = check_int(k_batch, "k_batch")
    total = -(-x.shape[0] // batch_size) * -(-k // k_batch)
    done = 0

    def tick():
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total)

    parts = []
    try:
        cores = _eval_cores(threads, model, x, k_batch, total)
        with on_device(model.xp, model.device), cores or contextlib.nullcontext(), \
                Split(cores.choice if cores else 1) as split:
            if progress is not None:
                progress(0, total)  # the work starts now (after choosing the threads)
            for xb in _batches(model, x, batch_size):
                xb = model.check_input(xb)
                parts.append(_iw_log_likelihood(model, xb, k, k_batch, tick,
                                                split if split.n_threads > 1 else None))
            ll = to_numpy(model.xp.concat(parts)).astype(np.float64)
    finally:
        model.clear_cache()
    n = ll.shape[0]
    stderr = float(np.std(ll, ddof=1) / math.sqrt(n)) if n > 1 else math.nan
    return float(np.mean(ll)), stderr


def _eval_cores(threads, model, x, k_batch: int, total: int):
    """The CPU cores the evaluation uses, a :class:`~scratchvae.threads.Threads` with
    ``split=True`` (``None``: leave the process's setting, one Python thread).

    Each core takes a share of every chunk's samples. ``"auto"`` times chunks with one
    core and with all of them first, for evaluations of 100 chunks or more, with the
    generator's state saved and restored around the trial so that the result does not
    depend on it; a shorter one uses all cores without a trial."""
    if threads is None or model.backend != "numpy":  # CuPy, the stand-in: nothing split
        return None
    cores = Threads(threads, split=True)
    if cores.choice is None and total < 100:
        cores.choice = cores.max_threads
    if cores.choice is None:
        state = model.rng.get_state()  # the trial's draws must not move the real stream
        xb = next(_batches(model, x, 100))

        def one_chunk(n):
            with Split(n) as split:
                _iw_log_likelihood(model, xb, k_batch, k_batch, split=split)

        try:
            cores.choose(one_chunk)
        finally:
            model.rng.set_state(state)
    return cores


def latent_means(model, x, batch_size: int = 1000) -> np.ndarray:
    r"""Where a model puts each example in latent space, on the host.

    The posterior means :math:`\mu_\phi(x)` of a :class:`VAE`, the codes
    :math:`f_\phi(x)` of an :class:`~scratchvae.AE`.

    Parameters
    ----------
    model : VAE or AE
    x : array, shape (N, D)
        Host data, or data on the model's device.
    batch_size : int

    Returns
    -------
    ndarray, shape (N, latent_dim), in the model's dtype
    """
    model = _check_model(model, vae_only=False)
    x = _check_data(model, x)
    batch_size = check_int(batch_size, "batch_size")
    parts = []
    for xb in _batches(model, x, batch_size):
        codes = model.encode(xb)
        parts.append(codes[0] if isinstance(model, VAE) else codes)
    with on_device(model.xp, model.device):
        return to_numpy(model.xp.concat(parts))


def active_units(model, x, threshold: float = 0.01,
                 batch_size: int = 1000) -> tuple[int, np.ndarray]:
    r"""Count the latent units the model uses (Burda et al., 2016, sec. 5.2).

    Unit u is active when its posterior mean varies over the data:

    .. math:: A_u = \operatorname{Cov}_x\big(\mathbb E_{q(z|x)}[z_u]\big)
              = \operatorname{Var}_x\big(\mu_u(x)\big) > \text{threshold}

    An inactive unit has the same posterior whatever x is (usually the prior): the
    decoder ignores it.

    Parameters
    ----------
    model : VAE
    x : array, shape (N, D)
        Host data, or data on the model's device.
    threshold : float
        Burda et al. use 0.01.
    batch_size : int

    Returns
    -------
    count : int
        Number of active units.
    variances : ndarray, shape (latent_dim,), float64
        :math:`A_u` for every unit (the population variance over the N examples).
    """
    model = _check_model(model)
    threshold = float(threshold)
    if not (math.isfinite(threshold) and threshold >= 0):
        raise ValueError(f"threshold must be a finite number >= 0, got {threshold!r}")
    mu = latent_means(model, x, batch_size).astype(np.float64)
    variances = np.var(mu, axis=0)
    return int(np.count_nonzero(variances > threshold)), variances
