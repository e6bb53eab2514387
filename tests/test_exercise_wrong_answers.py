"""The exercise checkers against the wrong answers students really write.

For each of the nine checkers of :mod:`scratchvae.exercises`, this file holds wrong
implementations, each a small function registered with the class of mistake it belongs
to and a fragment of the diagnosis the checker must print, and valid alternative forms
that must pass. Every test carries the pytest marker of its exercise (``pytest -m
ex_kl`` runs the KL's).
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

import scratchvae as sv
from scratchvae import exercises as ex
from scratchvae.activations import sigmoid, tanh_backward, tanh_forward
from scratchvae.backend import array_namespace
from scratchvae.kl import kl_std_normal_backward, kl_std_normal_forward
from scratchvae.layers import linear_backward, linear_forward
from scratchvae.likelihoods import bernoulli_logpmf_backward, bernoulli_logpmf_forward
from scratchvae.reparam import reparameterize_backward, reparameterize_forward

#: checker key -> (function running the checker on the student's function(s), marker)
CHECKERS = {
    "linear_forward": (ex.check_linear_forward, "ex_linear"),
    "linear_backward": (ex.check_linear_backward, "ex_linear"),
    "activation_backward": (None, "ex_activations"),
    "bernoulli_forward": (ex.check_bernoulli_logpmf_forward, "ex_bernoulli"),
    "bernoulli_backward": (ex.check_bernoulli_logpmf_backward, "ex_bernoulli"),
    "kl": (ex.check_kl_std_normal, "ex_kl"),
    "reparameterize_forward": (ex.check_reparameterize_forward, "ex_reparam"),
    "reparameterize_backward": (ex.check_reparameterize_backward, "ex_reparam"),
    "vae_backward": (ex.check_vae_backward, "ex_vae"),
}

WRONG: list[tuple] = []   # (checker, mistake class, functions, kind, diagnosis fragment)
VALID: list[tuple] = []   # (checker, description, functions, kind)


def wrong(checker: str, mistake: str, expect: str, kind: str | None = None, *, pair=None):
    """Register a wrong implementation: ``checker`` must FAIL it and print ``expect``.
    ``pair``: for the KL, the library function the wrong one is paired with."""
    def register(fn):
        fns = (fn,) if pair is None else ((fn, pair) if pair is kl_std_normal_backward
                                          else (pair, fn))
        WRONG.append((checker, mistake, fns, kind, expect, fn.__name__))
        return fn
    return register


def valid(checker: str, description: str, kind: str | None = None, *, pair=None):
    """Register a valid alternative form: ``checker`` must PASS it."""
    def register(fn):
        fns = (fn,) if pair is None else ((fn, pair) if pair is kl_std_normal_backward
                                          else (pair, fn))
        VALID.append((checker, description, fns, kind, fn.__name__))
        return fn
    return register


def run(checker: str, fns: tuple, kind: str | None, **kw) -> bool:
    if checker == "activation_backward":
        return ex.check_activation_backward(*fns, kind, **kw)
    return CHECKERS[checker][0](*fns, **kw)


# ---- linear_forward -----------------------------------------------------------------

@wrong("linear_forward", "missing term", "with no bias")
def linear_forward_no_bias(x, W, b):
    return x @ W, (x, W)


@wrong("linear_forward", "transpose", "do not fit together")
def linear_forward_w_transposed(x, W, b):
    return x @ W.T + b, (x, W)


@wrong("linear_forward", "transpose", "it is transposed")
def linear_forward_output_transposed(x, W, b):
    return (x @ W + b).T, (x, W)


@wrong("linear_forward", "sign slip", "differs from the reference")
def linear_forward_minus_bias(x, W, b):
    return x @ W - b, (x, W)


@wrong("linear_forward", "broadcast along the wrong axis", "do not fit together")
def linear_forward_bias_as_column(x, W, b):
    return x @ W + b[:, None], (x, W)


@wrong("linear_forward", "float32", "float32, expected float64")
def linear_forward_float32(x, W, b):
    xp = array_namespace(x)
    return xp.astype(x @ W + b, xp.float32), (x, W)


@wrong("linear_forward", "in-place edit of an input", "changed its inputs in place")
def linear_forward_scales_x_in_place(x, W, b):
    x /= 2
    return 2 * (x @ W) + b, (x, W)


@wrong("linear_forward", "cache in the wrong order", "cache is in the wrong order")
def linear_forward_cache_swapped(x, W, b):
    return x @ W + b, (W, x)


@wrong("linear_forward", "keepdims", "has shape (1, 3), expected (5, 3)")
def linear_forward_summed_batch(x, W, b):
    xp = array_namespace(x)
    return xp.sum(x @ W, axis=0, keepdims=True) + b, (x, W)


@wrong("linear_forward", "no cache", "should return (y, cache)")
def linear_forward_no_cache(x, W, b):
    return x @ W + b


@wrong("linear_forward", "elementwise for affine", "differs from the reference")
def linear_forward_times_bias(x, W, b):
    return x @ W * b, (x, W)


@valid("linear_forward", "bias first, with matmul")
def linear_forward_matmul(x, W, b):
    xp = array_namespace(x)
    return b + xp.matmul(x, W), (x, W)


@valid("linear_forward", "bias broadcast explicitly")
def linear_forward_bias_row(x, W, b):
    return x @ W + b[None, :], (x, W)


# ---- linear_backward ----------------------------------------------------------------

@wrong("linear_backward", "missing sum over the batch", "not summed over the batch")
def linear_backward_db_not_summed(dy, cache):
    x, W = cache
    return dy @ W.T, x.T @ dy, dy


@wrong("linear_backward", "mean for sum", "is the batch mean of dy")
def linear_backward_db_mean(dy, cache):
    xp = array_namespace(dy)
    x, W = cache
    return dy @ W.T, x.T @ dy, xp.mean(dy, axis=0)


@wrong("linear_backward", "wrong-axis sum", "summed over the output units")
def linear_backward_db_wrong_axis(dy, cache):
    xp = array_namespace(dy)
    x, W = cache
    return dy @ W.T, x.T @ dy, xp.sum(dy, axis=1)


@wrong("linear_backward", "keepdims", "has shape (1, 3), expected (3,): an extra axis")
def linear_backward_db_keepdims(dy, cache):
    xp = array_namespace(dy)
    x, W = cache
    return dy @ W.T, x.T @ dy, xp.sum(dy, axis=0, keepdims=True)


@wrong("linear_backward", "transpose", "dW has shape (3, 4), expected (4, 3): it is transposed")
def linear_backward_dw_transposed(dy, cache):
    xp = array_namespace(dy)
    x, W = cache
    return dy @ W.T, dy.T @ x, xp.sum(dy, axis=0)


@wrong("linear_backward", "extra 1/n", "divided by the batch size")
def linear_backward_dw_averaged(dy, cache):
    xp = array_namespace(dy)
    x, W = cache
    return dy @ W.T, x.T @ dy / dy.shape[0], xp.sum(dy, axis=0)


@wrong("linear_backward", "sign slip", "negative of the expected")
def linear_backward_dx_negated(dy, cache):
    xp = array_namespace(dy)
    x, W = cache
    return -(dy @ W.T), x.T @ dy, xp.sum(dy, axis=0)


@wrong("linear_backward", "cache in the wrong order", "do not fit together")
def linear_backward_cache_swapped(dy, cache):
    xp = array_namespace(dy)
    W, x = cache
    return dy @ W.T, x.T @ dy, xp.sum(dy, axis=0)


@wrong("linear_backward", "in-place edit of dy", "changed its upstream gradient in place")
def linear_backward_scales_dy(dy, cache):
    xp = array_namespace(dy)
    x, W = cache
    dy *= 1.0 + 0 * dy
    dy += 0.5
    return (dy - 0.5) @ W.T, x.T @ (dy - 0.5), xp.sum(dy - 0.5, axis=0)


@wrong("linear_backward", "in-place edit of the cache", "changed its cache in place")
def linear_backward_scales_cached_x(dy, cache):
    xp = array_namespace(dy)
    x, W = cache
    x /= dy.shape[0]
    return dy @ W.T, x.T @ dy * dy.shape[0], xp.sum(dy, axis=0)


@wrong("linear_backward", "float32", "dW is float32, expected float64")
def linear_backward_float32(dy, cache):
    xp = array_namespace(dy)
    x, W = cache
    return dy @ W.T, xp.astype(x.T @ dy, xp.float32), xp.sum(dy, axis=0)


@wrong("linear_backward", "outputs in the wrong order", "dx has shape (4, 3), expected (5, 4)")
def linear_backward_returns_dw_first(dy, cache):
    xp = array_namespace(dy)
    x, W = cache
    return x.T @ dy, dy @ W.T, xp.sum(dy, axis=0)


@wrong("linear_backward", "missing chain rule", "differs from the reference")
def linear_backward_dw_without_dy(dy, cache):
    xp = array_namespace(dy)
    x, W = cache
    return dy @ W.T, x.T @ xp.ones_like(dy), xp.sum(dy, axis=0)


@valid("linear_backward", "matmul and transposes written out")
def linear_backward_matmul(dy, cache):
    xp = array_namespace(dy)
    x, W = cache
    return xp.matmul(dy, xp.matrix_transpose(W)), xp.matmul(x.mT, dy), xp.sum(dy, axis=0)


@valid("linear_backward", "db as ones @ dy")
def linear_backward_db_by_ones(dy, cache):
    xp = array_namespace(dy)
    x, W = cache
    ones = xp.ones((dy.shape[0],), dtype=dy.dtype, device=dy.device)
    return dy @ W.T, x.T @ dy, ones @ dy


# ---- activations --------------------------------------------------------------------

@wrong("activation_backward", "sign of dy instead of x", "follows the sign of dy", "relu")
def relu_backward_max_dy(dy, mask):
    xp = array_namespace(dy)
    return xp.maximum(dy, 0.0)


@wrong("activation_backward", "sign of dy instead of x", "follows the sign of dy", "relu")
def relu_backward_dy_positive(dy, mask):
    xp = array_namespace(dy)
    return dy * xp.astype(dy > 0, dy.dtype)


@wrong("activation_backward", "sign of dy lost", "|dy| where x > 0", "relu")
def relu_backward_abs_dy(dy, mask):
    xp = array_namespace(dy)
    return xp.abs(dy) * mask


@wrong("activation_backward", "mask the other way round", "other way round", "relu")
def relu_backward_inverted(dy, mask):
    return dy * (1 - mask)


@wrong("activation_backward", "missing chain rule", "ignores the upstream gradient", "relu")
def relu_backward_mask_only(dy, mask):
    return mask + 0 * dy


@wrong("activation_backward", "right on part of the input",
       "right where x > 0, and wrong where x < 0", "relu")
def relu_backward_passes_everything(dy, mask):
    xp = array_namespace(dy)
    return dy * xp.astype(mask >= 0, dy.dtype)


@wrong("activation_backward", "in-place edit of dy", "changed its upstream gradient in place",
       "relu")
def relu_backward_in_place_dy(dy, mask):
    dy *= mask
    return dy


@wrong("activation_backward", "in-place edit of the cache", "changed its cache in place",
       "relu")
def relu_backward_in_place_mask(dy, mask):
    mask *= dy
    return mask


@wrong("activation_backward", "float32", "dx is float32", "relu")
def relu_backward_float32(dy, mask):
    xp = array_namespace(dy)
    return xp.astype(dy * mask, xp.float32)


@wrong("activation_backward", "sign slip", "negative of the expected", "relu")
def relu_backward_negated(dy, mask):
    return -dy * mask


@wrong("activation_backward", "sign of dy instead of x", "follows the sign of dy",
       "leaky_relu")
def leaky_relu_backward_max_dy(dy, k):
    xp = array_namespace(dy)
    return xp.maximum(dy, 0.01 * dy)


@wrong("activation_backward", "right on part of the input",
       "right where x > 0, and wrong where x < 0", "leaky_relu")
def leaky_relu_backward_k_positive(dy, k):
    xp = array_namespace(dy)
    return dy * xp.astype(k > 0, dy.dtype)


@wrong("activation_backward", "right on part of the input",
       "right where x > 0, and wrong where x < 0", "leaky_relu")
def leaky_relu_backward_as_relu(dy, k):
    xp = array_namespace(dy)
    return dy * xp.astype(k == 1, dy.dtype)


@wrong("activation_backward", "right on part of the input",
       "right where x < 0, and wrong where x > 0", "leaky_relu")
def leaky_relu_backward_slope_everywhere(dy, k):
    return 0.01 * dy


@wrong("activation_backward", "missing chain rule", "ignores the upstream gradient",
       "leaky_relu")
def leaky_relu_backward_k_only(dy, k):
    return k + 0 * dy


@wrong("activation_backward", "recomputes from the cache", "applies tanh to the cache",
       "tanh")
def tanh_backward_tanh_again(dy, y):
    xp = array_namespace(y)
    return dy * (1 - xp.tanh(y) ** 2)


@wrong("activation_backward", "missing square", "the square is missing", "tanh")
def tanh_backward_no_square(dy, y):
    return dy * (1 - y)


@wrong("activation_backward", "missing chain rule", "ignores the upstream gradient", "tanh")
def tanh_backward_no_dy(dy, y):
    return 1 - y * y + 0 * dy


@wrong("activation_backward", "sign slip", "differs from the reference", "tanh")
def tanh_backward_plus(dy, y):
    return dy * (1 + y * y)


@wrong("activation_backward", "in-place edit of dy", "changed its upstream gradient in place",
       "tanh")
def tanh_backward_in_place_dy(dy, y):
    dy *= 1 - y * y
    return dy


@wrong("activation_backward", "in-place edit of the cache", "changed its cache in place",
       "tanh")
def tanh_backward_in_place_cache(dy, y):
    y *= y
    return dy * (1 - y)


@wrong("activation_backward", "float32", "float32, expected float64", "tanh")
def tanh_backward_float32(dy, y):
    xp = array_namespace(dy)
    return xp.astype(dy, xp.float32) * xp.astype(1 - y * y, xp.float32)


@wrong("activation_backward", "recomputes from the cache", "applies the sigmoid to the cache",
       "sigmoid")
def sigmoid_backward_sigmoid_again(dy, y):
    s = sigmoid(y)
    return dy * s * (1 - s)


@wrong("activation_backward", "missing factor", "differs from the reference", "sigmoid")
def sigmoid_backward_y_only(dy, y):
    return dy * y


@wrong("activation_backward", "missing chain rule", "ignores the upstream gradient",
       "sigmoid")
def sigmoid_backward_no_dy(dy, y):
    return y * (1 - y) + 0 * dy


@wrong("activation_backward", "function for derivative", "softplus(x) itself", "softplus")
def softplus_backward_softplus(dy, x):
    xp = array_namespace(x)
    return dy * xp.log1p(xp.exp(x))


@wrong("activation_backward", "sign slip", "differs from the reference", "softplus")
def softplus_backward_sigmoid_minus_x(dy, x):
    return dy * sigmoid(-x)


@valid("activation_backward", "where on the mask", "relu")
def relu_backward_where(dy, mask):
    xp = array_namespace(dy)
    return xp.where(mask > 0, dy, xp.zeros_like(dy))


@valid("activation_backward", "where on the slope", "leaky_relu")
def leaky_relu_backward_where(dy, k):
    xp = array_namespace(dy)
    return xp.where(k == 1.0, dy, 0.01 * dy)


@valid("activation_backward", "factored", "tanh")
def tanh_backward_factored(dy, y):
    return dy * (1 - y) * (1 + y)


@valid("activation_backward", "expanded", "tanh")
def tanh_backward_expanded(dy, y):
    return dy - dy * y**2


@valid("activation_backward", "expanded", "sigmoid")
def sigmoid_backward_expanded(dy, y):
    return dy * (y - y * y)


@valid("activation_backward", "textbook sigmoid", "softplus")
def softplus_backward_textbook(dy, x):
    xp = array_namespace(x)
    return dy / (1 + xp.exp(-x))


# ---- bernoulli forward --------------------------------------------------------------

def _e(logits):
    xp = array_namespace(logits)
    return xp.exp(-xp.abs(logits))


def _clipped(eps):
    def forward(x, logits):
        xp = array_namespace(logits)
        p = xp.clip(1 / (1 + xp.exp(-logits)), eps, 1 - eps)
        return xp.sum(x * xp.log(p) + (1 - x) * xp.log(1 - p), axis=-1), (x, logits, _e(logits))
    return forward


@wrong("bernoulli_forward", "naive log of a sigmoid", "contains inf or NaN")
def bernoulli_forward_naive(x, logits):
    xp = array_namespace(logits)
    p = 1 / (1 + xp.exp(-logits))
    return xp.sum(x * xp.log(p) + (1 - x) * xp.log(1 - p), axis=-1), (x, logits, _e(logits))


@wrong("bernoulli_forward", "clipped probability (Keras epsilon 1e-7)",
       "model is confidently wrong")
def bernoulli_forward_clipped_1e7(x, logits):
    return _clipped(1e-7)(x, logits)


@wrong("bernoulli_forward", "clipped probability (epsilon 1e-12)",
       "wrong where the extreme logits are confidently wrong")
def bernoulli_forward_clipped_1e12(x, logits):
    return _clipped(1e-12)(x, logits)


@wrong("bernoulli_forward", "clipped log of a sigmoid (log(p + eps))", "clipped at 1e-7")
def bernoulli_forward_log_plus_eps(x, logits):
    xp = array_namespace(logits)
    p = 1 / (1 + xp.exp(-xp.clip(logits, -700.0, 700.0)))
    logp = xp.sum(x * xp.log(p + 1e-7) + (1 - x) * xp.log(1 - p + 1e-7), axis=-1)
    return logp, (x, logits, _e(logits))


@wrong("bernoulli_forward", "logits clamped to ±30",
       "right for moderate logits (row 0) and where the extreme logits are confidently right")
def bernoulli_forward_clamped(x, logits):
    xp = array_namespace(logits)
    lc = xp.clip(logits, -30.0, 30.0)
    logp = -xp.sum(xp.maximum(lc, 0.0) - lc * x + xp.log1p(xp.exp(-xp.abs(lc))), axis=-1)
    return logp, (x, logits, _e(logits))


@wrong("bernoulli_forward", "missing sum", "not summed over the pixels")
def bernoulli_forward_not_summed(x, logits):
    xp = array_namespace(logits)
    e = _e(logits)
    return -(xp.maximum(logits, 0.0) - logits * x + xp.log1p(e)), (x, logits, e)


@wrong("bernoulli_forward", "wrong-axis sum", "summed over the batch (axis 0)")
def bernoulli_forward_axis0(x, logits):
    xp = array_namespace(logits)
    e = _e(logits)
    return -xp.sum(xp.maximum(logits, 0.0) - logits * x + xp.log1p(e), axis=0), (x, logits, e)


@wrong("bernoulli_forward", "sum over everything", "summed over the batch as well")
def bernoulli_forward_sum_all(x, logits):
    xp = array_namespace(logits)
    e = _e(logits)
    return -xp.sum(xp.maximum(logits, 0.0) - logits * x + xp.log1p(e)), (x, logits, e)


@wrong("bernoulli_forward", "keepdims", "an extra axis of length 1")
def bernoulli_forward_keepdims(x, logits):
    xp = array_namespace(logits)
    e = _e(logits)
    terms = xp.maximum(logits, 0.0) - logits * x + xp.log1p(e)
    return -xp.sum(terms, axis=-1, keepdims=True), (x, logits, e)


@wrong("bernoulli_forward", "sign slip", "negative log-likelihood")
def bernoulli_forward_nll(x, logits):
    xp = array_namespace(logits)
    e = _e(logits)
    return xp.sum(xp.maximum(logits, 0.0) - logits * x + xp.log1p(e), axis=-1), (x, logits, e)


@wrong("bernoulli_forward", "mean for sum", "exactly 1/7 of the reference")
def bernoulli_forward_mean(x, logits):
    xp = array_namespace(logits)
    e = _e(logits)
    return -xp.mean(xp.maximum(logits, 0.0) - logits * x + xp.log1p(e), axis=-1), (x, logits, e)


@wrong("bernoulli_forward", "missing term", "differs from the reference")
def bernoulli_forward_no_log1p(x, logits):
    xp = array_namespace(logits)
    return -xp.sum(xp.maximum(logits, 0.0) - logits * x, axis=-1), (x, logits, _e(logits))


@wrong("bernoulli_forward", "naive softplus", "contains inf or NaN")
def bernoulli_forward_naive_softplus(x, logits):
    xp = array_namespace(logits)
    return xp.sum(x * logits - xp.log1p(xp.exp(logits)), axis=-1), (x, logits, _e(logits))


@wrong("bernoulli_forward", "float32", "logp is float32")
def bernoulli_forward_float32(x, logits):
    xp = array_namespace(logits)
    e = _e(logits)
    logp = -xp.sum(xp.maximum(logits, 0.0) - logits * x + xp.log1p(e), axis=-1)
    return xp.astype(logp, xp.float32), (x, logits, e)


@wrong("bernoulli_forward", "wrong cache content", "entry 2 should be e")
def bernoulli_forward_cache_without_abs(x, logits):
    xp = array_namespace(logits)
    e = _e(logits)
    logp = -xp.sum(xp.maximum(logits, 0.0) - logits * x + xp.log1p(e), axis=-1)
    return logp, (x, logits, xp.exp(-logits))


@wrong("bernoulli_forward", "cache in the wrong order", "cache is in the wrong order")
def bernoulli_forward_cache_swapped(x, logits):
    xp = array_namespace(logits)
    e = _e(logits)
    logp = -xp.sum(xp.maximum(logits, 0.0) - logits * x + xp.log1p(e), axis=-1)
    return logp, (logits, x, e)


@valid("bernoulli_forward", "logaddexp")
def bernoulli_forward_logaddexp(x, logits):
    xp = array_namespace(logits)
    zero = xp.zeros_like(logits)
    return xp.sum(x * logits - xp.logaddexp(zero, logits), axis=-1), (x, logits, _e(logits))


@valid("bernoulli_forward", "two stable softplus terms")
def bernoulli_forward_two_softplus(x, logits):
    xp = array_namespace(logits)
    e = _e(logits)

    def softplus(t):
        return xp.maximum(t, 0.0) + xp.log1p(e)   # |t| = |logits| for t = +-logits

    return -xp.sum(x * softplus(-logits) + (1 - x) * softplus(logits), axis=-1), (x, logits, e)


@valid("bernoulli_forward", "the library's sum of logs")
def bernoulli_forward_library(x, logits):
    return bernoulli_logpmf_forward(x, logits)


# ---- bernoulli backward -------------------------------------------------------------

@wrong("bernoulli_backward", "sign slip", "gradient of the negative log-likelihood")
def bernoulli_backward_flipped(dlogp, cache):
    x, logits, _ = cache
    return dlogp[..., None] * (sigmoid(logits) - x)


@wrong("bernoulli_backward", "missing chain rule", "ignores the upstream gradient")
def bernoulli_backward_no_dlogp(dlogp, cache):
    x, logits, e = cache
    return x - sigmoid(logits, e)


@wrong("bernoulli_backward", "missing broadcast axis", "do not fit together")
def bernoulli_backward_no_new_axis(dlogp, cache):
    x, logits, e = cache
    return dlogp * (x - sigmoid(logits, e))


@wrong("bernoulli_backward", "broadcast along the wrong axis", "do not fit together")
def bernoulli_backward_wrong_axis(dlogp, cache):
    x, logits, e = cache
    return dlogp[None, :] * (x - sigmoid(logits, e))


@wrong("bernoulli_backward", "naive sigmoid overflows", "contains inf or NaN")
def bernoulli_backward_naive_sigmoid(dlogp, cache):
    xp = array_namespace(dlogp)
    x, logits, _ = cache
    return dlogp[..., None] * (x - xp.exp(logits) / (1 + xp.exp(logits)))


@wrong("bernoulli_backward", "one branch of the stable sigmoid", "only where l >= 0")
def bernoulli_backward_one_branch(dlogp, cache):
    x, _logits, e = cache
    return dlogp[..., None] * (x - 1 / (1 + e))


@wrong("bernoulli_backward", "sigmoid(-l)", "sigmoid(-l) where sigmoid(l) belongs")
def bernoulli_backward_sigmoid_minus(dlogp, cache):
    x, logits, e = cache
    return dlogp[..., None] * (x - sigmoid(-logits, e))


@wrong("bernoulli_backward", "float32", "float32, expected float64")
def bernoulli_backward_float32(dlogp, cache):
    xp = array_namespace(dlogp)
    x, logits, e = cache
    return xp.astype(dlogp[..., None] * (x - sigmoid(logits, e)), xp.float32)


@wrong("bernoulli_backward", "in-place edit of the cache", "changed its cache in place")
def bernoulli_backward_in_place(dlogp, cache):
    x, logits, e = cache
    x -= sigmoid(logits, e)
    return dlogp[..., None] * x


@wrong("bernoulli_backward", "sum over the pixels", "one entry per pixel")
def bernoulli_backward_summed(dlogp, cache):
    xp = array_namespace(dlogp)
    x, logits, e = cache
    return dlogp * xp.sum(x - sigmoid(logits, e), axis=-1)


@wrong("bernoulli_backward", "mean of the upstream gradient", "differs from the reference")
def bernoulli_backward_mean_dlogp(dlogp, cache):
    xp = array_namespace(dlogp)
    x, logits, e = cache
    return xp.mean(dlogp) * (x - sigmoid(logits, e))


@valid("bernoulli_backward", "textbook sigmoid (saturates to 0 and 1, no NaN)")
def bernoulli_backward_textbook(dlogp, cache):
    xp = array_namespace(dlogp)
    x, logits, _ = cache
    return dlogp[:, None] * (x - 1 / (1 + xp.exp(-logits)))


@valid("bernoulli_backward", "two branches with where")
def bernoulli_backward_where(dlogp, cache):
    xp = array_namespace(dlogp)
    x, logits, e = cache
    return dlogp[..., None] * (x - xp.where(logits >= 0, 1.0, e) / (1 + e))


# ---- KL forward (paired with the library's backward) ---------------------------------

def _kl_terms(mu, logvar):
    xp = array_namespace(mu)
    return xp.exp(logvar) + mu * mu - 1 - logvar


@wrong("kl", "missing 1/2", "exactly 2 times the reference", pair=kl_std_normal_backward)
def kl_forward_no_half(mu, logvar):
    xp = array_namespace(mu)
    return xp.sum(_kl_terms(mu, logvar), axis=-1), (mu, xp.exp(logvar))


@wrong("kl", "logvar as log sigma", "treats logvar as log sigma", pair=kl_std_normal_backward)
def kl_forward_logvar_as_log_sigma(mu, logvar):
    xp = array_namespace(mu)
    kl = 0.5 * xp.sum(xp.exp(2 * logvar) + mu * mu - 1 - 2 * logvar, axis=-1)
    return kl, (mu, xp.exp(logvar))


@wrong("kl", "sigma for sigma²", "uses sigma = exp(logvar / 2) where the variance",
       pair=kl_std_normal_backward)
def kl_forward_sigma_for_var(mu, logvar):
    xp = array_namespace(mu)
    kl = 0.5 * xp.sum(xp.exp(0.5 * logvar) + mu * mu - 1 - logvar, axis=-1)
    return kl, (mu, xp.exp(logvar))


@wrong("kl", "missing constant", "a constant term is missing", pair=kl_std_normal_backward)
def kl_forward_no_minus_one(mu, logvar):
    xp = array_namespace(mu)
    return 0.5 * xp.sum(xp.exp(logvar) + mu * mu - logvar, axis=-1), (mu, xp.exp(logvar))


@wrong("kl", "sign slip", "log-variance term with the wrong sign", pair=kl_std_normal_backward)
def kl_forward_plus_logvar(mu, logvar):
    xp = array_namespace(mu)
    kl = 0.5 * xp.sum(xp.exp(logvar) + mu * mu - 1 + logvar, axis=-1)
    return kl, (mu, xp.exp(logvar))


@wrong("kl", "missing term", "leaves out the variance term", pair=kl_std_normal_backward)
def kl_forward_no_variance(mu, logvar):
    xp = array_namespace(mu)
    return 0.5 * xp.sum(mu * mu - 1 - logvar, axis=-1), (mu, xp.exp(logvar))


@wrong("kl", "mean for sum", "exactly 1/3 of the reference", pair=kl_std_normal_backward)
def kl_forward_mean(mu, logvar):
    xp = array_namespace(mu)
    return 0.5 * xp.mean(_kl_terms(mu, logvar), axis=-1), (mu, xp.exp(logvar))


@wrong("kl", "wrong-axis sum", "has shape (3,), expected (4,)", pair=kl_std_normal_backward)
def kl_forward_axis0(mu, logvar):
    xp = array_namespace(mu)
    return 0.5 * xp.sum(_kl_terms(mu, logvar), axis=0), (mu, xp.exp(logvar))


@wrong("kl", "missing sum", "not summed over the latent", pair=kl_std_normal_backward)
def kl_forward_not_summed(mu, logvar):
    xp = array_namespace(mu)
    return 0.5 * _kl_terms(mu, logvar), (mu, xp.exp(logvar))


@wrong("kl", "keepdims", "has shape (4, 1), expected (4,): an extra axis",
       pair=kl_std_normal_backward)
def kl_forward_keepdims(mu, logvar):
    xp = array_namespace(mu)
    return 0.5 * xp.sum(_kl_terms(mu, logvar), axis=-1, keepdims=True), (mu, xp.exp(logvar))


@wrong("kl", "sum over everything", "summed over the batch as well", pair=kl_std_normal_backward)
def kl_forward_sum_all(mu, logvar):
    xp = array_namespace(mu)
    return 0.5 * xp.sum(_kl_terms(mu, logvar)), (mu, xp.exp(logvar))


@wrong("kl", "float32", "forward: your kl is float32", pair=kl_std_normal_backward)
def kl_forward_float32(mu, logvar):
    xp = array_namespace(mu)
    kl = 0.5 * xp.sum(_kl_terms(mu, logvar), axis=-1)
    return xp.astype(kl, xp.float32), (mu, xp.exp(logvar))


@wrong("kl", "wrong cache content", "entry 1 should be var", pair=kl_std_normal_backward)
def kl_forward_caches_logvar(mu, logvar):
    xp = array_namespace(mu)
    return 0.5 * xp.sum(_kl_terms(mu, logvar), axis=-1), (mu, logvar)


@wrong("kl", "cache in the wrong order", "cache is in the wrong order",
       pair=kl_std_normal_backward)
def kl_forward_cache_swapped(mu, logvar):
    xp = array_namespace(mu)
    return 0.5 * xp.sum(_kl_terms(mu, logvar), axis=-1), (xp.exp(logvar), mu)


@wrong("kl", "in-place edit of an input", "changed its inputs in place",
       pair=kl_std_normal_backward)
def kl_forward_squares_mu_in_place(mu, logvar):
    xp = array_namespace(mu)
    var = xp.exp(logvar)
    mu *= mu
    return 0.5 * xp.sum(var + mu - 1 - logvar, axis=-1), (mu, var)


# ---- KL backward (paired with the library's forward) ---------------------------------

@wrong("kl", "missing 1/2", "lost its ½", pair=kl_std_normal_forward)
def kl_backward_no_half(dkl, cache):
    mu, var = cache
    return dkl[:, None] * mu, dkl[:, None] * (var - 1)


@wrong("kl", "missing chain rule", "ignores the upstream gradient", pair=kl_std_normal_forward)
def kl_backward_dmu_without_dkl(dkl, cache):
    mu, var = cache
    return mu + 0, dkl[:, None] * 0.5 * (var - 1)


@wrong("kl", "missing chain rule", "ignores the upstream gradient", pair=kl_std_normal_forward)
def kl_backward_dlogvar_without_dkl(dkl, cache):
    mu, var = cache
    return dkl[:, None] * mu, 0.5 * (var - 1)


@wrong("kl", "missing broadcast axis", "do not fit together", pair=kl_std_normal_forward)
def kl_backward_no_new_axis(dkl, cache):
    mu, var = cache
    return dkl * mu, dkl * 0.5 * (var - 1)


@wrong("kl", "broadcast along the wrong axis", "do not fit together",
       pair=kl_std_normal_forward)
def kl_backward_wrong_axis(dkl, cache):
    mu, var = cache
    return dkl[None, :] * mu, dkl[None, :] * 0.5 * (var - 1)


@wrong("kl", "sigma for sigma²", "uses sigma where the variance", pair=kl_std_normal_forward)
def kl_backward_sigma_for_var(dkl, cache):
    xp = array_namespace(dkl)
    mu, var = cache
    return dkl[:, None] * mu, dkl[:, None] * 0.5 * (xp.sqrt(var) - 1)


@wrong("kl", "sign slip", "backward: your dmu is the negative", pair=kl_std_normal_forward)
def kl_backward_dmu_negated(dkl, cache):
    mu, var = cache
    return -dkl[:, None] * mu, dkl[:, None] * 0.5 * (var - 1)


@wrong("kl", "extra factor 2", "the ½ in front of mu² cancels", pair=kl_std_normal_forward)
def kl_backward_dmu_doubled(dkl, cache):
    mu, var = cache
    return 2 * dkl[:, None] * mu, dkl[:, None] * 0.5 * (var - 1)


@wrong("kl", "in-place edit of the cache", "changed its cache in place",
       pair=kl_std_normal_forward)
def kl_backward_in_place(dkl, cache):
    mu, var = cache
    var -= 1
    return dkl[:, None] * mu, dkl[:, None] * 0.5 * var


@wrong("kl", "float32", "backward: your dlogvar is float32", pair=kl_std_normal_forward)
def kl_backward_float32(dkl, cache):
    xp = array_namespace(dkl)
    mu, var = cache
    return dkl[:, None] * mu, xp.astype(dkl[:, None] * 0.5 * (var - 1), xp.float32)


@wrong("kl", "missing constant", "differs from the reference", pair=kl_std_normal_forward)
def kl_backward_no_minus_one(dkl, cache):
    mu, var = cache
    return dkl[:, None] * mu, dkl[:, None] * 0.5 * var


@wrong("kl", "outputs in the wrong order", "outputs are in the wrong order",
       pair=kl_std_normal_forward)
def kl_backward_swapped(dkl, cache):
    mu, var = cache
    return dkl[:, None] * 0.5 * (var - 1), dkl[:, None] * mu


VALID.append(("kl", "the library's pair", (kl_std_normal_forward, kl_std_normal_backward), None,
              "kl_library"))


@valid("kl", "squares written as powers, reshape for the broadcast", pair=kl_std_normal_backward)
def kl_forward_powers(mu, logvar):
    xp = array_namespace(mu)
    var = xp.exp(logvar)
    return xp.sum(var + mu**2 - 1.0 - logvar, axis=1) / 2, (mu, var)


@valid("kl", "reshape for the broadcast", pair=kl_std_normal_forward)
def kl_backward_reshape(dkl, cache):
    xp = array_namespace(dkl)
    mu, var = cache
    d = xp.reshape(dkl, (-1, 1))
    return d * mu, d * (var - 1) / 2


# ---- reparameterize forward ---------------------------------------------------------

@wrong("reparameterize_forward", "variance as standard deviation", "exp(logvar), the variance")
def reparameterize_forward_exp_logvar(mu, logvar, eps):
    xp = array_namespace(mu)
    sigma = xp.exp(logvar)
    return mu + sigma * eps, (sigma, eps)


@wrong("reparameterize_forward", "logvar as standard deviation", "logvar itself")
def reparameterize_forward_logvar(mu, logvar, eps):
    return mu + logvar * eps, (logvar, eps)


@wrong("reparameterize_forward", "sign slip", "1/sigma as the standard deviation")
def reparameterize_forward_inverse_sigma(mu, logvar, eps):
    xp = array_namespace(mu)
    sigma = xp.exp(-0.5 * logvar)
    return mu + sigma * eps, (sigma, eps)


@wrong("reparameterize_forward", "np.squeeze", "has shape (4, 2), expected (1, 4, 2) with L = 1")
def reparameterize_forward_squeezed(mu, logvar, eps):
    xp = array_namespace(mu)
    sigma = xp.exp(0.5 * logvar)
    return xp.squeeze(mu + sigma * eps), (sigma, eps)


@wrong("reparameterize_forward", "only the first draw", "it is right with L = 1")
def reparameterize_forward_first_draw(mu, logvar, eps):
    xp = array_namespace(mu)
    sigma = xp.exp(0.5 * logvar)
    return xp.reshape(mu + sigma * eps[0, ...], (1, *mu.shape)), (sigma, eps)


@wrong("reparameterize_forward", "mean over the draws", "with L = 3")
def reparameterize_forward_mean(mu, logvar, eps):
    xp = array_namespace(mu)
    sigma = xp.exp(0.5 * logvar)
    return xp.mean(mu + sigma * eps, axis=0, keepdims=True), (sigma, eps)


@wrong("reparameterize_forward", "square root of logvar", "contains inf or NaN")
def reparameterize_forward_sqrt_logvar(mu, logvar, eps):
    xp = array_namespace(mu)
    sigma = xp.sqrt(logvar)
    return mu + sigma * eps, (sigma, eps)


@wrong("reparameterize_forward", "float32", "z is float32")
def reparameterize_forward_float32(mu, logvar, eps):
    xp = array_namespace(mu)
    sigma = xp.exp(0.5 * logvar)
    return xp.astype(mu + sigma * eps, xp.float32), (sigma, eps)


@wrong("reparameterize_forward", "in-place edit of an input", "changed its inputs in place")
def reparameterize_forward_in_place(mu, logvar, eps):
    xp = array_namespace(mu)
    sigma = xp.exp(0.5 * logvar)
    eps *= sigma
    return mu + eps, (sigma, eps)


@wrong("reparameterize_forward", "cache in the wrong order", "cache is in the wrong order")
def reparameterize_forward_cache_swapped(mu, logvar, eps):
    xp = array_namespace(mu)
    sigma = xp.exp(0.5 * logvar)
    return mu + sigma * eps, (eps, sigma)


@wrong("reparameterize_forward", "wrong cache content", "entry 0 should be sigma")
def reparameterize_forward_caches_logvar(mu, logvar, eps):
    xp = array_namespace(mu)
    return mu + xp.exp(0.5 * logvar) * eps, (logvar, eps)


@wrong("reparameterize_forward", "sum for product", "differs from the reference")
def reparameterize_forward_sum(mu, logvar, eps):
    xp = array_namespace(mu)
    sigma = xp.exp(0.5 * logvar)
    return mu + sigma + eps, (sigma, eps)


@valid("reparameterize_forward", "explicit sample axis")
def reparameterize_forward_explicit_axis(mu, logvar, eps):
    xp = array_namespace(mu)
    sigma = xp.exp(logvar / 2)
    return mu[None, ...] + sigma[None, ...] * eps, (sigma, eps)


@valid("reparameterize_forward", "sqrt of the variance")
def reparameterize_forward_sqrt_var(mu, logvar, eps):
    xp = array_namespace(mu)
    sigma = xp.sqrt(xp.exp(logvar))
    return eps * sigma + mu, (sigma, eps)


# ---- reparameterize backward --------------------------------------------------------

@wrong("reparameterize_backward", "missing 1/2", "twice the reference")
def reparameterize_backward_no_half(dz, cache):
    xp = array_namespace(dz)
    sigma, eps = cache
    return xp.sum(dz, axis=0), xp.sum(dz * eps, axis=0) * sigma


@wrong("reparameterize_backward", "mean for sum", "averages over the L samples")
def reparameterize_backward_dmu_mean(dz, cache):
    xp = array_namespace(dz)
    sigma, eps = cache
    return xp.mean(dz, axis=0), xp.sum(dz * eps, axis=0) * 0.5 * sigma


@wrong("reparameterize_backward", "mean for sum", "averages over the L samples")
def reparameterize_backward_dlogvar_mean(dz, cache):
    xp = array_namespace(dz)
    sigma, eps = cache
    return xp.sum(dz, axis=0), xp.mean(dz * eps, axis=0) * 0.5 * sigma


@wrong("reparameterize_backward", "missing chain rule", "ignores the upstream gradient")
def reparameterize_backward_no_dz(dz, cache):
    xp = array_namespace(dz)
    sigma, eps = cache
    return xp.sum(dz, axis=0), xp.sum(eps * 0.5 * sigma, axis=0)


@wrong("reparameterize_backward", "only the first draw", "it is right with L = 1")
def reparameterize_backward_first_draw(dz, cache):
    sigma, eps = cache
    return dz[0, ...], dz[0, ...] * eps[0, ...] * 0.5 * sigma


@wrong("reparameterize_backward", "np.squeeze", "with L = 3")
def reparameterize_backward_squeezed(dz, cache):
    xp = array_namespace(dz)
    sigma, eps = cache
    return xp.squeeze(dz), xp.squeeze(dz * eps) * 0.5 * sigma


@wrong("reparameterize_backward", "missing sum", "one axis too many")
def reparameterize_backward_not_summed(dz, cache):
    sigma, eps = cache
    return dz, dz * eps * 0.5 * sigma


@wrong("reparameterize_backward", "sigma² for sigma", "uses the variance")
def reparameterize_backward_variance(dz, cache):
    xp = array_namespace(dz)
    sigma, eps = cache
    return xp.sum(dz, axis=0), xp.sum(dz * eps, axis=0) * 0.5 * sigma**2


@wrong("reparameterize_backward", "float32", "dmu is float32")
def reparameterize_backward_float32(dz, cache):
    xp = array_namespace(dz)
    sigma, eps = cache
    return xp.astype(xp.sum(dz, axis=0), xp.float32), xp.sum(dz * eps, axis=0) * 0.5 * sigma


@wrong("reparameterize_backward", "in-place edit of dz", "changed its upstream gradient in place")
def reparameterize_backward_in_place_dz(dz, cache):
    xp = array_namespace(dz)
    sigma, eps = cache
    dmu = xp.sum(dz, axis=0)
    dz *= eps
    return dmu, xp.sum(dz, axis=0) * 0.5 * sigma


@wrong("reparameterize_backward", "in-place edit of the cache", "changed its cache in place")
def reparameterize_backward_in_place_cache(dz, cache):
    xp = array_namespace(dz)
    sigma, eps = cache
    eps *= 0.5 * sigma
    return xp.sum(dz, axis=0), xp.sum(dz * eps, axis=0)


@wrong("reparameterize_backward", "outputs in the wrong order", "outputs are in the wrong order")
def reparameterize_backward_swapped(dz, cache):
    xp = array_namespace(dz)
    sigma, eps = cache
    return xp.sum(dz * eps, axis=0) * 0.5 * sigma, xp.sum(dz, axis=0)


@wrong("reparameterize_backward", "wrong-axis sum", "has shape (3, 4), expected (4, 2)")
def reparameterize_backward_last_axis(dz, cache):
    xp = array_namespace(dz)
    _sigma, eps = cache
    return xp.sum(dz, axis=-1), xp.sum(dz * eps, axis=-1) * 0.5


@valid("reparameterize_backward", "sigma inside the sum")
def reparameterize_backward_inside(dz, cache):
    xp = array_namespace(dz)
    sigma, eps = cache
    return xp.sum(dz, axis=0), xp.sum(0.5 * sigma * eps * dz, axis=0)


@valid("reparameterize_backward", "chain rule through sigma written out")
def reparameterize_backward_via_dsigma(dz, cache):
    xp = array_namespace(dz)
    sigma, eps = cache
    dsigma = xp.sum(dz * eps, axis=0)
    return xp.sum(dz, axis=0), dsigma * sigma * 0.5


@valid("reparameterize_backward", "a loop over the samples")
def reparameterize_backward_loop(dz, cache):
    sigma, eps = cache
    dmu, dlogvar = 0 * sigma, 0 * sigma
    for i in range(dz.shape[0]):
        dmu = dmu + dz[i, ...]
        dlogvar = dlogvar + dz[i, ...] * eps[i, ...] * sigma / 2
    return dmu, dlogvar


# ---- the whole VAE ------------------------------------------------------------------

def vae_composed(params, x, eps, *, enc_tanh="right", dec_tanh="right", heads="both",
                 kl_grad=True, z_grad=True, grad_scale=None, loss_kind="right", dtype=None):
    """The whole-VAE exercise written with the library's pairs, as the notebook asks, or
    with one classic mistake."""
    xp, p, n = array_namespace(x), params, x.shape[0]

    def act_backward(dy, y, how):
        return {"right": tanh_backward(dy, y), "tanh_again": dy * (1 - xp.tanh(y) ** 2),
                "none": dy}[how]

    h, c_h = linear_forward(x, p["enc.0.W"], p["enc.0.b"])
    a, c_a = tanh_forward(h)
    mu, c_mu = linear_forward(a, p["enc.mu.W"], p["enc.mu.b"])
    logvar, c_logvar = linear_forward(a, p["enc.logvar.W"], p["enc.logvar.b"])
    if loss_kind == "sigma_is_var":
        z, c_z = mu + xp.exp(logvar) * eps, None
    else:
        z, c_z = reparameterize_forward(mu, logvar, eps)
    g, c_g = linear_forward(z[0, ...], p["dec.0.W"], p["dec.0.b"])
    b, c_b = tanh_forward(g)
    logits, c_logits = linear_forward(b, p["dec.out.W"], p["dec.out.b"])
    log_px, c_px = bernoulli_logpmf_forward(x, logits)
    kl, c_kl = kl_std_normal_forward(mu, logvar)
    loss = {"right": xp.mean(kl - log_px), "sum": xp.sum(kl - log_px),
            "kl_sign": xp.mean(-kl - log_px), "no_kl": xp.mean(-log_px),
            "elbo": xp.mean(log_px - kl), "sigma_is_var": xp.mean(kl - log_px)}[loss_kind]
    s = 1 / n if grad_scale is None else grad_scale
    grads = {}
    dlogits = bernoulli_logpmf_backward(-s * xp.ones_like(log_px), c_px)
    db, grads["dec.out.W"], grads["dec.out.b"] = linear_backward(dlogits, c_logits)
    dz, grads["dec.0.W"], grads["dec.0.b"] = linear_backward(act_backward(db, c_b, dec_tanh),
                                                             c_g)
    dmu, dlogvar = (reparameterize_backward(xp.reshape(dz, z.shape), c_z) if c_z
                    else (dz, dz))
    dmu_kl, dlogvar_kl = kl_std_normal_backward(s * xp.ones_like(kl), c_kl)
    zs, ks = float(z_grad), float(kl_grad)
    dmu, dlogvar = zs * dmu + ks * dmu_kl, zs * dlogvar + ks * dlogvar_kl
    da_mu, grads["enc.mu.W"], grads["enc.mu.b"] = linear_backward(dmu, c_mu)
    da_lv, grads["enc.logvar.W"], grads["enc.logvar.b"] = linear_backward(dlogvar, c_logvar)
    da = {"both": da_mu + da_lv, "mu": da_mu, "logvar": da_lv}[heads]
    _, grads["enc.0.W"], grads["enc.0.b"] = linear_backward(act_backward(da, c_a, enc_tanh),
                                                            c_h, need_dx=False)
    if dtype is not None:
        grads = {k: xp.astype(v, getattr(xp, dtype)) for k, v in grads.items()}
    return loss, grads


def vae_reference(params, x, eps):
    """The whole-VAE exercise solved by the library's model."""
    model = sv.VAE(**ex.VAE_CHECK_CONFIG)
    for name, value in params.items():
        model.params[name][...] = sv.to_numpy(value)
    loss = model.loss(model.asarray(sv.to_numpy(x)), model.asarray(sv.to_numpy(eps))).loss
    model.backward()
    return loss, dict(model.grads)


def _variant(name: str, mistake: str, expect: str, **kw):
    fn = functools.partial(vae_composed, **kw)
    fn.__name__ = name
    WRONG.append(("vae_backward", mistake, (fn,), None, expect, name))


_variant("vae_elbo_gradients", "sign slip", "those of the ELBO", grad_scale=-0.25)
_variant("vae_encoder_tanh_again", "recomputes from the cache",
         "encoder's tanh backward applies tanh again", enc_tanh="tanh_again")
_variant("vae_encoder_tanh_missing", "missing derivative", "encoder's tanh backward is missing",
         enc_tanh="none")
_variant("vae_decoder_tanh_again", "recomputes from the cache",
         "decoder's tanh backward applies tanh again", dec_tanh="tanh_again")
_variant("vae_mu_head_only", "missing branch", "the logvar head's is missing", heads="mu")
_variant("vae_logvar_head_only", "missing branch", "the mu head's is missing", heads="logvar")
_variant("vae_no_kl_gradient", "missing branch", "but not the KL's", kl_grad=False)
_variant("vae_no_sample_gradient", "missing branch", "not the one through the sample z",
         z_grad=False)
_variant("vae_sum_gradients", "sum for mean", "n times the reference", grad_scale=1.0)
_variant("vae_sum_loss", "sum for mean", "the sum over the batch", loss_kind="sum")
_variant("vae_kl_sign", "sign slip", "KL term has the wrong sign", loss_kind="kl_sign")
_variant("vae_no_kl", "missing term", "the KL term is missing", loss_kind="no_kl")
_variant("vae_elbo_loss", "sign slip", "the ELBO, not the negative ELBO", loss_kind="elbo")
_variant("vae_sigma_is_variance", "variance as standard deviation",
         "exp(logvar) as the standard deviation", loss_kind="sigma_is_var")
_variant("vae_float32_gradients", "float32", "is float32, expected float64", dtype="float32")


@wrong("vae_backward", "missing gradient", "missing ['enc.0.b']")
def vae_missing_key(params, x, eps):
    loss, grads = vae_composed(params, x, eps)
    del grads["enc.0.b"]
    return loss, grads


@wrong("vae_backward", "in-place edit of an input", "changed its inputs in place")
def vae_updates_params(params, x, eps):
    loss, grads = vae_composed(params, x, eps)
    for k in grads:
        params[k] -= 0.1 * grads[k]
    return loss, grads


@wrong("vae_backward", "transpose", "dec.0.W has shape (5, 3), expected (3, 5)")
def vae_transposed_weight_gradient(params, x, eps):
    loss, grads = vae_composed(params, x, eps)
    grads["dec.0.W"] = grads["dec.0.W"].T
    return loss, grads


VALID.append(("vae_backward", "the library's model", (vae_reference,), None, "vae_reference"))
VALID.append(("vae_backward", "the library's pairs composed", (vae_composed,), None,
              "vae_composed"))


# ---- the tests ----------------------------------------------------------------------

def _marks(checker: str):
    return getattr(pytest.mark, CHECKERS[checker][1])


WRONG_PARAMS = [pytest.param(c, fns, kind, expect, marks=_marks(c), id=f"{c}-{name}")
                for c, _mistake, fns, kind, expect, name in WRONG]
VALID_PARAMS = [pytest.param(c, fns, kind, marks=_marks(c), id=f"{c}-{name}")
                for c, _d, fns, kind, name in VALID]


@pytest.mark.parametrize("checker, fns, kind, expect", WRONG_PARAMS)
def test_a_wrong_implementation_fails_with_its_diagnosis(checker, fns, kind, expect, capsys):
    assert run(checker, fns, kind) is False
    out = capsys.readouterr().out
    first, *rest = out.splitlines()
    assert ": FAIL — " in first and expect in first, out
    assert any(line.startswith("  Hint: ") for line in rest), out
    assert any("Reread derivations/" in line for line in rest), out


@pytest.mark.parametrize("checker, fns, kind", VALID_PARAMS)
def test_a_valid_alternative_form_passes(checker, fns, kind, capsys):
    assert run(checker, fns, kind) is True, capsys.readouterr().out


def test_every_checker_has_wrong_and_valid_implementations():
    wrong_count = {c: sum(w[0] == c for w in WRONG) for c in CHECKERS}
    valid_count = {c: sum(v[0] == c for v in VALID) for c in CHECKERS}
    assert min(wrong_count.values()) >= 10, wrong_count
    assert min(valid_count.values()) >= 2, valid_count
    kinds = {w[3] for w in WRONG if w[0] == "activation_backward"}
    assert kinds == {"relu", "leaky_relu", "tanh", "sigmoid", "softplus"}


@pytest.mark.ex_activations
@pytest.mark.parametrize("kind", ["relu", "leaky_relu"])
def test_the_upstream_gradient_is_independent_of_the_input(kind, capsys):
    """A backward that reads the sign of dy instead of x passes only when the two agree."""
    def sign_of_dy(dy, cache):
        xp = array_namespace(dy)
        return dy * xp.astype(dy > 0, dy.dtype) + (0.01 * dy * xp.astype(dy <= 0, dy.dtype)
                                                   if kind == "leaky_relu" else 0)

    for seed in range(5):
        assert ex.check_activation_backward(sign_of_dy, kind, seed=seed) is False
    capsys.readouterr()


# ---- diagnoses and hint levels, as the student reads them ----------------------------

@pytest.mark.ex_activations
def test_a_diagnosis_shows_the_values_beside_the_expected_ones(capsys):
    ex.check_activation_backward(relu_backward_passes_everything, "relu")
    out = capsys.readouterr().out
    assert "right where x > 0, and wrong where x < 0" in out
    assert "where they differ" in out and "yours" in out and "expected" in out


@pytest.mark.parametrize("name", list(ex.EXERCISES))
def test_the_first_hint_level_names_the_section_but_not_the_formula(name):
    exercise = ex.EXERCISES[name]
    level1, level2 = exercise.hint(1), exercise.hint(2)
    assert "Reread derivations/" in level1 and "deck " in level1
    assert "Formula:" not in level1 and exercise.formula not in level1
    assert level2.startswith(level1) and exercise.formula in level2


@pytest.mark.ex_kl
def test_the_second_hint_level_adds_the_formula(capsys):
    assert ex.check_kl(kl_forward_no_half, kl_std_normal_backward) is False
    level1 = capsys.readouterr().out
    assert ex.check_kl(kl_forward_no_half, kl_std_normal_backward, hint=2) is False
    level2 = capsys.readouterr().out
    assert "Formula:" not in level1 and "hint=2" in level1
    assert "Formula: kl = 0.5 * xp.sum(" in level2
    assert "exactly 2 times the reference" in level1 and "04_kl_gaussians.ipynb §3" in level1
    assert ex.hint("kl_std_normal") == ex.EXERCISES["kl_std_normal"].hint(2)
    with pytest.raises(ValueError, match="name must be one of"):
        ex.hint("swish")


@pytest.mark.ex_kl
def test_a_float32_kl_forward_is_blamed_on_the_forward(capsys):
    ex.check_kl(kl_forward_float32, kl_std_normal_backward)
    out = capsys.readouterr().out
    assert "forward: your kl is float32" in out and "dlogvar" not in out.splitlines()[0]


# ---- any backend: NumPy calls on device arrays --------------------------------------

def relu_backward_numpy(dy, mask):
    return np.maximum(dy, 0) * 0 + dy * mask


def kl_forward_numpy(mu, logvar):
    var = np.exp(logvar)
    return 0.5 * np.sum(var + mu**2 - 1 - logvar, axis=-1), (mu, var)


def reparameterize_forward_numpy_squeeze(mu, logvar, eps):
    xp = array_namespace(mu)
    sigma = xp.exp(0.5 * logvar)
    return np.squeeze(mu + sigma * eps), (sigma, eps)


def linear_backward_method_sum(dy, cache):
    x, W = cache
    return dy @ W.T, x.T @ dy, dy.sum(axis=0)


@pytest.mark.parametrize("check, fns, expect", [
    pytest.param(lambda fn: ex.check_activation_backward(fn, "relu", backend="array_api_strict"),
                 (relu_backward_numpy,), "would fail on a GPU", marks=pytest.mark.ex_activations,
                 id="relu"),
    pytest.param(functools.partial(ex.check_kl, backend="array_api_strict"),
                 (kl_forward_numpy, kl_std_normal_backward), "would fail on a GPU",
                 marks=pytest.mark.ex_kl, id="kl"),
    pytest.param(functools.partial(ex.check_reparameterize_forward, backend="array_api_strict"),
                 (reparameterize_forward_numpy_squeeze,), "would fail on a GPU",
                 marks=pytest.mark.ex_reparam, id="reparameterize"),
    pytest.param(functools.partial(ex.check_linear_backward, backend="array_api_strict"),
                 (linear_backward_method_sum,), "xp.sum(...)", marks=pytest.mark.ex_linear,
                 id="linear"),
])
def test_numpy_on_device_arrays_is_reported_as_such(check, fns, expect, capsys):
    assert check(*fns) is False
    out = capsys.readouterr().out
    assert ": FAIL — " in out and expect in out, out


def test_the_same_numpy_calls_pass_on_numpy(capsys):
    assert ex.check_activation_backward(relu_backward_numpy, "relu") is True
    assert ex.check_kl(kl_forward_numpy, kl_std_normal_backward) is True
    capsys.readouterr()


@pytest.mark.parametrize("checker, fns, kind", [
    pytest.param(c, fns, kind, marks=_marks(c), id=f"{c}-{name}")
    for c, _d, fns, kind, name in VALID if c != "vae_backward"][::3])
def test_valid_forms_pass_on_the_strict_device(checker, fns, kind, capsys):
    assert run(checker, fns, kind, backend="array_api_strict") is True, capsys.readouterr().out


@pytest.mark.ex_vae
def test_the_vae_checker_runs_on_the_strict_device(capsys):
    assert ex.check_vae_backward(vae_composed, backend="array_api_strict") is True
    assert ex.check_vae_backward(functools.partial(vae_composed, enc_tanh="tanh_again"),
                                 backend="array_api_strict") is False
    assert "encoder's tanh backward" in capsys.readouterr().out


def test_the_wrong_answers_are_many():
    """The counts reported in the course notes: every registered wrong answer is tested."""
    assert len(WRONG) >= 120 and len(VALID) >= 25
