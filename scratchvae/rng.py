"""An explicit random generator that draws on a model's backend, device and dtype.

There is no global random state anywhere in scratchvae: every model owns a
:class:`Generator`, seeded at construction, and every random draw goes through it.
On ``"numpy"`` and ``"array_api_strict"`` the bits come from NumPy's PCG64 (the strict
draws are made on the host and moved to the device explicitly); on ``"cupy"`` they
come from CuPy's own generator on the GPU. Draws are made in float64 and rounded to the
requested dtype, so a float32 and a float64 model with the same seed start from the same
numbers (up to rounding) and see the same noise.

Reproducibility
---------------
* NumPy and the strict stand-in: a seed gives the same numbers on every machine, and
  :meth:`Generator.get_state` / :meth:`Generator.set_state` save and restore the exact
  PCG64 state.
* CuPy: CuPy's generator (XORWOW, one cuRAND state per GPU thread) keeps its state in GPU
  memory with no public API to read it, and the number of states depends on the GPU's
  number of multiprocessors: the same seed gives the same stream on the same GPU model
  with the same CuPy version, and a different stream on another GPU model. Saving the
  state therefore restarts the stream from a seed drawn from it and stores that seed
  (public API only); a run that saves every epoch draws the same numbers whether it was
  interrupted and resumed or not.
* Across devices: a state saved on one backend restores on any other. Where the kinds
  differ (a PCG64 state on a GPU, a CuPy seed on the CPU) the new stream is seeded from
  the saved state: deterministic, but not the stream the other device would have drawn.
"""

from __future__ import annotations

import json

import numpy as np

from .backend import asarray, check_backend, get_namespace, normalize_device, on_device


class Generator:
    """Seeded random numbers for one backend and device.

    Parameters
    ----------
    seed : int
        Seed of the bit generator.
    backend : str
        ``"numpy"``, ``"cupy"`` or ``"array_api_strict"``.
    device : optional
        Device of the backend the draws land on (``None``: the default device; an ``int``
        GPU index or a ``cupy.cuda.Device`` for CuPy), see
        :func:`scratchvae.backend.normalize_device`.
    """

    def __init__(self, seed: int, backend: str = "numpy", device=None):
        self.backend = check_backend(backend)
        self.xp = get_namespace(backend)
        self.device = normalize_device(backend, device)
        self._source = self._new_source(seed)

    def _new_source(self, seed: int):
        """A fresh bit source seeded with ``seed``, living on this generator's device."""
        if self.backend == "cupy":
            import cupy

            with self.device:  # cuRAND's states are allocated on the current GPU
                return cupy.random.default_rng(seed)
        return np.random.default_rng(seed)

    def _to_device(self, draws, dtype):
        """Float64 ``draws`` rounded to ``dtype`` on the generator's device."""
        if self.backend == "array_api_strict":  # host draws, moved explicitly
            return asarray(draws, self.xp, dtype=dtype, device=self.device)
        return draws.astype(dtype, copy=False)  # NumPy on the host, CuPy on the GPU

    def normal(self, shape, dtype):
        """Standard normal draws of ``shape`` in ``dtype`` (a dtype of the backend)."""
        with on_device(self.xp, self.device):
            return self._to_device(self._source.standard_normal(shape), dtype)

    def uniform(self, shape, dtype, low: float = 0.0, high: float = 1.0):
        """Uniform draws on ``[low, high)`` of ``shape`` in ``dtype``."""
        with on_device(self.xp, self.device):
            u = self._source.random(shape)
            if (low, high) != (0.0, 1.0):
                u = low + (high - low) * u
            return self._to_device(u, dtype)

    def permutation(self, n: int):
        """A random permutation of ``range(n)``: an integer array on the generator's device
        (a NumPy array on ``"numpy"``), ready to index arrays that live there."""
        with on_device(self.xp, self.device):
            if self.backend == "cupy":  # CuPy's Generator has no permutation(): sort uniforms
                import cupy

                return cupy.argsort(self._source.random(n))
            order = self._source.permutation(n)
            if self.backend == "array_api_strict":
                return asarray(order, self.xp, device=self.device)
            return order

    def spawn_seed(self) -> int:
        """A fresh integer seed drawn from this generator (to seed a derived one)."""
        if self.backend == "cupy":
            with self.device:
                return int(self._source.integers(0, 2**31 - 1, size=1).get()[0])
        return int(self._source.integers(0, 2**63 - 1))

    def to(self, backend: str, device=None) -> Generator:
        """This generator on another backend/device.

        Between ``"numpy"`` and ``"array_api_strict"`` the bit stream is shared and
        continues unchanged; to or from ``"cupy"`` a new stream is seeded from this one.
        """
        new = Generator.__new__(Generator)
        new.backend = check_backend(backend)
        new.xp, new.device = get_namespace(backend), normalize_device(backend, device)
        if "cupy" in (backend, self.backend):
            new._source = new._new_source(self.spawn_seed())
        else:
            new._source = self._source
        return new

    def get_state(self) -> str:
        """The generator's state as a JSON string.

        NumPy and the strict stand-in: the exact PCG64 state, and nothing changes. CuPy:
        the stream is restarted from a seed drawn from it, and the state is that seed
        (see the module's notes on reproducibility).
        """
        if self.backend == "cupy":
            seed = self.spawn_seed()
            self._source = self._new_source(seed)
            return json.dumps({"kind": "seed", "seed": seed})
        return json.dumps({"kind": "pcg64", "state": self._source.bit_generator.state})

    def set_state(self, state: str) -> None:
        """Restore a state written by :meth:`get_state` on any backend.

        The same kind of generator continues exactly; otherwise the stream is seeded
        deterministically from the saved state.
        """
        try:
            saved = json.loads(state)
            if "bit_generator" in saved:  # the bare PCG64 dict of format-1 checkpoints
                saved = {"kind": "pcg64", "state": saved}
            kind = saved["kind"]
            if kind == "seed":
                seed = int(saved["seed"])
            elif kind == "pcg64":
                host = np.random.default_rng()
                host.bit_generator.state = saved["state"]
                if self.backend != "cupy":
                    self._source = host
                    return
                seed = int(host.integers(0, 2**63 - 1))
            else:
                raise ValueError(f"unknown kind {kind!r}")
        except (ValueError, KeyError, TypeError) as err:
            raise ValueError(f"state is not a generator state written by "
                             f"Generator.get_state ({type(err).__name__}: {err})") from None
        self._source = self._new_source(seed)

    def __repr__(self) -> str:
        return f"Generator(backend={self.backend!r}, device={self.device!r})"
