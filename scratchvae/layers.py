"""Layers: the affine map and a sequential container, as forward/backward pairs.

The functional pairs (``linear_forward`` / ``linear_backward``) hold the math; the
small classes only bind them to named parameter views and keep the cache between
forward and backward. Every building block of a model (these layers, the encoder, the
decoder) follows the :class:`Layer` protocol. Derivations:
``derivations/08_backprop.ipynb``.
"""

from __future__ import annotations

import itertools
import math
from typing import Protocol

from .activations import ACTIVATIONS
from .backend import array_namespace

INITS = ("pytorch", "glorot", "normal")


class Layer(Protocol):
    """What a model asks of each of its building blocks.

    A model collects the parameter shapes of its blocks, allocates one flat buffer for
    the parameters and one for the gradients (:class:`scratchvae.parameters.Parameters`),
    binds every block to its named views, initializes them, and then calls ``forward``
    and ``backward`` (which writes the block's parameter gradients and returns the
    gradient with respect to its input).
    """

    def param_shapes(self) -> dict:
        """``name -> shape`` of the block's parameters (empty if it has none)."""

    def bind(self, params, grads) -> None:
        """Keep the views ``params[name]`` and ``grads[name]`` of the block's names."""

    def initialize(self, rng) -> None:
        """Write initial values into the bound parameters, drawing from ``rng``."""

    def forward(self, x):
        """The block's output; keeps what ``backward`` needs."""

    def backward(self, dy):
        """``dx`` from ``dy``; writes the parameter gradients into the bound views."""


def linear_forward(x, W, b):
    """Affine map :math:`y = x W + b`.

    Parameters
    ----------
    x : array, shape (n, d_in)
    W : array, shape (d_in, d_out)
    b : array, shape (d_out,)

    Returns
    -------
    y : array, shape (n, d_out)
    cache : tuple ``(x, W)`` for :func:`linear_backward`.
    """
    y = x @ W
    y += b  # in place: no second (n, d_out) temporary
    return y, (x, W)


def linear_backward(dy, cache, need_dx: bool = True):
    r"""Gradients of the affine map.

    .. math::
        \frac{\partial \ell}{\partial x} = dy\,W^\top,\quad
        \frac{\partial \ell}{\partial W} = x^\top dy,\quad
        \frac{\partial \ell}{\partial b} = \textstyle\sum_n dy_n

    dy: (n, d_out). Returns ``(dx, dW, db)`` with the shapes of ``x, W, b``;
    ``dx`` is ``None`` when ``need_dx`` is false (the first layer needs none).

    Derivation: ``derivations/08_backprop.ipynb``, section 1, The affine layer.
    """
    xp = array_namespace(dy)
    x, W = cache
    dx = dy @ W.T if need_dx else None
    dW = x.T @ dy
    db = xp.sum(dy, axis=0)
    return dx, dW, db


class Linear:
    """Affine layer ``y = x @ W + b`` bound to parameters ``{name}.W``, ``{name}.b``.

    Parameters
    ----------
    name : str
        Prefix of the parameter names.
    d_in, d_out : int
        Input and output sizes; ``W`` has shape ``(d_in, d_out)``.
    init : str
        ``"pytorch"``: W, b ~ U(-1/sqrt(d_in), 1/sqrt(d_in)) (PyTorch's default);
        ``"glorot"``: W ~ U(-a, a), a = sqrt(6 / (d_in + d_out)), b = 0;
        ``"normal"``: W, b ~ N(0, 0.01^2) (Kingma & Welling 2014).
    """

    def __init__(self, name: str, d_in: int, d_out: int, init: str = "pytorch",
                 need_dx: bool = True):
        if init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {init!r}")
        self.name, self.d_in, self.d_out, self.init = name, d_in, d_out, init
        self.need_dx = need_dx  # False for a layer that reads the data itself
        self.cache = None

    def param_shapes(self) -> dict:
        return {f"{self.name}.W": (self.d_in, self.d_out), f"{self.name}.b": (self.d_out,)}

    def bind(self, params, grads) -> None:
        """Point the layer at its views in the model's parameter and gradient buffers."""
        self.W, self.b = params[f"{self.name}.W"], params[f"{self.name}.b"]
        self.dW, self.db = grads[f"{self.name}.W"], grads[f"{self.name}.b"]

    def initialize(self, rng) -> None:
        """Write initial values into the bound ``W`` and ``b`` using ``rng``."""
        dtype = self.W.dtype
        if self.init == "pytorch":
            a = 1 / math.sqrt(self.d_in)
            self.W[...] = rng.uniform(self.W.shape, dtype, -a, a)
            self.b[...] = rng.uniform(self.b.shape, dtype, -a, a)
        elif self.init == "glorot":
            a = math.sqrt(6 / (self.d_in + self.d_out))
            self.W[...] = rng.uniform(self.W.shape, dtype, -a, a)
            self.b[...] = 0.0
        else:
            self.W[...] = 0.01 * rng.normal(self.W.shape, dtype)
            self.b[...] = 0.01 * rng.normal(self.b.shape, dtype)

    def forward(self, x):
        y, self.cache = linear_forward(x, self.W, self.b)
        return y

    def backward(self, dy):
        dx, dW, db = linear_backward(dy, self.cache, self.need_dx)
        self.dW[...] = dW
        self.db[...] = db
        return dx


class Activation:
    """An element-wise activation by name (see :data:`ACTIVATIONS`)."""

    def __init__(self, kind: str):
        if kind not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {tuple(ACTIVATIONS)}, got {kind!r}")
        self.kind = kind
        self._forward, self._backward = ACTIVATIONS[kind]
        self.cache = None

    def param_shapes(self) -> dict:
        return {}

    def bind(self, params, grads) -> None:
        pass

    def initialize(self, rng) -> None:
        pass

    def forward(self, x):
        y, self.cache = self._forward(x)
        return y

    def backward(self, dy):
        return self._backward(dy, self.cache)


class Sequential:
    """Layers applied in order; backward runs them in reverse."""

    def __init__(self, layers: list):
        self.layers = list(layers)

    def param_shapes(self) -> dict:
        shapes = {}
        for layer in self.layers:
            shapes.update(layer.param_shapes())
        return shapes

    def bind(self, params, grads) -> None:
        for layer in self.layers:
            layer.bind(params, grads)

    def initialize(self, rng) -> None:
        for layer in self.layers:
            layer.initialize(rng)

    def forward(self, x):
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, dy):
        for layer in reversed(self.layers):
            dy = layer.backward(dy)
        return dy


def mlp(name: str, sizes, activation: str, init: str = "pytorch",
        final_activation: bool = True, input_grad: bool = True) -> Sequential:
    """A stack ``Linear -> activation -> ... -> Linear [-> activation]``.

    ``sizes = (d_0, d_1, ..., d_k)`` gives k linear layers named ``{name}.0`` ...
    ``{name}.{k-1}``. ``sizes`` of length 1 gives an empty (identity) stack.
    ``input_grad=False`` spares the first layer the gradient with respect to its input
    (an encoder's input is the data, which needs none).
    """
    layers = []
    for i, (d_in, d_out) in enumerate(itertools.pairwise(sizes)):
        layers.append(Linear(f"{name}.{i}", d_in, d_out, init,
                             need_dx=input_grad or i > 0))
        if final_activation or i < len(sizes) - 2:
            layers.append(Activation(activation))
    return Sequential(layers)
