r"""Checkers for what students write in the course notebooks' exercises.

(The student versions of the notebooks themselves are made by :mod:`scratchvae.student`.)
Each checker is named after the library function it checks: ``check_linear_forward``
checks a ``linear_forward``, ``check_kl_std_normal`` a ``kl_std_normal_forward`` and
``_backward`` pair, and so on. A checker takes the student's function, runs it on small
random float64 inputs and compares the result with the library's reference
implementation and, for gradients, with centred finite differences
(:mod:`scratchvae.gradcheck`). It prints one line, ``PASS`` with the relative error or
``FAIL`` with the relative error and a hint, and returns ``True`` on a pass. A function
that still raises ``NotImplementedError`` is reported as not implemented yet; any other
error is reported, never raised.

Tolerances (relative errors :math:`\|a - b\| / (\|a\| + \|b\|)` in float64):
:data:`PIECE_TOL` for one layer or loss, :data:`MODEL_TOL` for a whole model.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import numpy as np

from . import gradcheck
from .activations import ACTIVATIONS, sigmoid
from .backend import array_namespace, asarray, get_namespace, to_numpy
from .kl import kl_std_normal_backward, kl_std_normal_forward
from .layers import linear_backward, linear_forward
from .likelihoods import bernoulli_logpmf_backward, bernoulli_logpmf_forward
from .reparam import reparameterize_backward, reparameterize_forward
from .vae import VAE

PIECE_TOL = 1e-7
MODEL_TOL = 1e-6

#: The model :func:`check_vae_backward` uses (``sv.VAE(**VAE_CHECK_CONFIG)``): a Bernoulli
#: VAE 6 -> 5 (tanh) -> 3 -> 5 (tanh) -> 6 in float64.
VAE_CHECK_CONFIG = dict(input_dim=6, hidden_dims=(5,), latent_dim=3, likelihood="bernoulli",
                        activation="tanh", dtype="float64", seed=0)
_VAE_CHECK_BATCH = 4


# ---- how a check runs and reports ---------------------------------------------------

class _NotImplementedYetError(Exception):
    """The student's function raised NotImplementedError."""


class _CheckError(Exception):
    """A failed check: what went wrong, and a hint."""

    def __init__(self, message: str, hint: str = ""):
        super().__init__(f"{message}. Hint: {hint}" if hint else message)


def _report(name: str, check) -> bool:
    """Run ``check()`` and print one line: PASS with its detail, FAIL, or not implemented."""
    try:
        detail = check()
    except _NotImplementedYetError:
        print(f"{name}: not implemented yet — fill in the cell above")
        return False
    except _CheckError as fail:
        print(f"{name}: FAIL — {fail}")
        return False
    print(f"{name}: PASS — {detail}")
    return True


def _call(fn, hint: str, *args):
    """``fn(*args)``, with the student's exceptions turned into a report."""
    try:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return fn(*args)
    except NotImplementedError:
        raise _NotImplementedYetError from None
    except Exception as err:
        lines = str(err).strip().splitlines()
        raise _CheckError(f"your function raised {type(err).__name__}"
                          + (f": {lines[0]}" if lines else ""), hint) from None


def _describe(value) -> str:
    if value is None:
        return "None (did you forget the return statement?)"
    if hasattr(value, "shape"):
        return f"an array of shape {tuple(value.shape)}"
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of {len(value)} values"
    return f"a {type(value).__name__}"


def _unpack(result, names: tuple) -> tuple:
    """The student's result as a tuple of ``len(names)`` values, or a clear failure."""
    if len(names) == 1 and hasattr(result, "shape"):
        return (result,)
    if not isinstance(result, (tuple, list)) or len(result) != len(names):
        want = names[0] if len(names) == 1 else "(" + ", ".join(names) + ")"
        raise _CheckError(f"your function should return {want}, "
                          f"but it returned {_describe(result)}")
    return tuple(result)


def _host(value, name: str, shape: tuple, shape_hints: dict) -> np.ndarray:
    """The student's array ``value`` on the host, after checking its shape and values."""
    if not hasattr(value, "shape"):
        raise _CheckError(f"{name} should be an array of shape {shape}, got {_describe(value)}")
    host = np.asarray(to_numpy(value), dtype=np.float64)
    if host.shape != shape:
        raise _CheckError(f"{name} has shape {host.shape} but should have shape {shape}",
                          shape_hints.get((name, host.shape), ""))
    if not np.all(np.isfinite(host)):
        raise _CheckError(f"{name} contains inf or NaN", shape_hints.get((name, "finite"), ""))
    return host


def _close(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and gradcheck.rel_error(a, b) <= 1e-6


def _hint(got: dict, name: str, mistakes: list, default: dict) -> str:
    """The hint of the first known mistake ``(name, wrong value, hint)`` that ``got``
    reproduces, else the default hint for ``name``."""
    for mistake_name, wrong, hint in mistakes:
        if _close(got[mistake_name], np.asarray(wrong, dtype=np.float64)):
            return hint
    return default[name]


def _problem(backend: str, seed: int):
    """The namespace, a seeded host generator, and ``put``: host float64 data -> backend."""
    xp = get_namespace(backend)
    return xp, np.random.default_rng(seed), lambda a: asarray(a, xp, dtype=xp.float64)


def _away_from_zero(rng, shape) -> np.ndarray:
    """Normal-ish draws with |x| >= 0.2, so that no check lands on a kink at 0."""
    u = rng.standard_normal(shape)
    return np.sign(u) * (0.2 + np.abs(u))


def _check_value(fn, args: tuple, names: tuple, want: dict, *, call_hint: str,
                 shape_hints: dict, mistakes: list, default: dict,
                 tol: float = PIECE_TOL) -> str:
    """Compare the student's forward ``fn(*args)``, which returns ``names``, with the
    reference outputs ``want`` (name -> host array). ``mistakes`` lists known wrong
    answers ``(name, wrong value, hint)``. Returns the PASS detail."""
    outputs = _unpack(_call(fn, call_hint, *args), names)
    got = {name: _host(value, name, want[name].shape, shape_hints)
           for name, value in zip(names, outputs, strict=True) if name in want}
    errors = {name: gradcheck.rel_error(got[name], want[name]) for name in got}
    worst = max(errors, key=errors.get)
    if not errors[worst] <= tol:
        raise _CheckError(f"rel. error {errors[worst]:.1e} in {worst} vs the reference "
                          f"(tolerance {tol:.0e})", _hint(got, worst, mistakes, default))
    return f"rel. error {errors[worst]:.1e} vs the reference"


def _check_gradients(fn, forward, inputs: dict, names: tuple, reference, *, seed: int,
                     call_hint: str, shape_hints: dict, mistakes, default: dict,
                     tol: float = PIECE_TOL) -> str:
    """Check the student's ``fn(dout, cache) -> gradients`` (one per input of
    ``forward``, named ``names``) against ``reference(dout)`` and against finite
    differences of ``forward`` (via :func:`scratchvae.gradcheck.check_layer`).
    ``mistakes(dout_host)`` lists known wrong answers. Returns the PASS detail."""
    seen = {}

    def backward(dout, cache):
        want = reference(dout)
        want = want if isinstance(want, tuple) else (want,)
        # a copy, so that a function writing into its argument cannot change the check
        dout_copy = array_namespace(dout).asarray(dout, copy=True)
        grads = _unpack(_call(fn, call_hint, dout_copy, cache), names)
        seen["dout"] = to_numpy(dout)
        seen["got"] = {name: _host(g, name, tuple(w.shape), shape_hints)
                       for name, g, w in zip(names, grads, want, strict=True)}
        seen["ref"] = {name: gradcheck.rel_error(seen["got"][name], w)
                       for name, w in zip(names, want, strict=True)}
        return tuple(grads)

    fd_errors = gradcheck.check_layer(forward, backward, inputs, seed=seed)
    fd = dict(zip(names, fd_errors.values(), strict=True))
    errors = {name: max(seen["ref"][name], fd[name]) for name in names}
    worst = max(errors, key=errors.get)
    if not errors[worst] <= tol:
        raise _CheckError(f"rel. error {errors[worst]:.1e} in {worst} (reference "
                          f"{seen['ref'][worst]:.1e}, finite differences {fd[worst]:.1e}; "
                          f"tolerance {tol:.0e})",
                          _hint(seen["got"], worst, mistakes(seen["dout"]), default))
    return (f"rel. error {errors[worst]:.1e} (reference {max(seen['ref'].values()):.1e}, "
            f"finite differences {max(fd.values()):.1e})")


# ---- the affine layer ---------------------------------------------------------------

def check_linear_forward(fn, *, backend: str = "numpy", seed: int = 0) -> bool:
    """Check ``fn(x, W, b) -> (y, cache)`` against :func:`scratchvae.layers.linear_forward`.

    x: (5, 4), W: (4, 3), b: (3,); only ``y`` is compared.
    """
    n, d_in, d_out = 5, 4, 3

    def check():
        _, rng, put = _problem(backend, seed)
        x, W, b = (rng.standard_normal(s) for s in ((n, d_in), (d_in, d_out), (d_out,)))
        return _check_value(
            fn, (put(x), put(W), put(b)), ("y", "cache"), {"y": x @ W + b},
            call_hint="x is (n, d_in), W is (d_in, d_out), b is (d_out,): y = x @ W + b",
            shape_hints={("y", (d_out, n)): "y = x @ W has shape (n, d_out)"},
            mistakes=[("y", x @ W, "did you forget to add the bias b?")],
            default={"y": "y = x @ W + b, with b added to every row"})

    return _report("linear_forward", check)


def check_linear_backward(fn, *, backend: str = "numpy", seed: int = 0) -> bool:
    """Check ``fn(dy, cache) -> (dx, dW, db)`` against
    :func:`scratchvae.layers.linear_backward` and finite differences.

    The cache is ``(x, W)``, as :func:`scratchvae.layers.linear_forward` returns it;
    x: (5, 4), W: (4, 3), b: (3,), dy: (5, 3).
    """
    n, d_in, d_out = 5, 4, 3

    def check():
        _, rng, put = _problem(backend, seed)
        x, W, b = (rng.standard_normal(s) for s in ((n, d_in), (d_in, d_out), (d_out,)))
        inputs = {"x": put(x), "W": put(W), "b": put(b)}
        cache = linear_forward(**inputs)[1]
        return _check_gradients(
            fn, linear_forward, inputs, ("dx", "dW", "db"),
            lambda dy: linear_backward(dy, cache), seed=seed,
            call_hint="shapes: dy (n, d_out), x (n, d_in), W (d_in, d_out); "
                      "the cache is (x, W)",
            shape_hints={
                ("dx", (n, d_out)): "dx = dy @ W.T has the shape of x, (n, d_in)",
                ("dW", (d_out, d_in)): "dW has the shape of W, (d_in, d_out): x.T @ dy",
                ("db", (n, d_out)): "did you forget to sum db over the batch (axis=0)?",
                ("db", ()): "sum dy over the batch only (axis=0), not over everything",
            },
            mistakes=lambda dy: [
                ("db", dy.mean(axis=0), "db is the sum of dy over the batch, not the mean"),
                ("dW", x.T @ dy / n, "dW = x.T @ dy, with no 1/n: any batch average is "
                                     "already inside dy"),
                ("dx", -(dy @ W.T), "check the sign: dx = dy @ W.T"),
            ],
            default={"dx": "dx = dy @ W.T", "dW": "dW = x.T @ dy",
                     "db": "db = dy summed over the batch (axis=0)"})

    return _report("linear_backward", check)


# ---- activations --------------------------------------------------------------------

_ACTIVATION_HINTS = {
    "relu": ("the cache is the mask 1[x > 0], stored as 0.0/1.0 in x's dtype",
             "dx = dy where x > 0 and 0 elsewhere: dy * mask"),
    "leaky_relu": ("the cache is the local slope k: 1 where x > 0, slope elsewhere",
                   "dx = dy where x > 0 and slope * dy elsewhere: k * dy"),
    "tanh": ("the cache is y = tanh(x)",
             "d tanh(x)/dx = 1 - tanh(x)**2 = 1 - y**2, with y the cache"),
    "sigmoid": ("the cache is y = sigmoid(x)",
                "d sigmoid(x)/dx = sigmoid(x) (1 - sigmoid(x)) = y (1 - y), with y the cache"),
    "softplus": ("the cache is x itself",
                 "d softplus(x)/dx = sigmoid(x), with x the cache"),
}


def check_activation_backward(fn, kind: str = "tanh", *, backend: str = "numpy",
                              seed: int = 0) -> bool:
    """Check ``fn(dy, cache) -> dx`` for the activation ``kind`` (``"relu"``, ``"tanh"``,
    ...; see :data:`scratchvae.activations.ACTIVATIONS`) against the library's backward
    and finite differences. The cache is what the library's ``<kind>_forward`` returns.
    Inputs stay at least 0.2 away from 0, so ReLU's kink is never hit.
    """
    if kind not in ACTIVATIONS:
        raise ValueError(f"kind must be one of {tuple(ACTIVATIONS)}, got {kind!r}")
    forward, reference = ACTIVATIONS[kind]
    cache_hint, default = _ACTIVATION_HINTS[kind]

    def check():
        _, rng, put = _problem(backend, seed)
        x = _away_from_zero(rng, (4, 5))
        inputs = {"x": put(x)}
        cache = forward(**inputs)[1]
        host_cache = forward(x)[1]

        def mistakes(dy):
            found = [("dx", reference(np.ones_like(dy), host_cache),
                      "multiply by the upstream gradient dy (chain rule: dx = dy * f'(x))"),
                     ("dx", -reference(dy, host_cache), "check the sign of the derivative")]
            if kind == "tanh":
                found.append(("dx", dy * (1 - np.tanh(host_cache) ** 2),
                              "the cache already holds y = tanh(x): use 1 - y**2, "
                              "not 1 - tanh(y)**2"))
            if kind == "sigmoid":
                s = sigmoid(host_cache)
                found.append(("dx", dy * s * (1 - s),
                              "the cache already holds y = sigmoid(x): use y * (1 - y)"))
            if kind == "relu":
                found.append(("dx", np.where(host_cache, 0.0, dy),
                              "dy passes where x > 0 (mask True) and is blocked elsewhere: "
                              "you have it the other way round"))
            return found

        return _check_gradients(
            fn, forward, inputs, ("dx",), lambda dy: reference(dy, cache), seed=seed,
            call_hint=f"dy has the shape of x; {cache_hint}", shape_hints={},
            mistakes=mistakes, default={"dx": default})

    return _report(f"{kind}_backward", check)


# ---- the Bernoulli likelihood from logits -------------------------------------------

_STABLE_BERNOULLI = ("log p = -sum over pixels of [max(l, 0) - l * x + log1p(exp(-|l|))], "
                     "the stable form")


def check_bernoulli_logpmf_forward(fn, *, backend: str = "numpy", seed: int = 0) -> bool:
    """Check ``fn(x, logits) -> (logp, cache)`` against
    :func:`scratchvae.likelihoods.bernoulli_logpmf_forward`.

    x, logits: (4, 6), logp: (4,). Two logits are +-800, where a naive
    ``log(sigmoid(l))`` overflows: only the stable form passes.
    """
    n, D = 4, 6

    def check():
        _, rng, put = _problem(backend, seed)
        x = rng.random((n, D))
        logits = 3 * rng.standard_normal((n, D))
        x[0, :2], logits[0, :2] = (1.0, 0.0), (800.0, -800.0)
        want = bernoulli_logpmf_forward(x, logits)[0]
        return _check_value(
            fn, (put(x), put(logits)), ("logp", "cache"), {"logp": want},
            call_hint="x and logits have shape (n, D); logp has shape (n,)",
            shape_hints={
                ("logp", (n, D)): "sum over the pixels (the last axis): one "
                                  "log-likelihood per example, shape (n,)",
                ("logp", ()): "one value per example, shape (n,): don't sum over the batch",
                ("logp", "finite"): "the test has logits of +-800, where exp overflows: "
                                    + _STABLE_BERNOULLI,
            },
            mistakes=[("logp", -want, "you returned the negative "
                                   "log-likelihood (the cross-entropy): flip the sign")],
            default={"logp": _STABLE_BERNOULLI})

    return _report("bernoulli_logits_forward", check)


def check_bernoulli_logpmf_backward(fn, *, backend: str = "numpy", seed: int = 0) -> bool:
    """Check ``fn(dlogp, cache) -> dlogits`` against
    :func:`scratchvae.likelihoods.bernoulli_logpmf_backward` and finite differences.

    The cache is ``(x, logits, e)`` with ``e = exp(-|logits|)``, as
    :func:`scratchvae.likelihoods.bernoulli_logpmf_forward` returns it;
    x, logits: (4, 6), dlogp: (4,).
    """
    n, D = 4, 6

    def check():
        _, rng, put = _problem(backend, seed)
        x, logits = rng.random((n, D)), 3 * rng.standard_normal((n, D))
        x_dev = put(x)
        cache = bernoulli_logpmf_forward(x_dev, put(logits))[1]

        def forward(logits):
            return bernoulli_logpmf_forward(x_dev, logits)

        def mistakes(dlogp):
            s = 1 / (1 + np.exp(-logits))
            return [("dlogits", dlogp[:, None] * (s - x),
                     "that is the gradient of the negative log-likelihood: "
                     "d log p / dl = x - sigmoid(l)"),
                    ("dlogits", x - s, "multiply by the upstream gradient dlogp[..., None] "
                                       "(chain rule)")]

        return _check_gradients(
            fn, forward, {"logits": put(logits)}, ("dlogits",),
            lambda dlogp: bernoulli_logpmf_backward(dlogp, cache), seed=seed,
            call_hint="dlogp has shape (n,) and x, logits have shape (n, D): broadcast "
                      "with dlogp[..., None]; the cache is (x, logits, e), e = exp(-|logits|)",
            shape_hints={("dlogits", (n,)): "dlogits has the shape of logits, (n, D): "
                                            "dlogp[..., None] * (x - sigmoid(logits))"},
            mistakes=mistakes,
            default={"dlogits": "d log p / dl = x - sigmoid(l), times dlogp[..., None]"})

    return _report("bernoulli_logits_backward", check)


# ---- the KL divergence to the prior -------------------------------------------------

def check_kl_std_normal(forward_fn, backward_fn, *, backend: str = "numpy", seed: int = 0) -> bool:
    """Check a KL(N(mu, exp(logvar)) || N(0, I)) pair against
    :mod:`scratchvae.kl` and finite differences.

    ``forward_fn(mu, logvar) -> (kl, cache)`` with mu, logvar: (4, 3) and kl: (4,);
    ``backward_fn(dkl, cache) -> (dmu, dlogvar)`` with the cache of ``forward_fn``.
    """
    n, d = 4, 3

    def check():
        _, rng, put = _problem(backend, seed)
        mu, logvar = rng.standard_normal((n, d)), 0.5 * rng.standard_normal((n, d))
        inputs = {"mu": put(mu), "logvar": put(logvar)}
        ref_cache = kl_std_normal_forward(**inputs)[1]
        want_host = kl_std_normal_forward(mu, logvar)[0]
        terms = np.exp(logvar) + mu**2 - 1 - logvar
        try:
            _check_value(
                forward_fn, (inputs["mu"], inputs["logvar"]), ("kl", "cache"),
                {"kl": want_host},
                call_hint="mu and logvar have shape (n, d); kl has shape (n,)",
                shape_hints={
                    ("kl", (n, d)): "sum over the latent dimensions (axis=-1): one KL per "
                                    "example, shape (n,)",
                    ("kl", ()): "one KL per example, shape (n,): don't sum over the batch",
                },
                mistakes=[
                    ("kl", terms.sum(-1), "don't forget the factor 1/2"),
                    ("kl", 0.5 * (np.exp(2 * logvar) + mu**2 - 1 - 2 * logvar).sum(-1),
                     "logvar is the log-variance: sigma**2 = exp(logvar), not exp(2 logvar)"),
                    ("kl", 0.5 * (terms + 1).sum(-1),
                     "the -1 in each term makes the KL zero at mu = 0, logvar = 0"),
                ],
                default={"kl": "KL = 1/2 sum_j (exp(logvar_j) + mu_j**2 - 1 - logvar_j)"})
        except _CheckError as fail:
            raise _CheckError(f"forward: {fail}") from None

        def forward(mu, logvar):
            return _unpack(_call(forward_fn, "", mu, logvar), ("kl", "cache"))

        def mistakes(dkl):
            dmu = dkl[:, None] * mu
            return [("dlogvar", dkl[:, None] * (np.exp(logvar) - 1),
                     "dKL/dlogvar = (exp(logvar) - 1) / 2: did you forget the 1/2?"),
                    ("dmu", mu, "multiply by the upstream gradient dkl[:, None] (chain rule)"),
                    ("dlogvar", 0.5 * (np.exp(logvar) - 1),
                     "multiply by the upstream gradient dkl[:, None] (chain rule)"),
                    ("dmu", -dmu, "dKL/dmu = +mu")]

        return _check_gradients(
            backward_fn, forward, inputs, ("dmu", "dlogvar"),
            lambda dkl: kl_std_normal_backward(dkl, ref_cache), seed=seed,
            call_hint="dkl has shape (n,) and mu, logvar (n, d): broadcast with dkl[:, None]",
            shape_hints={},
            mistakes=mistakes,
            default={"dmu": "dKL/dmu = mu, times dkl[:, None]",
                     "dlogvar": "dKL/dlogvar = (exp(logvar) - 1) / 2, times dkl[:, None]"})

    return _report("kl_std_normal", check)


# ---- the reparameterization ---------------------------------------------------------

_SIGMA = "the standard deviation is exp(0.5*logvar), not exp(logvar)"


def check_reparameterize_forward(fn, *, backend: str = "numpy", seed: int = 0) -> bool:
    """Check ``fn(mu, logvar, eps) -> (z, cache)`` against
    :func:`scratchvae.reparam.reparameterize_forward`.

    mu, logvar: (4, 2), eps: (3, 4, 2) (L = 3 draws per point), z: (3, 4, 2).
    """
    L, n, d = 3, 4, 2

    def check():
        _, rng, put = _problem(backend, seed)
        mu, logvar = rng.standard_normal((n, d)), rng.standard_normal((n, d))
        eps = rng.standard_normal((L, n, d))
        return _check_value(
            fn, (put(mu), put(logvar), put(eps)), ("z", "cache"),
            {"z": mu + np.exp(0.5 * logvar) * eps},
            call_hint="mu, logvar have shape (n, d) and eps (L, n, d)",
            shape_hints={("z", (n, d)): "z has one sample per noise draw: mu + sigma * eps "
                                        "broadcasts to eps's shape (L, n, d)"},
            mistakes=[("z", mu + np.exp(logvar) * eps, _SIGMA),
                                  ("z", mu + logvar * eps,
                                   "logvar is the log-variance: sigma = exp(0.5*logvar)"),
                                  ("z", mu + np.exp(-0.5 * logvar) * eps,
                                   "sigma = exp(+0.5*logvar)")],
            default={"z": "z = mu + exp(0.5*logvar) * eps"})

    return _report("reparameterize_forward", check)


def check_reparameterize_backward(fn, *, backend: str = "numpy", seed: int = 0) -> bool:
    """Check ``fn(dz, cache) -> (dmu, dlogvar)`` against
    :func:`scratchvae.reparam.reparameterize_backward` and finite differences.

    The cache is ``(sigma, eps)`` as :func:`scratchvae.reparam.reparameterize_forward`
    returns it; mu, logvar: (4, 2), eps and dz: (3, 4, 2).
    """
    L, n, d = 3, 4, 2

    def check():
        _, rng, put = _problem(backend, seed)
        mu, logvar = rng.standard_normal((n, d)), rng.standard_normal((n, d))
        eps = rng.standard_normal((L, n, d))
        eps_dev = put(eps)
        inputs = {"mu": put(mu), "logvar": put(logvar)}
        cache = reparameterize_forward(inputs["mu"], inputs["logvar"], eps_dev)[1]
        sigma = np.exp(0.5 * logvar)

        def forward(mu, logvar):
            return reparameterize_forward(mu, logvar, eps_dev)

        def mistakes(dz):
            return [("dlogvar", (dz * eps).sum(0) * sigma,
                     _SIGMA + ", so dz/dlogvar = 0.5 * sigma * eps: did you forget the 0.5?"),
                    ("dmu", dz.mean(0), "sum, not average, over the L samples: each sample "
                                        "adds its own term to the loss"),
                    ("dlogvar", (dz * eps).mean(0) * 0.5 * sigma,
                     "sum, not average, over the L samples"),
                    ("dlogvar", (eps * 0.5 * sigma).sum(0),
                     "multiply by the upstream gradient dz (chain rule)")]

        return _check_gradients(
            fn, forward, inputs, ("dmu", "dlogvar"),
            lambda dz: reparameterize_backward(dz, cache), seed=seed,
            call_hint="dz has shape (L, n, d); the cache is (sigma, eps) with sigma "
                      "(n, d) and eps (L, n, d)",
            shape_hints={("dmu", (L, n, d)): "sum over the L samples (axis=0): mu is "
                                             "shared by all of them",
                         ("dlogvar", (L, n, d)): "sum over the L samples (axis=0): logvar "
                                                 "is shared by all of them"},
            mistakes=mistakes,
            default={"dmu": "dz/dmu = 1, so dmu = dz summed over the samples (axis=0)",
                     "dlogvar": "dz/dlogvar = 0.5 * sigma * eps, so dlogvar = "
                                "sum over samples of dz * eps, times 0.5 * sigma"})

    return _report("reparameterize_backward", check)


# ---- the whole VAE ------------------------------------------------------------------

def check_vae_backward(fn, *, backend: str = "numpy", seed: int = 0) -> bool:
    r"""Check a whole VAE forward and backward pass written by the student.

    ``fn(params, x, eps) -> (loss, grads)`` computes, for the model
    ``sv.VAE(**VAE_CHECK_CONFIG)`` (Bernoulli likelihood, one tanh hidden layer each
    side, estimator B), the negative ELBO averaged over the batch and its gradients:

    * ``params``: dict name -> array, the model's parameters (``enc.0.W``, ``enc.0.b``,
      ``enc.mu.W``, ..., ``dec.out.b``; ``W`` is (d_in, d_out));
    * ``x``: (4, 6) data in [0, 1]; ``eps``: (1, 4, 3) fixed noise (L = 1);
    * ``loss``: a scalar, :math:`\frac1n \sum_i [\mathrm{KL}_i - \log p(x_i | z_i)]`;
    * ``grads``: dict with the same names and shapes as ``params``.

    The result is compared with ``model.loss(x, eps)``, ``model.backward()`` and finite
    differences of the model's loss, to :data:`MODEL_TOL`.
    """
    n = _VAE_CHECK_BATCH

    def check():
        model = VAE(**VAE_CHECK_CONFIG, backend=backend)
        xp, rng, _ = _problem(backend, seed)
        D, d = model.input_dim, model.latent_dim
        x, eps = model.asarray(rng.random((n, D))), model.asarray(rng.standard_normal((1, n, d)))
        want_loss = float(model.loss(x, eps).loss)
        model.backward()
        want = {k: np.array(to_numpy(g)) for k, g in model.grads.items()}

        def f():
            return model.loss(x, eps).loss

        fd = {k: gradcheck.numerical_gradient(f, p) for k, p in model.params.items()}
        params = {k: xp.asarray(p, copy=True) for k, p in model.params.items()}
        loss, grads = _unpack(_call(fn, "", params, x, eps), ("loss", "grads"))
        try:
            got_loss = float(loss)
        except (TypeError, ValueError):
            raise _CheckError(f"loss should be a scalar, got {_describe(loss)}") from None
        if not abs(got_loss - want_loss) <= MODEL_TOL * abs(want_loss):
            raise _CheckError(f"loss = {got_loss:.8g} but model.loss(x, eps).loss = "
                        f"{want_loss:.8g}", "the loss is the batch mean of "
                        "KL(q(z|x) || p(z)) - log p(x|z), with z = mu + exp(0.5*logvar) * eps")
        if not isinstance(grads, Mapping):
            raise _CheckError(f"grads should be a dict name -> array, got {_describe(grads)}")
        missing = [k for k in want if k not in grads]
        extra = [k for k in grads if k not in want]
        if missing or extra:
            raise _CheckError(f"grads should have the keys of params; missing {missing}, "
                        f"unexpected {extra}")
        got = {k: _host(grads[k], k, want[k].shape, {}) for k in want}
        ref = {k: gradcheck.rel_error(got[k], want[k]) for k in want}
        num = {k: gradcheck.rel_error(got[k], fd[k]) for k in want}
        errors = {k: max(ref[k], num[k]) for k in want}
        worst = max(errors, key=errors.get)
        if not errors[worst] <= MODEL_TOL:
            raise _CheckError(f"rel. error {errors[worst]:.1e} in {worst} (reference "
                        f"{ref[worst]:.1e}, finite differences {num[worst]:.1e}; "
                        f"tolerance {MODEL_TOL:.0e})",
                        _vae_hint(n, got, want, errors, worst))
        return (f"loss and all {len(want)} gradients match, max rel. error "
                f"{errors[worst]:.1e} (model.backward() {max(ref.values()):.1e}, "
                f"finite differences {max(num.values()):.1e})")

    return _report("vae_backward", check)


def _vae_hint(n: int, got: dict, want: dict, errors: dict, worst: str) -> str:
    """Name the likely mistake in a whole-model backward pass on a batch of ``n``."""
    flat_got = np.concatenate([got[k].ravel() for k in want])
    flat_want = np.concatenate([want[k].ravel() for k in want])
    if _close(flat_got, -flat_want):
        return "these are gradients of the ELBO; the loss is the negative ELBO: flip the sign"
    if _close(flat_got, n * flat_want):
        return ("the loss is the mean over the batch: start the backward pass from "
                "dlog_px = -1/n and dkl = 1/n")
    bad = [k for k in want if errors[k] > MODEL_TOL]
    if all(k.startswith("enc.") for k in bad):
        if all(k.startswith("enc.0.") for k in bad):
            return ("the hidden layer feeds both heads: its upstream gradient is the sum "
                    "of what enc.mu and enc.logvar send back")
        return ("the decoder is right, so look at dmu and dlogvar: reparameterize_backward "
                "of dz plus the KL's kl_std_normal_backward, before the encoder heads")
    return (f"the gradient of {worst} is wrong; the decoder's backward starts from "
            "bernoulli_logpmf_backward(dlog_px, cache) with dlog_px = -1/n per example")


# The checkers' former names, which the notebooks' first edition and the README used.
check_bernoulli_logits_forward = check_bernoulli_logpmf_forward
check_bernoulli_logits_backward = check_bernoulli_logpmf_backward
check_kl = check_kl_std_normal
