"""The CPU thread count: fixed or chosen by timing, restored afterwards, kept on resume."""

from __future__ import annotations

import json
import time

import pytest
from threadpoolctl import ThreadpoolController

from scratchvae import checkpoint
from scratchvae.threads import Threads, check_threads
from scratchvae.train import TrainConfig, train


def blas_threads() -> int:
    return ThreadpoolController().select(user_api="blas").info()[0]["num_threads"]


def test_bad_counts_are_named():
    for bad in (0, -1, 1.5, "two", True, None):
        with pytest.raises(ValueError, match="threads must be 'auto' or an integer >= 1"):
            check_threads(bad)
    with pytest.raises(ValueError, match="threads"):
        TrainConfig(threads=0).validate()
    assert check_threads("auto") == "auto" and check_threads(3) == 3


def test_a_fixed_count_is_set_and_restored():
    before = blas_threads()
    with Threads(1):
        assert blas_threads() == 1
    assert blas_threads() == before


@pytest.mark.parametrize("fast", [1, 2])
def test_auto_keeps_the_faster_count(fast):
    """A step that is slow under the other count (as two threads are on a busy machine,
    or one thread on an idle one) makes ``choose`` keep ``fast``."""
    calls = []

    def step():
        n = blas_threads()
        calls.append(n)
        time.sleep(0.001 if n == fast else 0.004)

    threads = Threads("auto", max_threads=2)
    assert threads.choose(step, rounds=2, settle=0.005, measure=0.02) == fast == threads.choice
    assert sorted(set(calls)) == [1, 2] and len(threads.timings[1]) == 2
    with threads:
        assert blas_threads() == fast
    assert Threads(3).choose(lambda: pytest.fail("a fixed count runs nothing")) == 3
    assert Threads("auto", max_threads=1).choice == 1  # one core: nothing to try


@pytest.mark.usefixtures("data_dir")
def test_runs_record_their_count_and_auto_resumes_with_it(tmp_path, monkeypatch):
    small = dict(n_train=300, n_test=100, hidden_dims=(16,), latent_dim=2, batch_size=100)
    train(TrainConfig(epochs=1, threads=2, **small), tmp_path, quiet=True)
    assert checkpoint.read(tmp_path / "checkpoint.npz")["threads"] == 2

    def no_trial(self, work, **kwargs):
        assert self.choice is not None, "a resumed auto run must not choose again"
        return self.choice

    monkeypatch.setattr(Threads, "choose", no_trial)
    train(TrainConfig(epochs=2, threads="auto", **small), tmp_path, resume=True, quiet=True)
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [m["threads"] for m in lines] == [2, 2]
    assert checkpoint.read(tmp_path / "checkpoint.npz")["threads"] == 2
