"""Element-wise activations as forward/backward pairs.

Each ``*_forward(x)`` returns ``(y, cache)``; each ``*_backward(dy, cache)`` returns
``dx = dy * f'(x)``, with ``f'`` written in terms of what the forward already
computed. Derivations: ``derivations/08_backprop.ipynb``.
"""

from __future__ import annotations

from .backend import array_namespace

LEAKY_SLOPE = 0.01


def relu_forward(x):
    """:math:`y = \\max(x, 0)`. x: any shape."""
    xp = array_namespace(x)
    mask = x > 0
    return xp.where(mask, x, 0.0), mask


def relu_backward(dy, mask):
    """:math:`dx = dy \\cdot 1[x > 0]` (the subgradient 0 is used at the kink)."""
    xp = array_namespace(dy)
    return xp.where(mask, dy, 0.0)


def leaky_relu_forward(x, slope: float = LEAKY_SLOPE):
    """:math:`y = x` for x > 0, :math:`y = a x` otherwise (``a = slope``)."""
    xp = array_namespace(x)
    mask = x > 0
    return xp.where(mask, x, slope * x), (mask, slope)


def leaky_relu_backward(dy, cache):
    """:math:`dx = dy` where x > 0, :math:`a\\,dy` otherwise."""
    xp = array_namespace(dy)
    mask, slope = cache
    return xp.where(mask, dy, slope * dy)


def tanh_forward(x):
    """:math:`y = \\tanh x`."""
    xp = array_namespace(x)
    y = xp.tanh(x)
    return y, y


def tanh_backward(dy, y):
    """:math:`dx = dy\\,(1 - y^2)` with :math:`y = \\tanh x`."""
    return dy * (1 - y * y)


def sigmoid(x):
    """Numerically stable :math:`\\sigma(x) = 1 / (1 + e^{-x})` (no overflow for large |x|)."""
    xp = array_namespace(x)
    e = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1 / (1 + e), e / (1 + e))


def sigmoid_forward(x):
    """:math:`y = \\sigma(x)`."""
    y = sigmoid(x)
    return y, y


def sigmoid_backward(dy, y):
    """:math:`dx = dy\\,\\sigma(x)(1 - \\sigma(x)) = dy\\,y(1 - y)`."""
    return dy * y * (1 - y)


def softplus_forward(x):
    """:math:`y = \\log(1 + e^x) = \\max(x, 0) + \\log(1 + e^{-|x|})` (stable form)."""
    xp = array_namespace(x)
    y = xp.maximum(x, 0.0) + xp.log1p(xp.exp(-xp.abs(x)))
    return y, x


def softplus_backward(dy, x):
    """:math:`dx = dy\\,\\sigma(x)`, since :math:`\\frac{d}{dx}\\log(1 + e^x) = \\sigma(x)`."""
    return dy * sigmoid(x)


ACTIVATIONS = {
    "relu": (relu_forward, relu_backward),
    "leaky_relu": (leaky_relu_forward, leaky_relu_backward),
    "tanh": (tanh_forward, tanh_backward),
    "sigmoid": (sigmoid_forward, sigmoid_backward),
    "softplus": (softplus_forward, softplus_backward),
}
