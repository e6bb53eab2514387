"""An explicit random generator that draws on a model's backend, device and dtype.

There is no global random state anywhere in scratchvae: every model owns a
:class:`Generator`, seeded at construction, and every random draw goes through it.
On ``"numpy"`` and ``"array_api_strict"`` the bits come from NumPy's PCG64 (the strict
draws are made on the host and moved to the device explicitly); on ``"cupy"`` they
come from CuPy's own generator on the GPU. Draws are made in float64 and rounded to the
requested dtype, so a float32 and a float64 model with the same seed start from the same
numbers (up to rounding) and see the same noise.
"""

from __future__ import annotations

import json

import numpy as np

from .backend import asarray, get_namespace


class Generator:
    """Seeded random numbers for one backend and device.

    Parameters
    ----------
    seed : int
        Seed of the bit generator.
    backend : str
        ``"numpy"``, ``"cupy"`` or ``"array_api_strict"``.
    device : optional
        Device of the backend the draws land on (``None``: the default device).
    """

    def __init__(self, seed: int, backend: str = "numpy", device=None):
        self.xp = get_namespace(backend)
        self.backend = backend
        self.device = device
        if backend == "cupy":
            import cupy

            self._source = cupy.random.default_rng(seed)
        else:
            self._source = np.random.default_rng(seed)

    def _to_device(self, draws, dtype):
        """Float64 ``draws`` rounded to ``dtype`` on the generator's device."""
        if self.backend == "array_api_strict":  # host draws, moved explicitly
            return asarray(draws, self.xp, dtype=dtype, device=self.device)
        return draws.astype(dtype, copy=False)  # NumPy on the host, CuPy on the GPU

    def normal(self, shape, dtype):
        """Standard normal draws of ``shape`` in ``dtype`` (a dtype of the backend)."""
        return self._to_device(self._source.standard_normal(shape), dtype)

    def uniform(self, shape, dtype, low: float = 0.0, high: float = 1.0):
        """Uniform draws on ``[low, high)`` of ``shape`` in ``dtype``."""
        u = self._source.random(shape)
        if (low, high) != (0.0, 1.0):
            u = low + (high - low) * u
        return self._to_device(u, dtype)

    def permutation(self, n: int) -> np.ndarray:
        """A random permutation of ``range(n)`` as a host NumPy array (for shuffling)."""
        if self.backend == "cupy":  # CuPy's Generator has no permutation(): sort uniforms
            import cupy

            return cupy.argsort(self._source.random(n)).get()
        return self._source.permutation(n)

    def spawn_seed(self) -> int:
        """A fresh integer seed drawn from this generator (to seed a derived one)."""
        if self.backend == "cupy":
            return int(self._source.integers(0, 2**31 - 1, size=1).get()[0])
        return int(self._source.integers(0, 2**63 - 1))

    def to(self, backend: str, device=None) -> Generator:
        """This generator on another backend/device.

        Between ``"numpy"`` and ``"array_api_strict"`` the bit stream is shared and
        continues unchanged; to or from ``"cupy"`` a new stream is seeded from this one.
        """
        new = Generator.__new__(Generator)
        new.xp, new.backend, new.device = get_namespace(backend), backend, device
        if "cupy" in (backend, self.backend):
            import cupy

            seed = self.spawn_seed()
            new._source = (cupy.random.default_rng(seed) if backend == "cupy"
                           else np.random.default_rng(seed))
        else:
            new._source = self._source
        return new

    def get_state(self) -> str:
        """The bit generator's state as a JSON string (CPU backends only)."""
        if self.backend == "cupy":
            raise NotImplementedError("saving the state of CuPy's generator is not supported")
        return json.dumps(self._source.bit_generator.state)

    def set_state(self, state: str) -> None:
        """Restore a state written by :meth:`get_state`."""
        if self.backend == "cupy":
            raise NotImplementedError("restoring the state of CuPy's generator is not supported")
        self._source.bit_generator.state = json.loads(state)

    def __repr__(self) -> str:
        return f"Generator(backend={self.backend!r}, device={self.device!r})"

