r"""A generative adversarial network (Goodfellow et al. 2014) built from the same layers.

Two networks play against each other. The generator :math:`G_\theta` maps noise
:math:`z \sim U(-1, 1)^{d_z}` to an image; the discriminator :math:`D_\psi` maps an image
to one logit :math:`l = D_\psi(x)`, read as :math:`\Pr(x \text{ is real}) = \sigma(l)`. With
the binary cross-entropy on logits (stable form, its gradient :math:`\sigma(l) - t`),

.. math::
    \ell(l, t) = \max(l, 0) - l\,t + \log(1 + e^{-|l|}), \qquad
    \frac{\partial \ell}{\partial l} = \sigma(l) - t,

the two losses of a minibatch of :math:`n` real images :math:`x_i` and :math:`m` noise
vectors :math:`z_j` are

.. math::
    L_D(\psi) = \frac1n \sum_i \ell(D_\psi(x_i), 1) + \frac1m \sum_j \ell(D_\psi(G_\theta(z_j)), 0),
    \qquad
    L_G(\theta) = \frac1m \sum_j \ell(D_\psi(G_\theta(z_j)), 1).

:math:`L_G` is the *non-saturating* generator loss, :math:`-\log \sigma(l)`; the minimax game
of the paper has the generator minimize :math:`-\ell(l, 0) = \log(1 - \sigma(l))`, whose
gradient :math:`-\sigma(l)` vanishes exactly where the generator is bad (the discriminator
rejects its images, :math:`\sigma(l) \approx 0`), while :math:`\sigma(l) - 1` is then close
to :math:`-1`.

The generator's gradient flows back *through* the discriminator: with
:math:`\hat x_j = G_\theta(z_j)`,

.. math::
    \frac{\partial L_G}{\partial \hat x_j} = \frac{\sigma(l_j) - 1}{m}\,
    \frac{\partial D_\psi}{\partial \hat x}(\hat x_j), \qquad
    \frac{\partial L_G}{\partial \theta} = \sum_j \Big(\frac{\partial \hat x_j}{\partial
    \theta}\Big)^{\!\top} \frac{\partial L_G}{\partial \hat x_j},

the first factor being the discriminator's backward pass returning the gradient with
respect to its *input* (the affine layers' :math:`dy\,W^\top`), the second the
generator's own backward pass. Both are the layers of :mod:`scratchvae.layers`
(``derivations/08_backprop.ipynb``); ``tests/test_gan.py`` checks every parameter's gradient
of both losses against finite differences.

Architecture (the common MNIST setup, e.g. the CS231n GAN assignment): discriminator
784-256-256-1 with LeakyReLU (slope 0.01); generator :math:`d_z = 96` - 1024 - 1024 - 784, ReLU
hidden, tanh output, so images live in :math:`[-1, 1]` (the data are scaled by
:math:`2x - 1`); Glorot-uniform weights; Adam, learning rate :math:`10^{-3}`,
:math:`\beta_1 = 0.5`; minibatches of 128. One discriminator step, then one generator step
on fresh noise (Goodfellow et al. 2014, Algorithm 1, with k = 1).

:func:`train_gan` trains into a run folder with a checkpoint after every epoch (written
atomically) and resumes from it. Course notebook: ``notebooks/15_vae_ae_gan.ipynb``.

References
----------
Goodfellow et al. (2014), *Generative Adversarial Nets*, NeurIPS, arXiv:1406.2661.
"""

from __future__ import annotations

import dataclasses
import json
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .activations import sigmoid
from .backend import array_namespace, host_reads_are_free, on_device, to_numpy
from .checks import check_int
from .files import atomic_write
from .layers import Activation, Sequential, mlp
from .model import Model
from .optim import Adam
from .threads import AUTO, Threads

CHECKPOINT_VERSION = 1


# ---- the loss ---------------------------------------------------------------------------

def bce_logits_forward(logits, target: float):
    r"""Binary cross-entropy of logits against a constant target :math:`t \in \{0, 1\}`:
    :math:`\ell = \max(l, 0) - l\,t + \log(1 + e^{-|l|})`, per entry (never overflows).

    logits: (n,). Returns ``(loss (n,), cache)``.
    """
    xp = array_namespace(logits)
    e = xp.exp(-xp.abs(logits))
    loss = xp.maximum(logits, 0.0) - target * logits + xp.log1p(e)
    return loss, (logits, e, target)


def bce_logits_backward(dloss, cache):
    r""":math:`\partial \ell / \partial l = \sigma(l) - t`, times ``dloss`` (n,)."""
    logits, e, target = cache
    return dloss * (sigmoid(logits, e) - target)


@dataclass
class GANLoss:
    """A minibatch's loss and the discriminator's mean verdicts (0-d arrays on the device).

    ``d_real``: mean :math:`\\sigma(D(x))` over the real images (``None`` for the
    generator's loss); ``d_fake``: mean :math:`\\sigma(D(G(z)))`.
    """

    loss: object
    d_real: object
    d_fake: object


# ---- the two networks --------------------------------------------------------------------

class GeneratorNetwork(Model):
    r""":math:`G_\theta: z \mapsto \tanh(\text{MLP}(z))`, (m, noise_dim) -> (m, data_dim),
    ReLU hidden layers. Parameters ``G.0.W`` ... in one flat buffer."""

    def __init__(self, noise_dim: int = 96, hidden_dims=(1024, 1024), data_dim: int = 784,
                 init: str = "glorot", backend: str = "numpy", dtype: str = "float32",
                 seed: int = 0, device=None):
        super().__init__(data_dim, backend, dtype, seed, device)
        self.noise_dim = check_int(noise_dim, "noise_dim")
        self.hidden_dims = tuple(check_int(h, "hidden_dims entries") for h in hidden_dims)
        body = mlp("G", (self.noise_dim, *self.hidden_dims, data_dim), "relu", init,
                   final_activation=False, input_grad=False)  # the noise needs no gradient
        self.net = Sequential([*body.layers, Activation("tanh")])
        self._build([self.net])


class DiscriminatorNetwork(Model):
    r""":math:`D_\psi: x \mapsto l`, (n, data_dim) -> (n, 1) logits, LeakyReLU hidden
    layers (slope :data:`scratchvae.activations.LEAKY_SLOPE` = 0.01). Its backward returns
    the gradient with respect to its input, which the generator's gradient needs."""

    def __init__(self, data_dim: int = 784, hidden_dims=(256, 256), init: str = "glorot",
                 backend: str = "numpy", dtype: str = "float32", seed: int = 0, device=None):
        super().__init__(data_dim, backend, dtype, seed, device)
        self.hidden_dims = tuple(check_int(h, "hidden_dims entries") for h in hidden_dims)
        self.net = mlp("D", (data_dim, *self.hidden_dims, 1), "leaky_relu", init,
                       final_activation=False, input_grad=True)
        self._build([self.net])


class GAN:
    """A generator and a discriminator on one backend, device and dtype.

    Parameters
    ----------
    data_dim, noise_dim : int
        Image size D (784 for MNIST) and noise size :math:`d_z`.
    g_hidden, d_hidden : tuple of int
        Hidden widths of the generator and of the discriminator.
    init : {"glorot", "pytorch", "normal"}
    backend, dtype, seed, device
        As for :class:`scratchvae.VAE`; the generator is seeded with ``seed``, the
        discriminator with ``seed + 1``; the noise and the minibatch order come from the
        generator's :class:`~scratchvae.rng.Generator`.
    """

    def __init__(self, data_dim: int = 784, noise_dim: int = 96, g_hidden=(1024, 1024),
                 d_hidden=(256, 256), init: str = "glorot", backend: str = "numpy",
                 dtype: str = "float32", seed: int = 0, device=None):
        self.G = GeneratorNetwork(noise_dim, g_hidden, data_dim, init, backend, dtype, seed, device)
        self.D = DiscriminatorNetwork(data_dim, d_hidden, init, backend, dtype, seed + 1, device)
        self.data_dim, self.noise_dim = data_dim, self.G.noise_dim
        self._cache = None

    @property
    def xp(self):
        return self.G.xp

    @property
    def dtype(self):
        return self.G.dtype

    def to(self, backend: str, device=None) -> GAN:
        """Move both networks (and the generator's random stream); returns ``self``."""
        self.G.to(backend, device)
        self.D.to(backend, device)
        self._cache = None
        return self

    def asarray(self, x):
        """Host data as an array of the networks' backend, device and dtype."""
        return self.G.asarray(x)

    def noise(self, m: int):
        """m draws :math:`z \\sim U(-1, 1)^{d_z}`: (m, noise_dim) on the device."""
        return self.G.rng.uniform((check_int(m, "m"), self.noise_dim), self.dtype, -1.0, 1.0)

    def generate(self, m: int | None = None, z=None):
        """Images :math:`G(z)` in [-1, 1], (m, data_dim), at ``z`` or at m fresh draws."""
        z = self.noise(m) if z is None else z
        self._cache = None
        with on_device(self.xp, self.G.device):
            return self.G.net.forward(self.G._check_array(z, "z", (None, self.noise_dim),
                                                               check_finite=False))

    # ---- the discriminator's loss -----------------------------------------------------
    def discriminator_loss(self, x, z) -> GANLoss:
        r""":math:`L_D` on real images ``x`` (n, D) in [-1, 1] and fakes :math:`G(z)`,
        ``z`` (m, noise_dim). The fakes are constants here: the backward stops at the
        discriminator's input. One pass of the discriminator over the n + m images."""
        xp = self.xp
        with on_device(xp, self.D.device):
            x = self.D._check_array(x, "x", (None, self.data_dim), check_finite=False)
            fake = self.generate(z=z)
            n, m = x.shape[0], fake.shape[0]
            logits = self.D.net.forward(xp.concat([x, fake]))[:, 0]
            loss_real, c_real = bce_logits_forward(logits[:n], 1.0)
            loss_fake, c_fake = bce_logits_forward(logits[n:], 0.0)
            self._cache = ("D", n, m, c_real, c_fake)
            return GANLoss(xp.mean(loss_real) + xp.mean(loss_fake),
                           xp.mean(sigmoid(logits[:n], c_real[1])),
                           xp.mean(sigmoid(logits[n:], c_fake[1])))

    def backward_discriminator(self) -> None:
        r"""Gradients of the last :meth:`discriminator_loss` into ``D.grads``:
        :math:`\partial L_D / \partial l_i = (\sigma(l_i) - 1)/n` for the real images,
        :math:`\sigma(l_j)/m` for the fakes, then back through :math:`D`."""
        xp = self.xp
        _, n, m, c_real, c_fake = self._take_cache("D")
        with on_device(xp, self.D.device):
            dl_real = bce_logits_backward(xp.full((n,), 1.0 / n, dtype=self.dtype,
                                                  device=self.D.device), c_real)
            dl_fake = bce_logits_backward(xp.full((m,), 1.0 / m, dtype=self.dtype,
                                                  device=self.D.device), c_fake)
            self.D.net.backward(xp.concat([dl_real, dl_fake])[:, None])

    # ---- the generator's loss ---------------------------------------------------------
    def generator_loss(self, z, saturating: bool = False) -> GANLoss:
        r""":math:`L_G = \frac1m \sum_j \ell(D(G(z_j)), 1) = -\frac1m\sum_j\log\sigma(l_j)`
        (non-saturating), or with ``saturating=True`` the minimax game's
        :math:`\frac1m \sum_j \log(1 - \sigma(l_j)) = -\frac1m\sum_j \ell(l_j, 0)`, which the
        course shows beside it. z: (m, noise_dim)."""
        xp = self.xp
        with on_device(xp, self.G.device):
            fake = self.generate(z=z)
            logits = self.D.net.forward(fake)[:, 0]
            if saturating:
                loss, c = bce_logits_forward(logits, 0.0)
                loss = -loss
            else:
                loss, c = bce_logits_forward(logits, 1.0)
            self._cache = ("G", fake.shape[0], saturating, c)
            return GANLoss(xp.mean(loss), None, xp.mean(sigmoid(logits, c[1])))

    def backward_generator(self) -> None:
        r"""Gradients of the last :meth:`generator_loss` into ``G.grads``: the loss's
        gradient at the logits, :math:`(\sigma(l_j) - 1)/m` (non-saturating) or
        :math:`-\sigma(l_j)/m` (saturating), back through the discriminator to its input
        :math:`\partial L_G / \partial \hat x`, then back through the generator.

        The discriminator's backward also writes ``D.grads``: the gradient of
        :math:`L_G` with respect to :math:`\psi` (checked by the tests, never used for
        a step: the discriminator minimizes :math:`L_D`)."""
        xp = self.xp
        _, m, saturating, c = self._take_cache("G")
        with on_device(xp, self.G.device):
            dmean = xp.full((m,), 1.0 / m, dtype=self.dtype, device=self.G.device)
            dlogits = bce_logits_backward(-dmean if saturating else dmean, c)
            dfake = self.D.net.backward(dlogits[:, None])      # dL_G / dx_hat: (m, D)
            self.G.net.backward(dfake)

    def _take_cache(self, which: str):
        if self._cache is None or self._cache[0] != which:
            loss = "discriminator_loss" if which == "D" else "generator_loss"
            raise RuntimeError(f"call gan.{loss}(...) right before this backward")
        cache, self._cache = self._cache, None
        return cache


# ---- gradient check ----------------------------------------------------------------------

def gradient_errors(gan: GAN, x, z, h: float = 1e-6) -> dict:
    r"""Relative errors of the hand-written gradients against centred finite differences,
    for every parameter: ``{"L_D": {name: err}, "L_G": {name: err}}`` where ``L_D`` is
    checked w.r.t. the discriminator's parameters and ``L_G`` w.r.t. the generator's and
    the discriminator's (the latter is what :meth:`GAN.backward_generator` writes into
    ``D.grads`` on the way). Needs a float64 GAN; every entry is perturbed, so use small
    networks (see :mod:`scratchvae.gradcheck` for the error sizes to expect).
    """
    from .gradcheck import numerical_gradient, rel_error

    errors = {"L_D": {}, "L_G": {}}
    gan.discriminator_loss(x, z)
    gan.backward_discriminator()
    analytic = {k: to_numpy(g).copy() for k, g in gan.D.grads.items()}
    for name, p in gan.D.params.items():
        numeric = numerical_gradient(lambda: gan.discriminator_loss(x, z).loss, p, h)
        errors["L_D"][name] = rel_error(analytic[name], numeric)
    gan.generator_loss(z)
    gan.backward_generator()
    analytic = {k: to_numpy(g).copy() for net in (gan.G, gan.D) for k, g in net.grads.items()}
    for net in (gan.G, gan.D):
        for name, p in net.params.items():
            numeric = numerical_gradient(lambda: gan.generator_loss(z).loss, p, h)
            errors["L_G"][name] = rel_error(analytic[name], numeric)
    return errors


# ---- training ---------------------------------------------------------------------------

@dataclass
class GANConfig:
    """Everything that defines a GAN training run; saved in its checkpoint."""

    epochs: int = 30
    batch_size: int = 128
    lr: float = 1e-3
    beta1: float = 0.5
    beta2: float = 0.999
    noise_dim: int = 96
    g_hidden: tuple = (1024, 1024)
    d_hidden: tuple = (256, 256)
    init: str = "glorot"
    dtype: str = "float32"
    seed: int = 0
    n_train: int | None = None
    record_every: int = 10          # steps per point of the loss curves
    n_fixed: int = 64               # fixed noise vectors whose images are kept every epoch

    def to_json(self) -> dict:
        d = dataclasses.asdict(self)
        d["g_hidden"], d["d_hidden"] = list(self.g_hidden), list(self.d_hidden)
        return d

    def build(self, data_dim: int, backend: str = "numpy", device=None) -> GAN:
        return GAN(data_dim, self.noise_dim, self.g_hidden, self.d_hidden, self.init,
                   backend, self.dtype, self.seed, device)


def to_signed(x):
    """Grey values in [0, 1] -> [-1, 1], the range of the generator's tanh."""
    return 2.0 * x - 1.0


def to_unit(x):
    """Images in [-1, 1] -> grey values in [0, 1]."""
    return (x + 1.0) / 2.0


def fixed_noise(config: GANConfig) -> np.ndarray:
    """The noise whose images are kept after every epoch: drawn on the host from its own
    stream (seed + 7), so it is the same on every backend and leaves training's alone."""
    rng = np.random.default_rng(config.seed + 7)
    return rng.uniform(-1.0, 1.0, (config.n_fixed, config.noise_dim))


def train_epoch(gan: GAN, opt_d: Adam, opt_g: Adam, x, config: GANConfig) -> dict:
    """One pass over shuffled full minibatches of ``x`` (device, in [-1, 1]): per
    minibatch, one step of the discriminator on :math:`L_D`, then one of the generator on
    :math:`L_G` with fresh noise. The per-step numbers stay on the device until the end
    of the epoch; returns their means per ``record_every`` steps, as host lists:
    ``d_loss, g_loss, d_real`` (mean D(x)), ``d_fake`` (mean D(G(z)) before the
    discriminator's step)."""
    xp, b = gan.xp, config.batch_size
    n_steps = x.shape[0] // b
    if n_steps < 1:
        raise ValueError(f"the training set ({x.shape[0]} images) is smaller than one "
                         f"minibatch ({b})")
    with on_device(xp, gan.G.device):
        order = gan.G.rng.permutation(x.shape[0])
        per_step = xp.zeros((n_steps, 4), dtype=gan.dtype, device=gan.G.device)
        for step in range(n_steps):
            xb = xp.take(x, order[step * b:(step + 1) * b], axis=0)
            d = gan.discriminator_loss(xb, gan.noise(b))
            gan.backward_discriminator()
            opt_d.step(gan.D.grads)
            g = gan.generator_loss(gan.noise(b))
            gan.backward_generator()
            opt_g.step(gan.G.grads)
            per_step[step, 0], per_step[step, 1] = d.loss, g.loss
            per_step[step, 2], per_step[step, 3] = d.d_real, d.d_fake
        per_step = to_numpy(per_step).astype(np.float64)   # waits for the device, once
    if not np.all(np.isfinite(per_step)):
        raise FloatingPointError(f"a GAN loss became non-finite at step "
                                 f"{int(np.flatnonzero(~np.isfinite(per_step).all(1))[0]) + 1}")
    k = config.record_every
    chunks = [per_step[i:i + k].mean(axis=0) for i in range(0, n_steps, k)]
    keys = ("d_loss", "g_loss", "d_real", "d_fake")
    return {key: [round(float(c[j]), 5) for c in chunks] for j, key in enumerate(keys)} | \
        {"steps": n_steps}


def save_checkpoint(path, gan: GAN, opt_d: Adam, opt_g: Adam, epoch: int,
                    config: GANConfig) -> None:
    """Both networks' parameters, both optimizers' state, the noise stream's state, the
    configuration and the epoch, as host arrays in one ``.npz`` (written atomically)."""
    arrays = {"version": np.array(CHECKPOINT_VERSION), "epoch": np.array(epoch),
              "config": np.array(json.dumps(config.to_json())),
              "rng_state": np.array(gan.G.rng.get_state())}
    for tag, net, opt in (("G", gan.G, opt_g), ("D", gan.D, opt_d)):
        arrays[f"{tag}.params"] = to_numpy(net.params.flat)
        arrays[f"{tag}.opt_t"] = np.array(opt.t)
        for key, value in opt.state.items():
            arrays[f"{tag}.opt.{key}"] = to_numpy(value)
    atomic_write(path, lambda f: np.savez(f, **arrays))


def load_checkpoint(path, gan: GAN, opt_d: Adam | None = None,
                    opt_g: Adam | None = None) -> dict:
    """Restore what :func:`save_checkpoint` wrote; returns ``{"epoch", "config"}``."""
    with np.load(path, allow_pickle=False) as data:
        raw = {k: data[k] for k in data.files}
    gan.G.rng.set_state(str(raw["rng_state"]))
    for tag, net, opt in (("G", gan.G, opt_g), ("D", gan.D, opt_d)):
        with on_device(net.xp, net.device):
            net.params.flat[...] = net.asarray(raw[f"{tag}.params"])
            if opt is not None:
                state = {k.split(".", 2)[2]: net.asarray(v) for k, v in raw.items()
                         if k.startswith(f"{tag}.opt.")}
                opt.load_state_dict({"t": int(raw[f"{tag}.opt_t"]), **state})
    return {"epoch": int(raw["epoch"]), "config": json.loads(str(raw["config"]))}


def _same_run(saved: dict, config: GANConfig) -> bool:
    ignore = ("epochs",)
    now = config.to_json()
    return {k: v for k, v in saved.items() if k not in ignore} == \
        {k: v for k, v in now.items() if k not in ignore}


def train_gan(config: GANConfig, x_train, run_dir, backend: str = "numpy", device=None,
              log=print, threads=AUTO):
    """Train a GAN on the host images ``x_train`` (N, D) in [0, 1] for ``config.epochs``
    epochs, in ``run_dir``; resume from ``run_dir/checkpoint.npz`` when it is there.

    After every epoch: a line of ``metrics.jsonl`` (the curves of :func:`train_epoch`, the
    epoch's seconds), the images of the fixed noise (:func:`fixed_noise`) as
    ``samples/epoch_NNN.npy`` in [0, 1], and the checkpoint, each written atomically (the
    checkpoint last: an interrupted epoch is trained again). A checkpoint written with
    another configuration (other than the number of epochs) is an error.

    ``threads``: CPU threads of the matrix products, ``"auto"`` (timed on one training
    step of a scratch copy, see :mod:`scratchvae.threads`) or a count; ignored on a GPU.

    Returns ``(gan, history)``: the trained GAN and the metrics, one dict per epoch.
    """
    run_dir = Path(run_dir)
    (run_dir / "samples").mkdir(parents=True, exist_ok=True)
    gan = config.build(x_train.shape[1], backend, device)
    opt_d = Adam(gan.D.params, lr=config.lr, betas=(config.beta1, config.beta2))
    opt_g = Adam(gan.G.params, lr=config.lr, betas=(config.beta1, config.beta2))
    path, metrics_path = run_dir / "checkpoint.npz", run_dir / "metrics.jsonl"
    done = 0
    if path.is_file():
        saved = load_checkpoint(path, gan, opt_d, opt_g)
        if not _same_run(saved["config"], config):
            raise ValueError(f"{run_dir} holds a GAN trained with another configuration; "
                             f"use another folder or delete it")
        done = saved["epoch"]
    history = [json.loads(line) for line in (metrics_path.read_text().splitlines()
                                             if metrics_path.is_file() else [])]
    history = [h for h in history if h["epoch"] <= done]   # an epoch cut short is redone
    if done < config.epochs:
        log(f"training the GAN: epochs {done + 1}-{config.epochs}")
    x = gan.asarray(to_signed(np.asarray(x_train, dtype=np.float32)))
    z_fixed = gan.asarray(fixed_noise(config))
    if done == 0:  # what the untrained generator makes, for comparison
        images = to_numpy(to_unit(gan.generate(z=z_fixed))).astype(np.float32)
        atomic_write(run_dir / "samples" / "epoch_000.npy", lambda f: np.save(f, images))
    with _threads(threads, config, gan, x) if done < config.epochs else nullcontext():
        _train_epochs(gan, opt_d, opt_g, x, z_fixed, config, done, history, run_dir, log)
    return gan, history


def _threads(setting, config: GANConfig, gan: GAN, x):
    """The CPU threads for training, chosen by timing one step of a scratch copy."""
    if not host_reads_are_free(gan.xp):  # on a GPU the CPU threads do not matter
        return nullcontext()
    threads = Threads(setting)
    if threads.choice is not None:
        return threads
    scratch = config.build(gan.data_dim, gan.G.backend, gan.G.device)
    opt_d = Adam(scratch.D.params, lr=config.lr, betas=(config.beta1, config.beta2))
    xb = x[:min(config.batch_size, x.shape[0])]

    def one_step():
        scratch.discriminator_loss(xb, scratch.noise(xb.shape[0]))
        scratch.backward_discriminator()
        opt_d.step(scratch.D.grads)
        scratch.generator_loss(scratch.noise(xb.shape[0]))
        scratch.backward_generator()

    threads.choose(one_step)
    return threads


def _train_epochs(gan, opt_d, opt_g, x, z_fixed, config, done, history, run_dir, log):
    path, metrics_path = run_dir / "checkpoint.npz", run_dir / "metrics.jsonl"
    for epoch in range(done + 1, config.epochs + 1):
        t0 = time.perf_counter()
        curves = train_epoch(gan, opt_d, opt_g, x, config)
        seconds = time.perf_counter() - t0
        history.append({"epoch": epoch, "epoch_seconds": round(seconds, 3), **curves})
        text = "".join(json.dumps(h) + "\n" for h in history)
        atomic_write(metrics_path, lambda f, text=text: f.write(text.encode()))
        images = to_numpy(to_unit(gan.generate(z=z_fixed))).astype(np.float32)
        atomic_write(run_dir / "samples" / f"epoch_{epoch:03d}.npy",
                     lambda f, a=images: np.save(f, a))
        save_checkpoint(path, gan, opt_d, opt_g, epoch, config)
        log(f"GAN epoch {epoch}/{config.epochs}: L_D {np.mean(curves['d_loss']):.3f}, "
            f"L_G {np.mean(curves['g_loss']):.3f}, D(x) {np.mean(curves['d_real']):.3f}, "
            f"D(G(z)) {np.mean(curves['d_fake']):.3f} ({seconds:.1f} s)")


def sample_images(gan: GAN, m: int, batch: int = 1000) -> np.ndarray:
    """m generated images as grey values in [0, 1] on the host: (m, D), in batches."""
    parts = [to_numpy(to_unit(gan.generate(min(batch, m - i)))) for i in range(0, m, batch)]
    return np.concatenate(parts).astype(np.float64)

