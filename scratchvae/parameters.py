"""Parameters stored as named views into one flat buffer.

A model with ten weight arrays keeps them all in one contiguous vector, so that an
optimizer step is a handful of vectorized operations on that vector instead of a
Python loop over arrays. ``params["enc.0.W"]`` is a live view: writing into it writes
into the buffer, and an optimizer updating the buffer updates every view.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from .backend import array_namespace, asarray, device, on_device, to_numpy


class Parameters(Mapping):
    """A read-only mapping ``name -> array view`` over one flat buffer ``.flat``.

    Parameters
    ----------
    shapes : dict[str, tuple[int, ...]]
        Name and shape of each array, in storage order.
    flat : array, shape (n,)
        The buffer, ``n = sum(prod(shape))``.
    """

    def __init__(self, shapes: dict, flat):
        self.shapes = {name: tuple(shape) for name, shape in shapes.items()}
        size = sum(math.prod(s) for s in self.shapes.values())
        if flat.shape != (size,):
            raise ValueError(f"flat must have shape ({size},), got {tuple(flat.shape)}")
        xp = array_namespace(flat)
        self.flat = flat
        self._views = {}
        start = 0
        for name, shape in self.shapes.items():
            stop = start + math.prod(shape)
            self._views[name] = xp.reshape(flat[start:stop], shape)
            start = stop

    @classmethod
    def zeros(cls, shapes: dict, xp, dtype, device=None) -> Parameters:
        """A zero-filled buffer for ``shapes`` on ``xp``'s ``device``."""
        size = sum(math.prod(s) for s in shapes.values())
        with on_device(xp, device):
            return cls(shapes, xp.zeros(size, dtype=dtype, device=device))

    @classmethod
    def from_arrays(cls, arrays: dict) -> Parameters:
        """Copy a dict of same-backend arrays into a new flat buffer."""
        if not arrays:
            raise ValueError("arrays must hold at least one array")
        xp = array_namespace(*arrays.values())
        first = next(iter(arrays.values()))
        flat = xp.concat([xp.reshape(a, (-1,)) for a in arrays.values()])
        flat = xp.astype(flat, first.dtype)
        return cls({k: tuple(a.shape) for k, a in arrays.items()}, flat)

    def zeros_like(self) -> Parameters:
        """A zero buffer with the same names, shapes, dtype and device."""
        xp = array_namespace(self.flat)
        with on_device(xp, device(self.flat)):
            return Parameters(self.shapes, xp.zeros_like(self.flat))

    def to(self, xp, device=None) -> Parameters:
        """A copy of this buffer on another backend/device (an explicit crossing)."""
        flat = asarray(to_numpy(self.flat), xp, device=device)
        return Parameters(self.shapes, flat)

    def __getitem__(self, name):
        return self._views[name]

    def __iter__(self):
        return iter(self._views)

    def __len__(self):
        return len(self._views)

    def __repr__(self) -> str:
        items = ", ".join(f"{k}: {s}" for k, s in self.shapes.items())
        return f"Parameters({items})"
