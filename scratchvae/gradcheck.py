r"""Finite-difference gradient checks for hand-written backward passes.

All checks work in float64 with centred differences,

.. math:: \frac{\partial f}{\partial \theta_i} \approx
          \frac{f(\theta + h e_i) - f(\theta - h e_i)}{2h},

whose error is :math:`O(h^2)` from truncation plus :math:`O(\epsilon_{mach} |f| / h)` from
rounding; ``h = 1e-6`` balances the two. A correct backward pass gives relative errors
around 1e-10 for one layer and below 1e-7 for a whole network (in float32 or at a ReLU
kink, checks fail for reasons that are not bugs).

:func:`rel_error` compares whole gradients, :math:`\|a - b\| / (\|a\| + \|b\|)`, so a
near-zero entry cannot blow up the ratio the way an element-wise ratio can.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .backend import array_namespace, on_device, to_numpy


def rel_error(a, b) -> float:
    r""":math:`\|a - b\|_2 / \max(\|a\|_2 + \|b\|_2, 10^{-300})` over all entries."""
    a = np.asarray(to_numpy(a), dtype=np.float64)
    b = np.asarray(to_numpy(b), dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape, got {a.shape} and {b.shape}")
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(a) + np.linalg.norm(b), 1e-300))


def _require_float64(x, name: str) -> None:
    if str(x.dtype).split(".")[-1] != "float64":
        raise TypeError(f"{name} must be float64 for a gradient check, got {x.dtype}; "
                        "float32 rounding swamps the finite differences")


def numerical_gradient(f, x, h: float = 1e-6):
    """Centred-difference gradient of a scalar function ``f()`` w.r.t. array ``x``.

    ``x`` is perturbed in place, one entry at a time, and restored. Returns a host
    NumPy array of ``x``'s shape. Costs ``2 * x.size`` calls of ``f``.
    """
    _require_float64(x, "x")
    grad = np.zeros(tuple(x.shape))
    for i in np.ndindex(*grad.shape):  # index x itself: a reshape of a view may copy
        old = float(x[i])
        x[i] = old + h
        f_plus = float(f())
        x[i] = old - h
        f_minus = float(f())
        x[i] = old
        grad[i] = (f_plus - f_minus) / (2 * h)
    return grad


def check_layer(forward, backward, inputs: dict, seed: int = 0, h: float = 1e-6) -> dict:
    r"""Check a forward/backward pair against finite differences.

    The scalar tested is :math:`\sum_k \text{dout}_k\, \text{out}_k` for a random
    ``dout``, so every entry of the Jacobian contributes.

    Parameters
    ----------
    forward : callable ``forward(**inputs) -> (out, cache)``
    backward : callable ``backward(dout, cache) -> gradients``, one per input, in the
        order of ``inputs`` (a single array if there is one input)
    inputs : dict name -> float64 array (host NumPy or any backend)

    Returns
    -------
    dict ``{name: rel_error}``
    """
    for name, x in inputs.items():
        _require_float64(x, name)
    out, cache = forward(**inputs)
    xp = array_namespace(out)
    rng = np.random.default_rng(seed)
    dout = xp.asarray(rng.standard_normal(tuple(out.shape)), dtype=out.dtype)
    if hasattr(out, "device"):
        dout = xp.asarray(dout, device=out.device) if dout.device != out.device else dout
    grads = backward(dout, cache)
    if len(inputs) == 1 and not isinstance(grads, tuple):
        grads = (grads,)
    if not isinstance(grads, tuple) or len(grads) != len(inputs):
        raise ValueError(f"backward must return one gradient per input ({len(inputs)}: "
                         f"{', '.join(inputs)}), got {type(grads).__name__}")

    def f():
        return xp.sum(forward(**inputs)[0] * dout)

    errors = {}
    for (name, x), g in zip(inputs.items(), grads, strict=True):
        g = to_numpy(g)
        if g.shape != tuple(x.shape):  # the backward summed over a broadcast axis
            raise ValueError(f"gradient of {name} has shape {g.shape}, expected {tuple(x.shape)}")
        errors[name] = rel_error(g, numerical_gradient(f, x, h))
    return errors


@dataclass
class GradcheckReport:
    """Per-parameter relative errors of a model's gradient."""

    errors: dict = field(default_factory=dict)
    method: str = "elementwise"

    @property
    def max_error(self) -> float:
        return max(self.errors.values())

    @property
    def worst(self) -> str:
        return max(self.errors, key=self.errors.get)

    def passed(self, tol: float = 1e-6) -> bool:
        return self.max_error <= tol

    def failures(self, tol: float = 1e-6) -> dict:
        return {k: e for k, e in self.errors.items() if not e <= tol}

    def __str__(self) -> str:
        width = max(len(k) for k in self.errors)
        lines = [f"{'parameter':<{width}}  rel. error ({self.method})"]
        lines += [f"{k:<{width}}  {e:.2e}" for k, e in self.errors.items()]
        lines.append(f"max {self.max_error:.2e} at {self.worst}")
        return "\n".join(lines)


def check_model(model, x, eps=None, method: str = "auto", h: float = 1e-6,
                max_elementwise: int = 2000, seed: int = 0, n_directions: int = 4,
                **loss_kwargs) -> GradcheckReport:
    r"""Check ``model.backward()`` against finite differences of ``model.loss(x, eps)``.

    Parameters
    ----------
    model : a float64 scratchvae model (``VAE`` or ``AE``)
    x : array (n, D) on the model's backend
    eps : array, optional
        Fixed noise; required for a VAE so that the loss is a deterministic function.
    method : {"auto", "elementwise", "directional"}
        ``"elementwise"`` perturbs every entry (2 passes each); ``"directional"``
        compares the projections :math:`U^\top g` with centred differences along
        ``n_directions`` random orthonormal directions per parameter (2 passes each, as
        Chainer's ``check_backward`` does with one); ``"auto"`` uses elementwise up to
        ``max_elementwise`` entries and directional above.
    n_directions : int
        Directions per parameter for the directional check.

    Returns
    -------
    GradcheckReport with the relative error of each parameter's gradient.
    """
    if method not in ("auto", "elementwise", "directional"):
        raise ValueError(f"method must be 'auto', 'elementwise' or 'directional', got {method!r}")
    _require_float64(model.params.flat, "the model's parameters")
    with on_device(model.xp, model.device):  # the GPU the model lives on
        if eps is not None:
            loss_kwargs["eps"] = eps
        model.loss(x, **loss_kwargs)
        model.backward()
        grads = {k: to_numpy(g).copy() for k, g in model.grads.items()}

        def f():
            return model.loss(x, **loss_kwargs).loss

        rng = np.random.default_rng(seed)
        report = GradcheckReport(method=method)
        for name, p in model.params.items():
            size = math.prod(p.shape)
            use = method if method != "auto" else (
                "elementwise" if size <= max_elementwise else "directional")
            if use == "elementwise":
                report.errors[name] = rel_error(grads[name], numerical_gradient(f, p, h))
            else:
                report.errors[name] = _directional_error(f, p, grads[name], rng, h,
                                                         n_directions)
        return report


def _directional_error(f, p, g, rng, h: float, n_directions: int) -> float:
    r""":func:`rel_error` of the derivatives of ``f`` along random orthonormal directions.

    Several directions, not one: the derivative along a single random unit ``u`` is
    :math:`g \cdot u \approx \|g\| / \sqrt{n}` only on average, and where ``u`` happens
    to be nearly orthogonal to ``g`` the relative error of that one small number is all
    rounding. The step along a unit direction is :math:`h \sqrt{n}`, so each of the n
    entries moves by about ``h``, as in the element-wise check; a step of ``h`` would
    leave per-entry changes of :math:`h / \sqrt{n}`, lost to rounding in a large layer.
    """
    xp = array_namespace(p)
    size = math.prod(p.shape)
    U, _ = np.linalg.qr(rng.standard_normal((size, min(n_directions, size))))
    step = h * math.sqrt(size)
    old = xp.asarray(p, copy=True)
    numeric, analytic = [], []
    for u_host in U.T:
        u_host = u_host.reshape(tuple(p.shape))
        u = xp.asarray(xp.asarray(u_host), device=p.device) if hasattr(p, "device") else u_host
        u = xp.astype(u, p.dtype)
        p[...] = old + step * u
        f_plus = float(f())
        p[...] = old - step * u
        f_minus = float(f())
        p[...] = old
        numeric.append((f_plus - f_minus) / (2 * step))
        analytic.append(float(np.sum(g * u_host)))
    return rel_error(np.array(numeric), np.array(analytic))
