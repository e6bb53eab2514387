"""Tests of scratchvae.datasets: the real files, damaged files, downloads, splits, binarization.

The real data sets are read from ``$SCRATCHVAE_DATA`` (default: ``shared/data`` next to the
repository checkout); tests that need them are skipped when the files are absent. No test
touches the network: downloads come from ``file://`` mirrors in a temporary folder.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import urllib.error
from pathlib import Path

import numpy as np
import pytest

from scratchvae import datasets as ds

DATA_DIR = Path(os.environ.get("SCRATCHVAE_DATA")
                or Path(__file__).resolve().parents[2] / "shared" / "data")


def _load_real(name):
    if not all((DATA_DIR / name / file).is_file() for file, _, _ in ds.FILES[name]):
        pytest.skip(f"the {name} files are not in {DATA_DIR / name} (set SCRATCHVAE_DATA)")
    return ds.load(name, DATA_DIR, download=False)


@pytest.fixture(scope="module")
def mnist():
    return _load_real("mnist")


@pytest.fixture(scope="module")
def fashion():
    return _load_real("fashion-mnist")


@pytest.fixture(scope="module")
def frey():
    return _load_real("frey")


def idx_bytes(array, magic):
    """The uncompressed IDX encoding of a uint8 array."""
    dims = b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return magic.to_bytes(4, "big") + dims + np.asarray(array, np.uint8).tobytes()


def write_idx(path, array, magic):
    path.write_bytes(gzip.compress(idx_bytes(array, magic)))
    return path


def small_split(folder, n=5, rng_seed=0):
    """A tiny valid images/labels pair in ``folder``."""
    rng = np.random.default_rng(rng_seed)
    images = write_idx(folder / "images.gz", rng.integers(0, 256, (n, 28, 28)),
                       ds.IDX_IMAGES_MAGIC)
    labels = write_idx(folder / "labels.gz", rng.integers(0, 10, n), ds.IDX_LABELS_MAGIC)
    return images, labels


def frey_matrix(seed=0):
    return np.random.default_rng(seed).integers(8, 239, ds.FREY_SHAPE).astype(np.uint8)


def md5(data):
    return hashlib.md5(data).hexdigest()


# ---- the real data sets -------------------------------------------------------------

@pytest.mark.parametrize("fixture", ["mnist", "fashion"])
def test_idx_datasets_shapes_dtypes_ranges(fixture, request):
    d = request.getfixturevalue(fixture)
    assert d.x_train.shape == (60000, 784) and d.x_test.shape == (10000, 784)
    assert d.y_train.shape == (60000,) and d.y_test.shape == (10000,)
    assert d.x_train.dtype == np.float32 and d.x_test.dtype == np.float32
    assert d.y_train.dtype == np.int64 and d.y_test.dtype == np.int64
    for x in (d.x_train, d.x_test):
        assert x.min() == 0.0 and x.max() == 1.0
    for y in (d.y_train, d.y_test):
        assert set(np.unique(y)) == set(range(10))
    assert d.image_shape == (28, 28) and d.input_dim == 784


def test_mnist_known_statistics(mnist):
    # The widely quoted normalization constants of MNIST: mean 0.1307, std 0.3081.
    assert abs(mnist.x_train.mean() - 0.1307) < 1e-3
    assert abs(mnist.x_train.std() - 0.3081) < 1e-3
    assert list(mnist.y_train[:5]) == [5, 0, 4, 1, 9]
    assert list(mnist.y_test[:5]) == [7, 2, 1, 0, 4]
    assert np.bincount(mnist.y_train)[1] == 6742 and np.bincount(mnist.y_test)[1] == 1135
    # Grey values are k / 255 exactly.
    assert np.array_equal(np.unique(mnist.x_test * np.float32(255)), np.arange(256))


def test_fashion_known_statistics(fashion):
    assert abs(fashion.x_train.mean() - 0.2860) < 1e-3
    assert abs(fashion.x_train.std() - 0.3530) < 1e-3
    assert np.all(np.bincount(fashion.y_train) == 6000)
    assert np.all(np.bincount(fashion.y_test) == 1000)


def test_frey_shapes_and_split(frey):
    assert frey.x_train.shape == (1965 - 200, 560) and frey.x_test.shape == (200, 560)
    assert frey.y_train is None and frey.y_test is None
    assert frey.x_train.dtype == np.float32 and frey.image_shape == (28, 20)
    assert frey.x_train.min() == np.float32(8 / 255) and frey.x_train.max() <= 238 / 255
    assert abs(np.concatenate([frey.x_train, frey.x_test]).mean() - 0.6057) < 1e-3


def test_frey_test_split_is_last_200_faces(frey):
    import scipy.io

    ff = scipy.io.loadmat(DATA_DIR / "frey" / "frey_rawface.mat")["ff"]
    np.testing.assert_array_equal(frey.x_test, ff[:, -200:].T / np.float32(255))
    np.testing.assert_array_equal(frey.x_train[0], ff[:, 0] / np.float32(255))


def test_frey_images_are_upright(frey):
    faces = frey.x_train.reshape(-1, *frey.image_shape)
    # Row-major 28 x 20 images are smooth both ways; a wrong layout breaks up the rows.
    dx = np.abs(np.diff(faces, axis=2)).mean()
    dy = np.abs(np.diff(faces, axis=1)).mean()
    assert 0.8 < dy / dx < 1.25
    wrong = frey.x_train.reshape(-1, 20, 28)
    assert np.abs(np.diff(wrong, axis=1)).mean() > 2 * dy
    # Upright: the forehead (top rows) is brighter than the chin and collar (bottom rows).
    mean_face = faces.mean(axis=0)
    assert mean_face[:6].mean() > mean_face[-6:].mean() + 0.05


# ---- damaged files ------------------------------------------------------------------

def test_read_idx_roundtrip(tmp_path):
    images, labels = small_split(tmp_path, n=7)
    x, y = ds.read_idx_split(images, labels, n=7)
    raw = np.frombuffer(gzip.decompress(images.read_bytes()), np.uint8, offset=16)
    assert x.shape == (7, 784) and x.dtype == np.float32
    np.testing.assert_array_equal(x.ravel() * np.float32(255), raw)
    assert y.dtype == np.int64 and y.shape == (7,)


def test_wrong_magic_names_the_file(tmp_path):
    _, labels = small_split(tmp_path)
    with pytest.raises(ds.DatasetError, match=r"labels\.gz.*magic number is 2049.*2051"):
        ds.read_idx(labels, ds.IDX_IMAGES_MAGIC)
    junk = tmp_path / "junk.gz"
    junk.write_bytes(gzip.compress(b"\x12\x34\x56\x78" + bytes(100)))
    with pytest.raises(ds.DatasetError, match=r"junk\.gz.*not an IDX file"):
        ds.read_idx(junk, ds.IDX_LABELS_MAGIC)


@pytest.mark.parametrize("cut, message", [
    (-1, "truncated"), (10, "header is truncated"), (2, "too few")])
def test_truncated_idx_data(tmp_path, cut, message):
    data = idx_bytes(np.zeros((3, 28, 28)), ds.IDX_IMAGES_MAGIC)
    path = tmp_path / "short.gz"
    path.write_bytes(gzip.compress(data[:cut]))
    with pytest.raises(ds.DatasetError, match=rf"short\.gz.*{message}"):
        ds.read_idx(path, ds.IDX_IMAGES_MAGIC)


def test_trailing_bytes_and_wrong_shape(tmp_path):
    path = tmp_path / "long.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.zeros(4), ds.IDX_LABELS_MAGIC) + b"\0"))
    with pytest.raises(ds.DatasetError, match=r"long\.gz.*longer than its header"):
        ds.read_idx(path, ds.IDX_LABELS_MAGIC)
    path = write_idx(tmp_path / "four.gz", np.zeros(4), ds.IDX_LABELS_MAGIC)
    with pytest.raises(ds.DatasetError, match=r"four\.gz.*shape \(4,\), expected \(60000,\)"):
        ds.read_idx(path, ds.IDX_LABELS_MAGIC, shape=(60000,))


def test_bad_and_truncated_gzip(tmp_path):
    images, _ = small_split(tmp_path)
    raw = images.read_bytes()
    cut = tmp_path / "cut.gz"
    cut.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ds.DatasetError, match=r"cut\.gz.*gzip stream is truncated"):
        ds.read_idx(cut, ds.IDX_IMAGES_MAGIC)
    plain = tmp_path / "plain.gz"
    plain.write_bytes(idx_bytes(np.zeros((1, 28, 28)), ds.IDX_IMAGES_MAGIC))
    with pytest.raises(ds.DatasetError, match=r"plain\.gz.*not a valid gzip file"):
        ds.read_idx(plain, ds.IDX_IMAGES_MAGIC)
    flipped = bytearray(raw)
    flipped[len(raw) // 2] ^= 0xFF
    bad = tmp_path / "bad.gz"
    bad.write_bytes(bytes(flipped))
    with pytest.raises(ds.DatasetError, match=r"bad\.gz"):
        ds.read_idx(bad, ds.IDX_IMAGES_MAGIC)


def test_label_image_count_mismatch_and_label_range(tmp_path):
    images, _ = small_split(tmp_path, n=5)
    labels = write_idx(tmp_path / "six.gz", np.zeros(6), ds.IDX_LABELS_MAGIC)
    with pytest.raises(ds.DatasetError, match=r"images\.gz.*5 images.*six\.gz.*6 labels"):
        ds.read_idx_split(images, labels)
    labels = write_idx(tmp_path / "big.gz", np.full(5, 10), ds.IDX_LABELS_MAGIC)
    with pytest.raises(ds.DatasetError, match=r"big\.gz.*0\.\.9.*found 10"):
        ds.read_idx_split(images, labels)
    odd = write_idx(tmp_path / "odd.gz", np.zeros((5, 28, 27)), ds.IDX_IMAGES_MAGIC)
    with pytest.raises(ds.DatasetError, match=r"odd\.gz.*\(28, 27\)"):
        ds.read_idx_split(odd, tmp_path / "labels.gz")


def test_load_checks_expected_counts(tmp_path):
    folder = tmp_path / "mnist"
    folder.mkdir()
    for split in ("train", "t10k"):
        write_idx(folder / f"{split}-images-idx3-ubyte.gz", np.zeros((5, 28, 28)),
                  ds.IDX_IMAGES_MAGIC)
        write_idx(folder / f"{split}-labels-idx1-ubyte.gz", np.zeros(5), ds.IDX_LABELS_MAGIC)
    with pytest.raises(ds.DatasetError, match=r"train-labels-idx1-ubyte\.gz.*\(60000,\)"):
        ds.load("mnist", tmp_path, download=False)


def test_read_frey_roundtrip_and_damage(tmp_path):
    import scipy.io

    ff = frey_matrix()
    good = tmp_path / "good.mat"
    scipy.io.savemat(good, {"ff": ff})
    faces = ds.read_frey(good)
    assert faces.shape == (1965, 28, 20) and faces.dtype == np.uint8
    np.testing.assert_array_equal(faces[3].ravel(), ff[:, 3])

    cut = tmp_path / "cut.mat"
    cut.write_bytes(good.read_bytes()[:5000])
    junk = tmp_path / "junk.mat"
    junk.write_bytes(b"not a MATLAB file " * 20)
    for path in (cut, junk):
        with pytest.raises(ds.DatasetError, match=rf"{path.name}.*not a readable MATLAB"):
            ds.read_frey(path)
    other = tmp_path / "other.mat"
    scipy.io.savemat(other, {"faces": ff})
    with pytest.raises(ds.DatasetError, match=r"other\.mat.*no variable 'ff'.*faces"):
        ds.read_frey(other)
    wrong = tmp_path / "wrong.mat"
    scipy.io.savemat(wrong, {"ff": ff[:, :100].astype(np.float64)})
    with pytest.raises(ds.DatasetError, match=r"wrong\.mat.*float64 of shape \(560, 100\)"):
        ds.read_frey(wrong)


# ---- where the data lives -----------------------------------------------------------

def test_resolve_data_dir_order(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SCRATCHVAE_DATA", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert ds.resolve_data_dir() == tmp_path / "home" / ".cache" / "scratchvae"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")
    assert ds.resolve_data_dir() == tmp_path / "home" / ".cache" / "scratchvae"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert ds.resolve_data_dir() == tmp_path / "xdg" / "scratchvae"
    monkeypatch.setenv("SCRATCHVAE_DATA", str(tmp_path / "env"))
    assert ds.resolve_data_dir() == tmp_path / "env"
    assert ds.resolve_data_dir(tmp_path / "explicit") == tmp_path / "explicit"
    assert ds.resolve_data_dir("~/d") == tmp_path / "home" / "d"
    monkeypatch.setenv("SCRATCHVAE_DATA", "")
    assert ds.resolve_data_dir() == tmp_path / "xdg" / "scratchvae"


def test_load_rejects_unknown_name(tmp_path):
    with pytest.raises(ValueError, match=r"name must be one of .*'mnist'.*got 'cifar'"):
        ds.load("cifar", tmp_path)


def test_missing_files_without_download_names_every_path(tmp_path):
    (tmp_path / "mnist").mkdir()
    write_idx(tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz", np.zeros(3),
              ds.IDX_LABELS_MAGIC)
    with pytest.raises(ds.DataNotFoundError) as info:
        ds.load("mnist", tmp_path, download=False)
    message = str(info.value)
    for file in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                 "t10k-images-idx3-ubyte.gz"):
        assert str(tmp_path / "mnist" / file) in message
    assert "t10k-labels" not in message
    assert "https://ossci-datasets.s3.amazonaws.com/mnist/" in message
    assert isinstance(info.value, FileNotFoundError)


# ---- downloads from file:// mirrors -------------------------------------------------

@pytest.fixture
def fake_remote(tmp_path, monkeypatch):
    """A two-file data set 'mnist' served from a file:// mirror, with its own checksums."""
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    contents = {"a.bin": os.urandom(300_000), "b.bin": b"small file"}
    for file, data in contents.items():
        (mirror / file).write_bytes(data)
    table = {"mnist": tuple((f, len(d), md5(d)) for f, d in contents.items())}
    monkeypatch.setattr(ds, "FILES", table)
    monkeypatch.setattr(ds, "MIRRORS", {"mnist": (mirror.as_uri() + "/",)})
    return mirror, contents


def test_download_success_checks_md5(tmp_path, fake_remote):
    _, contents = fake_remote
    folder = ds.download("mnist", tmp_path / "data", progress=True)
    assert folder == tmp_path / "data" / "mnist"
    assert sorted(p.name for p in folder.iterdir()) == sorted(contents)
    for file, data in contents.items():
        assert (folder / file).read_bytes() == data


def test_download_tries_next_mirror_and_keeps_present_files(tmp_path, fake_remote):
    mirror, contents = fake_remote
    folder = tmp_path / "data" / "mnist"
    folder.mkdir(parents=True)
    (folder / "b.bin").write_bytes(b"already here")
    empty = tmp_path / "empty"
    empty.mkdir()
    ds.download("mnist", tmp_path / "data", progress=False,
                mirrors=(empty.as_uri(), mirror.as_uri()))
    assert (folder / "a.bin").read_bytes() == contents["a.bin"]
    assert (folder / "b.bin").read_bytes() == b"already here"


def test_md5_mismatch_leaves_nothing_behind(tmp_path, fake_remote):
    mirror, contents = fake_remote
    (mirror / "a.bin").write_bytes(contents["a.bin"][:-1] + b"!")
    with pytest.raises(ds.DataNotFoundError, match=r"a\.bin.*MD5 mismatch"):
        ds.download("mnist", tmp_path / "data", progress=False)
    assert list((tmp_path / "data" / "mnist").iterdir()) == []


class _BrokenResponse:
    """A response that delivers one chunk, then fails like a dropped connection."""

    def __init__(self, error):
        self.error, self.calls = error, 0

    def read(self, size):
        self.calls += 1
        if self.calls > 1:
            raise self.error
        return b"x" * size

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@pytest.mark.parametrize("error", [ConnectionResetError("connection reset"),
                                   KeyboardInterrupt()])
def test_interrupted_download_leaves_nothing_behind(tmp_path, fake_remote, monkeypatch, error):
    monkeypatch.setattr(ds, "urlopen", lambda request, timeout: _BrokenResponse(error))
    expected = ds.DataNotFoundError if isinstance(error, OSError) else KeyboardInterrupt
    with pytest.raises(expected):
        ds.download("mnist", tmp_path / "data", progress=False)
    assert list((tmp_path / "data" / "mnist").iterdir()) == []


def test_offline_error_names_every_missing_file(tmp_path, monkeypatch):
    def offline(request, timeout):
        raise urllib.error.URLError("Temporary failure in name resolution")

    monkeypatch.setattr(ds, "urlopen", offline)
    with pytest.raises(ds.DataNotFoundError) as info:
        ds.load("fashion-mnist", tmp_path, progress=False)
    message = str(info.value)
    for file, _, _ in ds.FILES["fashion-mnist"]:
        assert str(tmp_path / "fashion-mnist" / file) in message
    assert "name resolution" in message
    assert ds.MIRRORS["fashion-mnist"][0] in message
    assert list((tmp_path / "fashion-mnist").iterdir()) == []


def test_load_downloads_missing_frey(tmp_path, monkeypatch):
    import scipy.io

    mirror = tmp_path / "mirror"
    mirror.mkdir()
    ff = frey_matrix(seed=1)
    scipy.io.savemat(mirror / "frey_rawface.mat", {"ff": ff})
    data = (mirror / "frey_rawface.mat").read_bytes()
    monkeypatch.setattr(ds, "FILES", {"frey": (("frey_rawface.mat", len(data), md5(data)),)})
    monkeypatch.setattr(ds, "MIRRORS", {"frey": (mirror.as_uri(),)})
    d = ds.load("frey", tmp_path / "data", progress=False)
    assert d.x_train.shape == (1765, 560) and d.x_test.shape == (200, 560)
    np.testing.assert_array_equal(d.x_test[-1], ff[:, -1] / np.float32(255))


def test_download_real_frey_against_published_md5(tmp_path):
    source = DATA_DIR / "frey" / "frey_rawface.mat"
    if not source.is_file():
        pytest.skip(f"{source} not found (set SCRATCHVAE_DATA)")
    folder = ds.download("frey", tmp_path, progress=False, mirrors=source.parent.as_uri())
    assert (folder / "frey_rawface.mat").read_bytes() == source.read_bytes()


def test_checksum_table_matches_real_files():
    checked = 0
    for name in ds.DATASETS:
        for file, size, digest in ds.FILES[name]:
            path = DATA_DIR / name / file
            if path.is_file():
                assert path.stat().st_size == size and md5(path.read_bytes()) == digest
                checked += 1
    if not checked:
        pytest.skip(f"no data files in {DATA_DIR}")


# ---- splits -------------------------------------------------------------------------

def test_train_validation_split_partitions_the_data():
    x = np.arange(100)[:, None] * np.ones((1, 3))
    y = np.arange(100) % 10
    x_tr, y_tr, x_val, y_val = ds.train_validation_split(x, y, 20, np.random.default_rng(0))
    assert x_tr.shape == (80, 3) and x_val.shape == (20, 3)
    ids_tr, ids_val = x_tr[:, 0].astype(int), x_val[:, 0].astype(int)
    assert set(ids_tr).isdisjoint(ids_val) and set(ids_tr) | set(ids_val) == set(range(100))
    assert np.array_equal(y_tr, ids_tr % 10) and np.array_equal(y_val, ids_val % 10)
    assert np.all(np.diff(ids_tr) > 0) and np.all(np.diff(ids_val) > 0)
    again = ds.train_validation_split(x, y, 20, np.random.default_rng(0))
    assert np.array_equal(again[2], x_val)
    other = ds.train_validation_split(x, y, 20, np.random.default_rng(1))
    assert not np.array_equal(other[2], x_val)


def test_train_validation_split_without_labels_and_bad_arguments():
    x = np.zeros((10, 2))
    x_tr, y_tr, x_val, y_val = ds.train_validation_split(x, None, 3, np.random.default_rng(0))
    assert (len(x_tr), len(x_val), y_tr, y_val) == (7, 3, None, None)
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="n_validation must be smaller than the 10"):
        ds.train_validation_split(x, None, 10, rng)
    with pytest.raises(ValueError, match="n_validation must be an integer >= 0"):
        ds.train_validation_split(x, None, -1, rng)
    with pytest.raises(ValueError, match="same number of examples"):
        ds.train_validation_split(x, np.zeros(9), 3, rng)
    with pytest.raises(TypeError, match=r"rng must be a numpy\.random\.Generator"):
        ds.train_validation_split(x, None, 3, 0)


# ---- binarization -------------------------------------------------------------------

def test_binarize_is_a_bernoulli_draw(mnist):
    x = mnist.x_test
    rng = np.random.default_rng(0)
    first, second = ds.binarize(x, rng), ds.binarize(x, rng)
    assert first.dtype == np.float32 and first.shape == x.shape
    assert set(np.unique(first)) == {0.0, 1.0}
    assert not np.array_equal(first, second)
    # The binary mean is a sum of independent Bernoulli(x_i): its standard error is
    # sqrt(sum x_i (1 - x_i)) / N.
    x64 = x.astype(np.float64)
    se = np.sqrt(np.sum(x64 * (1 - x64))) / x.size
    assert abs(first.mean(dtype=np.float64) - x64.mean()) < 4 * se
    # Pixels that are exactly 0 or 1 stay so.
    assert np.all(first[x == 0] == 0) and np.all(first[x == 1] == 1)
    np.testing.assert_array_equal(ds.binarize(x, np.random.default_rng(0)), first)


def test_binarize_per_pixel_frequency():
    x = np.linspace(0, 1, 11, dtype=np.float32)
    draws = ds.binarize(np.broadcast_to(x, (20000, 11)), np.random.default_rng(3))
    freq = draws.mean(axis=0)
    se = np.sqrt(x * (1 - x) / 20000)
    assert np.all(np.abs(freq - x) <= 4 * se + 1e-12)


def test_threshold_and_range_checks():
    x = np.array([[0.0, 0.5, 0.51, 1.0]], dtype=np.float32)
    np.testing.assert_array_equal(ds.threshold(x), [[0, 0, 1, 1]])
    assert ds.threshold(x).dtype == np.float32
    with pytest.raises(ValueError, match=r"x must lie in \[0, 1\]"):
        ds.binarize(x * 255, np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"x must lie in \[0, 1\]"):
        ds.threshold(x - 1)


# ---- synthetic data sets ------------------------------------------------------------

def test_linear_gaussian_matches_its_model():
    data = ds.linear_gaussian(20000, 5, 2, 0.3, np.random.default_rng(0))
    assert data.x.shape == (20000, 5) and data.z.shape == (20000, 2)
    assert data.W.shape == (5, 2) and data.mu.shape == (5,) and data.noise_std == 0.3
    residual = data.x - data.z @ data.W.T - data.mu
    assert abs(residual.std() - 0.3) < 0.01
    # Sample mean and covariance agree with N(mu, W W^T + sigma^2 I) to a few standard errors.
    cov = data.covariance
    se_mean = np.sqrt(np.diag(cov) / 20000)
    assert np.all(np.abs(data.x.mean(axis=0) - data.mu) < 4 * se_mean)
    se_cov = np.sqrt((cov**2 + np.outer(np.diag(cov), np.diag(cov))) / 20000)
    assert np.all(np.abs(np.cov(data.x.T) - cov) < 5 * se_cov)
    again = ds.linear_gaussian(20000, 5, 2, 0.3, np.random.default_rng(0))
    assert np.array_equal(again.x, data.x)


def test_linear_gaussian_bad_arguments():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="noise_std must be a positive number"):
        ds.linear_gaussian(10, 3, 1, 0.0, rng)
    with pytest.raises(ValueError, match="latent_dim must be an integer >= 1"):
        ds.linear_gaussian(10, 3, 0, 0.1, rng)
    with pytest.raises(TypeError, match=r"rng must be a numpy\.random\.Generator"):
        ds.linear_gaussian(10, 3, 1, 0.1, rng=42)


def test_gaussian_blobs():
    x, y = ds.gaussian_blobs(8000, np.random.default_rng(0), n_blobs=4, radius=3.0, std=0.1)
    assert x.shape == (8000, 2) and y.shape == (8000,) and y.dtype == np.int64
    assert set(np.unique(y)) == {0, 1, 2, 3}
    centres = np.array([[3, 0], [0, 3], [-3, 0], [0, -3]], dtype=float)
    for k in range(4):
        assert np.allclose(x[y == k].mean(axis=0), centres[k], atol=0.02)
        assert np.allclose(x[y == k].std(axis=0), 0.1, atol=0.005)
