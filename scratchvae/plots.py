"""Pictures of a VAE: reconstructions, prior samples, the 2-D latent manifold, the
latent space of a data set and the training curves.

Plots are an edge: every model output is brought to the host with
:func:`scratchvae.to_numpy` here, and nothing else leaves the model's device.

Each function builds a :class:`matplotlib.figure.Figure` on the Agg canvas directly,
without pyplot, so it neither needs a display nor changes pyplot's global state
(current figure, backend). It returns the figure; given ``path`` it also writes a PNG
atomically: to a temporary file in the same folder, then renamed over ``path``, so an
interrupted save never leaves a half-written picture. Pixel values are shown on the
grey scale [0, 1], the range the data are scaled to.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .backend import to_numpy
from .checks import check_int
from .evaluate import latent_means
from .files import atomic_write

__all__ = ["image_grid", "plot_curves", "plot_latent", "plot_manifold",
           "plot_reconstructions", "plot_samples"]

CURVES = (("loss", "negative ELBO (nats)"), ("recon", "reconstruction (nats)"),
          ("kl", "KL (nats)"))


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path) -> None:
    """Write ``fig`` as a PNG to ``path`` atomically (:mod:`scratchvae.files`)."""
    if path is not None:
        atomic_write(path, lambda f: fig.savefig(f, format="png"))


def _check_image_shape(image_shape, D: int) -> tuple[int, int]:
    shape = tuple(check_int(s, "image_shape entries") for s in image_shape)
    if len(shape) != 2 or shape[0] * shape[1] != D:
        raise ValueError(f"image_shape must be (height, width) with height * width = {D}, "
                         f"got {tuple(image_shape)}")
    return shape


def image_grid(images, image_shape, ncols: int | None = None) -> np.ndarray:
    """Tile flat images into one picture, row by row.

    Parameters
    ----------
    images : ndarray, shape (n, D)
        Host array, ``D = height * width``.
    image_shape : (height, width)
    ncols : int, optional
        Tiles per row (default ``ceil(sqrt(n))``); the last row is padded with zeros.

    Returns
    -------
    ndarray, shape (nrows * height, ncols * width)
    """
    images = np.asarray(images)
    if images.ndim != 2 or images.shape[0] == 0:
        raise ValueError(f"images must have shape (n, D) with n >= 1, got {images.shape}")
    n, D = images.shape
    h, w = _check_image_shape(image_shape, D)
    ncols = math.ceil(math.sqrt(n)) if ncols is None else check_int(ncols, "ncols")
    nrows = math.ceil(n / ncols)
    tiles = np.zeros((nrows * ncols, h, w), dtype=images.dtype)
    tiles[:n] = images.reshape(n, h, w)
    return tiles.reshape(nrows, ncols, h, w).transpose(0, 2, 1, 3).reshape(nrows * h,
                                                                          ncols * w)


def _show(ax, grid: np.ndarray) -> None:
    ax.imshow(grid, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def _grid_figure(grid: np.ndarray, title: str, inches_per_pixel: float = 0.02) -> Figure:
    h, w = grid.shape
    fig = _figure(max(3.0, w * inches_per_pixel), max(2.0, h * inches_per_pixel + 0.4))
    ax = fig.add_subplot()
    _show(ax, grid)
    ax.set_title(title)
    return fig


def plot_reconstructions(model, x, image_shape, n: int = 8, path=None) -> Figure:
    """The first ``n`` examples of ``x`` (top row) and their reconstructions
    ``model.reconstruct(x)``, the decoder means at the posterior means (bottom row).

    x: host array (N, D), N >= n.
    """
    n = check_int(n, "n")
    x = np.asarray(x)[:n]
    recon = to_numpy(model.reconstruct(model.asarray(x)))
    h, _ = _check_image_shape(image_shape, x.shape[1])
    fig = _grid_figure(image_grid(np.concatenate([x, recon]), image_shape, ncols=x.shape[0]),
                       "reconstructions", inches_per_pixel=0.04)
    ax = fig.axes[0]
    ax.set_yticks([h / 2, 3 * h / 2], ["data", "recon."])
    _save(fig, path)
    return fig


def plot_samples(model, image_shape, n: int = 64, path=None) -> Figure:
    r"""Decoder means :math:`\mathbb E[x|z]` at ``n`` draws z ~ N(0, I) (``model.sample``)."""
    samples = to_numpy(model.sample(check_int(n, "n")))
    fig = _grid_figure(image_grid(samples, image_shape),
                       "decoder means E[x | z] at z ~ N(0, I)", inches_per_pixel=0.03)
    _save(fig, path)
    return fig


def plot_manifold(model, image_shape, n: int = 20, path=None, limits=None) -> Figure:
    r"""The learned 2-D manifold (Kingma & Welling, 2014, Fig. 4).

    Decoder means on an ``n`` x ``n`` grid of z. By default the coordinates are
    :math:`\Phi^{-1}(p)`, p linearly spaced in [0.05, 0.95]: equal steps in prior
    probability, as in the paper. ``limits = ((lo_1, hi_1), (lo_2, hi_2))`` spaces them
    linearly between those values instead, e.g. the 1st and 99th percentiles of the
    latent means of the data, when the data do not fill the prior (Frey Face).
    :math:`z_1` grows to the right, :math:`z_2` upwards. Needs ``latent_dim == 2``.
    """
    if model.latent_dim != 2:
        raise ValueError(f"plot_manifold needs a model with latent_dim == 2, "
                         f"got latent_dim = {model.latent_dim}")
    n = check_int(n, "n")
    if limits is None:
        q1 = q2 = np.array([NormalDist().inv_cdf(p) for p in np.linspace(0.05, 0.95, n)])
        how = "normal quantiles 0.05 ... 0.95"
    else:
        limits = np.asarray(limits, dtype=np.float64)
        if limits.shape != (2, 2) or not np.all(np.isfinite(limits)) or \
                not np.all(limits[:, 0] < limits[:, 1]):
            raise ValueError(f"limits must be ((lo_1, hi_1), (lo_2, hi_2)) with lo < hi, "
                             f"got {limits.tolist()}")
        q1, q2 = (np.linspace(lo, hi, n) for lo, hi in limits)
        how = "where the data lie"
    z1, z2 = np.meshgrid(q1, q2[::-1])             # row 0 is the top: largest z_2
    z = np.stack([z1.ravel(), z2.ravel()], axis=1)
    means = to_numpy(model.sample(n * n, z=model.asarray(z)))
    h, w = _check_image_shape(image_shape, means.shape[1])
    fig = _grid_figure(image_grid(means, image_shape, ncols=n), "latent manifold")
    ax = fig.axes[0]
    ends = [0, n - 1]
    ax.set_xticks([(i + 0.5) * w for i in ends], [f"{q1[i]:.2f}" for i in ends])
    ax.set_yticks([(i + 0.5) * h for i in ends], [f"{q2[::-1][i]:.2f}" for i in ends])
    ax.set_xlabel(f"$z_1$ ({how})")
    ax.set_ylabel("$z_2$")
    _save(fig, path)
    return fig


def plot_latent(model, x, labels=None, path=None, class_names=None) -> Figure:
    r"""Scatter of where ``x`` lands in latent space, coloured by ``labels``.

    The points are the posterior means :math:`\mu(x)` of a VAE (the codes of an
    AE). With ``latent_dim > 2`` they are projected onto their first two principal
    components, and the axis labels say so.

    x: host array (N, D); labels: optional array (N,) of class labels 0..9;
    class_names: optional names of the classes for the colour bar
    (``scratchvae.datasets.CLASS_NAMES[name]``).
    """
    if model.latent_dim < 2:
        raise ValueError(f"plot_latent needs latent_dim >= 2, got latent_dim = "
                         f"{model.latent_dim}")
    points = latent_means(model, np.asarray(x)).astype(np.float64)
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape != (points.shape[0],):
            raise ValueError(f"labels must have shape ({points.shape[0]},), "
                             f"got {labels.shape}")
    axis_names = ["$\\mu_1(x)$", "$\\mu_2(x)$"]
    if model.latent_dim > 2:
        centred = points - points.mean(axis=0)
        _, s, vt = np.linalg.svd(centred, full_matrices=False)
        points = centred @ vt[:2].T
        share = s[:2] ** 2 / max(np.sum(s ** 2), np.finfo(np.float64).tiny)
        axis_names = [f"principal component {i + 1} of $\\mu(x)$ ({100 * share[i]:.0f}% var.)"
                      for i in range(2)]
    fig = _figure(5.5, 4.5)
    ax = fig.add_subplot()
    dots = ax.scatter(points[:, 0], points[:, 1], c=labels, s=4, alpha=0.7,
                      cmap="tab10" if labels is not None else None,
                      vmin=None if labels is None else -0.5,
                      vmax=None if labels is None else 9.5)
    if labels is not None:
        bar = fig.colorbar(dots, ax=ax, label="class" if class_names else "label")
        bar.set_ticks(range(10), labels=list(class_names) if class_names else None)
    ax.set_xlabel(axis_names[0])
    ax.set_ylabel(axis_names[1])
    ax.set_title("latent means")
    _save(fig, path)
    return fig


def plot_curves(metrics, path=None) -> Figure:
    """Training curves from the records of ``metrics.jsonl``.

    Three panels, loss, reconstruction and KL, each against ``epoch``, with the
    ``train_*``, ``val_*`` and ``test_*`` series that the records hold (``train_loss``,
    ``test_loss``, ``test_recon``, ``test_kl``, ...). A record missing a key, or
    holding ``None`` for it, is skipped in that series.

    metrics: list of dicts, each with an ``epoch``.
    """
    metrics = list(metrics)
    if not metrics or any("epoch" not in m for m in metrics):
        raise ValueError("metrics must be a non-empty list of dicts, each with an 'epoch'")
    fig = _figure(11.0, 3.4)
    for ax, (part, ylabel) in zip(fig.subplots(1, len(CURVES)), CURVES, strict=True):
        for split in ("train", "val", "test"):
            key = f"{split}_{part}"
            points = [(m["epoch"], m[key]) for m in metrics if m.get(key) is not None]
            if points:
                epochs, values = zip(*points, strict=True)
                ax.plot(epochs, values, marker=".", label=split)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # no epoch 1.5
        ax.set_ylabel(ylabel)
        if ax.lines:
            ax.legend()
    _save(fig, path)
    return fig
