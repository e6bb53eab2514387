"""The floor under a training epoch and an evaluation chunk on this CPU, with NumPy.

The floor is what no NumPy implementation of the same computation can go below: the
matrix products at the rate the BLAS reaches on their shapes (timed alone, with all
cores), plus one pass over the data per element-wise operation the math cannot do
without (timed alone, one at a time, at the sizes the step uses). It does not count the
Python around the operations, the temporary arrays, or the passes an implementation adds
for readability; the measured figures of ``cpu_vs_pytorch.py`` and ``eval_vs_pytorch.py``
are compared with it.

The unavoidable element-wise operations, for the 784-400-20 ReLU/Bernoulli VAE:

* training step (batch 128): three bias additions and two ReLUs forward; the Bernoulli
  log-likelihood from logits (``|l|``, ``exp``, ``max(l, 0) - l x`` as two passes, the
  sum; the logarithm of the pairwise products counts as one pass); its gradient
  ``sigmoid(l) - x`` (two passes, reusing ``exp(-|l|)``); two ReLU masks and three bias
  gradients backward; Adam's update with binary ufuncs (10 passes over the parameters).
* evaluation chunk (100 images x 100 samples): the decoder's bias additions and ReLU, and
  the Bernoulli log-likelihood as above, timed on blocks of 500 rows (as the evaluation
  computes them); the encoder and the Gaussian densities over 20 latent dimensions are
  too small to count.

    python benchmarks/floor.py
"""

from __future__ import annotations

import argparse
import time

import numpy as np

D, H, Z = 784, 400, 20


def best_time(fn, seconds: float = 0.3) -> float:
    """The fastest of repeated calls of ``fn`` within about ``seconds`` (after a warm-up)."""
    fn()
    best, t_end = float("inf"), time.perf_counter() + seconds
    while time.perf_counter() < t_end:
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def passes(rows: int, ops, rng) -> float:
    """Seconds for the element-wise ``ops``: (name, columns, count) at ``rows`` rows."""
    total = 0.0
    for name, cols, count in ops:
        a = rng.standard_normal((rows, cols)).astype(np.float32)
        b = rng.random((rows, cols), dtype=np.float32)
        out = np.empty_like(a)
        fn = {"exp": lambda a=a, out=out: np.exp(a, out=out),
              "sqrt": lambda b=b, out=out: np.sqrt(b, out=out),
              "abs": lambda a=a, out=out: np.abs(a, out=out),
              "max": lambda a=a, out=out: np.maximum(a, 0, out=out),
              "binary": lambda a=a, b=b, out=out: np.multiply(a, b, out=out),
              "sum rows": lambda a=a: np.sum(a, axis=-1),
              "sum columns": lambda a=a: np.sum(a, axis=0)}[name]
        total += count * best_time(fn, 0.1)
    return total


def matmuls(shapes, rng) -> float:
    """Seconds for the products ``(m, k) @ (k, n)`` listed in ``shapes``."""
    total = 0.0
    for m, k, n in shapes:
        a = rng.standard_normal((m, k)).astype(np.float32)
        b = rng.standard_normal((k, n)).astype(np.float32)
        out = np.empty((m, n), np.float32)
        total += best_time(lambda a=a, b=b, out=out: np.matmul(a, b, out=out), 0.2)
    return total


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=469, help="steps per epoch (60,000 / 128)")
    args = p.parse_args()
    rng = np.random.default_rng(0)
    B = args.batch

    # ---- one training step ----------------------------------------------------------
    step_mm = [(B, D, H), (B, H, 2 * Z), (B, Z, H), (B, H, D),          # forward
               (H, B, D), (B, D, H), (Z, B, H), (B, H, Z),              # backward: decoder
               (H, B, 2 * Z), (B, 2 * Z, H), (D, B, H)]                 # backward: encoder
    likelihood = [("abs", D, 1), ("exp", D, 1), ("max", D, 1), ("binary", D, 1),
                  ("sum rows", D, 1), ("binary", D, 1)]  # the last: log of the products
    step_ew = [
        *likelihood,
        ("binary", H, 2), ("binary", D, 1), ("max", H, 2),             # biases, ReLUs
        ("binary", D, 2),                                               # sigmoid(l) - x
        ("binary", H, 2),                                               # ReLU masks
        ("sum columns", D, 1), ("sum columns", H, 2)]                   # bias gradients
    n_params = D * H + H + H * 2 * Z + 2 * Z + Z * H + H + H * D + D
    t_mm = matmuls(step_mm, rng) * args.steps
    t_ew = passes(B, step_ew, rng) * args.steps
    t_adam = passes(1, [("binary", n_params, 9), ("sqrt", n_params, 1)], rng) * args.steps
    print(f"training epoch ({args.steps} steps of {B}), floor with NumPy on this CPU:")
    print(f"  matrix products   {t_mm:6.2f} s")
    print(f"  element-wise      {t_ew:6.2f} s")
    print(f"  Adam (10 passes)  {t_adam:6.2f} s")
    print(f"  floor             {t_mm + t_ew + t_adam:6.2f} s")

    # ---- one evaluation chunk -------------------------------------------------------
    rows, block = 100 * 100, 500  # the element-wise passes run block by block, in cache
    t_mm = matmuls([(rows, Z, H), (rows, H, D)], rng)
    t_ew = passes(block, [*likelihood, ("binary", H, 1), ("max", H, 1), ("binary", D, 1)],
                  rng) * (rows // block)
    print("evaluation chunk (100 images x 100 samples), floor with NumPy on this CPU:")
    print(f"  matrix products   {t_mm * 1e3:6.1f} ms")
    print(f"  element-wise      {t_ew * 1e3:6.1f} ms on one core, {t_ew / 2 * 1e3:.1f} ms "
          f"shared by two")
    print(f"  floor (2 cores)   {(t_mm + t_ew / 2) * 1e3:6.1f} ms")


if __name__ == "__main__":
    main()
