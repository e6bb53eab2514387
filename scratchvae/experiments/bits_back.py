r"""Lossless compression with a VAE: bits-back coding (BB-ANS) of binarized MNIST.

Follows deck ``002_3facc1002d729879.txt`` §VIII *Applications of VAE: Data Compression* and
deck ``000_a112e0488c5566e6.txt`` *Applications and Use Cases* ("Data compression"): there
the latent code is a lossy summary; here the VAE compresses **losslessly**, to about its
negative ELBO, by bits-back coding (Townsend, Bird & Barber 2019; the coder is
:mod:`scratchvae.bits_back` on :mod:`scratchvae.ans`). Taught in
``notebooks/13_bits_back.ipynb``; ``scratchvae experiment bits-back`` runs it.

A VAE with a Bernoulli decoder is trained on MNIST with **dynamic binarization** (a fresh
Bernoulli draw of every training image at every epoch: the standard protocol, and a
regularizer: a model trained on one fixed draw overfits its noise), or taken from
``--from``. The test images (N, 28, 28) are binarized once, with the generator seeded
``seed + 1``, the draw :func:`scratchvae.train.load_data` makes for the test set. Then:

* the whole set is compressed into one file and decompressed from it, and every image
  must come back bit for bit;
* **BB-ANS** bits per pixel: :math:`8 \times \text{file bytes} / (784 N)`, header and the
  initial bits included;
* the **ideal rate**: the negative ELBO of each image in bits (analytic KL plus
  :math:`-\log_2 p(x|z)` averaged over 10 draws z ~ q(z|x)), per pixel; BB-ANS's excess
  over it splits into the *discretization cost* (the rate the coder's integer tables
  count, minus the ELBO) and the *overhead* (initial bits, stream heads, the header);
* gzip, bz2 and lzma (Python's standard library, strongest settings) on the images'
  bits packed 8 per byte, one archive for the whole set, and PNG (Pillow, 1-bit) both per
  image (the sum of N files) and as one image grid;
* encode and decode throughput in images per second (one core).

Goals (the full run): at most 0.20 bits per pixel, within 2 % of the ELBO rate.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import math
import time
from dataclasses import dataclass

import numpy as np

from .. import bits_back as bb
from ..datasets import binarize, load
from ..evaluate import elbo
from ..train import TrainConfig
from . import Experiment, Outcome
from .common import refuse_options, save_figure, train_vae, vae_from_run


@dataclass(frozen=True)
class Plan:
    """What one mode trains and codes."""

    latent_dim: int
    hidden_dims: tuple
    epochs: int
    batch_size: int
    n_train: int
    n_test: int
    coding: bb.Coding


#: The full run: a 784-400-32-400-784 VAE, 50 epochs of Adam on all 60000 training
#: images; the whole test set in 4 chains of 16 lanes.
FULL = Plan(latent_dim=32, hidden_dims=(400,), epochs=50, batch_size=128, n_train=60_000,
            n_test=10_000, coding=bb.Coding(latent_bits=10, precision=24, chains=4, lanes=16))
#: The quick run: a small VAE, a few epochs, 200 test images in one chain.
QUICK = Plan(latent_dim=16, hidden_dims=(200,), epochs=4, batch_size=100, n_train=10_000,
             n_test=200, coding=bb.Coding(latent_bits=10, precision=24, chains=1, lanes=16))


#: The names of the standard coders in the table and the figure.
LABELS = {"gzip": "gzip", "bz2": "bz2", "lzma": "lzma", "png_per_image": "PNG, file per image",
          "png_grid": "PNG, one grid"}


def plan_of(exp: Experiment) -> Plan:
    """The plan of ``exp``; this experiment takes no options."""
    refuse_options(exp, takes_from=True)
    return QUICK if exp.quick else FULL


def binarized_test_set(x_test, seed: int) -> np.ndarray:
    """The binarized test images (N, D) float32: one Bernoulli draw seeded ``seed + 1``,
    as :func:`scratchvae.train.load_data` draws them."""
    return binarize(x_test, np.random.default_rng(seed + 1))


# ---- the standard lossless coders ---------------------------------------------------------

def standard_codecs(images: np.ndarray) -> dict:
    """Bytes of the binary ``images`` (N, h, w) under gzip, bz2 and lzma (the bits packed 8
    per byte, one archive) and PNG (1-bit; per image, summed, and one grid image). Each
    is decoded back and must give the images."""
    n, h, w = images.shape
    packed = np.packbits(images.astype(np.uint8).ravel()).tobytes()
    out = {}
    for name, comp, decomp in (("gzip", lambda b: gzip.compress(b, 9, mtime=0), gzip.decompress),
                               ("bz2", lambda b: bz2.compress(b, 9), bz2.decompress),
                               ("lzma", lambda b: lzma.compress(b, preset=9 | lzma.PRESET_EXTREME),
                                lzma.decompress)):
        data = comp(packed)
        if decomp(data) != packed:
            raise RuntimeError(f"{name} did not give the images back")
        out[name] = len(data)
    out["png_per_image"] = sum(_png(im)[0] for im in images)
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    tiles = np.zeros((rows * cols, h, w), dtype=np.uint8)
    tiles[:n] = images
    grid = tiles.reshape(rows, cols, h, w).transpose(0, 2, 1, 3).reshape(rows * h, cols * w)
    size, back = _png(grid)
    if not np.array_equal(back, grid):
        raise RuntimeError("PNG did not give the image grid back")
    out["png_grid"] = size
    return out


def _png(image: np.ndarray) -> tuple[int, np.ndarray]:
    """A binary image as a 1-bit PNG (Pillow, optimize=True): its size, and it decoded."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image.astype(bool)).save(buf, format="PNG", optimize=True)
    return buf.tell(), np.asarray(Image.open(io.BytesIO(buf.getvalue()))).astype(np.uint8)


# ---- figures ------------------------------------------------------------------------------

def _figure(width, height, ncols=1):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.subplots(1, ncols, squeeze=False)[0]


def _plot_per_image(neg_elbo, coded):
    fig, (ax,) = _figure(5, 4.6)
    ax.plot(neg_elbo, coded, ".", ms=2, alpha=0.4)
    lo, hi = float(min(neg_elbo.min(), coded.min())), float(max(neg_elbo.max(), coded.max()))
    ax.plot([lo, hi], [lo, hi], "k--", lw=1, label="equal")
    ax.set(xlabel="-ELBO (bits per image)", ylabel="BB-ANS: bits the coder adds per image",
           title="each test image: the coder's rate vs the ELBO")
    ax.legend()
    return fig


def _plot_methods(bpp: dict):
    fig, (ax,) = _figure(7, 3.6)
    names = list(bpp)
    ax.barh(names[::-1], [bpp[k] for k in names[::-1]],
            color=["C0" if "ELBO" in k or "BB-ANS" in k else "C7" for k in names[::-1]])
    for i, k in enumerate(names[::-1]):
        ax.text(bpp[k], i, f" {bpp[k]:.3f}", va="center", fontsize=8)
    ax.set(xlabel="bits per pixel", title="lossless compression of binarized MNIST")
    ax.set_xlim(0, 1.2 * max(bpp.values()))
    return fig


# ---- the experiment -----------------------------------------------------------------------

def _from_run(exp: Experiment):
    """The VAE of ``--from`` and its budget."""
    model, config, budget = vae_from_run(exp, "bits-back", "bernoulli")
    return model, {"run": str(exp.from_run), "binarize": config.binarize, **budget}


def run(exp: Experiment) -> Outcome:
    """Train (or load) the VAE, compress and decompress the binarized test set, run the
    standard coders, write the figures; see the module's docstring."""
    plan = plan_of(exp)
    if exp.from_run is not None:
        model, budget = _from_run(exp)
        model_setup = {"from": budget}
    else:
        config = TrainConfig(dataset="mnist", epochs=plan.epochs, batch_size=plan.batch_size,
                             lr=1e-3, latent_dim=plan.latent_dim, hidden_dims=plan.hidden_dims,
                             likelihood="bernoulli", binarize="dynamic", seed=exp.seed,
                             n_train=plan.n_train, n_test=plan.n_test)
        model, budget = train_vae(exp, "vae", config, 784)
        model_setup = {"config": config.to_json(), "training": budget}
    ds = load("mnist", exp.data_dir)
    x = binarized_test_set(ds.x_test[:plan.n_test], exp.seed)
    images = x.reshape(-1, *ds.image_shape).astype(np.uint8)
    n, pixels = images.shape[0], x.shape[1]

    net = bb.HostModel(model)
    t0 = time.perf_counter()
    encoded = bb.encode(net, images, plan.coding)
    t_encode = time.perf_counter() - t0
    path = exp.out / "test_images.svbb"
    bb.save(path, encoded.data)
    t0 = time.perf_counter()
    back = bb.load(path, net)
    t_decode = time.perf_counter() - t0
    if not np.array_equal(back, images):
        raise RuntimeError("bits-back decoding did not give the images back")
    exp.log(f"BB-ANS: {n} images in {len(encoded.data)} bytes, decoded bit for bit "
            f"(encode {t_encode:.1f} s, decode {t_decode:.1f} s)")

    neg_elbo = bb.neg_elbo_bits(net, x, np.random.default_rng(exp.seed), n_samples=10)
    library_elbo = elbo(model, x)
    codecs = standard_codecs(images)

    def per_pixel(bits):
        return float(bits) / (n * pixels)

    bbans_bits = 8 * len(encoded.data)
    header_bits = 8 * (len(encoded.data) - encoded.stream_bits // 8)
    bpp = {"-ELBO (ideal rate)": per_pixel(neg_elbo.sum()),
           "BB-ANS (ours)": per_pixel(bbans_bits)}
    bpp.update({LABELS[name]: per_pixel(8 * size) for name, size in codecs.items()})
    bpp["raw bits"] = 1.0
    numbers = {
        "n_images": n,
        "round_trip_bit_for_bit": True,
        "bits_per_pixel": {k: round(v, 5) for k, v in bpp.items()},
        "bbans_bits_per_image": round(bbans_bits / n, 3),
        "neg_elbo_bits_per_image": round(float(neg_elbo.mean()), 3),
        "neg_elbo_nats_library": round(library_elbo["loss"], 3),
        "excess_over_elbo_percent": round(100 * (bbans_bits / neg_elbo.sum() - 1), 3),
        "coded_bits_per_image": round(float(encoded.image_bits.mean()), 3),
        "discretization_bits_per_image": round(float(encoded.image_bits.mean()
                                                     - neg_elbo.mean()), 3),
        "parts_bits_per_image": {"x_given_z": round(float(encoded.x_bits.mean()), 3),
                                 "z_prior": round(float(encoded.z_bits.mean()), 3),
                                 "bits_back": round(float(encoded.back_bits.mean()), 3)},
        "overhead_bits": round(encoded.overhead_bits + header_bits, 1),
        "overhead_parts": {"header_bits": header_bits,
                           "streams": plan.coding.chains * plan.coding.lanes,
                           "clean_bits": encoded.clean_bits,
                           "stream_overhead_bits": round(encoded.overhead_bits, 1)},
        "file_bytes": len(encoded.data),
        "standard_bytes": codecs,
        "encode_images_per_s": round(n / t_encode, 1),
        "decode_images_per_s": round(n / t_decode, 1),
    }
    figures = []
    save_figure(exp, _plot_per_image(neg_elbo, encoded.image_bits), "per_image.png", figures)
    save_figure(exp, _plot_methods(bpp), "methods.png", figures)
    setup = {
        "data": f"the first {n} MNIST test images, binarized once (Bernoulli of the grey "
                f"values, generator seed {exp.seed + 1})",
        "model": (f"{plan.latent_dim}-dimensional latent, hidden {list(plan.hidden_dims)}, "
                  f"Bernoulli decoder, trained with dynamic binarization"
                  if exp.from_run is None else f"the VAE of --from {exp.from_run}"),
        **model_setup,
        "coding": {"latent_bits": plan.coding.latent_bits, "precision": plan.coding.precision,
                   "chains": plan.coding.chains, "lanes": plan.coding.lanes},
        "bits_per_pixel": "8 x bytes / (784 N); BB-ANS: the whole file (header, streams, "
                          "initial bits); -ELBO: analytic KL + -log2 p(x|z) over 10 draws "
                          "z ~ q(z|x) per image",
        "standard_coders": "gzip level 9, bz2 level 9, lzma preset 9e on the bits packed 8 per "
                           "byte (one archive); PNG 1-bit (Pillow, optimize) per image (sum of "
                           "N files) and as one grid image",
        "throughput": "images per second of bits_back.encode and bits_back.load, one BLAS "
                      "thread",
    }
    table = _table(numbers)
    return Outcome(numbers, setup, table, figures)


def _table(numbers: dict) -> list[str]:
    lines = [f"lossless coding of {numbers['n_images']} binarized MNIST test images "
             f"(round trip bit for bit: {numbers['round_trip_bit_for_bit']})",
             f"{'method':24s} {'bits/pixel':>10s}"]
    for name, v in numbers["bits_per_pixel"].items():
        lines.append(f"{name:24s} {v:10.4f}")
    lines.append(f"BB-ANS exceeds the ELBO rate by {numbers['excess_over_elbo_percent']:.2f} %: "
                 f"discretization {numbers['discretization_bits_per_image']:.2f} bits/image, "
                 f"overhead {numbers['overhead_bits']:.0f} bits in all "
                 f"({numbers['overhead_parts']['streams']} streams, "
                 f"{numbers['overhead_bits'] / numbers['n_images']:.2f} bits/image)")
    lines.append(f"throughput: encode {numbers['encode_images_per_s']:.0f} images/s, "
                 f"decode {numbers['decode_images_per_s']:.0f} images/s")
    return lines
