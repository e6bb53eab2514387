"""What every scratchvae model shares: backend, device, dtype, generator, parameters,
and the checks that turn bad input into clear errors."""

from __future__ import annotations

import functools

from .activations import ACTIVATIONS
from .backend import (
    array_namespace,
    asarray,
    backend_name,
    check_backend,
    device,
    get_dtype,
    get_namespace,
    normalize_device,
    on_device,
)
from .checks import check_choice, check_int
from .decoder import check_likelihood
from .layers import INITS
from .parameters import Parameters
from .rng import Generator


def on_model_device(method):
    """Run a model method with the model's device current (CuPy allocates there)."""
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with on_device(self.xp, self.device):
            return method(self, *args, **kwargs)

    return wrapper


class Model:
    """Base class: owns the flat parameter/gradient buffers and the generator.

    Subclasses list their layers in ``self.modules`` and extra parameter shapes in
    ``extra_shapes``, then call :meth:`_build`.

    A model is always built on the host: its initial parameters are drawn with NumPy's
    PCG64 from ``seed`` and then moved to ``backend`` and ``device``, so the same seed
    gives bit-identical initial parameters on the CPU and on every GPU. (The noise drawn
    during training comes from the backend's own generator, see :mod:`scratchvae.rng`.)
    """

    def __init__(self, input_dim: int, backend: str, dtype: str, seed: int, device=None):
        self.input_dim = check_int(input_dim, "input_dim")
        check_backend(backend)
        # the target first: a missing GPU or a bad device fails before any work is done
        self._target = (backend, normalize_device(backend, device))
        self.xp = get_namespace("numpy")
        self.backend, self.device = "numpy", "cpu"
        self.dtype_name = dtype
        self.dtype = get_dtype(self.xp, dtype)
        self.seed = check_int(seed, "seed", minimum=0)
        self.rng = Generator(self.seed)
        self._cache = None

    def _architecture(self, hidden_dims, latent_dim, likelihood, activation, init) -> None:
        """Check and keep the arguments every autoencoder shares."""
        self.hidden_dims = tuple(check_int(h, "hidden_dims entries") for h in hidden_dims)
        self.latent_dim = check_int(latent_dim, "latent_dim")
        self.likelihood = check_likelihood(likelihood)
        self.activation = check_choice(activation, "activation", ACTIVATIONS)
        self.init = check_choice(init, "init", INITS)

    # ---- parameters -------------------------------------------------------------
    def _build(self, modules: list, extra_shapes: dict | None = None) -> None:
        self.modules = modules
        shapes = {}
        for m in modules:
            shapes.update(m.param_shapes())
        shapes.update(extra_shapes or {})
        self._params = Parameters.zeros(shapes, self.xp, self.dtype, self.device)
        self._grads = self._params.zeros_like()
        self._bind()
        for m in modules:
            m.initialize(self.rng)
        if self._target[0] != "numpy":
            self.to(*self._target)
        del self._target

    @on_model_device
    def _bind(self) -> None:
        for m in self.modules:
            m.bind(self._params, self._grads)

    @property
    def params(self) -> Parameters:
        """Live parameter arrays, ``name -> array`` (views into ``params.flat``)."""
        return self._params

    @property
    def grads(self) -> Parameters:
        """Gradients written by :meth:`backward`; same names and shapes as :attr:`params`."""
        return self._grads

    def n_params(self) -> int:
        return int(self._params.flat.shape[0])

    # ---- backends ---------------------------------------------------------------
    def to(self, backend: str, device=None):
        """Move parameters, gradients and generator to ``backend`` (and ``device``).

        ``device``: ``None`` (the backend's default), a GPU index or ``cupy.cuda.Device``
        for ``"cupy"``, a device (name) of ``"array_api_strict"``. Returns ``self``.
        Arrays made before the move stay where they were; convert data with
        :meth:`asarray`.
        """
        check_backend(backend)
        xp = get_namespace(backend)
        device = normalize_device(backend, device)
        self._params = self._params.to(xp, device)
        self._grads = self._grads.to(xp, device)
        self.xp, self.backend, self.device = xp, backend, device
        self.dtype = get_dtype(xp, self.dtype_name)
        self.rng = self.rng.to(backend, device)
        self._cache = None
        self._bind()
        return self

    def asarray(self, x):
        """Host data (NumPy array, list) as an array of the model's backend, device and dtype.

        This is the explicit host -> device step; the model's methods never copy
        silently.
        """
        return asarray(x, self.xp, dtype=self.dtype, device=self.device)

    # ---- input checks -----------------------------------------------------------
    def _check_array(self, a, name: str, shape: tuple, check_finite: bool = True):
        """``a`` must be a floating array of the model's backend, device and dtype,
        with exactly ``shape`` (``None`` entries match any size)."""
        try:
            xp = array_namespace(a)
        except TypeError:
            raise TypeError(
                f"{name} must be an array of the model's backend {self.backend!r}, got "
                f"{type(a).__name__}; convert host data with model.asarray({name})"
            ) from None
        if xp is not self.xp:
            raise TypeError(
                f"{name} is a {backend_name(xp)!r} array but the model lives on "
                f"{self.backend!r}; convert explicitly with model.asarray({name}) "
                f"(or move the model with model.to(...))"
            )
        if device(a) != self.device:
            raise ValueError(
                f"{name} is on device {device(a)!r} but the model is on {self.device!r}; "
                f"convert explicitly with model.asarray({name})"
            )
        if not xp.isdtype(a.dtype, "real floating"):
            raise TypeError(
                f"{name} must be a floating array ({self.dtype_name}), got dtype {a.dtype}; "
                f"scale integer images to [0, 1] first"
            )
        if a.dtype != self.dtype:
            raise TypeError(
                f"{name} has dtype {a.dtype} but the model computes in {self.dtype_name}; "
                f"convert with model.asarray({name})"
            )
        ok = len(a.shape) == len(shape) and all(
            want is None or got == want for got, want in zip(a.shape, shape, strict=True))
        if not ok:
            want = "(" + ", ".join("n" if s is None else str(s) for s in shape) + ")"
            raise ValueError(f"{name} must have shape {want}, got {tuple(a.shape)}")
        if a.shape[0] == 0:
            raise ValueError(f"{name} must hold at least one example, got shape {tuple(a.shape)}")
        if check_finite and not bool(xp.all(xp.isfinite(a))):
            raise ValueError(f"{name} contains NaN or inf values")
        return a

    def check_input(self, x, check_values: bool = True):
        """``x`` if it is a batch this model can take, else a clear error.

        It must be an array of the model's backend, device and dtype of shape
        (n, input_dim), n >= 1; with ``check_values``, also finite and, for the Bernoulli
        likelihood, in [0, 1] (reading values back synchronizes a GPU, so a training
        loop that checked its data once turns this off).
        """
        x = self._check_array(x, "x", (None, self.input_dim), check_values)
        if check_values and self.likelihood == "bernoulli":
            if bool(self.xp.any((x < 0) | (x > 1))):
                raise ValueError("x must lie in [0, 1] for likelihood='bernoulli' "
                                 "(scale grey values by 1/255)")
        return x

    @on_model_device
    def encode(self, x):
        """x: (n, D) -> the encoder's output: ``(mu, logvar)``, each (n, latent_dim), for
        a VAE; the codes z, (n, latent_dim), for an autoencoder."""
        x = self.check_input(x)
        self.clear_cache()
        return self.encoder.forward(x)

    @on_model_device
    def decode(self, z):
        """z: (n, latent_dim) -> the likelihood's parameters at z, a
        :class:`~scratchvae.decoder.DecoderOutput` (``mean``, and ``logits`` or
        ``logvar``)."""
        z = self._check_array(z, "z", (None, self.latent_dim))
        self.clear_cache()
        return self.decoder.split(self.decoder.forward(z))

    @on_model_device
    def sample(self, n: int, z=None):
        """Decoder means E[x|z] at ``n`` draws z ~ N(0, I) (or at the given ``z``): (n, D)."""
        n = check_int(n, "n")
        if z is None:
            z = self.rng.normal((n, self.latent_dim), self.dtype)
        z = self._check_array(z, "z", (n, self.latent_dim))
        self.clear_cache()
        return self.decoder.mean(self.decoder.forward(z))

    def reseed(self, seed: int) -> None:
        """Restart the model's generator from ``seed`` (on its backend and device)."""
        self.rng = Generator(check_int(seed, "seed", minimum=0), self.backend, self.device)

    def clear_cache(self) -> None:
        """Forget what the last :meth:`loss` kept for :meth:`backward` (a forward pass
        for another purpose overwrote the layers' caches: a ``backward`` now raises)."""
        self._cache = None

    def _backward_cache(self):
        if self._cache is None:
            raise RuntimeError("call model.loss(x) before model.backward()")
        cache, self._cache = self._cache, None
        return cache
