"""Tests of scratchvae.plots: exact tiling, valid PNG files written atomically, and
clear errors."""

import numpy as np
import pytest
from matplotlib.figure import Figure

import scratchvae as sv
from scratchvae import plots

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SHAPE = (4, 3)  # small (height, width) images, D = 12


def vae(latent_dim=2):
    return sv.VAE(input_dim=12, hidden_dims=(6,), latent_dim=latent_dim, seed=0)


def images(n=10, seed=0):
    return np.random.default_rng(seed).uniform(size=(n, 12)).astype(np.float32)


def assert_only_png(folder, path):
    """``path`` is a PNG and the only file in ``folder`` (no temporary file left)."""
    assert sorted(folder.iterdir()) == [path]
    assert path.read_bytes()[:8] == PNG_SIGNATURE


# ---- image_grid ---------------------------------------------------------------------

def test_image_grid_tiles_row_by_row():
    imgs = np.arange(5 * 6, dtype=float).reshape(5, 6) + 1  # five 2 x 3 images
    grid = plots.image_grid(imgs, (2, 3), ncols=2)
    tile = [im.reshape(2, 3) for im in imgs]
    blank = np.zeros((2, 3))
    expected = np.block([[tile[0], tile[1]], [tile[2], tile[3]], [tile[4], blank]])
    np.testing.assert_array_equal(grid, expected)


def test_image_grid_is_square_by_default():
    grid = plots.image_grid(np.ones((10, 12)), SHAPE)
    assert grid.shape == (3 * 4, 4 * 3)  # ceil(sqrt(10)) = 4 columns, 3 rows
    assert grid.sum() == 10 * 12


def test_image_grid_checks_shapes():
    with pytest.raises(ValueError, match="image_shape"):
        plots.image_grid(np.ones((3, 12)), (28, 28))
    with pytest.raises(ValueError, match="images"):
        plots.image_grid(np.ones(12), SHAPE)
    with pytest.raises(ValueError, match="ncols"):
        plots.image_grid(np.ones((3, 12)), SHAPE, ncols=0)


# ---- figures written as PNG ---------------------------------------------------------

METRICS = [
    {"epoch": 0, "test_loss": 300.0, "test_recon": 290.0, "test_kl": 10.0},
    {"epoch": 1, "train_loss": 200.0, "test_loss": 190.0, "test_recon": 170.0,
     "test_kl": 20.0},
    {"epoch": 2, "train_loss": 150.0, "test_loss": 160.0, "test_recon": 135.0,
     "test_kl": 25.0},
]

FIGURES = {
    "reconstructions": lambda path: plots.plot_reconstructions(vae(), images(), SHAPE, n=5,
                                                               path=path),
    "samples": lambda path: plots.plot_samples(vae(), SHAPE, n=9, path=path),
    "manifold": lambda path: plots.plot_manifold(vae(), SHAPE, n=5, path=path),
    "latent": lambda path: plots.plot_latent(vae(), images(50), np.arange(50) % 10,
                                             path=path),
    "latent_pca": lambda path: plots.plot_latent(vae(latent_dim=4), images(50), path=path),
    "curves": lambda path: plots.plot_curves(METRICS, path=path),
}


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_each_plot_writes_a_png_and_no_temporary_file(tmp_path, name):
    path = tmp_path / f"{name}.png"
    fig = FIGURES[name](path)
    assert isinstance(fig, Figure)
    assert_only_png(tmp_path, path)


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_each_plot_without_path_writes_nothing(tmp_path, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    assert isinstance(FIGURES[name](None), Figure)
    assert list(tmp_path.iterdir()) == []


def test_a_failed_save_leaves_the_old_file_and_no_temporary_file(tmp_path, monkeypatch):
    path = tmp_path / "samples.png"
    path.write_bytes(b"old picture")

    def broken_savefig(self, f, **kwargs):
        f.write(PNG_SIGNATURE)  # half a file, then the disk fills up
        raise OSError("no space left on device")

    monkeypatch.setattr(Figure, "savefig", broken_savefig)
    with pytest.raises(OSError, match="no space"):
        plots.plot_samples(vae(), SHAPE, n=4, path=path)
    assert sorted(tmp_path.iterdir()) == [path]
    assert path.read_bytes() == b"old picture"


def test_plots_accept_a_string_path_and_overwrite(tmp_path):
    path = tmp_path / "samples.png"
    path.write_bytes(b"old picture")
    plots.plot_samples(vae(), SHAPE, n=4, path=str(path))
    assert_only_png(tmp_path, path)


def test_plots_bring_device_arrays_to_the_host(tmp_path, move):
    # On "array_api_strict" (on a non-default device) and CuPy an implicit copy fails.
    model = move(vae())
    plots.plot_reconstructions(model, images(), SHAPE, n=3, path=tmp_path / "r.png")
    plots.plot_manifold(model, SHAPE, n=3, path=tmp_path / "m.png")
    plots.plot_latent(model, images(20), np.arange(20) % 3, path=tmp_path / "l.png")
    assert len(list(tmp_path.iterdir())) == 3


def test_plots_do_not_touch_pyplot_state():
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    plots.plot_samples(vae(), SHAPE, n=4)
    plots.plot_curves(METRICS)
    assert plt.get_fignums() == before


# ---- contents and errors ------------------------------------------------------------

def test_plot_manifold_needs_two_latent_dimensions():
    with pytest.raises(ValueError, match="latent_dim"):
        plots.plot_manifold(vae(latent_dim=3), SHAPE)


def test_plot_manifold_decodes_normal_quantiles():
    model = vae()
    grid = plots.plot_manifold(model, SHAPE, n=3).axes[0].images[0].get_array()
    q = 1.6448536269514722  # Phi^{-1}(0.95)
    # top-left tile: z = (Phi^{-1}(0.05), Phi^{-1}(0.95)); bottom-right: the opposite
    corners = np.array([[-q, q], [q, -q]], dtype=np.float32)
    expected = sv.to_numpy(model.sample(2, z=model.asarray(corners)))
    np.testing.assert_allclose(grid[:4, :3].ravel(), expected[0], rtol=1e-6)
    np.testing.assert_allclose(grid[-4:, -3:].ravel(), expected[1], rtol=1e-6)


def test_plot_latent_says_when_it_projects():
    ax = plots.plot_latent(vae(latent_dim=4), images(30)).axes[0]
    assert "principal component 1" in ax.get_xlabel()
    assert "principal component 2" in ax.get_ylabel()
    ax = plots.plot_latent(vae(), images(30)).axes[0]
    assert "principal" not in ax.get_xlabel()
    with pytest.raises(ValueError, match="labels"):
        plots.plot_latent(vae(), images(30), labels=np.zeros(29))


def test_plot_latent_of_an_autoencoder():
    ae = sv.AE(input_dim=12, hidden_dims=(6,), latent_dim=2)
    points = plots.plot_latent(ae, images(30)).axes[0].collections[0].get_offsets()
    np.testing.assert_allclose(points, sv.to_numpy(ae.encode(ae.asarray(images(30)))),
                               rtol=1e-6)


def test_plot_curves_draws_the_series_present():
    fig = plots.plot_curves(METRICS)
    loss, recon, kl = fig.axes[:3]
    assert [line.get_label() for line in loss.lines] == ["train", "test"]
    np.testing.assert_array_equal(loss.lines[0].get_xdata(), [1, 2])  # no train at 0
    np.testing.assert_array_equal(kl.lines[0].get_ydata(), [10.0, 20.0, 25.0])
    assert [line.get_label() for line in recon.lines] == ["test"]
    with pytest.raises(ValueError, match="epoch"):
        plots.plot_curves([{"test_loss": 1.0}])


def test_plot_manifold_over_given_limits():
    model = vae()
    grid = plots.plot_manifold(model, SHAPE, n=3, limits=((-3.0, 1.0), (0.5, 2.5)))
    tiles = grid.axes[0].images[0].get_array()
    corners = np.array([[-3.0, 2.5], [1.0, 0.5]], dtype=np.float32)  # top left, bottom right
    expected = sv.to_numpy(model.sample(2, z=model.asarray(corners)))
    np.testing.assert_allclose(tiles[:4, :3].ravel(), expected[0], rtol=1e-6)
    np.testing.assert_allclose(tiles[-4:, -3:].ravel(), expected[1], rtol=1e-6)
    assert "where the data lie" in grid.axes[0].get_xlabel()
    for bad in (((1.0, -1.0), (0.0, 1.0)), ((0.0, 1.0),), ((0.0, np.nan), (0.0, 1.0))):
        with pytest.raises(ValueError, match="limits must be"):
            plots.plot_manifold(model, SHAPE, n=3, limits=bad)


def test_plot_latent_names_the_classes():
    labels = np.arange(30) % 10
    names = sv.datasets.CLASS_NAMES["fashion-mnist"]
    fig = plots.plot_latent(vae(), images(30), labels=labels, class_names=names)
    bar = fig.axes[1]  # the colour bar
    assert [t.get_text() for t in bar.get_yticklabels()] == list(names)
    fig = plots.plot_latent(vae(), images(30), labels=labels)
    assert [t.get_text() for t in fig.axes[1].get_yticklabels()] == [str(d) for d in range(10)]


def test_plot_curves_shows_train_val_and_test_in_every_panel_with_whole_epochs():
    metrics = [{"epoch": e, **{f"{s}_{p}": float(e) for s in ("train", "val", "test")
                               for p in ("loss", "recon", "kl")}} for e in (1, 2, 3)]
    fig = plots.plot_curves(metrics)
    for ax in fig.axes[:3]:
        assert [line.get_label() for line in ax.lines] == ["train", "val", "test"]
        ticks = [t for t in ax.get_xticks() if 1 <= t <= 3]
        assert ticks and all(float(t).is_integer() for t in ticks)


def test_samples_are_titled_as_decoder_means():
    title = plots.plot_samples(vae(), SHAPE, n=4).axes[0].get_title()
    assert title == "decoder means E[x | z] at z ~ N(0, I)"
