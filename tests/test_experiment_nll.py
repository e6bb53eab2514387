"""The nll experiment: a test log-likelihood of binarized MNIST by importance sampling.

The quick mode runs once through the command line. Its numbers must show what a working
pipeline shows: the importance-weighted bound above the ELBO and rising with K, the
headline number reproduced by ``scratchvae evaluate`` from the saved checkpoint, a fixed
binarization that is the one the model trained on. The staged training must resume a
stopped run exactly, and the schedule must be the paper's.
"""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest

from scratchvae import checkpoint
from scratchvae.cli import main
from scratchvae.experiments import Experiment, ExperimentError, nll
from scratchvae.train import load_data


@pytest.fixture(scope="module")
def quick(tmp_path_factory, data_dir):
    """The quick run: ``(results, out folder)``."""
    out = tmp_path_factory.mktemp("nll-quick")
    assert main(["experiment", "nll", "--quick", "--out", str(out),
                 "--data-dir", str(data_dir)]) == 0
    return json.loads((out / "results.json").read_text()), out


def test_results_record_the_setup_and_every_number(quick):
    results, out = quick
    assert results["experiment"] == "nll" and results["quick"] is True
    setup = results["setup"]
    assert setup["k"] == 100 and setup["ks"] == [1, 10, 100]
    assert [(s["epochs"], s["stage"]) for s in setup["schedule"]] == [(1, 0), (3, 1), (9, 2)]
    for protocol in ("dynamic", "fixed"):
        budget = setup["budgets"][protocol]
        assert (budget["epochs"], budget["stages"], budget["batch_size"]) == (13, 3, 20)
        assert budget["steps"] == 13 * 40 and budget["train_seconds"] > 0  # 800 / 20
        n = results["numbers"][protocol]
        assert (n["n_test"], n["n_gap"], n["n_curve"], n["k"]) == (200, 200, 200, 100)
        assert 1 <= n["active_units"] <= 50 and len(n["unit_variances_sorted"]) == 50
        assert n["active_units"] == sum(v > 0.01 for v in n["unit_variances_sorted"])
        assert n["distance_to_published"] == pytest.approx(n["test_nll"] - 86.76, abs=0.01)
        assert n["train_test_gap"] == pytest.approx(n["test_nll"] - n["train_nll"], abs=0.01)
        # a stopped run's metrics record every epoch with its stage and learning rate
        lines = (out / "models" / protocol / "metrics.jsonl").read_text().splitlines()
        metrics = [json.loads(line) for line in lines]
        assert [m["stage"] for m in metrics] == [0] + [1] * 3 + [2] * 9
        assert sum("test_loss" in m for m in metrics) == 3  # at the end of each stage
    assert results["numbers"]["published"]["test_nll"] == 86.76
    assert set(results["figures"]) == {"curves.png", "bound_against_k.png"}
    for name in results["figures"]:
        assert (out / name).stat().st_size > 10_000


def test_the_models_learned_and_the_numbers_are_likelihoods_of_binary_images(quick):
    for protocol in ("dynamic", "fixed"):
        n = quick[0]["numbers"][protocol]
        # 784 fair coins cost 543 nats; 13 short epochs on 800 images reach about 150
        assert 110 < n["test_nll"] < 170, n
        assert n["test_neg_elbo"] == pytest.approx(n["test_recon"] + n["test_kl"], abs=0.01)
        assert n["test_kl"] > 5  # the code carries information about x


def test_the_bound_lies_above_the_elbo_and_tightens_with_k(quick):
    for protocol in ("dynamic", "fixed"):
        n = quick[0]["numbers"][protocol]
        bound = n["neg_bound_by_k"]                   # -L_K: falls as K grows
        assert bound["1"] > bound["10"] + 1 and bound["10"] > bound["100"] + 0.5, bound
        # K = 1 is the ELBO (other draws of z: within about 1 nat on 200 images)
        assert bound["1"] == pytest.approx(n["test_neg_elbo"], abs=1.5)
        # the curve's K = 100 is the headline estimate on the same 200 images, other draws
        assert bound["100"] == pytest.approx(n["test_nll"], abs=0.5)
        assert n["test_nll"] < n["test_neg_elbo"] - 3


def test_each_stage_end_records_what_the_schedule_cut_there_gives(quick):
    for protocol in ("dynamic", "fixed"):
        n = quick[0]["numbers"][protocol]
        stages = n["by_stage"]
        assert [(m["stage"], m["epoch"]) for m in stages] == [(0, 1), (1, 4), (2, 13)]
        probes = [m["test_nll_probe"] for m in stages]
        assert probes[0] > probes[1] > probes[2]          # training helps, stage by stage
        assert all(m["test_nll_probe"] < m["test_neg_elbo"] for m in stages)
        # the last probe is the final model on the same 200 images, K = 100, other draws
        assert probes[-1] == pytest.approx(n["test_nll"], abs=0.5)


def test_scratchvae_evaluate_reproduces_the_number_from_the_checkpoint(quick, data_dir,
                                                                       capsys):
    results, out = quick
    run = out / "models" / "dynamic"
    assert main(["evaluate", str(run), "--k", "100", "--quiet",
                 "--data-dir", str(data_dir)]) == 0
    assert "log p(x), K=100" in capsys.readouterr().out
    evaluation = json.loads((run / "evaluation.json").read_text())
    n = results["numbers"]["dynamic"]
    assert evaluation["epoch"] == 13 and evaluation["n_test"] == 200
    assert -evaluation["log_likelihood"] == pytest.approx(n["test_nll"], abs=2e-3)
    assert -evaluation["test_elbo"] == pytest.approx(n["test_neg_elbo"], abs=2e-3)
    assert evaluation["active_units"] == n["active_units"]
    # the saved configuration names no data folder: it belongs to the machine
    assert json.loads((run / "config.json").read_text())["data_dir"] is None


def test_the_fixed_binarization_is_the_recorded_one_and_depends_on_the_seed(quick, data_dir):
    recorded = quick[0]["setup"]["fixed_training_set_sha256_16"]
    config = nll.model_config("fixed", nll.SETTINGS["quick"], seed=0)
    config.data_dir = str(data_dir)
    x = load_data(config)[1]
    assert set(np.unique(x)) == {0.0, 1.0} and x.shape == (800, 784)
    assert nll.fingerprint(x) == recorded                     # the model's training set ...
    assert nll.fingerprint(load_data(config)[1]) == recorded  # ... drawn again, the same
    config.seed = 1
    assert nll.fingerprint(load_data(config)[1]) != recorded
    grey = load_data(_dynamic(data_dir))[1]     # the same images, grey (dynamic protocol)
    assert np.all(x[grey == 0] == 0) and np.all(x[grey == 1] == 1)
    between = (grey > 0) & (grey < 1)           # about 120,000 pixels: P(x_bin = 1) = grey
    assert abs(x[between].mean() - grey[between].mean()) < 0.005
    assert abs(np.mean(x[between] == (grey[between] > 0.5)) - 1) > 0.1  # not a threshold


def _dynamic(data_dir):
    config = nll.model_config("dynamic", nll.SETTINGS["quick"], seed=0)
    config.data_dir = str(data_dir)
    return config


def test_the_schedule_is_the_papers():
    schedule = nll.iwae_schedule()
    assert [e for e, _ in schedule] == [1, 3, 9, 27, 81, 243, 729, 2187]
    assert sum(e for e, _ in schedule) == 3280
    assert schedule[0][1] == 1e-3 and schedule[-1][1] == pytest.approx(1e-4, rel=1e-12)
    ratios = [b / a for (_, a), (_, b) in itertools.pairwise(schedule)]
    assert ratios == pytest.approx([10 ** (-1 / 7)] * 7, rel=1e-12)
    assert [nll.stage_of(schedule, e)[0] for e in (1, 2, 4, 5, 13, 14, 3280)] == \
        [0, 1, 1, 2, 2, 3, 7]
    with pytest.raises(ValueError, match="past"):
        nll.stage_of(schedule, 3281)


def test_a_stopped_run_resumes_as_if_it_had_never_stopped(tmp_path, data_dir):
    settings = dict(nll.SETTINGS["quick"], n_train=300, n_validation=40, n_test=50,
                    stages={"dynamic": 2, "fixed": 2})

    def train(folder, until=None):
        exp = Experiment("nll", tmp_path / folder, data_dir=str(data_dir), log=lambda _: None)
        return nll.train_staged(exp, "m", nll.model_config("dynamic", settings, 0), until)

    whole, _ = train("whole")
    train("stopped", until=2)                    # stops inside stage 2 (epochs 2-4) ...
    assert checkpoint.read(tmp_path / "stopped/models/m/checkpoint.npz")["epoch"] == 2
    resumed, budget = train("stopped")           # ... and goes on from epoch 3
    assert np.array_equal(resumed.params.flat, whole.params.flat)
    assert budget["epochs"] == 4
    lines = (tmp_path / "stopped/models/m/metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["lr"] for line in lines] == \
        pytest.approx([1e-3] + [1e-3 * 10 ** (-1 / 7)] * 3, rel=1e-12)
    # Adam's epsilon is the paper's 1e-4, not the library's default 1e-8
    assert nll.ADAM["eps"] == 1e-4 and math.isclose(
        json.loads((tmp_path / "whole/models/m/config.json").read_text())
        ["extra"]["adam"]["eps"], 1e-4)


def test_a_folder_trained_otherwise_is_refused(quick, data_dir, capsys):
    _, out = quick
    assert main(["experiment", "nll", "--quick", "--out", str(out), "--seed", "1",
                 "--data-dir", str(data_dir)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "another configuration" in err, err


def test_each_protocol_runs_its_own_number_of_stages():
    full = nll.SETTINGS["full"]
    assert full["stages"] == {"dynamic": 8, "fixed": 6}
    dynamic, fixed = (nll.model_config(p, full, 0) for p in ("dynamic", "fixed"))
    assert (dynamic.epochs, fixed.epochs) == (3280, 364)
    assert fixed.extra["schedule"] == dynamic.extra["schedule"][:6]
    assert (dynamic.binarize, fixed.binarize) == ("dynamic", "fixed")


def test_protocol_and_stages_are_checked():
    with pytest.raises(ValueError, match="protocol"):
        nll.model_config("static", nll.SETTINGS["quick"], 0)
    with pytest.raises(ValueError, match="stages"):
        nll.iwae_schedule(9)
    with pytest.raises(ExperimentError):
        nll._check(Experiment("nll", "/tmp/unused", options={"digit": 1}))


def test_two_worker_processes_give_the_numbers_one_process_gives(quick, tmp_path, data_dir,
                                                                 monkeypatch):
    """The full run trains its two models in two processes: each model and every number
    must be what the one-process quick run computed."""
    results, out = quick
    monkeypatch.setitem(nll.SETTINGS, "quick", dict(nll.SETTINGS["quick"], workers=2))
    pools = []

    class CountedPool(nll.ProcessPoolExecutor):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            pools.append(self._max_workers)

    monkeypatch.setattr(nll, "ProcessPoolExecutor", CountedPool)
    assert main(["experiment", "nll", "--quick", "--out", str(tmp_path),
                 "--data-dir", str(data_dir)]) == 0
    assert pools == [2]
    parallel = json.loads((tmp_path / "results.json").read_text())
    for protocol in nll.PROTOCOLS:
        one, two = (checkpoint.read(folder / "models" / protocol / "checkpoint.npz")
                    for folder in (out, tmp_path))
        assert one["epoch"] == two["epoch"] == 13
        assert np.array_equal(one["params"], two["params"])
        for key in ("test_nll", "test_neg_elbo", "train_nll", "active_units"):
            assert parallel["numbers"][protocol][key] == results["numbers"][protocol][key]
