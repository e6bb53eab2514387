r"""Lossless compression of binary images with a VAE: bits-back coding with ANS (BB-ANS).

Townsend, Bird & Barber (2019), *Practical lossless compression with latent variables
using bits back coding*, on the coder of :mod:`scratchvae.ans`. Taught in
``notebooks/13_bits_back.ipynb``; ``scratchvae experiment bits-back`` measures it on the
binarized MNIST test set.

**The idea.** A VAE gives p(x) only as :math:`\int p(x|z) p(z)\,dz`, which no coder can
use directly. Sending z ~ q(z|x) and then x with p(x|z) would cost
:math:`-\log p(z) - \log p(x|z)` bits, more than :math:`-\log p(x)`. Bits-back coding
gets :math:`-\log q(z|x)` of them back: the encoder **pops** z from the message with
q(z|x), as if the message were a code for z (popping *removes* about
:math:`-\log q(z|x)` bits), then **pushes** x with p(x|z) and z with p(z). Per image the
message grows by

.. math::
    -\log p(x|z) - \log p(z) + \log q(z|x), \qquad \mathbb E_{z\sim q}[\,\cdot\,] =
    -\mathcal L(x) \;(\text{the negative ELBO}),

so the rate is the negative ELBO. The receiver reverses every step (ANS is a stack): pop z
with p(z), pop x with p(x|z), compute q(z|x) from the x it now has, and push z with it:
that puts back the bits the encoder popped, which are the previous image's message.

**Discretization.** ANS codes integers, so each latent dimension is cut into
:math:`K = 2^k` buckets of equal prior mass, edges :math:`\Phi^{-1}(i/K)`, i = 0..K (Φ the
standard normal CDF); a bucket's z is its prior-mass midpoint
:math:`\Phi^{-1}((i + \tfrac12)/K)`. Under p(z) every bucket has probability
:math:`2^{-k}`: pushing z costs exactly k bits per dimension. The posterior of dimension j
on the same buckets is the CDF difference
:math:`Q_i = \Phi((e_{i+1} - \mu_j)/\sigma_j) - \Phi((e_i - \mu_j)/\sigma_j)`, quantized by
:func:`scratchvae.ans.quantize_cdf` at ``precision`` bits (every bucket >= 1); the pixels'
Bernoulli probabilities :math:`\sigma(\text{logit})` likewise
(:func:`scratchvae.ans.bernoulli_cdf`). The rate is then the negative ELBO of this
discretized model, which differs from the continuous one by the *discretization cost*
(z at bucket midpoints, the quantized probabilities).

**The same integers on both sides.** The decoder must compute exactly the encoder's
tables. Both evaluate the network on the host in float64 (a copy of the model's
parameters) with one BLAS thread (the thread count changes the rounding of matrix
products), on arrays of the same shape and values at each step (the encoder's batch of
images and the decoder's are the same images), so NumPy gives the same floats and the
same rounded integers. A file decoded where the arithmetic differs (another BLAS) would
decode wrong images: the SHA-256 of the images in the header catches it, and the decoder
raises instead of returning them.

**Chains, lanes and the initial bits.** The first pop of a message has nothing to pop:
it takes *clean bits* (:class:`scratchvae.ans.ANS`), about :math:`-\log_2 Q(z|x)` of the
first image, and each stream starts with a 32-bit initial head and ends with a 64-bit head,
a few bits of slack. This overhead is paid once per stream, not per image: the
``chains`` streams of images each code their images one after another (image i goes to
chain ``i % chains``), so every image after a chain's first gets its bits back from the
image before it. Each chain is ``lanes`` ANS streams side by side (pixel and latent j on
lane ``j % lanes``), so one NumPy operation codes ``chains x lanes`` symbols. The overhead
is fixed: about 110 bits per stream (the final 64-bit head and its 32-bit length field,
less the initial head's bits, plus the clean words of the first pop) and the 75-byte
header. For 4 chains of 16 streams that is about 7.6 kbit in all, 0.8 bits per image over
the 10,000 MNIST test images (0.5 % of their rate); one image alone would pay all of it.

**The file.** ``magic "SVBB" | version | k | precision | chains | lanes | n | height |
width | model fingerprint (16 bytes) | SHA-256 of the images | CRC32 of all that |
streams | CRC32 of the streams``. :func:`decompress` refuses (with
:class:`BitsBackError`, a ``ValueError``) a file that is not one, truncated or damaged
(CRC), written for another model (fingerprint), or whose decoded images do not match the
checksum; every loop runs over the n images of the CRC-checked header, and a stream that
runs out of words raises, so nothing can hang.
"""

from __future__ import annotations

import functools
import hashlib
import json
import struct
import zlib
from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr, ndtri

from . import ans as rans
from .backend import to_numpy
from .files import atomic_write
from .threads import Threads
from .vae import VAE

MAGIC = b"SVBB"
VERSION = 1
_HEADER = struct.Struct("<4sBBBHHIHH16s32s")
_CRC = struct.Struct("<I")


class BitsBackError(ValueError):
    """A file that cannot be decoded (not one, damaged, truncated, another model), or bad
    input to the coder."""


@dataclass(frozen=True)
class Coding:
    """How images are coded.

    ``latent_bits`` k: :math:`2^k` buckets per latent dimension; ``precision``: bits of
    the integer tables of q(z|x) and p(x|z) (up to 32); ``chains``: images coded in
    parallel, each chain a sequence of images; ``lanes``: ANS streams per chain.
    """

    latent_bits: int = 10
    precision: int = 24
    chains: int = 4
    lanes: int = 16

    def check(self) -> Coding:
        for name, lo, hi in (("latent_bits", 1, 16), ("precision", 2, 32),
                             ("chains", 1, 65535), ("lanes", 1, 65535)):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
                raise BitsBackError(f"{name} must be an integer in {lo}..{hi}, got {v!r}")
        if self.latent_bits >= self.precision:
            raise BitsBackError(f"precision ({self.precision}) must exceed latent_bits "
                                f"({self.latent_bits}): every bucket needs a frequency >= 1")
        return self


# ---- the model, on the host in float64 -----------------------------------------------------

def fingerprint(model) -> bytes:
    """16 bytes identifying a model: SHA-256 of its architecture and parameter bytes."""
    arch = {k: model.config()[k] for k in ("input_dim", "hidden_dims", "latent_dim",
                                           "likelihood", "activation")}
    h = hashlib.sha256(json.dumps(arch, sort_keys=True).encode())
    h.update(np.ascontiguousarray(to_numpy(model.params.flat)).tobytes())
    return h.digest()[:16]


class HostModel:
    """A float64 NumPy copy of a Bernoulli :class:`~scratchvae.VAE`: the network both
    encoder and decoder evaluate."""

    def __init__(self, model):
        if not isinstance(model, VAE) or model.likelihood != "bernoulli":
            raise BitsBackError("model must be a scratchvae.VAE with likelihood='bernoulli'")
        self.fingerprint = fingerprint(model)
        self.vae = VAE(**{**model.config(), "dtype": "float64"})
        self.vae.params.flat[:] = to_numpy(model.params.flat).astype(np.float64)
        self.latent_dim, self.input_dim = model.latent_dim, model.input_dim

    def posterior(self, x):
        """x (n, D) in {0, 1} -> the mean and standard deviation of q(z|x), (n, d) each."""
        mu, logvar = self.vae.encode(np.asarray(x, dtype=np.float64))
        return mu, np.exp(0.5 * logvar)

    def logits(self, z):
        """z (n, d) -> the Bernoulli logits of p(x|z), (n, D)."""
        return self.vae.decode(np.asarray(z, dtype=np.float64)).logits


def neg_elbo_bits(net: HostModel, x, rng: np.random.Generator, n_samples: int = 10):
    r"""The negative ELBO of each image in bits, (n,): the analytic
    :math:`\mathrm{KL}(q(z|x)\,\|\,p(z))` plus :math:`-\log p(x|z)` averaged over
    ``n_samples`` draws z ~ q(z|x), divided by ln 2. This is the rate bits-back coding
    reaches without discretization."""
    x = np.asarray(x, dtype=np.float64)
    mu, sigma = net.posterior(x)
    kl = 0.5 * np.sum(mu ** 2 + sigma ** 2 - 1 - 2 * np.log(sigma), axis=1)
    recon = np.zeros(len(x))
    for _ in range(n_samples):
        logit = net.logits(mu + sigma * rng.standard_normal(mu.shape))
        recon += np.sum(np.maximum(logit, 0) - logit * x + np.log1p(np.exp(-np.abs(logit))),
                        axis=1)
    return (kl + recon / n_samples) / np.log(2)


# ---- the buckets ----------------------------------------------------------------------------

def bucket_edges(k: int) -> np.ndarray:
    r"""The :math:`2^k + 1` edges :math:`\Phi^{-1}(i / 2^k)` of buckets of equal prior mass
    (the first -inf, the last +inf)."""
    return ndtri(np.arange(2 ** k + 1) / 2 ** k)


def bucket_centres(k: int) -> np.ndarray:
    r"""The z of each bucket, its prior-mass midpoint :math:`\Phi^{-1}((i + 1/2) / 2^k)`."""
    return ndtri((np.arange(2 ** k) + 0.5) / 2 ** k)


def posterior_table(mu, sigma, edges, precision: int) -> np.ndarray:
    """The integer CDF tables of q(z|x) on the buckets: ``mu``, ``sigma`` (n, d) ->
    (n, d, K + 1) int64, every bucket of frequency >= 1."""
    n, d = mu.shape
    c = ndtr((edges[None, :] - mu.reshape(-1, 1)) / sigma.reshape(-1, 1))
    c[:, 0], c[:, -1] = 0.0, 1.0
    c = np.maximum.accumulate(c, axis=1)
    return rans.quantize_cdf(c, precision).reshape(n, d, -1)


def pixel_table(logits, precision: int) -> np.ndarray:
    """The integer tables of p(x|z) for every pixel: logits (n, D) -> (n, D, 3)."""
    p1 = 1.0 / (1.0 + np.exp(-logits))
    n, D = logits.shape
    return rans.bernoulli_cdf(p1.ravel(), precision).reshape(n, D, 3)


# ---- coding -------------------------------------------------------------------------------

def _rounds(size: int, lanes: int):
    """Symbol j of a vector of ``size`` goes on lane ``j % lanes``: the slices of symbols
    coded together, in the encoder's order."""
    return [slice(s, min(s + lanes, size)) for s in range(0, size, lanes)]


@functools.lru_cache(maxsize=64)
def _streams(active: int, lanes: int, width: int) -> np.ndarray:
    """The stream of lane 0..width-1 of chains 0..active-1, chain after chain (read-only)."""
    s = (np.arange(active)[:, None] * lanes + np.arange(width)[None, :]).ravel()
    s.flags.writeable = False
    return s


def _steps(n: int, chains: int):
    """Step t codes images t*chains .. +active-1 (image i is on chain i % chains)."""
    return [(t * chains, min(chains, n - t * chains)) for t in range((n + chains - 1) // chains)]


@dataclass
class Encoded:
    """What :func:`encode` returns: the file's bytes, each image's information content in
    bits as the coder's integer tables count it (``x_bits`` = -log2 p(x|z), ``z_bits`` =
    k per dimension, ``back_bits`` = -log2 q(z|x), the bits got back), and the length of
    the streams in bits."""

    data: bytes
    x_bits: np.ndarray
    z_bits: np.ndarray
    back_bits: np.ndarray
    stream_bits: int
    clean_bits: int

    @property
    def image_bits(self) -> np.ndarray:
        """Net bits per image: ``x_bits + z_bits - back_bits``."""
        return self.x_bits + self.z_bits - self.back_bits

    @property
    def overhead_bits(self) -> float:
        """Stream bits not accounted for by the images: the initial heads, the clean bits
        and the rounding of ANS."""
        return self.stream_bits - float(self.image_bits.sum())


def _check_images(images, net: HostModel) -> np.ndarray:
    x = np.asarray(images)
    if x.ndim != 3 or x.shape[0] < 1 or x.shape[1] * x.shape[2] != net.input_dim:
        raise BitsBackError(f"images must have shape (n, height, width) with n >= 1 and "
                            f"height * width = {net.input_dim}, got {x.shape}")
    if x.shape[0] >= 2 ** 32 or max(x.shape[1:]) >= 2 ** 16:
        raise BitsBackError(f"images of shape {x.shape} are too many or too large")
    if not np.all((x == 0) | (x == 1)):
        raise BitsBackError("images must be binary (every pixel 0 or 1)")
    return x.astype(np.uint8)


def images_digest(images: np.ndarray) -> bytes:
    """SHA-256 of binary images (n, h, w): their shape and their packed bits."""
    h = hashlib.sha256(struct.pack("<III", *images.shape))
    h.update(np.packbits(images.astype(np.uint8).ravel()).tobytes())
    return h.digest()


def encode(model, images, coding: Coding = Coding()) -> Encoded:
    """Compress binary ``images`` (n, height, width) with ``model``: see the module."""
    with Threads(1):
        return _encode(model, images, coding)


def _encode(model, images, coding: Coding) -> Encoded:
    coding = coding.check()
    net = model if isinstance(model, HostModel) else HostModel(model)
    x_all = _check_images(images, net)
    n, shape = x_all.shape[0], x_all.shape[1:]
    flat = x_all.reshape(n, -1)
    k, p, L = coding.latent_bits, coding.precision, coding.lanes
    edges, centres = bucket_edges(k), bucket_centres(k)
    d, D = net.latent_dim, net.input_dim
    coder = rans.ANS(coding.chains * L, clean=True)
    x_bits, back_bits = np.zeros(n), np.zeros(n)
    for first, active in _steps(n, coding.chains):
        x = flat[first:first + active]
        rows = np.arange(active)
        qtab = posterior_table(*net.posterior(x), edges, p)                # (A, d, K+1)
        z = np.empty((active, d), dtype=np.int64)
        for sl in _rounds(d, L):
            width = sl.stop - sl.start
            z[:, sl] = rans.pop_symbols(coder, qtab[:, sl].reshape(active * width, -1), p,
                                        _streams(active, L, width)).reshape(active, width)
        ptab = pixel_table(net.logits(centres[z]), p)                      # (A, D, 3)
        for sl in _rounds(D, L):
            width = sl.stop - sl.start
            rans.push_symbols(coder, x[:, sl].ravel().astype(np.int64),
                              ptab[:, sl].reshape(active * width, 3), p,
                              _streams(active, L, width))
        for sl in _rounds(d, L):
            rans.push_uniform(coder, z[:, sl].ravel(), k,
                              _streams(active, L, sl.stop - sl.start))
        xi = x[..., None].astype(np.int64)
        fx = np.take_along_axis(ptab, xi + 1, 2) - np.take_along_axis(ptab, xi, 2)
        fz = np.take_along_axis(qtab, z[..., None] + 1, 2) - np.take_along_axis(
            qtab, z[..., None], 2)
        x_bits[first + rows] = rans.information_bits(fx, p).sum(axis=(1, 2))
        back_bits[first + rows] = rans.information_bits(fz, p).sum(axis=(1, 2))
    header = _HEADER.pack(MAGIC, VERSION, k, p, coding.chains, L, n, *shape,
                          net.fingerprint, images_digest(x_all))
    body = coder.to_bytes()
    data = (header + _CRC.pack(zlib.crc32(header)) + body + _CRC.pack(zlib.crc32(body)))
    return Encoded(data, x_bits, np.full(n, float(k * d)), back_bits, coder.n_bits(),
                   32 * int(coder.n_clean.sum()))


def compress(model, images, coding: Coding = Coding()) -> bytes:
    """The bytes of binary ``images`` (n, height, width) compressed with ``model``."""
    return encode(model, images, coding).data


def _read_header(net: HostModel, data: bytes):
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise BitsBackError(f"data must be bytes, got {type(data).__name__}")
    data = bytes(data)
    head_size = _HEADER.size + _CRC.size
    if len(data) < 4 or data[:4] != MAGIC:
        raise BitsBackError("not a bits-back file (no 'SVBB' magic)")
    if len(data) < head_size + _CRC.size:
        raise BitsBackError(f"truncated: the header needs {head_size} bytes, the file has "
                            f"{len(data)}")
    header = data[:_HEADER.size]
    if _CRC.unpack_from(data, _HEADER.size)[0] != zlib.crc32(header):
        raise BitsBackError("damaged header (CRC32 mismatch)")
    _, version, k, p, chains, lanes, n, h, w, fp, digest = _HEADER.unpack(header)
    if version != VERSION:
        raise BitsBackError(f"file version {version}; this library reads version {VERSION}")
    coding = Coding(latent_bits=k, precision=p, chains=chains, lanes=lanes).check()
    if fp != net.fingerprint:
        raise BitsBackError(f"the file was compressed with another model (fingerprint "
                            f"{fp.hex()}, this model's is {net.fingerprint.hex()})")
    if n < 1 or h * w != net.input_dim:
        raise BitsBackError(f"the header's shape ({n}, {h}, {w}) does not fit the model "
                            f"({net.input_dim} pixels)")
    body = data[head_size:-_CRC.size]
    if _CRC.unpack_from(data, len(data) - _CRC.size)[0] != zlib.crc32(body):
        expected = 12 * chains * lanes
        if len(body) >= expected:
            counts = np.frombuffer(body, "<u4", chains * lanes, 8 * chains * lanes)
            expected += 4 * int(counts.astype(np.int64).sum())
        if len(body) < expected:
            raise BitsBackError(f"truncated streams (CRC32 mismatch): {len(body)} bytes, "
                                f"their table expects {expected}")
        raise BitsBackError("damaged streams (CRC32 mismatch)")
    try:
        coder = rans.ANS.from_bytes(body, chains * lanes)
    except rans.ANSError as err:
        raise BitsBackError(f"damaged streams: {err}") from None
    return coding, n, (h, w), digest, coder


def decompress(model, data: bytes) -> np.ndarray:
    """The binary images (n, height, width) uint8 of :func:`compress`'s bytes, decoded
    with the same ``model``; raises :class:`BitsBackError` for anything else."""
    with Threads(1):
        return _decompress(model, data)


def _decompress(model, data: bytes) -> np.ndarray:
    net = model if isinstance(model, HostModel) else HostModel(model)
    coding, n, shape, digest, coder = _read_header(net, data)
    k, p, L = coding.latent_bits, coding.precision, coding.lanes
    edges, centres = bucket_edges(k), bucket_centres(k)
    d, D = net.latent_dim, net.input_dim
    flat = np.zeros((n, D), dtype=np.uint8)
    try:
        for first, active in reversed(_steps(n, coding.chains)):
            z = np.empty((active, d), dtype=np.int64)
            for sl in reversed(_rounds(d, L)):
                z[:, sl] = rans.pop_uniform(coder, k, _streams(active, L, sl.stop - sl.start)
                                            ).reshape(active, -1)
            ptab = pixel_table(net.logits(centres[z]), p)
            x = np.empty((active, D), dtype=np.uint8)
            for sl in reversed(_rounds(D, L)):
                width = sl.stop - sl.start
                x[:, sl] = rans.pop_symbols(coder, ptab[:, sl].reshape(active * width, 3), p,
                                            _streams(active, L, width)).reshape(active, width)
            qtab = posterior_table(*net.posterior(x), edges, p)
            for sl in reversed(_rounds(d, L)):
                width = sl.stop - sl.start
                rans.push_symbols(coder, z[:, sl].ravel(),
                                  qtab[:, sl].reshape(active * width, -1), p,
                                  _streams(active, L, width))
            flat[first:first + active] = x
        coder.check_fresh()
    except rans.ANSError as err:
        raise BitsBackError(f"damaged streams: {err}") from None
    images = flat.reshape(n, *shape)
    if images_digest(images) != digest:
        raise BitsBackError("the decoded images do not match the file's SHA-256: the file "
                            "is damaged or this machine computes the model's probabilities "
                            "differently")
    return images


def save(path, data: bytes) -> None:
    """Write compressed bytes to ``path`` atomically."""
    atomic_write(path, lambda f: f.write(bytes(data)))


def load(path, model) -> np.ndarray:
    """The images of the file at ``path`` (:func:`decompress`)."""
    with open(path, "rb") as f:
        return decompress(model, f.read())
