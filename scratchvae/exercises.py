r"""Checkers for what students write in the course notebooks' exercises.

(The student versions of the notebooks themselves are made by :mod:`scratchvae.student`.)
Each checker is named after the library function it checks: ``check_linear_forward``
checks a ``linear_forward``, ``check_kl_std_normal`` a ``kl_std_normal_forward`` and
``_backward`` pair, and so on. A checker takes the student's function, runs it on small
random float64 inputs and compares the result with the library's reference
implementation and, for gradients, with centred finite differences
(:mod:`scratchvae.gradcheck`). It returns ``True`` on a pass and prints:

* ``PASS`` with the relative error, on one line;
* ``FAIL`` with a **diagnosis** first (what is wrong and where: "dx is right where x > 0
  and wrong where x < 0", "your kl is exactly 2 times the reference", "your z has shape
  (4, 2), expected (1, 4, 2)"), the student's values beside the expected ones, then the
  concept and the derivation section to reread. The formula itself is shown only at the
  second hint level, ``hint=2`` (or :func:`hint`);
* ``not implemented yet`` while the function raises ``NotImplementedError``.

Any other error of the student's function is reported, never raised; a NumPy call on
arrays of another backend is reported as what it is (it would fail on a GPU).

What the checkers guard against, beyond a wrong formula: upstream gradients drawn
independently of the inputs (so that ``sign(dy)`` says nothing about ``sign(x)``);
extreme logits that are confidently right *and* confidently wrong; ``L = 1`` as well as
``L > 1`` samples; results that are not float64; functions that write into their cache
or inputs; shapes that differ by a kept or squeezed axis, a transpose or a wrong-axis
sum, with every size in a test different so that no broadcast can hide a wrong shape.

Tolerances (relative errors :math:`\|a - b\| / (\|a\| + \|b\|)` in float64):
:data:`PIECE_TOL` for one layer or loss, :data:`MODEL_TOL` for a whole model.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from . import gradcheck
from .activations import ACTIVATIONS, sigmoid, tanh_backward, tanh_forward
from .backend import asarray, get_namespace, to_numpy
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

_DECK_002 = "deck 002_3facc1002d729879.txt"
_BACKPROP = "derivations/08_backprop.ipynb"


# ---- the exercises: what each practises, and its two hint levels ----------------------

@dataclass(frozen=True)
class Exercise:
    """One exercise: the derivation section and slide it practises, the concept a failing
    student is pointed to (hint level 1) and the formula (hint level 2)."""

    name: str
    marker: str
    section: str
    slide: str
    concept: str
    formula: str

    def hint(self, level: int = 1) -> str:
        text = f"{self.concept}. Reread {self.section} ({self.slide})."
        if level >= 2:
            text += f"\n  Formula: {self.formula}"
        return text


_ACT = (f"{_BACKPROP} §2 Activations", f"{_DECK_002} §VII *Encoder* and *Decoder*")

EXERCISES = {e.name: e for e in [
    Exercise("linear_forward", "ex_linear", f"{_BACKPROP} §1 The affine layer",
             f"{_DECK_002} §VII *Encoder* and *Decoder*",
             "an affine layer maps each row of x (one example) through the weight matrix "
             "and then adds the same bias vector to every row: one output row per example, "
             "one column per output unit",
             "y = x @ W + b"),
    Exercise("linear_backward", "ex_linear", f"{_BACKPROP} §1 The affine layer",
             f"{_DECK_002} §VII *Encoder* and *Decoder*",
             "a gradient has the shape of the quantity it belongs to, and there is one way "
             "to multiply dy with W or x to get it; the bias is added to every row, so "
             "every row's upstream gradient flows into it; no 1/n appears: any batch "
             "average is already inside dy",
             "dx = dy @ W.T;  dW = x.T @ dy;  db = xp.sum(dy, axis=0)"),
    Exercise("relu_backward", "ex_activations", *_ACT,
             "the chain rule multiplies the upstream gradient by the local slope, element "
             "by element; ReLU's slope depends only on the sign of its input x (which the "
             "cached 0/1 mask records), never on the sign of dy",
             "dx = dy * mask"),
    Exercise("leaky_relu_backward", "ex_activations", *_ACT,
             "the chain rule multiplies the upstream gradient by the local slope, element "
             "by element; the slope depends on the sign of the input x, and the forward "
             "pass cached it as k (1 or the small slope)",
             "dx = dy * k"),
    Exercise("tanh_backward", "ex_activations", *_ACT,
             "the chain rule multiplies the upstream gradient by the derivative of tanh, "
             "which can be written with tanh's own output; the cache already holds that "
             "output y = tanh(x), not x",
             "dx = dy * (1 - y * y)"),
    Exercise("sigmoid_backward", "ex_activations", *_ACT,
             "the chain rule multiplies the upstream gradient by the derivative of the "
             "sigmoid, which can be written with the sigmoid's own output; the cache holds "
             "that output y = sigmoid(x), not x",
             "dx = dy * y * (1 - y)"),
    Exercise("softplus_backward", "ex_activations", *_ACT,
             "the derivative of log(1 + e^x) is the logistic sigmoid of x; the cache holds "
             "the input x itself",
             "dx = dy * sigmoid(x)"),
    Exercise("bernoulli_logits_forward", "ex_bernoulli",
             f"{_BACKPROP} §3 The Bernoulli log-likelihood from logits",
             f"{_DECK_002} §VII *Log-Likelihood of p_θ(x|z)*",
             "log sigmoid(l) and log(1 - sigmoid(l)) must come from the logit itself, in a "
             "form where no exp can overflow and no log of a rounded 0 or 1 appears; "
             "clipping the probability or clamping the logit changes the value exactly "
             "where the model is confidently wrong, which is where training needs it most; "
             "one log-likelihood per example, summed over the pixels",
             "logp = -xp.sum(xp.maximum(l, 0) - l * x + xp.log1p(xp.exp(-xp.abs(l))), "
             "axis=-1)"),
    Exercise("bernoulli_logits_backward", "ex_bernoulli",
             f"{_BACKPROP} §3 The Bernoulli log-likelihood from logits",
             f"{_DECK_002} §VII *Log-Likelihood of p_θ(x|z)*",
             "differentiate x l - log(1 + e^l) with respect to l: the result is the data "
             "minus the model's probability; each example's upstream gradient multiplies all "
             "of its pixels (a per-example dlogp broadcast over the pixel axis), and the "
             "sigmoid must not overflow for large |l|",
             "dlogits = dlogp[..., None] * (x - sigmoid(logits)), sigmoid from the cached "
             "e = exp(-|logits|)"),
    Exercise("kl_std_normal", "ex_kl",
             "derivations/04_kl_gaussians.ipynb §3 The VAE case and §4 Gradients; "
             f"{_BACKPROP} §5 The KL term",
             f"{_DECK_002} §VII *KL Divergence in VAE*",
             "each latent dimension adds one term, which is zero exactly when q is the prior "
             "(mean 0, variance 1); logvar is log sigma², so the variance is its exponential; "
             "one KL per example, summed over the latent axis; the gradient of each term "
             "with respect to mu and to logvar, times that example's upstream gradient",
             "kl = 0.5 * xp.sum(xp.exp(logvar) + mu**2 - 1 - logvar, axis=-1);  "
             "dmu = dkl[:, None] * mu;  dlogvar = dkl[:, None] * 0.5 * (var - 1)"),
    Exercise("reparameterize_forward", "ex_reparam",
             "derivations/05_reparameterization.ipynb §3 The reparameterisation trick",
             f"{_DECK_002} §VII *Sampling with Reparameterization Trick*; deck "
             "000_a112e0488c5566e6.txt *Reparameterization Trick*",
             "logvar is the log of the variance, so the standard deviation is the "
             "exponential of half of it; z keeps one sample per noise draw, shape (L, n, d), "
             "for every L including L = 1",
             "sigma = xp.exp(0.5 * logvar);  z = mu + sigma * eps"),
    Exercise("reparameterize_backward", "ex_reparam",
             f"{_BACKPROP} §6 The reparameterisation",
             f"{_DECK_002} §VI *Jacobian of the Reparameterization Trick*, §VII *Sampling "
             "with Reparameterization Trick*",
             "all L samples use the same mu and logvar, so their gradients add up over the "
             "sample axis (for L = 1 too); the derivative of z with respect to logvar comes "
             "from sigma = exp(logvar / 2) by the chain rule",
             "dmu = xp.sum(dz, axis=0);  dlogvar = xp.sum(dz * eps, axis=0) * 0.5 * sigma"),
    Exercise("vae_backward", "ex_vae",
             f"{_BACKPROP} §8 The whole model: VAE.backward step by step",
             f"{_DECK_002} §VI *Gradient with parameter θ*, *Gradient with parameter ϕ*; "
             "§VII *VAE Training: Optimization Objective*; deck 003_77093d2977405e77.txt "
             "*AEVB Algorithm*",
             "the backward pass visits the pieces in reverse order; the loss is a batch "
             "mean of KL - log p(x|z); mu and logvar receive gradient from two places (the "
             "sample z and the KL), the hidden layer from both heads",
             "dlog_px = -1/n and dkl = 1/n per example; bernoulli backward -> dec.out -> "
             "tanh -> dec.0 -> reparameterize_backward(dz reshaped to z.shape) + "
             "kl backward -> enc.mu and enc.logvar -> tanh of (da_mu + da_logvar) -> enc.0"),
]}


def hint(name: str, level: int = 2) -> str:
    """The hint of exercise ``name`` (a key of :data:`EXERCISES`): level 1 the concept and
    the derivation section, level 2 the formula too."""
    if name not in EXERCISES:
        raise ValueError(f"name must be one of {tuple(EXERCISES)}, got {name!r}")
    return EXERCISES[name].hint(level)


# ---- how a check runs and reports ---------------------------------------------------

class _NotImplementedYetError(Exception):
    """The student's function raised NotImplementedError."""


class _CheckError(Exception):
    """A failed check: the diagnosis, the values beside the expected ones, and the concept
    of a known mistake (else the exercise's own)."""

    def __init__(self, message: str, concept: str = "", values: str = ""):
        super().__init__(message)
        self.message, self.concept, self.values = message, concept, values


def _report(name: str, check, level: int = 1, exercise: str | None = None) -> bool:
    """Run ``check()`` and print PASS with its detail, FAIL with a diagnosis and hint, or
    not implemented."""
    ex = EXERCISES[exercise or name]
    try:
        detail = check()
    except _NotImplementedYetError:
        print(f"{name}: not implemented yet — fill in the cell above")
        return False
    except _CheckError as fail:
        lines = [f"{name}: FAIL — {fail.message}"]
        if fail.values:
            lines.append(fail.values)
        if fail.concept:
            lines.append(f"  Hint: {fail.concept}.")
        lines.append(f"  {'The idea' if fail.concept else 'Hint'}: {ex.hint(level)}")
        if level < 2:
            lines.append("  (the formula: run the checker again with hint=2)")
        print("\n".join(lines))
        return False
    print(f"{name}: PASS — {detail}")
    return True


_ON_DEVICE = ("Can't convert array on the", "Implicit conversion to a NumPy array",
              "Expected Array or Python scalar; got <class 'numpy")


def _call(fn, concept: str, *args):
    """``fn(*args)``, with the student's exceptions turned into a report."""
    try:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return fn(*args)
    except NotImplementedError:
        raise _NotImplementedYetError from None
    except Exception as err:
        lines = str(err).strip().splitlines()
        first = lines[0].rstrip(".") if lines else ""
        what = f"your function raised {type(err).__name__}" + (f": {first}" if first else "")
        if any(s in first for s in _ON_DEVICE):
            raise _CheckError(
                "your function called NumPy (np.…) on arrays that live on a device: this "
                f"would fail on a GPU ({what})",
                "take xp from the arrays, xp = array_namespace(x), and write xp.exp, "
                "xp.sum, ... instead of np.exp, np.sum") from None
        if isinstance(err, AttributeError) and "'Array' object has no attribute" in first:
            attr = first.rsplit("'", 2)[-2]
            raise _CheckError(
                f"{what}. .{attr}() is a NumPy method that the array API standard does "
                "not define: arrays of other libraries need not have it",
                f"use the namespace's function, xp.{attr}(...), with xp = "
                "array_namespace(x)") from None
        if "broadcast" in first or "matmul" in first or "shapes" in first:
            raise _CheckError(f"{what}. Two arrays' shapes do not fit together",
                              concept) from None
        raise _CheckError(what, concept) from None


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


def _shape_note(got: tuple, want: tuple) -> str:
    """What a wrong shape usually means."""
    if len(got) == 2 and got == want[::-1]:
        return "it is transposed"
    if [s for s in got if s != 1] == [s for s in want if s != 1]:
        if len(got) > len(want):
            return ("an extra axis of length 1: keepdims=True, or a [:, None] left in "
                    "where the result is needed")
        return ("an axis of length 1 is missing: a squeeze (or an index [0]) removed an "
                "axis that is 1 only for this input")
    if len(got) == len(want) - 1:
        return "one axis too few: a sum or mean over an axis that should stay"
    if len(got) == len(want) + 1:
        return "one axis too many: a sum over an axis is missing"
    if len(got) == len(want):
        return "the right number of axes with the wrong sizes: a sum over the wrong axis?"
    return ""


def _host(value, name: str, want: np.ndarray, xp, notes: dict, where: str = "") -> np.ndarray:
    """The student's array ``value`` on the host, after checking its kind, dtype, shape and
    finiteness against the reference ``want``."""
    if not hasattr(value, "shape"):
        raise _CheckError(f"your {name} should be an array of shape {want.shape}, got "
                          f"{_describe(value)}")
    shape = tuple(value.shape)
    if shape != want.shape:
        note = notes.get((name, shape)) or _shape_note(shape, want.shape)
        raise _CheckError(f"your {name} has shape {shape}, expected {want.shape}{where}"
                          + (f": {note}" if note else ""))
    if isinstance(value, np.ndarray) and not isinstance(xp.asarray(0.0), np.ndarray):
        raise _CheckError(f"your {name} is a NumPy array while the inputs live on another "
                          "backend: this would fail on a GPU",
                          "create results with the inputs' namespace, xp = "
                          "array_namespace(x), never with np")
    dtype = str(value.dtype).split(".")[-1]
    if dtype != "float64":
        raise _CheckError(f"your {name} is {dtype}, expected float64 (the inputs are "
                          f"float64){where}",
                          "the result must keep the inputs' dtype: a float32 anywhere "
                          "rounds away the digits a gradient check needs, and in a model it "
                          "silently changes the dtype of everything after it")
    host = np.asarray(to_numpy(value), dtype=np.float64)
    bad = ~np.isfinite(host)
    if bad.any():
        at = ", ".join(str(tuple(int(i) for i in ix)) for ix in np.argwhere(bad)[:4])
        raise _CheckError(f"your {name} contains inf or NaN{where}, at {at}"
                          + (f" ({notes[(name, 'finite')]})" if (name, "finite") in notes
                             else ""),
                          notes.get((name, "finite concept"), ""))
    return host


def _close(a: np.ndarray, b: np.ndarray, tol: float = 1e-6) -> bool:
    if a.shape != b.shape:
        return False
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        return bool(np.array_equal(a, b, equal_nan=True))
    return gradcheck.rel_error(a, b) <= tol


def _ratio_text(c: float) -> str:
    for k in range(2, 11):
        if abs(c - k) < 1e-6 * k:
            return f"{k} times"
        if abs(c - 1 / k) < 1e-6 / k:
            return f"1/{k} of"
    return f"{c:.4g} times"


def _side_by_side(got: np.ndarray, want: np.ndarray, mask=None, count: int = 5) -> str:
    """A few entries where the student's value differs from the expected one."""
    wrong = ~np.isclose(got, want, rtol=1e-6, atol=1e-9)
    if mask is not None:
        wrong &= mask
    idx = np.argwhere(wrong)[:count]
    if not len(idx):
        return ""
    rows = [("at", "yours", "expected")]
    for ix in idx:
        ix = tuple(int(i) for i in ix)
        rows.append((str(ix), f"{got[ix]:.6g}", f"{want[ix]:.6g}"))
    w0, w1 = max(len(r[0]) for r in rows), max(len(r[1]) for r in rows)
    n = int(wrong.sum())
    head = f"  where they differ ({len(idx)} of {n} entries shown):"
    return "\n".join([head] + [f"    {a:<{w0}}  {b:>{w1}}   {c}" for a, b, c in rows])


@dataclass
class _Case:
    """What a comparison knows about its problem, to diagnose a wrong result.

    ``regions``: name -> list of (description, boolean mask of the output's shape);
    ``mistakes``: (name, wrong value, diagnosis, concept) for classic wrong answers;
    ``notes``: (name, shape) -> what that wrong shape means; ``where``: which case
    (" with L = 1").
    """

    regions: dict
    mistakes: list
    notes: dict
    where: str = ""


def _diagnose(name: str, got: np.ndarray, want: np.ndarray, err: float, tol: float,
              case: _Case) -> _CheckError:
    """The failure for a student's ``got`` that differs from ``want``: the first matching
    known mistake, else a sign flip or constant factor, else the part of the input where
    it is right and where it is wrong."""
    at = case.where
    values = _side_by_side(got, want)
    tail = f" (rel. error {err:.1e}{at}; tolerance {tol:.0e})"
    for mistake_name, wrong, diagnosis, concept in case.mistakes:
        if mistake_name == name and _close(got, np.asarray(wrong, dtype=np.float64)):
            return _CheckError(f"your {name} {diagnosis}{tail}", concept, values)
    if _close(got, -want):
        return _CheckError(f"your {name} is the negative of the expected value everywhere"
                           f"{tail}", "check the sign of every factor", values)
    scale = float(np.sum(got * want) / max(np.sum(want * want), 1e-300))
    if abs(scale) > 1e-12 and _close(got, scale * want):
        return _CheckError(f"your {name} is exactly {_ratio_text(scale)} the reference"
                           f"{tail}", "a constant factor is missing or extra", values)
    right, wrong = [], []
    for description, mask in case.regions.get(name, []):
        if not mask.any():
            continue
        ok = _close(got[mask], want[mask]) or np.allclose(got[mask], want[mask],
                                                          rtol=1e-7, atol=1e-12)
        (right if ok else wrong).append((description, mask))
    if right and wrong:
        where = " and ".join(d for d, _ in wrong)
        mask = np.any([m for _, m in wrong], axis=0)
        return _CheckError(f"your {name} is right {' and '.join(d for d, _ in right)}, "
                           f"and wrong {where}{tail}", "", _side_by_side(got, want, mask))
    return _CheckError(f"your {name} differs from the reference{tail}", "", values)


def _compare(name: str, got: np.ndarray, want: np.ndarray, case: _Case,
             tol: float = PIECE_TOL) -> float:
    err = gradcheck.rel_error(got, want)
    if not err <= tol:
        raise _diagnose(name, got, want, err, tol, case)
    return err


def _device(backend: str):
    """The device the checkers put data on: ``device1`` under the strict stand-in (its
    non-default device, which refuses NumPy calls as a GPU would), else the default."""
    if backend == "array_api_strict":
        import array_api_strict

        return array_api_strict.Device("device1")
    return None


def _problem(backend: str, seed: int):
    """The namespace, two independent seeded host generators (inputs, upstream
    gradients), and ``put``: host float64 data -> backend."""
    xp = get_namespace(backend)
    dev = _device(backend)
    inputs, upstream = np.random.SeedSequence(seed).spawn(2)
    return (xp, np.random.default_rng(inputs), np.random.default_rng(upstream),
            lambda a: asarray(np.asarray(a, dtype=np.float64), xp, dtype=xp.float64,
                              device=dev))


def _away_from_zero(rng, shape) -> np.ndarray:
    """Normal-ish draws with |x| >= 0.2, so that no check lands on a kink at 0."""
    u = rng.standard_normal(shape)
    return np.sign(u) * (0.2 + np.abs(u))


def _snapshot(value):
    """Host copies of the arrays in ``value`` (an array or a tuple of them)."""
    if isinstance(value, (tuple, list)):
        return [_snapshot(v) for v in value]
    return np.array(to_numpy(value), copy=True) if hasattr(value, "shape") else None


def _changed(before, value, names) -> list:
    """The names of the arrays in ``value`` that differ from their snapshot ``before``."""
    values = value if isinstance(value, (tuple, list)) else (value,)
    befores = before if isinstance(value, (tuple, list)) else (before,)
    return [name for name, b, v in zip(names, befores, values, strict=False)
            if b is not None and hasattr(v, "shape")
            and not np.array_equal(b, to_numpy(v), equal_nan=True)]


def _check_untouched(before, value, names, what: str) -> None:
    changed = _changed(before, value, names)
    if changed:
        raise _CheckError(
            f"your function changed its {what} in place ({', '.join(changed)} was "
            "modified)",
            "in a network the same arrays are used again (the forward's cache by other "
            "backward steps, an upstream gradient by another branch): compute the result "
            "into a new array instead of writing into an argument (no +=, *=, out= or "
            "item assignment on arguments)")


def _check_cache(cache, want: tuple, names: tuple) -> None:
    """The student's forward cache against the reference ``want`` (host arrays)."""
    if not isinstance(cache, (tuple, list)) or len(cache) != len(want):
        raise _CheckError(f"your cache should be ({', '.join(names)}), but it is "
                          f"{_describe(cache)}",
                          "the backward pass unpacks the cache in that order")
    got = [_snapshot(c) for c in cache]
    for i, (g, name) in enumerate(zip(got, names, strict=True)):
        if g is not None and g.shape == want[i].shape and _close(g, want[i]):
            continue
        holds = [names[j] for j, w in enumerate(want)
                 if g is not None and g.shape == w.shape and _close(g, w)]
        found = f"; yours holds {holds[0]} there" if holds else ""
        what = "is in the wrong order" if holds else "holds the wrong content"
        raise _CheckError(f"your cache {what}: its entry {i} should be {name}"
                          f"{found} (the cache is ({', '.join(names)}))",
                          "the backward pass unpacks the cache by position, "
                          f"{', '.join(names)} = cache")


def _check_forward(fn, args: tuple, arg_names: tuple, names: tuple, want: dict, xp,
                   case: _Case, concept: str, cache: tuple | None = None,
                   cache_names: tuple = ()) -> str:
    """Compare the student's forward ``fn(*args)``, which returns ``names``, with the
    reference outputs ``want`` (name -> host array) and, if given, its cache with the
    reference ``cache``. Returns the PASS detail."""
    before = _snapshot(args)
    outputs = _unpack(_call(fn, concept, *args), names)
    _check_untouched(before, args, arg_names, "inputs")
    got = {name: _host(value, name, want[name], xp, case.notes, case.where)
           for name, value in zip(names, outputs, strict=True) if name in want}
    errors = {name: _compare(name, got[name], want[name], case) for name in got}
    if cache is not None:
        _check_cache(outputs[-1], cache, cache_names)
    return f"rel. error {max(errors.values()):.1e} vs the reference"


def _check_backward(fn, dout: np.ndarray, cache, names: tuple, want: tuple,
                    fd: tuple, put, xp, case: _Case, concept: str,
                    cache_names: tuple, dout_name: str) -> tuple[float, float]:
    """Compare the student's ``fn(dout, cache) -> gradients`` with the reference
    gradients ``want`` (host arrays) and check that it left ``dout`` and ``cache`` alone.
    ``fd``: finite-difference gradients, compared with the student's too. Returns the
    largest errors (reference, finite differences)."""
    dout_dev = put(dout)
    before_cache, before_dout = _snapshot(cache), _snapshot(dout_dev)
    grads = _unpack(_call(fn, concept, dout_dev, cache), names)
    _check_untouched(before_cache, cache, cache_names, "cache")
    _check_untouched(before_dout, dout_dev, [dout_name], "upstream gradient")
    got = {name: _host(g, name, w, xp, case.notes, case.where)
           for name, g, w in zip(names, grads, want, strict=True)}
    for name, w in zip(names, want, strict=True):
        for other, w_other in zip(names, want, strict=True):
            if (other != name and not _close(got[name], w) and _close(got[name], w_other)):
                raise _CheckError(f"your {name} is the expected {other}: the outputs are in "
                                  f"the wrong order, ({', '.join(names)}) is expected")
    ref = {name: _compare(name, got[name], w, case) for name, w in zip(names, want,
                                                                       strict=True)}
    num = {name: _compare(name, got[name], f, case) for name, f in zip(names, fd,
                                                                       strict=True)}
    return max(ref.values()), max(num.values())


def _fd(forward, inputs: dict, dout: np.ndarray) -> tuple:
    """Finite-difference gradients of ``sum(dout * forward(**inputs)[0])`` (host)."""

    def f():
        return float(np.sum(forward(**inputs)[0] * dout))

    return tuple(gradcheck.numerical_gradient(f, x) for x in inputs.values())


def _pass_line(ref: float, num: float) -> str:
    return f"rel. error {max(ref, num):.1e} (reference {ref:.1e}, finite differences {num:.1e})"


# ---- the affine layer ---------------------------------------------------------------

def check_linear_forward(fn, *, backend: str = "numpy", seed: int = 0, hint: int = 1) -> bool:
    """Check ``fn(x, W, b) -> (y, cache)`` against :func:`scratchvae.layers.linear_forward`.

    x: (5, 4), W: (4, 3), b: (3,); ``y`` and the cache ``(x, W)`` are compared.
    """
    n, d_in, d_out = 5, 4, 3

    def check():
        xp, rng, _, put = _problem(backend, seed)
        x, W, b = (rng.standard_normal(s) for s in ((n, d_in), (d_in, d_out), (d_out,)))
        case = _Case(regions={}, notes={}, mistakes=[
            ("y", x @ W, "is x W with no bias", "the layer has two parameters")])
        return _check_forward(
            fn, (put(x), put(W), put(b)), ("x", "W", "b"), ("y", "cache"), {"y": x @ W + b},
            xp, case, "x is (n, d_in), W is (d_in, d_out), b is (d_out,)",
            cache=(x, W), cache_names=("x", "W"))

    return _report("linear_forward", check, hint)


def check_linear_backward(fn, *, backend: str = "numpy", seed: int = 0, hint: int = 1) -> bool:
    """Check ``fn(dy, cache) -> (dx, dW, db)`` against
    :func:`scratchvae.layers.linear_backward` and finite differences.

    The cache is ``(x, W)``, as :func:`scratchvae.layers.linear_forward` returns it;
    x: (5, 4), W: (4, 3), b: (3,), dy: (5, 3), drawn independently of x.
    """
    n, d_in, d_out = 5, 4, 3

    def check():
        xp, rng, rng_up, put = _problem(backend, seed)
        x, W, b = (rng.standard_normal(s) for s in ((n, d_in), (d_in, d_out), (d_out,)))
        dy = rng_up.standard_normal((n, d_out))
        want = linear_backward(dy, (x, W))
        case = _Case(regions={}, notes={
            ("db", (n, d_out)): "db was not summed over the batch",
            ("db", ()): "db was summed over everything, the output units too",
            ("db", (n,)): "db was summed over the output units (axis 1), not over the batch",
        }, mistakes=[
            ("db", dy.mean(axis=0), "is the batch mean of dy",
             "the bias is added to every row, and every row's gradient counts in full"),
            ("dW", x.T @ dy / n, "is x.T @ dy divided by the batch size",
             "the 1/n of a batch-mean loss is already inside dy"),
        ])
        fd = _fd(linear_forward, {"x": x.copy(), "W": W.copy(), "b": b.copy()}, dy)
        ref, num = _check_backward(
            fn, dy, (put(x), put(W)), ("dx", "dW", "db"), want, fd, put, xp, case,
            "shapes: dy (n, d_out), x (n, d_in), W (d_in, d_out); the cache is (x, W)",
            ("x", "W"), "dy")
        return _pass_line(ref, num)

    return _report("linear_backward", check, hint)


# ---- activations --------------------------------------------------------------------

_ACTIVATION_CACHE = {"relu": "mask", "leaky_relu": "k", "tanh": "y", "sigmoid": "y",
                     "softplus": "x"}


def _activation_mistakes(kind: str, x: np.ndarray, dy: np.ndarray, cache: np.ndarray):
    reference = ACTIVATIONS[kind][1]
    found = [("dx", reference(np.ones_like(dy), cache),
              "ignores the upstream gradient dy (it is f'(x) alone)",
              "the chain rule multiplies the local slope by dy")]
    if kind in ("relu", "leaky_relu"):
        found += [
            ("dx", np.maximum(dy, 0), "is max(dy, 0): it follows the sign of dy",
             "whether the gradient passes depends on the sign of x, not of dy"),
            ("dx", dy * (dy > 0), "keeps dy where dy > 0: it follows the sign of dy",
             "whether the gradient passes depends on the sign of x, not of dy"),
            ("dx", np.abs(dy) * (x > 0), "is |dy| where x > 0: the sign of dy is lost",
             "the gradient passes unchanged, with its sign"),
        ]
    if kind == "relu":
        found.append(("dx", dy * (1 - cache), "passes dy where x < 0 and blocks it where "
                      "x > 0: the mask is the other way round", ""))
    if kind == "leaky_relu":
        found.append(("dx", np.maximum(dy, 0.01 * dy),
                      "is max(dy, slope * dy): it follows the sign of dy",
                      "which slope applies depends on the sign of x, not of dy"))
    if kind == "tanh":
        found.append(("dx", dy * (1 - np.tanh(cache) ** 2),
                      "applies tanh to the cache, which already holds y = tanh(x)", ""))
        found.append(("dx", dy * (1 - cache), "uses 1 - y: the square is missing", ""))
    if kind == "sigmoid":
        s = sigmoid(cache)
        found.append(("dx", dy * s * (1 - s),
                      "applies the sigmoid to the cache, which already holds y = sigmoid(x)",
                      ""))
    if kind == "softplus":
        found.append(("dx", dy * np.log1p(np.exp(cache)),
                      "multiplies dy by softplus(x) itself, not by its derivative", ""))
    return found


def check_activation_backward(fn, kind: str = "tanh", *, backend: str = "numpy",
                              seed: int = 0, hint: int = 1) -> bool:
    """Check ``fn(dy, cache) -> dx`` for the activation ``kind`` (``"relu"``, ``"tanh"``,
    ...; see :data:`scratchvae.activations.ACTIVATIONS`) against the library's backward
    and finite differences. The cache is what the library's ``<kind>_forward`` returns.
    Inputs stay at least 0.2 away from 0, so ReLU's kink is never hit; the upstream
    gradient is drawn independently of x, with both signs where x > 0 and where x < 0.
    """
    if kind not in ACTIVATIONS:
        raise ValueError(f"kind must be one of {tuple(ACTIVATIONS)}, got {kind!r}")
    forward, reference = ACTIVATIONS[kind]
    cache_name = _ACTIVATION_CACHE[kind]

    def check():
        xp, rng, rng_up, put = _problem(backend, seed)
        x = _away_from_zero(rng, (4, 5))
        dy = rng_up.standard_normal((4, 5))
        # every sign combination of (x, dy) occurs, whatever the seed
        x.flat[:4] = np.abs(x.flat[:4]) * np.array([1, 1, -1, -1])
        dy.flat[:4] = np.abs(dy.flat[:4]) * np.array([1, -1, 1, -1])
        host_cache = forward(x)[1]
        case = _Case(regions={"dx": [("where x > 0", x > 0), ("where x < 0", x < 0)]},
                     notes={}, mistakes=_activation_mistakes(kind, x, dy, host_cache))
        fd = _fd(forward, {"x": x.copy()}, dy)
        ref, num = _check_backward(
            fn, dy, forward(put(x))[1], ("dx",), (reference(dy, host_cache),), fd, put, xp,
            case, f"dy has the shape of x; the cache is {cache_name}", (cache_name,), "dy")
        return _pass_line(ref, num)

    return _report(f"{kind}_backward", check, hint)


# ---- the Bernoulli likelihood from logits -------------------------------------------

def _bernoulli_problem(rng, n: int, D: int):
    """x and logits of shape (n, D), with rows of four kinds (see the checker)."""
    x = rng.random((n, D))
    logits = 3 * rng.standard_normal((n, D))
    x[1, :4], logits[1, :4] = (1.0, 0.0, 1.0, 0.0), (800.0, -800.0, 40.0, -40.0)
    x[2, :4], logits[2, :4] = (1.0, 0.0, 1.0, 0.0), (-50.0, 50.0, -35.0, 35.0)
    x[3, :2], logits[3, :2] = (1.0, 0.0), (-800.0, 800.0)
    return x, logits


_ROWS = ("for moderate logits (row 0)",
         "where the extreme logits are confidently right (row 1: x = 1 with l = +800, "
         "x = 0 with l = -800, l = ±40)",
         "where the extreme logits are confidently wrong (row 2: x = 1 with l = -50, "
         "x = 0 with l = +50, l = ∓35)",
         "where the logits are ±800 and confidently wrong (row 3)")


def check_bernoulli_logpmf_forward(fn, *, backend: str = "numpy", seed: int = 0,
                                   hint: int = 1) -> bool:
    """Check ``fn(x, logits) -> (logp, cache)`` against
    :func:`scratchvae.likelihoods.bernoulli_logpmf_forward`.

    x, logits: (4, 7), logp: (4,). Row 0 has moderate logits; row 1 extreme logits that
    are confidently right (``x = 1, l = 800``); rows 2 and 3 confidently wrong ones
    (``x = 1, l = -50`` and ``-800``), where a clipped ``log(sigmoid(l))`` or clamped
    logits lose the value and a naive form overflows: only a stable form passes.
    """
    n, D = 4, 7

    def check():
        xp, rng, _, put = _problem(backend, seed)
        x, logits = _bernoulli_problem(rng, n, D)
        want, cache = bernoulli_logpmf_forward(x, logits)
        rows = np.arange(n)
        p = 1 / (1 + np.exp(-np.clip(logits, -700, 700)))
        case = _Case(
            regions={"logp": [(d, rows == i) for i, d in enumerate(_ROWS)]},
            notes={("logp", (n, D)): "logp was not summed over the pixels (the last axis)",
                   ("logp", ()): "logp was summed over the batch as well: one value per "
                                 "example is expected",
                   ("logp", (D,)): "logp was summed over the batch (axis 0) instead of "
                                   "the pixels",
                   ("logp", "finite"): "rows 1 and 3 hold logits of ±800, where exp "
                                       "overflows and a sigmoid rounds to exactly 0 or 1",
                   ("logp", "finite concept"): "a form with no exp of a large positive "
                                               "number and no log of 0"},
            mistakes=[("logp", -want, "is the negative log-likelihood (the cross-entropy)",
                       "the exercise asks for log p"),
                      ("logp", np.sum(x * np.log(p + 1e-7) + (1 - x) * np.log(1 - p + 1e-7),
                                      axis=-1),
                       "matches a log of a sigmoid clipped at 1e-7: wrong wherever the "
                       "model is confidently wrong", "")])
        return _check_forward(
            fn, (put(x), put(logits)), ("x", "logits"), ("logp", "cache"), {"logp": want},
            xp, case, "x and logits have shape (n, D); logp has shape (n,)",
            cache=cache, cache_names=("x", "logits", "e"))

    return _report("bernoulli_logits_forward", check, hint)


def check_bernoulli_logpmf_backward(fn, *, backend: str = "numpy", seed: int = 0,
                                    hint: int = 1) -> bool:
    """Check ``fn(dlogp, cache) -> dlogits`` against
    :func:`scratchvae.likelihoods.bernoulli_logpmf_backward` and finite differences.

    The cache is ``(x, logits, e)`` with ``e = exp(-|logits|)``, as
    :func:`scratchvae.likelihoods.bernoulli_logpmf_forward` returns it;
    x, logits: (4, 7) with the rows of :func:`check_bernoulli_logpmf_forward`; dlogp:
    (4,), drawn independently.
    """
    n, D = 4, 7

    def check():
        xp, rng, rng_up, put = _problem(backend, seed)
        x, logits = _bernoulli_problem(rng, n, D)
        dlogp = rng_up.standard_normal(n)
        cache = bernoulli_logpmf_forward(x, logits)[1]
        s = sigmoid(logits)
        rows = np.broadcast_to(np.arange(n)[:, None], (n, D))
        case = _Case(
            regions={"dlogits": [(d, rows == i) for i, d in enumerate(_ROWS)]},
            notes={("dlogits", (n,)): "dlogits has one entry per pixel: do not sum",
                   ("dlogits", "finite"): "rows 1 and 3 hold logits of ±800, where exp "
                                          "overflows",
                   ("dlogits", "finite concept"): "compute the sigmoid from the cached "
                                                  "e = exp(-|l|) <= 1, which cannot "
                                                  "overflow"},
            mistakes=[("dlogits", dlogp[:, None] * (s - x),
                       "is the gradient of the negative log-likelihood", ""),
                      ("dlogits", x - s, "ignores the upstream gradient dlogp",
                       "the chain rule multiplies by each example's dlogp"),
                      ("dlogits", dlogp[:, None] * (x - (1 - s)),
                       "uses sigmoid(-l) where sigmoid(l) belongs", ""),
                      ("dlogits", dlogp[:, None] * (x - 1 / (1 + cache[2])),
                       "uses 1 / (1 + e) for every logit: that is the sigmoid only where "
                       "l >= 0", "")])
        x_host = x

        def forward(logits):
            return bernoulli_logpmf_forward(x_host, logits)

        want = bernoulli_logpmf_backward(dlogp, cache)
        fd = _fd(forward, {"logits": logits.copy()}, dlogp)
        dev_cache = bernoulli_logpmf_forward(put(x), put(logits))[1]
        ref, num = _check_backward(
            fn, dlogp, dev_cache, ("dlogits",), (want,), fd, put, xp, case,
            "dlogp has shape (n,) and x, logits have shape (n, D); the cache is "
            "(x, logits, e)", ("x", "logits", "e"), "dlogp")
        return _pass_line(ref, num)

    return _report("bernoulli_logits_backward", check, hint)


# ---- the KL divergence to the prior -------------------------------------------------

def check_kl_std_normal(forward_fn, backward_fn, *, backend: str = "numpy", seed: int = 0,
                        hint: int = 1) -> bool:
    """Check a KL(N(mu, exp(logvar)) || N(0, I)) pair against :mod:`scratchvae.kl` and
    finite differences.

    ``forward_fn(mu, logvar) -> (kl, cache)`` with mu, logvar: (4, 3) and kl: (4,);
    the cache must be ``(mu, var)``; ``backward_fn(dkl, cache) -> (dmu, dlogvar)`` gets
    the cache of ``forward_fn`` and a dkl (4,) drawn independently of mu and logvar.
    """
    n, d = 4, 3

    def check():
        xp, rng, rng_up, put = _problem(backend, seed)
        mu, logvar = rng.standard_normal((n, d)), 0.5 * rng.standard_normal((n, d))
        want, ref_cache = kl_std_normal_forward(mu, logvar)
        var = np.exp(logvar)
        terms = var + mu**2 - 1 - logvar
        case = _Case(
            regions={},
            notes={("kl", (n, d)): "the KL was not summed over the latent dimensions "
                                   "(the last axis)",
                   ("kl", ()): "the KL was summed over the batch as well: one value per "
                               "example is expected",
                   ("kl", (d,)): "the KL was summed over the batch (axis 0) instead of the "
                                 "latent dimensions"},
            mistakes=[
                ("kl", 0.5 * (np.exp(2 * logvar) + mu**2 - 1 - 2 * logvar).sum(-1),
                 "treats logvar as log sigma (sigma² = exp(2 logvar))", "logvar is log sigma²"),
                ("kl", 0.5 * (np.exp(0.5 * logvar) + mu**2 - 1 - logvar).sum(-1),
                 "uses sigma = exp(logvar / 2) where the variance sigma² belongs", ""),
                ("kl", 0.5 * (terms + 1).sum(-1),
                 "is not zero at mu = 0, logvar = 0: a constant term is missing", ""),
                ("kl", 0.5 * (var + mu**2 - 1 + logvar).sum(-1),
                 "has the log-variance term with the wrong sign", ""),
                ("kl", 0.5 * (mu**2 - 1 - logvar).sum(-1), "leaves out the variance term",
                 ""),
            ])
        try:
            _check_forward(forward_fn, (put(mu), put(logvar)), ("mu", "logvar"),
                           ("kl", "cache"), {"kl": want}, xp, case,
                           "mu and logvar have shape (n, d); kl has shape (n,)",
                           cache=ref_cache, cache_names=("mu", "var"))
        except _CheckError as fail:
            fail.message = f"forward: {fail.message}"
            raise
        dkl = rng_up.standard_normal(n)
        mu_dev, logvar_dev = put(mu), put(logvar)
        student_cache = _unpack(_call(forward_fn, "", mu_dev, logvar_dev),
                                ("kl", "cache"))[1]
        want_grads = kl_std_normal_backward(dkl, ref_cache)
        dmu = dkl[:, None] * mu
        case = _Case(
            regions={},
            notes={("dmu", (n, n)): "dkl was broadcast along the wrong axis",
                   ("dlogvar", (n, n)): "dkl was broadcast along the wrong axis"},
            mistakes=[
                ("dlogvar", dkl[:, None] * (var - 1), "is twice the reference: the "
                 "derivative of the ½ (sigma² - 1 - logvar) term lost its ½", ""),
                ("dmu", mu, "ignores the upstream gradient dkl",
                 "the chain rule multiplies by each example's dkl"),
                ("dlogvar", 0.5 * (var - 1), "ignores the upstream gradient dkl",
                 "the chain rule multiplies by each example's dkl"),
                ("dlogvar", dkl[:, None] * 0.5 * (np.exp(0.5 * logvar) - 1),
                 "uses sigma where the variance sigma² belongs", ""),
                ("dmu", 2 * dmu, "is twice the reference: the ½ in front of mu² cancels "
                 "the 2 of its derivative", ""),
            ])
        fd = _fd(kl_std_normal_forward, {"mu": mu.copy(), "logvar": logvar.copy()}, dkl)
        try:
            ref, num = _check_backward(
                backward_fn, dkl, student_cache, ("dmu", "dlogvar"), want_grads, fd, put,
                xp, case, "dkl has shape (n,) and mu, logvar (n, d)", ("mu", "var"), "dkl")
        except _CheckError as fail:
            fail.message = f"backward: {fail.message}"
            raise
        return _pass_line(ref, num)

    return _report("kl_std_normal", check, hint)


# ---- the reparameterization ---------------------------------------------------------

_SAMPLES = (1, 3)   # L = 1, as in the VAE exercise, and L > 1


def _reparam_problem(rng, L: int, n: int = 4, d: int = 2):
    mu, logvar = rng.standard_normal((n, d)), rng.standard_normal((n, d))
    return mu, logvar, rng.standard_normal((L, n, d))


def _in_cases(check_one) -> str:
    """Run ``check_one(L)`` for each L of :data:`_SAMPLES`; a failure in one says whether
    the other passed."""
    results, failures = {}, {}
    for L in _SAMPLES:
        try:
            results[L] = check_one(L)
        except _CheckError as fail:
            failures[L] = fail
    if failures:
        fail = failures[max(failures)]   # where both fail, L > 1 says more
        passed = [str(k) for k in results]
        if passed:
            fail.message += f"; it is right with L = {' and '.join(passed)}"
        raise fail
    return f"{results[_SAMPLES[-1]]}, for L = {' and '.join(map(str, _SAMPLES))}"


def check_reparameterize_forward(fn, *, backend: str = "numpy", seed: int = 0,
                                 hint: int = 1) -> bool:
    """Check ``fn(mu, logvar, eps) -> (z, cache)`` against
    :func:`scratchvae.reparam.reparameterize_forward`, with ``L = 1`` and ``L = 3`` draws
    per point: mu, logvar: (4, 2), eps and z: (L, 4, 2); the cache is ``(sigma, eps)``.
    """

    def check():
        xp, rng, _, put = _problem(backend, seed)

        def one(L):
            mu, logvar, eps = _reparam_problem(rng, L)
            want, cache = reparameterize_forward(mu, logvar, eps)
            case = _Case(regions={}, where=f" with L = {L}", notes={}, mistakes=[
                ("z", mu + np.exp(logvar) * eps, "uses exp(logvar), the variance, as the "
                 "standard deviation", ""),
                ("z", mu + logvar * eps, "uses logvar itself as the standard deviation", ""),
                ("z", mu + np.exp(-0.5 * logvar) * eps, "uses 1/sigma as the standard "
                 "deviation", ""),
                ("z", mu + np.sqrt(np.abs(logvar)) * eps, "takes the square root of logvar, "
                 "not of the variance", ""),
            ])
            return _check_forward(fn, (put(mu), put(logvar), put(eps)),
                                  ("mu", "logvar", "eps"), ("z", "cache"), {"z": want}, xp,
                                  case, "mu, logvar have shape (n, d) and eps (L, n, d)",
                                  cache=cache, cache_names=("sigma", "eps"))

        return _in_cases(one)

    return _report("reparameterize_forward", check, hint)


def check_reparameterize_backward(fn, *, backend: str = "numpy", seed: int = 0,
                                  hint: int = 1) -> bool:
    """Check ``fn(dz, cache) -> (dmu, dlogvar)`` against
    :func:`scratchvae.reparam.reparameterize_backward` and finite differences, with
    ``L = 1`` and ``L = 3``.

    The cache is ``(sigma, eps)`` as :func:`scratchvae.reparam.reparameterize_forward`
    returns it; mu, logvar: (4, 2), eps and dz: (L, 4, 2).
    """

    def check():
        xp, rng, rng_up, put = _problem(backend, seed)

        def one(L):
            mu, logvar, eps = _reparam_problem(rng, L)
            dz = rng_up.standard_normal(eps.shape)
            cache = reparameterize_forward(mu, logvar, eps)[1]
            sigma = cache[0]
            case = _Case(regions={}, where=f" with L = {L}", notes={}, mistakes=[
                ("dlogvar", (dz * eps).sum(0) * sigma, "is twice the reference: the "
                 "derivative of exp(logvar / 2) brings a factor ½", ""),
                ("dmu", dz.mean(0), "averages over the L samples instead of adding them",
                 "each sample adds its own term to the loss"),
                ("dlogvar", (dz * eps).mean(0) * 0.5 * sigma, "averages over the L "
                 "samples instead of adding them", "each sample adds its own term"),
                ("dlogvar", (eps * 0.5 * sigma).sum(0), "ignores the upstream gradient dz",
                 "the chain rule multiplies by dz"),
                ("dmu", dz[0], "keeps only the first sample's gradient", ""),
                ("dlogvar", (dz * eps)[0] * 0.5 * sigma, "keeps only the first sample's "
                 "gradient", ""),
                ("dlogvar", (dz * eps).sum(0) * 0.5 * sigma**2, "uses the variance sigma² "
                 "where sigma belongs", ""),
            ])

            def forward(mu, logvar):
                return reparameterize_forward(mu, logvar, eps)

            want = reparameterize_backward(dz, cache)
            fd = _fd(forward, {"mu": mu.copy(), "logvar": logvar.copy()}, dz)
            ref, num = _check_backward(
                fn, dz, (put(sigma), put(eps)), ("dmu", "dlogvar"), want, fd, put, xp,
                case, "dz has shape (L, n, d); the cache is (sigma, eps) with sigma (n, d) "
                "and eps (L, n, d)", ("sigma", "eps"), "dz")
            return _pass_line(ref, num)

        return _in_cases(one)

    return _report("reparameterize_backward", check, hint)


# ---- the whole VAE ------------------------------------------------------------------

def _vae_host(p: dict, x: np.ndarray, eps: np.ndarray, *, enc_tanh: str = "right",
              dec_tanh: str = "right", heads: str = "both", kl_grad: bool = True,
              z_grad: bool = True, scale: float | None = None) -> dict:
    """The whole-VAE gradients on the host, right or with one classic mistake (for the
    diagnosis): a wrong tanh derivative in the encoder or decoder (``"tanh_again"``:
    1 - tanh(a)², ``"none"``: no derivative), one head only, no KL or no sample gradient
    into mu and logvar, a sum over the batch instead of a mean (``scale=1``)."""
    n = x.shape[0]
    s = 1 / n if scale is None else scale

    def act_backward(dy, y, how):
        return {"right": tanh_backward(dy, y), "tanh_again": dy * (1 - np.tanh(y) ** 2),
                "none": dy}[how]

    h, c_h = linear_forward(x, p["enc.0.W"], p["enc.0.b"])
    a, _ = tanh_forward(h)
    mu, c_mu = linear_forward(a, p["enc.mu.W"], p["enc.mu.b"])
    logvar, c_lv = linear_forward(a, p["enc.logvar.W"], p["enc.logvar.b"])
    z, c_z = reparameterize_forward(mu, logvar, eps)
    g, c_g = linear_forward(z[0], p["dec.0.W"], p["dec.0.b"])
    b, _ = tanh_forward(g)
    logits, c_l = linear_forward(b, p["dec.out.W"], p["dec.out.b"])
    c_px = bernoulli_logpmf_forward(x, logits)[1]
    c_kl = kl_std_normal_forward(mu, logvar)[1]
    grads = {}
    dlogits = bernoulli_logpmf_backward(-s * np.ones(n), c_px)
    db, grads["dec.out.W"], grads["dec.out.b"] = linear_backward(dlogits, c_l)
    dz, grads["dec.0.W"], grads["dec.0.b"] = linear_backward(act_backward(db, b, dec_tanh),
                                                             c_g)
    dmu_z, dlv_z = reparameterize_backward(dz[None], c_z)
    dmu_kl, dlv_kl = kl_std_normal_backward(s * np.ones(n), c_kl)
    dmu = z_grad * dmu_z + kl_grad * dmu_kl
    dlv = z_grad * dlv_z + kl_grad * dlv_kl
    da_mu, grads["enc.mu.W"], grads["enc.mu.b"] = linear_backward(dmu, c_mu)
    da_lv, grads["enc.logvar.W"], grads["enc.logvar.b"] = linear_backward(dlv, c_lv)
    da = {"both": da_mu + da_lv, "mu": da_mu, "logvar": da_lv}[heads]
    _, grads["enc.0.W"], grads["enc.0.b"] = linear_backward(act_backward(da, a, enc_tanh),
                                                            c_h)
    return grads


_VAE_MISTAKES = [
    (dict(enc_tanh="tanh_again"), "the encoder's tanh backward applies tanh again to its "
     "cache, which already holds a = tanh(h)"),
    (dict(enc_tanh="none"), "the encoder's tanh backward is missing (the gradient goes "
     "from the heads to enc.0 without the derivative of tanh)"),
    (dict(dec_tanh="tanh_again"), "the decoder's tanh backward applies tanh again to its "
     "cache, which already holds b = tanh(g)"),
    (dict(dec_tanh="none"), "the decoder's tanh backward is missing"),
    (dict(heads="mu"), "the hidden layer gets the gradient of the mu head only: the "
     "logvar head's is missing"),
    (dict(heads="logvar"), "the hidden layer gets the gradient of the logvar head only: "
     "the mu head's is missing"),
    (dict(kl_grad=False), "mu and logvar get the gradient through the sample z but not "
     "the KL's"),
    (dict(z_grad=False), "mu and logvar get the KL's gradient but not the one through "
     "the sample z"),
    (dict(scale=1.0), "every gradient is n times the reference: the backward pass starts "
     "from a sum over the batch, while the loss is the batch mean"),
]

_VAE_PARTS = (("the decoder (dec.*)", ("dec.",)),
              ("the encoder heads (enc.mu.*, enc.logvar.*)", ("enc.mu.", "enc.logvar.")),
              ("the encoder's hidden layer (enc.0.*)", ("enc.0.",)))


def _vae_diagnosis(got: dict, want: dict, errors: dict, p: dict, x, eps) -> tuple[str, str]:
    """Where the whole-VAE gradients are wrong, and which classic mistake reproduces them."""
    flat_got = np.concatenate([got[k].ravel() for k in want])
    flat_want = np.concatenate([want[k].ravel() for k in want])
    if _close(flat_got, -flat_want):
        return ("your gradients are those of the ELBO: the loss is the negative ELBO",
                "flip the sign where the backward pass starts")
    right, wrong = [], []
    for label, prefixes in _VAE_PARTS:
        keys = [k for k in want if k.startswith(prefixes)]
        (wrong if any(errors[k] > MODEL_TOL for k in keys) else right).append(label)
    where = (f"your gradients are right for {' and '.join(right)}, and wrong for "
             f"{', '.join(wrong)}" if right else f"your gradients are wrong for "
             f"{', '.join(wrong)}")
    for variant, what in _VAE_MISTAKES:
        alt = _vae_host(p, x, eps, **variant)
        if all(_close(got[k], alt[k]) for k in want):
            return f"{where}: they match a backward pass in which {what}", ""
    first = wrong[0]
    return (f"{where}, so the mistake is in the backward steps of {first}, or in the "
            "gradient that reaches it", "")


def check_vae_backward(fn, *, backend: str = "numpy", seed: int = 0, hint: int = 1,
                       name: str = "vae_backward") -> bool:
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
    differences of the model's loss, to :data:`MODEL_TOL`. A failure names the part of
    the model whose gradients are wrong and, where one reproduces them, the classic
    mistake (a tanh backward, a missing head, a missing KL gradient, a sum for a mean).
    ``name`` is the name the printed line starts with.
    """
    n = _VAE_CHECK_BATCH

    def check():
        xp, rng, _, _ = _problem(backend, seed)
        model = VAE(**VAE_CHECK_CONFIG, backend=backend, device=_device(backend))
        D, d = model.input_dim, model.latent_dim
        x_host, eps_host = rng.random((n, D)), rng.standard_normal((1, n, d))
        x, eps = model.asarray(x_host), model.asarray(eps_host)
        want_loss = float(model.loss(x, eps).loss)
        model.backward()
        want = {k: np.array(to_numpy(g)) for k, g in model.grads.items()}
        host_params = {k: np.array(to_numpy(p)) for k, p in model.params.items()}

        def f():
            return model.loss(x, eps).loss

        fd = {k: gradcheck.numerical_gradient(f, p) for k, p in model.params.items()}
        params = {k: xp.asarray(p, copy=True) for k, p in model.params.items()}
        before = _snapshot([params[k] for k in want] + [x, eps])
        loss, grads = _unpack(_call(fn, "", params, x, eps), ("loss", "grads"))
        _check_untouched(before, [params[k] for k in want] + [x, eps],
                         [*want, "x", "eps"], "inputs")
        try:
            got_loss = float(loss)
        except (TypeError, ValueError):
            raise _CheckError(f"your loss should be a scalar, got {_describe(loss)}") from None
        if not abs(got_loss - want_loss) <= MODEL_TOL * abs(want_loss):
            raise _CheckError(f"your loss = {got_loss:.8g} but model.loss(x, eps).loss = "
                              f"{want_loss:.8g}" + _vae_loss_note(got_loss, host_params,
                                                                  x_host, eps_host))
        if not isinstance(grads, Mapping):
            raise _CheckError(f"grads should be a dict name -> array, got {_describe(grads)}")
        missing = [k for k in want if k not in grads]
        extra = [k for k in grads if k not in want]
        if missing or extra:
            raise _CheckError(f"grads should have the keys of params; missing {missing}, "
                              f"unexpected {extra}")
        got = {k: _host(grads[k], k, want[k], xp, {}) for k in want}
        ref = {k: gradcheck.rel_error(got[k], want[k]) for k in want}
        num = {k: gradcheck.rel_error(got[k], fd[k]) for k in want}
        errors = {k: max(ref[k], num[k]) for k in want}
        worst = max(errors, key=errors.get)
        if not errors[worst] <= MODEL_TOL:
            diagnosis, concept = _vae_diagnosis(got, want, errors, host_params, x_host,
                                                eps_host)
            raise _CheckError(f"{diagnosis} (worst: {worst}, rel. error "
                              f"{errors[worst]:.1e} vs model.backward() and finite "
                              f"differences; tolerance {MODEL_TOL:.0e})", concept,
                              _side_by_side(got[worst], want[worst]))
        return (f"loss and all {len(want)} gradients match, max rel. error "
                f"{errors[worst]:.1e} (model.backward() {max(ref.values()):.1e}, "
                f"finite differences {max(num.values()):.1e})")

    return _report(name, check, hint, exercise="vae_backward")


def _vae_loss_note(got: float, p: dict, x: np.ndarray, eps: np.ndarray) -> str:
    """Which classic variant of the loss the student's value ``got`` is."""
    h = np.tanh(x @ p["enc.0.W"] + p["enc.0.b"])
    mu, logvar = h @ p["enc.mu.W"] + p["enc.mu.b"], h @ p["enc.logvar.W"] + p["enc.logvar.b"]
    kl = kl_std_normal_forward(mu, logvar)[0]

    def log_px(sigma):
        z = mu + sigma * eps[0]
        logits = np.tanh(z @ p["dec.0.W"] + p["dec.0.b"]) @ p["dec.out.W"] + p["dec.out.b"]
        return bernoulli_logpmf_forward(x, logits)[0]

    right = log_px(np.exp(0.5 * logvar))
    variants = [(np.sum(kl - right), "the sum over the batch, not the mean"),
                (np.mean(-kl - right), "the KL term has the wrong sign"),
                (np.mean(-right), "the KL term is missing"),
                (np.mean(kl + right), "the log-likelihood term has the wrong sign"),
                (np.mean(right - kl), "the ELBO, not the negative ELBO"),
                (np.mean(kl - log_px(np.exp(logvar))), "the sample uses exp(logvar) as "
                 "the standard deviation"),
                (np.mean(kl - right) / x.shape[1], "divided by the number of pixels")]
    for value, what in variants:
        if math.isclose(got, value, rel_tol=1e-6):
            return f": your loss is {what}"
    return ""


# The checkers' former names, which the notebooks' first edition and the README used.
check_bernoulli_logits_forward = check_bernoulli_logpmf_forward
check_bernoulli_logits_backward = check_bernoulli_logpmf_backward
check_kl = check_kl_std_normal
