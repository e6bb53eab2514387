r"""Lossy compression with a VAE: the rate–distortion trade-off, and a codec that writes bytes.

Follows deck ``002_3facc1002d729879.txt`` §VIII *Applications of VAE: Data Compression* ("the
latent space z provides a compressed representation of the data") and deck
``000_a112e0488c5566e6.txt`` *Applications and Use Cases* ("Data compression"); taught in
``notebooks/11_compression.ipynb``. ``scratchvae experiment compression`` runs it.

**Part 1: the rate–distortion curve of the ELBO.** The negative ELBO of an image x splits
into a distortion and a rate,

.. math::
    -\mathcal L(x) = \underbrace{-\mathbb E_{q_\phi(z|x)}[\log p_\theta(x|z)]}_{D(x)
    \text{ (nats)}} + \underbrace{\mathrm{KL}(q_\phi(z|x)\,\|\,p(z))}_{R(x)\,\ln 2
    \text{ (} R \text{ in bits)}}

R(x) is about the number of bits an ideal code needs to send one draw z ~ q(z|x) to a
receiver who knows p(z) (bits-back or relative-entropy coding); D(x) is what the receiver's
decoder still gets wrong about x. Training with a KL weight beta minimizes
:math:`D + \beta R \ln 2` (Alemi et al. 2018, *Fixing a Broken ELBO*): each beta, and each
latent size d, is one point (R, D) of MNIST's rate–distortion curve. D here is the
Bernoulli cross-entropy of the grey values, the model's own distortion, not a likelihood
of the data; the PSNR of the reconstruction, :math:`10 \log_{10}(1 / \mathrm{MSE})` with
grey values in [0, 1], is the distortion the codecs below can be compared on.

**Part 2: a codec.** For every VAE trained in part 1 (and the VAE of ``--from``, if
given), the encoder's means :math:`\mu_\phi(x)` (N, d) are quantized with a
uniform step Δ, :math:`s = \mathrm{round}(\mu / \Delta)`, and written as bytes, with two
real coders: a fixed-length code (dimension j gets :math:`\lceil\log_2 L_j\rceil` bits,
:math:`L_j` the number of levels it takes on the training set) and zlib on the test set
as one archive; beside them the ideal length of a static entropy code whose per-dimension
tables are counted on the training set. Only the active units (variance of
:math:`\mu_j` over the training set > 0.01, Burda et al. 2016) are sent; the receiver sets
the others to 0, the prior mean, and decodes :math:`\mathbb E[x \mid z = \Delta s]`. PCA
coefficients go through the same quantizer and coders; JPEG and WebP (Pillow) code the
8-bit images, each image as its own file (headers included) and all test images tiled in
one mosaic (headers shared, like the zlib archive).
"""

from __future__ import annotations

import dataclasses
import io
import math
import zlib
from dataclasses import dataclass

import numpy as np

from ..datasets import load
from ..evaluate import active_units, elbo
from ..threads import AUTO, Threads
from ..train import TrainConfig
from . import Experiment, ExperimentError, Outcome
from .common import PCA, host, refuse_options, save_figure, train_vae, vae_from_run

#: Where the compressed sizes are compared: the best PSNR each codec reaches at most at
#: these bytes per image.
BUDGETS = (8, 16, 32, 64, 128, 256, 512)
#: Variance of a latent mean over the training set above which a unit is sent.
ACTIVE = 0.01
#: Every VAE: 784-400-d-400-784, ReLU, Bernoulli decoder, Adam with lr 1e-3.
RECIPE = dict(hidden_dims=(400,), activation="relu", likelihood="bernoulli", lr=1e-3)


@dataclass(frozen=True)
class Plan:
    """What one mode of the experiment trains and measures."""

    models: tuple         # the (latent size d, beta) of every VAE trained
    epochs: int
    batch_size: int
    n_train: int
    n_test: int
    steps: tuple          # quantizer steps Δ of the latent codecs
    qualities: tuple      # JPEG and WebP quality settings

    @property
    def latent_sizes(self) -> tuple:
        return tuple(sorted({d for d, _ in self.models}))


#: The full grid: 5 latent sizes × 5 betas, each trained by the library's default recipe
#: (10 epochs of Adam, batch 128) on all 60000 training images.
FULL = Plan(models=tuple((d, b) for d in (2, 5, 10, 20, 50) for b in (0.1, 0.3, 1.0, 3.0, 10.0)),
            epochs=10, batch_size=128, n_train=60_000, n_test=10_000,
            steps=(0.025, 0.05, 0.1, 0.2, 0.4, 0.8, 1.6), qualities=(1, 3, 5, 10, 20, 40, 70, 95))
#: The quick cross: three betas at d = 10, and d = 2 at beta = 1.
QUICK = Plan(models=((10, 0.1), (10, 1.0), (10, 10.0), (2, 1.0)), epochs=3, batch_size=64,
             n_train=10_000, n_test=500, steps=(0.1, 0.4, 1.6), qualities=(1, 10, 70))


def plan_of(exp: Experiment) -> Plan:
    """The plan of ``exp`` (with ``--beta``: only VAEs of that beta, one per latent size);
    raises :class:`ExperimentError` for an option this experiment does not take or a bad
    beta."""
    plan = QUICK if exp.quick else FULL
    refuse_options(exp, takes=("beta",), takes_from=True)
    if "beta" not in exp.options:
        return plan
    beta = exp.options["beta"]
    if not (isinstance(beta, (int, float)) and math.isfinite(beta) and beta > 0):
        raise ExperimentError(f"--beta must be a number > 0, got {beta!r}")
    beta = float(beta)
    models = tuple((d, beta) for d in plan.latent_sizes)
    return dataclasses.replace(plan, models=models)


# ---- measuring ----------------------------------------------------------------------------

def psnr(x, x_hat) -> np.ndarray:
    r"""Peak signal-to-noise ratio of each image, in dB, for grey values in [0, 1]:
    :math:`10 \log_{10}(1 / \mathrm{MSE}_i)`, ``x``, ``x_hat`` (N, D) -> (N,). An exact
    copy counts as 100 dB."""
    mse = np.mean((np.asarray(x, np.float64) - np.asarray(x_hat, np.float64)) ** 2, axis=1)
    return 10 * np.log10(1 / np.maximum(mse, 1e-10))


def encode(model, x, batch_size: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """The encoder's ``(mu, logvar)`` of host images ``x`` (N, D), each (N, d) float64."""
    parts = [model.encode(model.asarray(x[i:i + batch_size]))
             for i in range(0, len(x), batch_size)]
    return tuple(np.concatenate([host(p[k]) for p in parts]).astype(np.float64)
                 for k in (0, 1))


def decode(model, z, batch_size: int = 1000) -> np.ndarray:
    """Decoder means E[x | z] of host codes ``z`` (N, d), as a host (N, D) float64 array."""
    return np.concatenate([host(model.sample(len(zb), z=model.asarray(zb)))
                           for zb in (z[i:i + batch_size] for i in range(0, len(z), batch_size))
                           ]).astype(np.float64)


def rate_distortion(model, x, rng: np.random.Generator) -> dict:
    r"""One point of the rate–distortion curve, on the images ``x`` (N, D).

    ``rate_bits`` :math:`= \overline{\mathrm{KL}} / \ln 2`; ``distortion_nats`` = the mean
    of :math:`-\log p(x|z)` at one draw z ~ q(z|x) per image (:func:`~scratchvae.evaluate.elbo`);
    ``psnr_sample_db``: the decoder mean at such a draw (the reconstruction the rate pays
    for); ``psnr_mean_db``: at z = mu (what the codec decodes, before quantizing); the mean
    PSNR over images in both; ``active_units``: units whose mean varies (Burda et al.).
    """
    e = elbo(model, x)
    mu, logvar = encode(model, x)
    z = mu + np.exp(0.5 * logvar) * rng.standard_normal(mu.shape)
    return {"rate_bits": e["kl"] / math.log(2), "kl_nats": e["kl"],
            "distortion_nats": e["recon"], "neg_elbo_nats": e["loss"],
            "psnr_sample_db": float(psnr(x, decode(model, z)).mean()),
            "psnr_mean_db": float(psnr(x, decode(model, mu)).mean()),
            "active_units": active_units(model, x, threshold=ACTIVE)[0]}


# ---- coding quantized latents -------------------------------------------------------------

def quantize(codes, step: float) -> np.ndarray:
    r"""Uniform quantization: :math:`s = \mathrm{round}(c / \Delta)`, (N, m) -> int64 (N, m);
    the receiver's value is :math:`\Delta s`."""
    return np.rint(np.asarray(codes) / step).astype(np.int64)


class LatentCode:
    """The codes of quantized latents, designed on the training set's symbols.

    ``LatentCode(train_symbols)``: integer symbols (N, m). Dimension j takes the levels
    ``lo[j] .. lo[j] + levels[j] - 1`` seen in training (test symbols are clipped to them);
    its fixed-length code has ``bits[j]`` :math:`= \\lceil \\log_2 L_j \\rceil` bits (0
    for a dimension with one level), its entropy code the probabilities counted on the
    training symbols (+1/2 per level, so that no level is impossible).
    """

    def __init__(self, train_symbols):
        s = np.asarray(train_symbols, dtype=np.int64)
        self.lo = s.min(axis=0)
        self.levels = s.max(axis=0) - self.lo + 1
        self.bits = np.ceil(np.log2(self.levels)).astype(np.int64)
        self.log2_p = []
        for j, n_levels in enumerate(self.levels):
            counts = np.bincount(s[:, j] - self.lo[j], minlength=n_levels) + 0.5
            self.log2_p.append(np.log2(counts / counts.sum()))

    def offsets(self, symbols) -> np.ndarray:
        """Symbols clipped to the training levels, minus ``lo``: (N, m), in [0, L_j)."""
        s = np.asarray(symbols, dtype=np.int64)
        return np.clip(s, self.lo, self.lo + self.levels - 1) - self.lo

    def fixed_length(self, symbols) -> bytes:
        """All images' symbols in ``bits[j]`` bits each, most significant first, image after
        image, packed into bytes (only the last byte is padded)."""
        s = self.offsets(symbols)
        columns = [(s[:, [j]] >> np.arange(b - 1, -1, -1)) & 1
                   for j, b in enumerate(self.bits) if b]
        if not columns:
            return b""
        return np.packbits(np.concatenate(columns, axis=1).astype(np.uint8).ravel()).tobytes()

    def from_fixed_length(self, data: bytes, n: int) -> np.ndarray:
        """The symbols (n, m) of :meth:`fixed_length`'s bytes."""
        total = int(self.bits.sum())
        flat = np.unpackbits(np.frombuffer(data, dtype=np.uint8))[:n * total]
        bits = flat.reshape(n, total).astype(np.int64)
        s = np.zeros((n, len(self.bits)), dtype=np.int64)
        start = 0
        for j, b in enumerate(self.bits):
            s[:, j] = bits[:, start:start + b] @ (1 << np.arange(b - 1, -1, -1))
            start += b
        return s + self.lo

    def _dtype(self):
        top = self.levels.max()
        return np.uint8 if top <= 2**8 else np.uint16 if top <= 2**16 else np.uint32

    def zlib(self, symbols) -> bytes:
        """zlib (level 9) of the offsets as bytes (uint8; uint16 or uint32 for dimensions of
        more than 256 or 65536 levels), image after image."""
        return zlib.compress(self.offsets(symbols).astype(self._dtype()).tobytes(), 9)

    def from_zlib(self, data: bytes, n: int) -> np.ndarray:
        """The symbols (n, m) of :meth:`zlib`'s bytes."""
        s = np.frombuffer(zlib.decompress(data), dtype=self._dtype())
        return s.reshape(n, len(self.levels)).astype(np.int64) + self.lo

    def entropy_bits(self, symbols) -> np.ndarray:
        r"""Ideal length of each image's static entropy code, in bits:
        :math:`-\sum_j \log_2 p_j(s_{ij})`, (N,). An arithmetic coder comes within 2 bits
        of it per message."""
        s = self.offsets(symbols)
        return -sum(self.log2_p[j][s[:, j]] for j in range(s.shape[1]))


def code_latents(train_codes, test_codes, step: float, decode_fn, x_test,
                 keep=None) -> tuple[dict, np.ndarray]:
    r"""Quantize codes with step Δ, write the test set's as bytes, read them back, decode.

    ``train_codes`` (N_train, d), ``test_codes`` (N, d): continuous codes; ``keep`` (d,)
    bool: the dimensions sent (the others are decoded as 0); ``decode_fn``: codes (N, d) ->
    images (N, D). Both coders' bytes are decoded back to symbols, which must be the
    symbols sent, and the images are decoded from them. Returns bytes per image of the
    fixed-length code, of zlib and of the ideal entropy code, and the mean PSNR; and the
    decoded images (N, D).
    """
    keep = np.ones(test_codes.shape[1], dtype=bool) if keep is None else np.asarray(keep)
    n = len(test_codes)
    code = LatentCode(quantize(train_codes[:, keep], step))
    sent = code.offsets(quantize(test_codes[:, keep], step)) + code.lo
    fixed, packed = code.fixed_length(sent), code.zlib(sent)
    received = code.from_fixed_length(fixed, n)
    if not (np.array_equal(received, sent) and np.array_equal(code.from_zlib(packed, n), sent)):
        raise RuntimeError("the latent codes do not decode to the symbols sent")
    z = np.zeros_like(test_codes)
    z[:, keep] = received * step
    x_hat = decode_fn(z)
    return {"step": step, "dims_sent": int(keep.sum()), "bytes_fixed": len(fixed) / n,
            "bytes_zlib": len(packed) / n,
            "bytes_entropy": float(code.entropy_bits(sent).mean() / 8),
            "psnr_db": float(psnr(x_test, x_hat).mean())}, x_hat


# ---- standard image codecs ----------------------------------------------------------------

def to_bytes_image(x, image_shape) -> np.ndarray:
    """Grey values in [0, 1] (N, D) as 8-bit images (N, h, w): MNIST's own bytes."""
    return np.rint(np.asarray(x) * 255).astype(np.uint8).reshape(-1, *image_shape)


def _pillow(image: np.ndarray, fmt: str, quality: int) -> tuple[int, np.ndarray]:
    """Encode one 8-bit grey image with Pillow; return (bytes written, decoded image)."""
    from PIL import Image

    buf = io.BytesIO()
    options = {"JPEG": dict(quality=quality, optimize=True),
               "WEBP": dict(quality=quality, method=6),
               "PNG": dict(optimize=True)}[fmt]
    Image.fromarray(image).save(buf, format=fmt, **options)
    decoded = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("L"))
    return buf.tell(), decoded


def image_codec(x, image_shape, fmt: str, quality: int,
                packing: str) -> tuple[dict, np.ndarray]:
    """JPEG, WebP or PNG on the images ``x`` (N, D): ``packing="file"`` codes each image as
    its own file, ``"mosaic"`` all of them tiled in one picture (about sqrt(N) per row, the
    last row padded with black), bytes divided by N. Returns bytes per image and the mean
    PSNR, and the decoded images (N, D) in [0, 1]."""
    u8 = to_bytes_image(x, image_shape)
    n, (h, w) = len(u8), image_shape
    if packing == "file":
        sizes, decoded = zip(*(_pillow(im, fmt, quality) for im in u8), strict=True)
        size, x_hat = sum(sizes), np.stack(decoded)
    else:
        cols = math.ceil(math.sqrt(n))
        rows = math.ceil(n / cols)
        tiles = np.zeros((rows * cols, h, w), dtype=np.uint8)
        tiles[:n] = u8
        mosaic = tiles.reshape(rows, cols, h, w).transpose(0, 2, 1, 3).reshape(rows * h, -1)
        size, back = _pillow(mosaic, fmt, quality)
        x_hat = back.reshape(rows, h, cols, w).transpose(0, 2, 1, 3).reshape(-1, h, w)[:n]
    x_hat = x_hat.reshape(n, -1) / 255.0
    return {"format": fmt, "packing": packing, "quality": quality, "bytes": size / n,
            "psnr_db": float(psnr(x, x_hat).mean())}, x_hat


# ---- comparing codecs ---------------------------------------------------------------------

def best_at_budget(points, budget: float):
    """The highest PSNR among ``(bytes, psnr)`` points of at most ``budget`` bytes (None if
    every point is larger)."""
    inside = [p for b, p in points if b <= budget]
    return max(inside) if inside else None


def frontier(points) -> list:
    """The points no other point beats (fewer or as many bytes and a higher PSNR), by size."""
    out = []
    for b, p in sorted(points, key=lambda bp: (bp[0], -bp[1])):
        if not out or p > out[-1][1]:
            out.append((b, p))
    return out


def _families(vae_rows, pca_rows, image_rows) -> dict:
    """Each codec's (bytes per image, PSNR) points, by name."""
    fam = {}
    for name, rows in (("VAE", vae_rows), ("PCA", pca_rows)):
        fam[f"{name} + fixed-length"] = [(r["bytes_fixed"], r["psnr_db"]) for r in rows]
        fam[f"{name} + zlib"] = [(r["bytes_zlib"], r["psnr_db"]) for r in rows]
        fam[f"{name}, entropy code (ideal)"] = [(r["bytes_entropy"], r["psnr_db"])
                                                for r in rows]
    for r in image_rows:
        fam.setdefault(f"{r['format']} per {r['packing']}", []).append(
            (r["bytes"], r["psnr_db"]))
    return fam


# ---- figures ------------------------------------------------------------------------------

def _figure(width, height, ncols=1):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.subplots(1, ncols, squeeze=False)[0]


def _log_x(ax) -> None:
    """A logarithmic x axis labelled in plain numbers at its major ticks only."""
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())


def _plot_rate_distortion(rows):
    fig, (ax_d, ax_p) = _figure(11, 4.2, 2)
    for d in sorted({r["latent_dim"] for r in rows}):
        line = sorted((r for r in rows if r["latent_dim"] == d), key=lambda r: r["beta"])
        rate = [r["rate_bits"] for r in line]
        ax_d.plot(rate, [r["distortion_nats"] for r in line], "o-", label=f"d = {d}")
        ax_p.plot(rate, [r["psnr_sample_db"] for r in line], "o-", label=f"d = {d}")
        for r in line:
            ax_d.annotate(f"β={r['beta']:g}", (r["rate_bits"], r["distortion_nats"]),
                          fontsize=6, xytext=(3, 3), textcoords="offset points")
    for ax in (ax_d, ax_p):
        _log_x(ax)
    ax_d.set(xlabel="rate: KL (bits per image)",
             ylabel="distortion: -E log p(x|z) (nats)",
             title="rate-distortion, MNIST test set")
    ax_p.set(xlabel="rate: KL (bits per image)",
             ylabel="PSNR of E[x|z], z ~ q(z|x) (dB)", title="the same points in PSNR")
    ax_d.legend(fontsize=8)
    return fig


def _plot_codecs(families, reference):
    fig, (ax,) = _figure(8, 5)
    for i, (name, points) in enumerate(families.items()):
        color = f"C{i}"
        ax.plot(*zip(*points, strict=True), ".", color=color, alpha=0.3)
        ax.plot(*zip(*frontier(points), strict=True), ":" if "ideal" in name else "-",
                color=color, label=name)
    ax.axhline(reference["mean_image_psnr_db"], color="0.5", ls=":",
               label="0 bytes: the mean training image")
    ax.axvline(reference["png_mosaic_bytes"], color="0.5", ls="--",
               label="lossless (PNG mosaic)")
    _log_x(ax)
    ax.set(xlabel="bytes per image (actual; entropy code: ideal length)",
           ylabel="mean PSNR (dB)", title="lossy codecs on the MNIST test set")
    ax.legend(fontsize=7, loc="lower right")
    return fig


def _plot_reconstructions(image_shape, shown):
    from ..plots import image_grid

    fig, axes = _figure(1.6 * len(shown), 6, len(shown))
    for ax, (title, images) in zip(axes, shown.items(), strict=True):
        ax.imshow(image_grid(images, image_shape, ncols=2), cmap="gray", vmin=0, vmax=1)
        ax.set_title(title, fontsize=7)
        ax.set_axis_off()
    return fig


# ---- the experiment -----------------------------------------------------------------------

def _from_run(exp: Experiment):
    """The VAE of ``--from`` and its budget."""
    model, config, budget = vae_from_run(exp, "compression", None)
    return model, {"run": str(exp.from_run), "beta": config.beta, **budget}


def _round(value, digits: int = 4):
    if isinstance(value, float):
        return round(value, digits)
    if isinstance(value, dict):
        return {k: _round(v, digits) for k, v in value.items()}
    if isinstance(value, list):
        return [_round(v, digits) for v in value]
    return value


def run(exp: Experiment) -> Outcome:
    """Train the VAEs of the plan, measure their rate–distortion points, run the codecs,
    write the figures; see the module's docstring.

    The scoring and the codecs run with the BLAS thread count that multiplies matrices of
    this size faster now (:class:`~scratchvae.threads.Threads`: on a busy 2-core machine
    one thread is often 2-3 times faster than two); each training chooses its own.
    """
    plan = plan_of(exp)
    given = None if exp.from_run is None else _from_run(exp)
    ds = load("mnist", exp.data_dir)
    x_train, x_test = ds.x_train[:plan.n_train], ds.x_test[:plan.n_test]
    threads = Threads(AUTO)
    probe = x_train[:2000].astype(np.float64)
    threads.choose(lambda: probe.T @ probe)
    with threads:
        return _run(exp, plan, given, ds, x_train, x_test, threads.choice)


def _run(exp, plan, given, ds, x_train, x_test, n_threads) -> Outcome:
    rng = np.random.default_rng(exp.seed)
    models, budgets, rd_rows = {}, {}, []
    for d, beta in plan.models:
        name = f"vae-d{d}-beta{beta:g}"
        config = TrainConfig(dataset="mnist", epochs=plan.epochs, batch_size=plan.batch_size,
                             latent_dim=d, beta=beta, seed=exp.seed, n_train=plan.n_train,
                             n_test=plan.n_test, **RECIPE)
        models[d, beta], budgets[name] = train_vae(exp, name, config, ds.input_dim)
        rd_rows.append({"beta": beta, "latent_dim": d,
                        **rate_distortion(models[d, beta], x_test, rng)})
        exp.log(f"{name}: rate {rd_rows[-1]['rate_bits']:.1f} bits, distortion "
                f"{rd_rows[-1]['distortion_nats']:.1f} nats")

    codec_models = {f"vae-d{d}-beta{b:g}": m for (d, b), m in models.items()}
    if given is not None:
        codec_models["from"], budgets["from"] = given
    previews = {}  # (codec, row index) -> the first 8 decoded test images
    vae_rows = []
    for name, model in codec_models.items():
        mu_train, mu_test = encode(model, x_train)[0], encode(model, x_test)[0]
        keep = mu_train.var(axis=0) > ACTIVE
        for step in plan.steps:
            row, x_hat = code_latents(mu_train, mu_test, step,
                                      lambda z, m=model: decode(m, z), x_test, keep)
            previews["VAE", len(vae_rows)] = x_hat[:8]
            vae_rows.append({"model": name, "latent_dim": model.latent_dim,
                             "beta": model.beta, **row})
    pca = PCA(x_train, max(plan.latent_sizes))
    c_train, c_test = pca.encode(x_train), pca.encode(x_test)
    pca_rows = []
    for k in plan.latent_sizes:
        def decode_pca(c, k=k):
            return np.clip(c[:, :k] @ pca.components[:k] + pca.mean, 0.0, 1.0)
        for step in plan.steps:
            row, x_hat = code_latents(c_train[:, :k], c_test[:, :k], step, decode_pca, x_test)
            previews["PCA", len(pca_rows)] = x_hat[:8]
            pca_rows.append({"k": k, **row})
    exp.log(f"latent codecs: {len(vae_rows)} VAE and {len(pca_rows)} PCA points; "
            f"JPEG and WebP next")
    image_rows = []
    for fmt in ("JPEG", "WEBP"):
        for packing in ("file", "mosaic"):
            for q in plan.qualities:
                row, x_hat = image_codec(x_test, ds.image_shape, fmt, q, packing)
                previews["image", len(image_rows)] = x_hat[:8]
                image_rows.append(row)
    png, _ = image_codec(x_test, ds.image_shape, "PNG", 0, "mosaic")
    reference = {"raw_bytes": x_test.shape[1], "png_mosaic_bytes": png["bytes"],
                 "mean_image_psnr_db": float(psnr(x_test, np.broadcast_to(
                     x_train.mean(axis=0), x_test.shape)).mean())}

    families = _families(vae_rows, pca_rows, image_rows)
    best = {name: {str(b): best_at_budget(points, b) for b in BUDGETS}
            for name, points in families.items()}
    figures = []
    save_figure(exp, _plot_rate_distortion(rd_rows), "rate_distortion.png", figures)
    save_figure(exp, _plot_codecs(families, reference), "codecs.png", figures)
    shown = _shown(x_test[:8], {"VAE": vae_rows, "PCA": pca_rows, "image": image_rows},
                   previews)
    save_figure(exp, _plot_reconstructions(ds.image_shape, shown), "reconstructions.png",
                figures)

    numbers = _round({"rate_distortion": rd_rows, "codec_vae": vae_rows, "codec_pca": pca_rows,
                      "codec_image": image_rows, "reference": reference,
                      "best_psnr_at_budget": best})
    setup = {
        "data": f"MNIST grey values in [0, 1]: the first {len(x_train)} training images "
                f"(models, PCA, code tables), the first {len(x_test)} test images (every "
                f"number)",
        "model": "784-400-d-400-784 ReLU VAE, Bernoulli decoder, Adam lr 1e-3; the models "
                 "list gives (d, beta) of each",
        "models": [list(m) for m in plan.models], "epochs": plan.epochs,
        "batch_size": plan.batch_size,
        "codec_models": list(codec_models),
        "steps": list(plan.steps), "qualities": list(plan.qualities),
        "budgets_bytes": list(BUDGETS), "active_threshold": ACTIVE,
        "rate": "KL(q(z|x) || p(z)) / ln 2, bits per image, mean over the test set",
        "distortion": "-log p(x|z) at one z ~ q(z|x) per image (Bernoulli cross-entropy "
                      "of the grey values), nats, mean over the test set",
        "psnr": "10 log10(1 / MSE) per image (grey values in [0, 1]), mean over images",
        "codecs": "VAE: quantized posterior means of the active units; PCA: quantized "
                  "coefficients; fixed-length code per image, zlib level 9 over the test "
                  "set, ideal static entropy code from training-set counts; JPEG "
                  "(optimize=True) and WebP (method=6) through Pillow, each image a file, "
                  "and all test images in one mosaic",
        "blas_threads": n_threads,
        "training": budgets,
        "training_seconds": round(sum(b.get("train_seconds", 0.0)
                                      for b in budgets.values()), 1),
    }
    return Outcome(numbers, setup, _table(rd_rows, best, reference), figures)


def _shown(x, rows: dict, previews: dict, target: float = 16) -> dict:
    """The images ``x`` and each codec's reconstructions of them at about ``target`` bytes
    per image: its best point of at most that size, or its smallest point."""
    shown = {"original": x}

    def pick(kind, size, keep=lambda r: True):
        candidates = [(i, r) for i, r in enumerate(rows[kind]) if keep(r)]
        inside = [(i, r) for i, r in candidates if r[size] <= target]
        if inside:
            return max(inside, key=lambda ir: ir[1]["psnr_db"])
        return min(candidates, key=lambda ir: ir[1][size])

    i, r = pick("VAE", "bytes_zlib")
    shown[f"VAE d={r['latent_dim']} β={r['beta']:g} Δ={r['step']:g}\n"
          f"{r['bytes_zlib']:.1f} B zlib, "
          f"{r['psnr_db']:.1f} dB"] = previews["VAE", i]
    i, r = pick("PCA", "bytes_zlib")
    shown[f"PCA k={r['k']} Δ={r['step']:g}\n{r['bytes_zlib']:.1f} B zlib, "
          f"{r['psnr_db']:.1f} dB"] = previews["PCA", i]
    for fmt in ("JPEG", "WEBP"):
        for packing in ("file", "mosaic"):
            i, r = pick("image", "bytes",
                        lambda r, f=fmt, p=packing: r["format"] == f and r["packing"] == p)
            shown[f"{fmt} q={r['quality']} per {packing}\n{r['bytes']:.1f} B, "
                  f"{r['psnr_db']:.1f} dB"] = previews["image", i]
    return shown


def _table(rd_rows, best, reference) -> list[str]:
    lines = ["rate-distortion (MNIST test set): rate = KL in bits, distortion = -log p(x|z) "
             "in nats",
             f"{'beta':>6s} {'d':>3s} {'rate':>7s} {'distort.':>9s} {'PSNR z~q':>9s} "
             f"{'PSNR mu':>8s} {'active':>6s}"]
    for r in rd_rows:
        lines.append(f"{r['beta']:6g} {r['latent_dim']:3d} {r['rate_bits']:7.1f} "
                     f"{r['distortion_nats']:9.1f} {r['psnr_sample_db']:9.2f} "
                     f"{r['psnr_mean_db']:8.2f} {r['active_units']:6d}")
    lines.append("best mean PSNR (dB) at most this many bytes per image "
                 f"(0 bytes, the mean image: {reference['mean_image_psnr_db']:.2f} dB; "
                 f"lossless PNG mosaic {reference['png_mosaic_bytes']:.0f} B)")
    lines.append(f"{'codec':32s}" + "".join(f"{b:>7d}" for b in BUDGETS))
    for name, row in best.items():
        lines.append(f"{name:32s}" + "".join(f"{'-':>7s}" if v is None else f"{v:7.2f}"
                                             for v in row.values()))
    return lines
