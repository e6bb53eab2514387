"""The experiment framework: settings checked, results.json written, models trained once
and then reused or resumed, PCA. Each experiment has its own test file."""

from __future__ import annotations

import json
import sys
import types

import numpy as np
import pytest

from scratchvae.cli import main
from scratchvae.experiments import (
    NAMES,
    Experiment,
    ExperimentError,
    Outcome,
    code_version,
    run_experiment,
)
from scratchvae.experiments.common import OPTIONS, PCA, train_ae, train_vae
from scratchvae.train import TrainConfig


@pytest.mark.parametrize(("argv", "message"), [
    (["experiment", "dreams"], "NAME must be one of generation, anomaly, compression, "
     "features, bits-back, semi-supervised, gan, compare, collapse, kingma2014, nll"),
    (["experiment", "generation", "--seed", "-1"], "--seed must be an integer >= 0"),
    (["experiment", "generation", "--from", "/nonexistent/run"], "--from /nonexistent/run: "
     "no checkpoint.npz there"),
])
def test_bad_settings_exit_2_with_one_line(argv, message, tmp_path, capsys):
    assert main([*argv, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert message in err, err


#: What each experiment takes: its own options (of common.OPTIONS), and whether --from.
TAKES = {"generation": ((), True), "anomaly": (("digit",), False),
         "compression": (("beta",), True), "features": ((), False),
         "bits-back": ((), True), "semi-supervised": (("labels",), False),
         "gan": ((), False), "compare": ((), False), "collapse": ((), False),
         "kingma2014": (("samples",), False), "nll": ((), False)}
VALUES = {"digit": "3", "beta": "1.0", "labels": "100", "samples": "1e6"}


def test_every_experiment_says_what_it_takes():
    assert set(TAKES) == set(NAMES)
    assert set(VALUES) == set(OPTIONS)


@pytest.mark.parametrize(("name", "option"), [(name, option) for name in NAMES
                                              for option in OPTIONS
                                              if option not in TAKES[name][0]])
def test_an_option_an_experiment_does_not_take_exits_2_naming_it(name, option, tmp_path,
                                                                capsys):
    """Refused before any data is read or any model trained: nothing is written."""
    out = tmp_path / "out"
    assert main(["experiment", name, "--quick", "--out", str(out),
                 f"--{option}", VALUES[option]]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert f"--{option}: not an option of the {name} experiment" in err, err
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize("name", [name for name in NAMES if not TAKES[name][1]])
def test_a_trained_run_given_to_an_experiment_that_takes_none_exits_2(name, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.npz").write_bytes(b"")
    out = tmp_path / "out"
    assert main(["experiment", name, "--quick", "--out", str(out), "--from", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert f"--from: the {name} experiment takes no trained run" in err, err
    assert not out.exists() or not any(out.iterdir())


@pytest.fixture
def fake_experiment(monkeypatch):
    """A stand-in ``generation`` module that records what it was given."""
    seen = {}

    def run(exp):
        seen["exp"] = exp
        return Outcome(numbers={"answer": 42.0}, setup={"epochs": 1}, table=["| a | 42 |"],
                       figures=["f.png"])

    module = types.ModuleType("scratchvae.experiments.generation")
    module.run = run
    monkeypatch.setitem(sys.modules, "scratchvae.experiments.generation", module)
    return seen


def test_results_json_records_the_run(fake_experiment, tmp_path, capsys):
    out = tmp_path / "gen"
    assert main(["experiment", "generation", "--quick", "--out", str(out), "--seed", "3"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["numbers"] == {"answer": 42.0}
    assert results["setup"] == {"epochs": 1}
    assert results["seed"] == 3 and results["quick"] is True
    assert results["command"] == f"scratchvae experiment generation --quick --out {out} --seed 3"
    assert results["code_version"] == code_version()
    assert results["wall_seconds"] >= 0
    assert fake_experiment["exp"].options == {}
    assert "| a | 42 |" in capsys.readouterr().out


def test_options_reach_the_experiment(fake_experiment, tmp_path):
    main(["experiment", "generation", "--out", str(tmp_path), "--digit", "4", "--beta", "0.5"])
    assert fake_experiment["exp"].options == {"digit": 4, "beta": 0.5}


def test_a_failing_experiment_leaves_no_results(monkeypatch, tmp_path):
    module = types.ModuleType("scratchvae.experiments.features")

    def run(exp):
        raise ExperimentError("--digit is not an option of features")

    module.run = run
    monkeypatch.setitem(sys.modules, "scratchvae.experiments.features", module)
    with pytest.raises(ExperimentError):
        run_experiment(Experiment("features", tmp_path))
    assert not (tmp_path / "results.json").exists()


def test_code_version_names_the_package():
    from scratchvae import __version__

    assert code_version().startswith(__version__)


def _tiny(epochs):
    return TrainConfig(dataset="mnist", epochs=epochs, hidden_dims=(16,), latent_dim=2,
                       n_train=256, n_test=64, batch_size=64, seed=1, threads=1)


def test_a_model_is_trained_once_then_reused_or_resumed(data_dir, tmp_path):
    exp = Experiment("generation", tmp_path, data_dir=str(data_dir), log=lambda line: None)
    model, budget = train_vae(exp, "vae", _tiny(2), 784)
    assert budget["epochs"] == 2 and budget["train_seconds"] > 0
    log = []
    exp.log = log.append
    again, _ = train_vae(exp, "vae", _tiny(2), 784)  # reused: nothing trained
    assert log == []
    np.testing.assert_array_equal(model.params.flat, again.params.flat)
    more, _ = train_vae(exp, "vae", _tiny(3), 784)  # resumed for one more epoch
    assert log == ["training vae: epochs 3-3"]
    assert not np.array_equal(more.params.flat, model.params.flat)
    other = _tiny(2)
    other.latent_dim = 3
    with pytest.raises(ExperimentError, match="another configuration"):
        train_vae(exp, "vae", other, 784)


def test_an_autoencoder_resumes_where_it_stopped(tmp_path):
    x = np.random.default_rng(0).random((128, 12), dtype=np.float32)
    config = TrainConfig(epochs=2, hidden_dims=(8,), latent_dim=2, batch_size=32, seed=0,
                         threads=1)
    straight, _ = train_ae(Experiment("features", tmp_path / "a", log=lambda s: None), "ae",
                           x, config)
    exp = Experiment("features", tmp_path / "b", log=lambda s: None)
    train_ae(exp, "ae", x, TrainConfig(epochs=1, hidden_dims=(8,), latent_dim=2,
                                       batch_size=32, seed=0, threads=1))
    resumed, budget = train_ae(exp, "ae", x, config)
    np.testing.assert_array_equal(resumed.params.flat, straight.params.flat)
    assert budget["epochs"] == 2


def test_pca_matches_the_eigenvectors_of_the_covariance():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((500, 6)) @ rng.standard_normal((6, 6))
    pca = PCA(x, 3)
    evals, evecs = np.linalg.eigh(np.cov(x, rowvar=False))
    np.testing.assert_allclose(pca.explained_variance, evals[::-1][:3], rtol=1e-10)
    for k in range(3):  # the same directions, up to sign
        assert abs(abs(pca.components[k] @ evecs[:, -1 - k]) - 1) < 1e-10
    full = PCA(x, 6)
    np.testing.assert_allclose(full.reconstruct(x), x, atol=1e-10)
    assert np.abs(pca.reconstruct(x) - x).max() > 0.1  # three directions lose something
    with pytest.raises(ExperimentError, match="PCA needs"):
        PCA(x, 7)
