"""Splitting independent work across threads: the pieces, their order, and evaluation
with and without the split giving the same estimate."""

from __future__ import annotations

import numpy as np
import pytest

import scratchvae as sv
from scratchvae.evaluate import log_likelihood
from scratchvae.parallel import Split, split_range


@pytest.mark.parametrize(("n", "parts"), [(10, 3), (3, 8), (1, 2), (100, 2), (7, 1)])
def test_split_range_covers_the_range_in_nearly_equal_pieces(n, parts):
    pieces = split_range(n, parts)
    assert pieces[0][0] == 0 and pieces[-1][1] == n
    assert all(a < b for a, b in pieces)
    assert all(pieces[i][1] == pieces[i + 1][0] for i in range(len(pieces) - 1))
    sizes = [b - a for a, b in pieces]
    assert len(pieces) == min(parts, n) and max(sizes) - min(sizes) <= 1


def test_split_map_returns_the_pieces_in_order_from_several_threads():
    import threading

    seen = set()

    def piece(a, b):
        seen.add(threading.get_ident())
        return list(range(a, b))

    with Split(3) as split:
        parts = split.map(piece, 10)
    assert [i for p in parts for i in p] == list(range(10))
    assert len(seen) >= 2  # the work really ran on more than one thread
    with Split(1) as split:
        assert split.map(piece, 4) == [[0, 1, 2, 3]]


def test_evaluation_gives_the_same_estimate_on_one_or_several_cores():
    """The noise is drawn before the samples are shared out, so one core and two give the
    same estimate (to the rounding of the matrix products); the process's default (no
    split) too."""
    model = sv.VAE(12, (8,), 3, dtype="float64", seed=0)
    x = np.random.default_rng(1).random((30, 12))
    results = []
    for threads in (None, 1, 2):
        model.reseed(5)
        results.append(log_likelihood(model, x, k=300, batch_size=10, k_batch=100,
                                      threads=threads))
    for ll, se in results[1:]:
        assert ll == pytest.approx(results[0][0], rel=1e-12)
        assert se == pytest.approx(results[0][1], rel=1e-9)
    model.reseed(6)  # another stream: another estimate (the comparison can fail)
    assert log_likelihood(model, x, k=300, batch_size=10, threads=2)[0] != results[0][0]


def test_the_strict_stand_in_is_not_split():
    from scratchvae.evaluate import _eval_cores

    model = sv.VAE(12, (8,), 3, seed=0, backend="array_api_strict", device="device1")
    assert _eval_cores(2, model, np.zeros((10, 12)), 100, 500) is None
    numpy_model = sv.VAE(12, (8,), 3, seed=0)
    assert _eval_cores(2, numpy_model, np.zeros((10, 12)), 100, 50).choice == 2


def test_evaluation_in_cache_sized_blocks_gives_the_same_estimate(monkeypatch):
    """On the CPU each share of a chunk is computed in blocks of about CACHE_ROWS decoder
    rows; the blocks change the rounding only, and there really are several of them."""
    from scratchvae import evaluate

    model = sv.VAE(12, (8,), 3, dtype="float64", seed=0)
    x = np.random.default_rng(1).random((30, 12))
    calls = []
    log_weights = model.log_weights
    monkeypatch.setattr(model, "log_weights",
                        lambda *a, **kw: calls.append(kw["eps"].shape[0]) or log_weights(*a, **kw))
    results = {}
    for rows in (10**9, 90):
        monkeypatch.setattr(evaluate, "CACHE_ROWS", rows)
        model.reseed(5)
        calls.clear()
        results[rows] = log_likelihood(model, x, k=300, batch_size=30, k_batch=100, threads=1)
        results[rows, "blocks"] = list(calls)
    assert results[10**9, "blocks"] == [100, 100, 100]
    assert results[90, "blocks"] == ([3] * 33 + [1]) * 3  # 90 rows // 30 examples: 3 samples
    assert results[90][0] == pytest.approx(results[10**9][0], rel=1e-12)
