"""Argument checks shared by the whole package: each turns a bad value into an error that
names the argument and says what is expected."""

from __future__ import annotations

import math
import operator

import numpy as np


def check_int(value, name: str, minimum: int = 1) -> int:
    """``value`` as an int ``>= minimum``, else a ``ValueError``/``TypeError`` naming it."""
    try:
        value = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer >= {minimum}, got {value!r}") from None
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value}")
    return value


def check_choice(value, name: str, choices) -> str:
    """``value`` if it is one of ``choices``, else a ``ValueError`` listing them."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")
    return value


def check_number(value, name: str, allow_zero: bool = False) -> float:
    """``value`` as a float, finite and > 0 (>= 0 with ``allow_zero``), else a
    ``ValueError`` naming it."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and \
        math.isfinite(value) and (value >= 0 if allow_zero else value > 0)
    if not ok:
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")
    return float(value)


def check_unit_interval(x, name: str = "x") -> None:
    """Host data ``x`` must be finite and lie in [0, 1] (grey values for a Bernoulli
    likelihood, probabilities to binarize)."""
    x = np.asarray(x)
    if x.size and (not np.all(np.isfinite(x)) or x.min() < 0 or x.max() > 1):
        raise ValueError(f"{name} must lie in [0, 1] (finite values), got values in "
                         f"[{np.nanmin(x)}, {np.nanmax(x)}]")
