"""The semi-supervised experiment: M1, M2 and M1+M2 beside classifiers on the labelled
images only.

The quick mode runs once through the command line; its numbers must show what a working
pipeline shows (errors far below chance that fall as labels are added, M2's unlabelled
bound improving, and the unlabelled term reaching the classifier q(y|x): without it M2's
classifier would be bit for bit that of its labelled-only twin). M2's training is
checked to resume exactly from its checkpoints.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from scratchvae.cli import main
from scratchvae.experiments import Experiment, ExperimentError, semi_supervised


@pytest.fixture(scope="module")
def quick(tmp_path_factory, data_dir):
    """The quick run: ``(results, out folder)``."""
    out = tmp_path_factory.mktemp("semi-supervised-quick")
    assert main(["experiment", "semi-supervised", "--quick", "--out", str(out),
                 "--data-dir", str(data_dir)]) == 0
    return json.loads((out / "results.json").read_text()), out


def test_results_record_the_setup_and_every_number(quick):
    results, out = quick
    assert results["experiment"] == "semi-supervised" and results["quick"] is True
    setup, numbers = results["setup"], results["numbers"]
    assert setup["label_counts"] == [100, 300] and setup["draws_per_count"] == 2
    assert set(setup["budgets"]) == {"m1_vae", "m2", "m2_labelled_only", "m1m2"}
    for name, budget in setup["budgets"].items():
        assert budget["train_seconds"] > 0 and budget["epochs"] >= 1, name
    errors = numbers["test_error_percent"]
    assert set(errors) == {"pixels", "pca", "m1"}
    for method, row in errors.items():
        assert set(row) == {"100", "300"}, method
        for cell in row.values():
            runs = np.array(cell["runs"])
            assert len(runs) == 2
            assert cell["mean"] == pytest.approx(runs.mean(), abs=0.006)
            assert cell["std"] == pytest.approx(runs.std(ddof=1), abs=0.006)
    for key in ("m2", "m2_labelled_only", "m1m2"):
        assert len(numbers["curves"][key]) == setup[key.split("_")[0]]["epochs"]
    assert numbers["published_percent"]["100"] == {"M1+TSVM": 11.82, "M2": 11.97,
                                                   "M1+M2": 3.33}
    assert set(results["figures"]) == {"test_error.png", "m2_learning_curves.png",
                                       "m2_analogies.png"}
    for name in results["figures"]:
        assert (out / name).stat().st_size > 10_000


def test_classifiers_learn_and_improve_with_labels(quick):
    errors = quick[0]["numbers"]["test_error_percent"]
    # softmax regression on 100 MNIST images errs on about a quarter of the test set;
    # a broken one stays near chance, 90 %
    assert 15 < errors["pixels"]["100"]["mean"] < 45
    for method in ("pixels", "pca", "m1"):
        assert errors[method]["100"]["mean"] < 60, method
        assert errors[method]["300"]["mean"] < errors[method]["100"]["mean"], method


def test_m2_uses_the_unlabelled_images(quick):
    numbers = quick[0]["numbers"]
    curve = numbers["curves"]["m2"]
    # the bound on the unlabelled images improves by tens of nats as the decoder learns
    assert curve[0]["unlabelled_bound"] - curve[-1]["unlabelled_bound"] > 20
    # its twin never sees an unlabelled image
    assert all(np.isnan(c["unlabelled_bound"]) for c in numbers["curves"]["m2_labelled_only"])
    # the twin sees the same labelled minibatches and the same classification term: only
    # the unlabelled term can make the two classifiers disagree
    assert numbers["m2_unlabelled_changes_predictions"] > 0.01
    assert numbers["m2_test_error_percent"] < 90
    assert numbers["m1m2_test_error_percent"] < 75


def test_m2_training_resumes_exactly(tmp_path, data_dir):
    """Two epochs, then a third from the checkpoint, equal three epochs in one go."""
    rng = np.random.default_rng(0)
    x_l, y_l = rng.uniform(size=(20, 12)).astype(np.float32), np.repeat(np.arange(10), 2)
    x_u, x_test = rng.uniform(size=(30, 12)).astype(np.float32), rng.uniform(size=(15, 12))
    y_test = rng.integers(0, 10, 15)
    spec = dict(hidden=(8,), latent=3, epochs=3, batch_unlabelled=10, batch_labelled=5,
                weighting="balanced")
    whole = Experiment("semi-supervised", tmp_path / "whole", quick=True, log=lambda s: None)
    m_whole, _, h_whole = semi_supervised.train_m2(whole, "m2", x_l, y_l, x_u, x_test,
                                                   y_test, spec)
    parts = Experiment("semi-supervised", tmp_path / "parts", quick=True, log=lambda s: None)
    semi_supervised.train_m2(parts, "m2", x_l, y_l, x_u, x_test, y_test, {**spec, "epochs": 2})
    m_parts, _, h_parts = semi_supervised.train_m2(parts, "m2", x_l, y_l, x_u, x_test,
                                                   y_test, spec)
    assert [h["epoch"] for h in h_parts] == [1, 2, 3]
    assert np.array_equal(np.asarray(m_whole.params.flat), np.asarray(m_parts.params.flat))
    assert h_whole[-1]["train_loss"] == h_parts[-1]["train_loss"]
    with pytest.raises(ExperimentError, match="another configuration"):
        semi_supervised.train_m2(parts, "m2", x_l, y_l, x_u, x_test, y_test,
                                 {**spec, "latent": 4})


@pytest.mark.parametrize("weighting", ["paper", "balanced"])
def test_loss_weights_keep_the_papers_ratio_per_labelled_image(weighting):
    """Per labelled image, the classification term weighs 0.1 N / N_l bounds (the
    paper's alpha = 0.1 N): in a step, a labelled image's bound weighs f / n_l and its
    classification term alpha / n_l."""
    n_l, n_u = 100, 59900
    f, alpha = semi_supervised.loss_weights(n_l, n_u, weighting)
    assert alpha / f == pytest.approx(0.1 * (n_l + n_u) / n_l)
    assert f == (pytest.approx(n_l / (n_l + n_u)) if weighting == "paper" else 0.5)
    assert semi_supervised.loss_weights(n_l, n_u, weighting, use_unlabelled=False) == \
        (1.0, alpha)
    with pytest.raises(ValueError, match="weighting"):
        semi_supervised.loss_weights(n_l, n_u, "equal")


def test_mean_std_is_in_percent_with_the_sample_deviation():
    r = semi_supervised.mean_std([0.10, 0.12, 0.17])
    assert r["mean"] == 13.0 and r["std"] == pytest.approx(3.61, abs=0.005)
    assert r["runs"] == [10.0, 12.0, 17.0]
    assert semi_supervised.mean_std([0.2])["std"] == 0.0


@pytest.mark.parametrize("args, word", [
    (["--labels", "7"], "--labels"),
    (["--labels", "0"], "--labels"),
    (["--labels", "100000"], "--labels"),
])
def test_bad_options_exit_2_with_one_line(args, word, tmp_path, capsys, data_dir):
    assert main(["experiment", "semi-supervised", "--quick", "--out", str(tmp_path),
                 "--data-dir", str(data_dir), *args]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert word in err and "Traceback" not in err
