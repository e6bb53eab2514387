"""The kingma2014 experiment: Fig. 2 (AEVB against wake-sleep), Fig. 4 and Fig. 5.

The quick mode runs once through the command line. Its bounds are too short-trained to
rank the two algorithms reliably, so the checks are structural and each one breaks when
the pipeline does: curves recorded at increasing sample counts up to the budget, the
step size picked as the best short run and that very run continued, bounds that beat a
model which has learned nothing and that rise with training. Resuming is checked on a
small problem: an interrupted run continues exactly where it stopped.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from scratchvae import checkpoint
from scratchvae.cli import main
from scratchvae.experiments import Experiment, kingma2014
from scratchvae.threads import Threads
from scratchvae.train import TrainConfig

FIGURES = {"fig2_aevb_vs_wake_sleep.png", "fig4_manifold_mnist.png",
           "fig4_manifold_frey.png", "fig5_samples_mnist.png"}


@pytest.fixture(scope="module")
def quick(tmp_path_factory, data_dir):
    """The quick run: ``(results, out folder)``."""
    if not (data_dir / "frey" / "frey_rawface.mat").is_file():
        pytest.skip(f"Frey Face not found under {data_dir}")
    out = tmp_path_factory.mktemp("kingma2014-quick")
    assert main(["experiment", "kingma2014", "--quick", "--out", str(out),
                 "--data-dir", str(data_dir)]) == 0
    return json.loads((out / "results.json").read_text()), out


def _models(results):
    """``(dataset, algorithm, latent size)`` of every model of Fig. 2."""
    return [(ds, a, str(d)) for ds, s in results["setup"]["datasets"].items()
            for d in s["latent_sizes_fig2"] for a in kingma2014.ALGORITHMS]


def test_results_record_the_setup_and_every_model(quick):
    results, out = quick
    assert results["experiment"] == "kingma2014" and results["quick"] is True
    setup = results["setup"]
    assert setup["budget_samples_per_model"] == 4000
    assert setup["datasets"]["mnist"]["latent_sizes_fig2"] == [2, 5]
    assert setup["datasets"]["frey"]["latent_sizes_fig2"] == [2]
    assert setup["datasets"]["frey"]["n_train"] == 1765
    assert len(_models(results)) == 6
    # one budget per model: the continued run of the step size it picked
    assert len(setup["budgets"]) == 6
    for name, budget in setup["budgets"].items():
        assert budget["batch_size"] == 100 and budget["train_seconds"] > 0, name
    assert set(results["figures"]) == FIGURES
    for name in FIGURES:
        assert (out / name).stat().st_size > 10_000, name


def test_curves_rise_at_increasing_sample_counts_up_to_the_budget(quick):
    results, _ = quick
    numbers, datasets = results["numbers"], results["setup"]["datasets"]
    assert "diverged" not in numbers
    for ds, a, d in _models(results):
        curve = numbers["curves"][ds][a][d]
        samples = [p["samples"] for p in curve]
        n = datasets[ds]["n_train"]
        assert samples == sorted(set(samples)) and len(samples) >= 3, (ds, a, d)
        assert all(s % n == 0 for s in samples)                      # whole epochs
        assert samples[-1] == datasets[ds]["samples_per_model"] >= 4000
        assert datasets[ds]["short_run_samples"] in samples
        assert curve[-1]["train"] > curve[0]["train"] + 1.0, (ds, a, d)  # it learns
        assert numbers["final_bound"][ds][a][d] == curve[-1]


def test_bounds_beat_a_model_that_learned_nothing(quick):
    """MNIST: a decoder that says 0.5 for every pixel scores -784 log 2 = -543.4 nats;
    Frey Face: a density on [0, 1]^560 that is uniform scores 0."""
    final = quick[0]["numbers"]["final_bound"]
    for a in kingma2014.ALGORITHMS:
        for d in ("2", "5"):
            assert -784 * math.log(2) + 100 < final["mnist"][a][d]["train"] < 0
            assert -784 * math.log(2) + 100 < final["mnist"][a][d]["test"] < 0
        assert final["frey"][a]["2"]["train"] > 100 and final["frey"][a]["2"]["test"] > 100


def test_the_picked_step_size_is_the_best_short_run_and_its_run_continues(quick):
    results, _ = quick
    numbers, datasets = results["numbers"], results["setup"]["datasets"]
    for ds, a, d in _models(results):
        pick = numbers["step_size"][ds][a][d]
        short = pick["short_run_train_bound"]
        assert set(short) == {"0.01", "0.02", "0.1"}
        finite = {float(k): v for k, v in short.items() if v is not None}
        assert pick["picked"] == max(finite, key=finite.get)
        # the continued run passes through the short run's bound: the same run
        at_pick = [p["train"] for p in numbers["curves"][ds][a][d]
                   if p["samples"] == datasets[ds]["short_run_samples"]]
        assert at_pick == [finite[pick["picked"]]]
        assert f"{ds}-{a}-z{d}-lr{pick['picked']:g}" in results["setup"]["budgets"]


def test_epoch_points_are_logarithmic_and_include_the_short_run():
    points = kingma2014.epoch_points(167, 5, 16)
    assert points[0] == 1 and points[-1] == 167 and 5 in points
    assert points == sorted(set(points))
    ratios = np.diff(np.log(points[4:]))
    assert ratios.max() < 2 * ratios.min() + 0.1   # evenly spaced on a log axis


def _tiny(tmp_path):
    exp = Experiment("kingma2014", tmp_path, quick=True, log=lambda line: None)
    config = TrainConfig(dataset="mnist", hidden_dims=(6,), latent_dim=2, batch_size=10,
                         optimizer="adagrad", lr=0.05, activation="tanh", init="normal",
                         threads=1, epochs=1, extra={"algorithm": "wake-sleep"})
    rng = np.random.default_rng(0)
    x = (rng.uniform(size=(40, 9)) > 0.5).astype(np.float32)
    data = {"x_train": x, "x_eval": x[:20], "x_test": x[20:]}
    return exp, config, data


def test_wake_sleep_resumes_exactly_where_it_stopped(tmp_path):
    exp, config, data = _tiny(tmp_path / "a")
    config.epochs = 3
    straight, budget = kingma2014.train_wake_sleep(exp, "ws", data["x_train"], config)
    assert budget["epochs"] == 3
    exp2, config2, _ = _tiny(tmp_path / "b")
    config2.epochs = 2
    kingma2014.train_wake_sleep(exp2, "ws", data["x_train"], config2)   # stopped ...
    config2.epochs = 3
    resumed, _ = kingma2014.train_wake_sleep(exp2, "ws", data["x_train"], config2)  # ... resumed
    assert checkpoint.read(tmp_path / "b" / "models" / "ws" / "checkpoint.npz")["epoch"] == 3
    assert np.array_equal(straight.params.flat, resumed.params.flat)
    lines = (tmp_path / "b" / "models" / "ws" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3]


def test_a_curve_is_continued_not_recomputed(tmp_path):
    exp, config, data = _tiny(tmp_path)
    _, first, _ = kingma2014.train_with_curve(exp, "ws", "wake-sleep", data, config, [1, 2])
    _, more, _ = kingma2014.train_with_curve(exp, "ws", "wake-sleep", data, config, [1, 2, 4])
    assert more["points"][:2] == first["points"]
    assert [p["epoch"] for p in more["points"]] == [1, 2, 4]
    assert [p["samples"] for p in more["points"]] == [40, 80, 160]


def test_another_configuration_in_the_same_folder_is_refused(tmp_path):
    exp, config, data = _tiny(tmp_path)
    kingma2014.train_wake_sleep(exp, "ws", data["x_train"], config)
    config.lr = 0.1
    with pytest.raises(ValueError, match="another configuration"):
        kingma2014.train_wake_sleep(exp, "ws", data["x_train"], config)


@pytest.mark.parametrize("args, word", [
    (["--samples", "0"], "--samples"),
    (["--samples", "nan"], "--samples"),
])
def test_bad_options_exit_2_with_one_line(args, word, tmp_path, capsys):
    assert main(["experiment", "kingma2014", "--quick", "--out", str(tmp_path), *args]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert word in err and "Traceback" not in err


def test_a_finished_curve_needs_no_checkpoint_unless_a_figure_shows_its_model(tmp_path):
    exp, config, data = _tiny(tmp_path)
    model, curve, budget = kingma2014.train_with_curve(exp, "ws", "wake-sleep", data,
                                                       config, [1, 2], need_model=False)
    assert model is None and budget["epochs"] == 2 and budget["train_seconds"] > 0
    run_dir = tmp_path / "models" / "ws"
    for kept_alone in ("checkpoint.npz", "metrics.jsonl"):   # config.json and curve.json
        (run_dir / kept_alone).unlink()
    _, again, budget = kingma2014.train_with_curve(exp, "ws", "wake-sleep", data, config,
                                                   [1, 2], need_model=False)
    assert again == curve and budget["train_seconds"] is None
    assert not (run_dir / "checkpoint.npz").exists()        # nothing was trained again
    model, _, _ = kingma2014.train_with_curve(exp, "ws", "wake-sleep", data, config, [1, 2])
    assert model is None                                    # a figure would need the weights
    config.lr = 0.1
    with pytest.raises(ValueError, match="another configuration"):
        kingma2014.train_with_curve(exp, "ws", "wake-sleep", data, config, [1, 2],
                                    need_model=False)


@pytest.mark.parametrize("algorithm", kingma2014.ALGORITHMS)
def test_a_continued_run_keeps_its_thread_count_and_drops_a_stale_metrics_line(
        algorithm, tmp_path, monkeypatch):
    exp, config, data = _tiny(tmp_path)
    config.threads, config.epochs, config.extra = "auto", 2, {"algorithm": algorithm}
    monkeypatch.setattr(Threads, "choose", lambda self, work, **kw: setattr(self, "choice", 2)
                        or 2)
    kingma2014._train(exp, "m", algorithm, data["x_train"], config)
    run_dir = tmp_path / "models" / "m"
    assert checkpoint.read(run_dir / "checkpoint.npz")["threads"] == 2
    with open(run_dir / "metrics.jsonl", "a") as f:   # stopped after writing epoch 3's line
        f.write(json.dumps({"epoch": 3, "epoch_seconds": 1.0}) + "\n")

    def no_trial(self, work, **kwargs):
        assert self.choice is not None, "a continued auto run must not choose again"
        return self.choice

    monkeypatch.setattr(Threads, "choose", no_trial)
    config.epochs = 3
    kingma2014._train(exp, "m", algorithm, data["x_train"], config)
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3]
    assert checkpoint.read(run_dir / "checkpoint.npz")["threads"] == 2
