"""Data sets: MNIST, Fashion-MNIST and Frey Face from their original files, and synthetic sets.

Real data sets are read from the files their authors published, unchanged:

* MNIST and Fashion-MNIST: the four gzipped IDX files
  ``{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz`` (60000 training and 10000 test
  images of 28 x 28 pixels, labels 0..9);
* Frey Face: ``frey_rawface.mat``, a MATLAB v5 file whose variable ``ff`` is a uint8
  array of shape (560, 1965). Each column is one 28 x 20 face stored row by row, so
  ``ff.T.reshape(-1, 28, 20)`` gives upright faces. There is no official test split:
  the last :data:`FREY_N_TEST` = 200 faces are the test set. The faces are frames of one
  video, so a contiguous block keeps near-duplicate neighbouring frames out of the test
  set better than a random split would.

Grey values are scaled to [0, 1] as ``x = pixel / 255`` in float32, one flattened image
per row. Arrays are host NumPy arrays; a model moves them to its device explicitly with
``model.asarray(x)``.

Where the files live: :func:`resolve_data_dir` picks a root folder (``data_dir``, else
``$SCRATCHVAE_DATA``, else ``$XDG_CACHE_HOME/scratchvae`` or ``~/.cache/scratchvae``)
that holds one subfolder per data set (``mnist/``, ``fashion-mnist/``, ``frey/``) with
the original file names. :func:`load` downloads missing files from the public mirrors
in :data:`MIRRORS`, checks them against the MD5 checksums in :data:`FILES` and writes
each file atomically (a temporary file in the same folder, then ``os.replace``), so an
interrupted or corrupted download never leaves a partial file behind.

Every damaged file (bad gzip stream, wrong IDX magic number, truncated data, counts
that do not match) raises :class:`DatasetError` naming the file and what is wrong.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import sys
import zlib
from dataclasses import dataclass
from http.client import HTTPException
from pathlib import Path
from types import MappingProxyType
from urllib.request import Request, urlopen

import numpy as np
from tqdm import tqdm

from .checks import check_choice, check_int, check_unit_interval
from .files import atomic_write

DATASETS = ("mnist", "fashion-mnist", "frey")

#: The original files of each data set: ``(file name, size in bytes, MD5)``.
FILES = MappingProxyType({
    "mnist": (
        ("train-images-idx3-ubyte.gz", 9912422, "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
        ("train-labels-idx1-ubyte.gz", 28881, "d53e105ee54ea40749a09fcbcd1e9432"),
        ("t10k-images-idx3-ubyte.gz", 1648877, "9fb629c4189551a2d022fa330f9573f3"),
        ("t10k-labels-idx1-ubyte.gz", 4542, "ec29112dd5afa0611ce80d1b7f02629c"),
    ),
    "fashion-mnist": (
        ("train-images-idx3-ubyte.gz", 26421880, "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
        ("train-labels-idx1-ubyte.gz", 29515, "25c81989df183df01b3e8a0aad5dffbe"),
        ("t10k-images-idx3-ubyte.gz", 4422102, "bef4ecab320f06d8554ea6380940ec79"),
        ("t10k-labels-idx1-ubyte.gz", 5148, "bb300cfdad3c16e7a12a480ee83cd310"),
    ),
    "frey": (
        ("frey_rawface.mat", 1100584, "5aeb024d42b8a6091f30e5eb18c8a48d"),
    ),
})

#: Base URLs tried in order for each data set; a file's URL is the base plus its name.
MIRRORS = MappingProxyType({
    "mnist": ("https://ossci-datasets.s3.amazonaws.com/mnist/",
              "http://yann.lecun.com/exdb/mnist/"),
    "fashion-mnist": ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
    "frey": ("https://cs.nyu.edu/~roweis/data/",),
})

IMAGE_SHAPES = MappingProxyType({"mnist": (28, 28), "fashion-mnist": (28, 28), "frey": (28, 20)})

IDX_IMAGES_MAGIC = 2051  # 0x0803: unsigned bytes, 3 dimensions
IDX_LABELS_MAGIC = 2049  # 0x0801: unsigned bytes, 1 dimension
_IDX_KINDS = {IDX_IMAGES_MAGIC: "images", IDX_LABELS_MAGIC: "labels"}
_IDX_SPLITS = (("train", 60000), ("t10k", 10000))
N_CLASSES = 10
CLASS_NAMES = MappingProxyType({
    "mnist": tuple(str(d) for d in range(10)),
    "fashion-mnist": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                      "Shirt", "Sneaker", "Bag", "Ankle boot"),
})

FREY_SHAPE = (560, 1965)
FREY_N_TEST = 200

_TIMEOUT_S = 30
_CHUNK = 1 << 16


class DatasetError(ValueError):
    """A data file is damaged or is not the file it should be."""


class DataNotFoundError(FileNotFoundError):
    """Data files are missing and could not be downloaded."""


@dataclass(frozen=True, eq=False)
class Dataset:
    """A data set with its official train/test split.

    Attributes
    ----------
    name : str
        One of :data:`DATASETS`.
    x_train, x_test : numpy.ndarray, shape (N, D), float32
        Flattened images, grey values in [0, 1]; ``D = prod(image_shape)``.
    y_train, y_test : numpy.ndarray, shape (N,), int64, or None
        Class labels 0..9 (``None`` for Frey Face, which has none).
    image_shape : tuple of int
        ``(28, 28)`` or ``(28, 20)``: ``x[i].reshape(image_shape)`` is an upright image.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray | None
    x_test: np.ndarray
    y_test: np.ndarray | None
    image_shape: tuple[int, int]

    @property
    def input_dim(self) -> int:
        """Pixels per image, ``D``."""
        return self.x_train.shape[1]

    def __repr__(self) -> str:
        return (f"Dataset(name={self.name!r}, x_train={self.x_train.shape}, "
                f"x_test={self.x_test.shape}, image_shape={self.image_shape})")


# ---- where the files live -----------------------------------------------------------

def resolve_data_dir(data_dir=None) -> Path:
    """The root folder of the data sets.

    The first of: ``data_dir`` if given, the environment variable ``SCRATCHVAE_DATA`` if
    set and not empty, ``$XDG_CACHE_HOME/scratchvae`` if ``XDG_CACHE_HOME`` is an absolute
    path, else ``~/.cache/scratchvae``. The folder is not created here.
    """
    if data_dir is not None:
        return Path(data_dir).expanduser()
    if os.environ.get("SCRATCHVAE_DATA"):
        return Path(os.environ["SCRATCHVAE_DATA"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(cache) if os.path.isabs(cache) else Path.home() / ".cache"
    return base / "scratchvae"


def _missing_files(name: str, folder: Path) -> list[Path]:
    return [folder / file for file, _, _ in FILES[name] if not (folder / file).is_file()]


def _where_to_get(name: str, folder: Path, missing: list[Path], mirrors) -> str:
    paths = "\n".join(f"  {path}" for path in missing)
    return (f"Put these files of the {name} data set in place:\n{paths}\n"
            f"They can be downloaded from {' or '.join(mirrors)} (their MD5 checksums "
            f"are in scratchvae.datasets.FILES). Or point --data-dir (data_dir= in Python) "
            f"or $SCRATCHVAE_DATA to a folder whose {name}/ subfolder holds them (now: "
            f"{folder.parent}).")


# ---- download -----------------------------------------------------------------------

def _show_progress(progress) -> bool:
    return sys.stderr.isatty() if progress is None else bool(progress)


def _fetch_one(url: str, target: Path, size: int, md5: str, progress: bool) -> None:
    """Download ``url`` to ``target`` with :func:`scratchvae.files.atomic_write`: only a
    file with the expected MD5 is moved into place; any failure, an interrupt included,
    leaves no file behind."""
    def download(out):
        digest = hashlib.md5(usedforsecurity=False)
        request = Request(url, headers={"User-Agent": "scratchvae"})
        with urlopen(request, timeout=_TIMEOUT_S) as response, tqdm(
                total=size, unit="B", unit_scale=True, unit_divisor=1024,
                desc=target.name, disable=not progress) as bar:
            while chunk := response.read(_CHUNK):
                out.write(chunk)
                digest.update(chunk)
                bar.update(len(chunk))
        if digest.hexdigest() != md5:
            raise DatasetError(f"MD5 mismatch: got {digest.hexdigest()}, expected {md5}")

    atomic_write(target, download)


def _fetch(file: str, size: int, md5: str, folder: Path, mirrors, progress: bool) -> list[str]:
    """Try each mirror in turn; return the reasons it failed (empty on success)."""
    reasons = []
    for base in mirrors:
        url = base.rstrip("/") + "/" + file
        try:
            _fetch_one(url, folder / file, size, md5, progress)
            return []
        except (OSError, HTTPException, DatasetError) as err:
            reasons.append(f"{url}: {err}")
    return reasons


def _download(name: str, folder: Path, progress, mirrors) -> None:
    if mirrors is None:
        mirrors = MIRRORS[name]
    mirrors = (mirrors,) if isinstance(mirrors, str) else tuple(mirrors)
    folder.mkdir(parents=True, exist_ok=True)
    for file, size, md5 in FILES[name]:
        if (folder / file).is_file():
            continue
        reasons = _fetch(file, size, md5, folder, mirrors, _show_progress(progress))
        if reasons:
            failed = "\n".join(f"  {reason}" for reason in reasons)
            raise DataNotFoundError(
                f"could not download {file} of the {name} data set:\n{failed}\n"
                + _where_to_get(name, folder, _missing_files(name, folder), mirrors))


def download(name: str, data_dir=None, progress=None, mirrors=None) -> Path:
    """Download the files of data set ``name`` that are not yet in ``data_dir/name/``.

    Each file is fetched with :mod:`urllib` from the first of ``mirrors`` that works,
    checked against its MD5 in :data:`FILES`, and written atomically.

    Parameters
    ----------
    name : str
        One of :data:`DATASETS`.
    data_dir : path-like, optional
        Root folder (see :func:`resolve_data_dir`).
    progress : bool, optional
        Show a progress bar; ``None``: only when stderr is a terminal.
    mirrors : str or sequence of str, optional
        Base URLs to try in order instead of ``MIRRORS[name]`` (e.g. a local mirror,
        ``"file:///data/mirror/mnist/"``).

    Returns
    -------
    folder : pathlib.Path
        ``data_dir/name``, now holding every file of the data set.

    Raises
    ------
    DataNotFoundError
        If a file cannot be obtained from any mirror (offline, all mirrors down, or a
        wrong checksum). The message lists the full path of every missing file.
    """
    check_choice(name, "name", DATASETS)
    folder = resolve_data_dir(data_dir) / name
    _download(name, folder, progress, mirrors)
    return folder


# ---- file formats -------------------------------------------------------------------

def _gunzip(path: Path) -> bytes:
    raw = path.read_bytes()
    try:
        return gzip.decompress(raw)
    except EOFError as err:
        raise DatasetError(f"{path}: gzip stream is truncated ({err})") from err
    except (OSError, zlib.error) as err:
        raise DatasetError(f"{path}: not a valid gzip file ({err})") from err


def read_idx(path, magic: int, shape=None) -> np.ndarray:
    """Read a gzipped IDX file of unsigned bytes (the MNIST format).

    The file is a big-endian int32 magic number (:data:`IDX_IMAGES_MAGIC` = 2051 for
    images, :data:`IDX_LABELS_MAGIC` = 2049 for labels; its last byte is the number of
    dimensions), one uint32 size per dimension, then the bytes in C order.

    Parameters
    ----------
    path : path-like
    magic : int
        The magic number the file must carry.
    shape : tuple of int, optional
        The shape the header must announce, e.g. ``(60000, 28, 28)``.

    Returns
    -------
    data : numpy.ndarray, uint8, the shape from the header (read-only)

    Raises
    ------
    DatasetError
        On a bad gzip stream, a wrong magic number, a shape other than ``shape``, or a
        data length that does not match the header.
    """
    path = Path(path)
    data = _gunzip(path)
    if len(data) < 4:
        raise DatasetError(f"{path}: {len(data)} bytes are too few for an IDX header")
    found = int.from_bytes(data[:4], "big")
    if found != magic:
        kind = _IDX_KINDS.get(found, "not an IDX file of unsigned bytes")
        raise DatasetError(f"{path}: IDX magic number is {found} ({kind}), expected "
                           f"{magic} ({_IDX_KINDS[magic]})")
    ndim = magic & 0xFF
    offset = 4 + 4 * ndim
    if len(data) < offset:
        raise DatasetError(f"{path}: IDX header is truncated ({len(data)} bytes, "
                           f"{offset} needed for {ndim} dimensions)")
    dims = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    if shape is not None and dims != tuple(shape):
        raise DatasetError(f"{path}: header announces shape {dims}, expected {tuple(shape)}")
    size, found_size = math.prod(dims), len(data) - offset
    if found_size != size:
        problem = "truncated" if found_size < size else "longer than its header says"
        raise DatasetError(f"{path}: data is {problem}: the header announces shape {dims} "
                           f"({size} bytes) but {found_size} bytes follow it")
    return np.frombuffer(data, np.uint8, count=size, offset=offset).reshape(dims)


def _to_unit_interval(images: np.ndarray) -> np.ndarray:
    """uint8 images (N, ...) -> float32 (N, D) with x = pixel / 255."""
    flat = images.reshape(images.shape[0], -1)
    return np.divide(flat, np.float32(255), dtype=np.float32)


def read_idx_split(images_path, labels_path, n: int | None = None):
    """Read one split of an MNIST-format data set: an images file and its labels file.

    Parameters
    ----------
    images_path, labels_path : path-like
        Gzipped IDX files of 28 x 28 images and of their labels.
    n : int, optional
        The number of examples both files must hold.

    Returns
    -------
    x : numpy.ndarray, shape (n, 784), float32 in [0, 1]
    y : numpy.ndarray, shape (n,), int64 in 0..9
    """
    labels = read_idx(labels_path, IDX_LABELS_MAGIC, None if n is None else (n,))
    if labels.size and labels.max() >= N_CLASSES:
        raise DatasetError(f"{labels_path}: labels must lie in 0..{N_CLASSES - 1}, "
                           f"found {labels.max()}")
    images = read_idx(images_path, IDX_IMAGES_MAGIC)
    if images.shape[1:] != IMAGE_SHAPES["mnist"]:
        raise DatasetError(f"{images_path}: images are {images.shape[1:]}, "
                           f"expected {IMAGE_SHAPES['mnist']}")
    if images.shape[0] != labels.shape[0]:
        raise DatasetError(f"{images_path}: holds {images.shape[0]} images but "
                           f"{labels_path} holds {labels.shape[0]} labels")
    return _to_unit_interval(images), labels.astype(np.int64)


def read_frey(path) -> np.ndarray:
    """Read ``frey_rawface.mat``: the 1965 faces as uint8 images of shape (1965, 28, 20).

    The variable ``ff`` has shape (560, 1965), one face per column stored row by row,
    so the images are ``ff.T.reshape(-1, 28, 20)``.
    """
    # SciPy is needed only for this MATLAB file, so it is imported here.
    import scipy.io

    path = Path(path)
    with path.open("rb") as f:
        try:
            contents = scipy.io.loadmat(f)
        except Exception as err:  # SciPy reports damaged files with several error types
            raise DatasetError(f"{path}: not a readable MATLAB file "
                               f"({type(err).__name__}: {err})") from err
    if "ff" not in contents:
        names = sorted(k for k in contents if not k.startswith("__"))
        raise DatasetError(f"{path}: has no variable 'ff' (found {names})")
    ff = contents["ff"]
    if ff.dtype != np.uint8 or ff.shape != FREY_SHAPE:
        raise DatasetError(f"{path}: variable 'ff' is {ff.dtype} of shape {ff.shape}, "
                           f"expected uint8 of shape {FREY_SHAPE}")
    return ff.T.reshape(-1, *IMAGE_SHAPES["frey"])


# ---- loading ------------------------------------------------------------------------

def _load_idx_dataset(name: str, folder: Path) -> Dataset:
    (x_train, y_train), (x_test, y_test) = (
        read_idx_split(folder / f"{split}-images-idx3-ubyte.gz",
                       folder / f"{split}-labels-idx1-ubyte.gz", n)
        for split, n in _IDX_SPLITS)
    return Dataset(name, x_train, y_train, x_test, y_test, IMAGE_SHAPES[name])


def _load_frey(folder: Path) -> Dataset:
    x = _to_unit_interval(read_frey(folder / FILES["frey"][0][0]))
    return Dataset("frey", x[:-FREY_N_TEST], None, x[-FREY_N_TEST:], None,
                   IMAGE_SHAPES["frey"])


def load(name: str, data_dir=None, download: bool = True, progress=None) -> Dataset:
    """Load a data set with its train/test split, downloading missing files first.

    Parameters
    ----------
    name : str
        ``"mnist"``, ``"fashion-mnist"`` or ``"frey"``.
    data_dir : path-like, optional
        Root folder holding ``name/`` (see :func:`resolve_data_dir`).
    download : bool
        Fetch missing files from :data:`MIRRORS`; if False, missing files raise.
    progress : bool, optional
        Progress bar for downloads; ``None``: only when stderr is a terminal.

    Returns
    -------
    Dataset
        MNIST and Fashion-MNIST: 60000 training and 10000 test images, D = 784.
        Frey Face: the first 1765 faces for training, the last 200 for testing, D = 560.

    Raises
    ------
    DataNotFoundError
        If files are missing and ``download`` is False or the download fails; the
        message names the full path of every missing file and where to get it.
    DatasetError
        If a file is damaged.
    """
    check_choice(name, "name", DATASETS)
    folder = resolve_data_dir(data_dir) / name
    missing = _missing_files(name, folder)
    if missing and not download:
        raise DataNotFoundError(f"the {name} data set is not in {folder}.\n"
                                + _where_to_get(name, folder, missing, MIRRORS[name]))
    if missing:
        _download(name, folder, progress, None)
    return _load_frey(folder) if name == "frey" else _load_idx_dataset(name, folder)


# ---- splits and binarization --------------------------------------------------------

def _check_rng(rng) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator (np.random.default_rng(seed)), "
                        f"got {type(rng).__name__}")
    return rng


def train_validation_split(x, y, n_validation: int, rng: np.random.Generator):
    """Hold out ``n_validation`` random examples of ``(x, y)`` for validation.

    Both parts keep the original order of their examples.

    Parameters
    ----------
    x : numpy.ndarray, shape (N, ...)
    y : numpy.ndarray, shape (N,), or None
    n_validation : int
        ``0 <= n_validation < N``.
    rng : numpy.random.Generator
        Chooses the validation examples.

    Returns
    -------
    x_train, y_train, x_val, y_val
        ``y_train`` and ``y_val`` are None when ``y`` is None.
    """
    rng = _check_rng(rng)
    n = x.shape[0]
    n_validation = check_int(n_validation, "n_validation", minimum=0)
    if n_validation >= n:
        raise ValueError(f"n_validation must be smaller than the {n} examples, "
                         f"got {n_validation}")
    if y is not None and y.shape[0] != n:
        raise ValueError(f"x and y must hold the same number of examples, "
                         f"got {n} and {y.shape[0]}")
    is_val = np.zeros(n, dtype=bool)
    is_val[rng.permutation(n)[:n_validation]] = True
    if y is None:
        return x[~is_val], None, x[is_val], None
    return x[~is_val], y[~is_val], x[is_val], y[is_val]


def binarize(x, rng: np.random.Generator) -> np.ndarray:
    r"""Stochastic binarization: a fresh draw :math:`x_{bin} \sim \text{Bernoulli}(x)`.

    .. math:: x_{bin,i} = [u_i < x_i], \qquad u_i \sim U[0, 1),
              \qquad P(x_{bin,i} = 1) = x_i

    Call it once per epoch for *dynamic* binarization (a new binary data set each
    epoch, which regularizes), or once before training for a *fixed* binarization.

    x: float array in [0, 1], any shape. Returns float32 of the same shape, in {0, 1}.
    """
    rng = _check_rng(rng)
    check_unit_interval(x)
    u = rng.random(x.shape, dtype=np.float32)
    return (u < x).astype(np.float32)


def threshold(x, level: float = 0.5) -> np.ndarray:
    """Deterministic binarization: ``1`` where ``x > level``, else ``0`` (float32)."""
    check_unit_interval(x)
    return (x > level).astype(np.float32)


# ---- synthetic data sets ------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class LinearGaussian:
    r"""Data from a linear-Gaussian (probabilistic PCA) model and its true parameters.

    .. math:: x = W z + \mu + \sigma \varepsilon, \quad z \sim \mathcal N(0, I_k),
              \quad \varepsilon \sim \mathcal N(0, I_d)
              \quad\Rightarrow\quad x \sim \mathcal N(\mu, W W^T + \sigma^2 I_d)

    Attributes
    ----------
    x : numpy.ndarray, shape (n, d), float64
    z : numpy.ndarray, shape (n, k), float64
        The latent codes that generated ``x``.
    W : numpy.ndarray, shape (d, k)
    mu : numpy.ndarray, shape (d,)
    noise_std : float
        :math:`\sigma`.
    """

    x: np.ndarray
    z: np.ndarray
    W: np.ndarray
    mu: np.ndarray
    noise_std: float

    @property
    def covariance(self) -> np.ndarray:
        r"""The marginal covariance :math:`W W^T + \sigma^2 I`, shape (d, d)."""
        return self.W @ self.W.T + self.noise_std**2 * np.eye(self.W.shape[0])


def linear_gaussian(n: int, data_dim: int, latent_dim: int, noise_std: float,
                    rng: np.random.Generator) -> LinearGaussian:
    """Draw ``n`` points from a random linear-Gaussian model (see :class:`LinearGaussian`).

    The entries of ``W`` and ``mu`` are standard normal draws; ``noise_std > 0``.
    """
    rng = _check_rng(rng)
    n = check_int(n, "n")
    data_dim, latent_dim = check_int(data_dim, "data_dim"), check_int(latent_dim, "latent_dim")
    if not (math.isfinite(noise_std) and noise_std > 0):
        raise ValueError(f"noise_std must be a positive number, got {noise_std!r}")
    W = rng.standard_normal((data_dim, latent_dim))
    mu = rng.standard_normal(data_dim)
    z = rng.standard_normal((n, latent_dim))
    x = z @ W.T + mu + noise_std * rng.standard_normal((n, data_dim))
    return LinearGaussian(x, z, W, mu, float(noise_std))


def gaussian_blobs(n: int, rng: np.random.Generator, n_blobs: int = 8,
                   radius: float = 2.0, std: float = 0.2):
    r"""A 2-D toy set: a mixture of ``n_blobs`` equally likely Gaussians on a circle.

    .. math:: y \sim U\{0, \dots, K-1\}, \quad
              x \sim \mathcal N\big(r(\cos\tfrac{2\pi y}{K}, \sin\tfrac{2\pi y}{K}),
              s^2 I_2\big)

    Returns
    -------
    x : numpy.ndarray, shape (n, 2), float64
    y : numpy.ndarray, shape (n,), int64
        The blob each point came from.
    """
    rng = _check_rng(rng)
    n, n_blobs = check_int(n, "n"), check_int(n_blobs, "n_blobs")
    if not (math.isfinite(std) and std > 0):
        raise ValueError(f"std must be a positive number, got {std!r}")
    y = rng.integers(0, n_blobs, size=n)
    angle = 2 * np.pi * y / n_blobs
    centres = radius * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    return centres + std * rng.standard_normal((n, 2)), y.astype(np.int64)
