"""Training loop: metrics, checkpoints, bit-exact resume, divergence handling."""

import json

import numpy as np
import pytest

from scratchvae import checkpoint
from scratchvae.gradcheck import check_model
from scratchvae.train import (
    TrainConfig,
    TrainingError,
    build_model,
    load_data,
    param_count,
    train,
)

pytestmark = pytest.mark.usefixtures("data_dir")

# one BLAS thread: reruns are bit-identical whatever the load (see scratchvae/threads.py)
SMALL = dict(n_train=600, n_test=200, hidden_dims=(32,), latent_dim=4, batch_size=100,
             threads=1)


def read_metrics(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_metrics_config_and_checkpoint_written(tmp_path):
    metrics = train(TrainConfig(epochs=2, **SMALL), tmp_path, quiet=True)
    lines = read_metrics(tmp_path)
    assert [m["epoch"] for m in lines] == [1, 2]
    for key in ("epoch", "train_loss", "train_recon", "train_kl", "test_loss", "test_recon",
                "test_kl", "epoch_seconds", "threads"):
        assert key in lines[-1]
    assert lines[-1]["train_loss"] == pytest.approx(lines[-1]["train_recon"]
                                                    + lines[-1]["train_kl"])
    assert lines[-1] == metrics
    assert lines[-1]["test_loss"] == pytest.approx(lines[-1]["test_recon"] + lines[-1]["test_kl"])
    assert lines[1]["train_loss"] < lines[0]["train_loss"]
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["hidden_dims"] == [32] and config["epochs"] == 2
    assert checkpoint.read(tmp_path / "checkpoint.npz")["epoch"] == 2
    assert not list(tmp_path.glob(".*.tmp"))


def test_resume_is_bit_exact(tmp_path):
    full, part = tmp_path / "full", tmp_path / "part"
    train(TrainConfig(epochs=3, **SMALL), full, quiet=True)
    train(TrainConfig(epochs=1, **SMALL), part, quiet=True)
    config = TrainConfig.from_json(json.loads((part / "config.json").read_text()))
    config.epochs = 3
    train(config, part, resume=True, quiet=True)
    a, b = checkpoint.read(full / "checkpoint.npz"), checkpoint.read(part / "checkpoint.npz")
    assert np.array_equal(a["params"], b["params"])
    for key in a["optimizer_state"]:
        assert np.array_equal(a["optimizer_state"][key], b["optimizer_state"][key])
    assert a["rng_state"] == b["rng_state"]
    strip = [{k: v for k, v in m.items() if k not in ("epoch_seconds", "examples_per_second")}
             for m in read_metrics(full)]
    assert strip == [{k: v for k, v in m.items()
                      if k not in ("epoch_seconds", "examples_per_second")}
                     for m in read_metrics(part)]


def test_checkpoint_of_another_architecture_is_refused(tmp_path):
    train(TrainConfig(epochs=1, **SMALL), tmp_path, quiet=True)
    other = build_model(TrainConfig(**{**SMALL, "hidden_dims": (16,)}), 784)
    with pytest.raises(checkpoint.CheckpointError, match="another architecture"):
        checkpoint.restore(tmp_path / "checkpoint.npz", other)


def test_corrupt_checkpoint_is_named(tmp_path):
    bad = tmp_path / "checkpoint.npz"
    bad.write_bytes(b"not a zip file")
    model = build_model(TrainConfig(**SMALL), 784)
    with pytest.raises(checkpoint.CheckpointError, match=r"checkpoint\.npz"):
        checkpoint.restore(bad, model)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the overflow is the point
def test_diverging_loss_stops_and_keeps_last_checkpoint(tmp_path):
    config = TrainConfig(epochs=1, **SMALL)
    train(config, tmp_path, quiet=True)
    before = checkpoint.read(tmp_path / "checkpoint.npz")["params"]
    config = TrainConfig(epochs=3, lr=1e30, **SMALL)
    with pytest.raises(TrainingError, match=r"epoch \d+, step \d+.*--lr"):
        train(config, tmp_path, resume=True, quiet=True)
    after = checkpoint.read(tmp_path / "checkpoint.npz")
    assert after["epoch"] == 1
    assert np.array_equal(after["params"], before)


@pytest.mark.parametrize("field, value", [("epochs", 0), ("batch_size", 0), ("lr", 0.0),
                                          ("lr", -1.0), ("dataset", "cifar"),
                                          ("optimizer", "rmsprop"), ("binarize", "yes"),
                                          ("latent_dim", 0), ("beta", -1.0),
                                          ("n_validation", -1)])
def test_bad_config_names_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        TrainConfig(**{field: value}).validate()


def test_binarizing_needs_the_bernoulli_likelihood():
    with pytest.raises(ValueError, match="binarize"):
        TrainConfig(binarize="dynamic", likelihood="gaussian").validate()


def test_validation_split_is_held_out_and_reported(tmp_path):
    config = TrainConfig(epochs=1, n_validation=100, binarize="dynamic", **SMALL)
    metrics = train(config, tmp_path, quiet=True)
    assert metrics["val_loss"] > 0
    _, x_train, x_val, x_test, _ = load_data(config)
    assert x_train.shape == (500, 784) and x_val.shape == (100, 784)
    assert set(np.unique(x_val)) <= {0.0, 1.0} and set(np.unique(x_test)) <= {0.0, 1.0}


def test_a_decoder_wider_than_its_encoder():
    config = TrainConfig(dataset="frey", hidden_dims=(8,), decoder_hidden_dims=(16, 12),
                         latent_dim=3, dtype="float64").validate()
    model = build_model(config, input_dim=560)
    assert model.params["dec.0.W"].shape == (3, 16) and model.params["dec.1.W"].shape == (16, 12)
    assert model.params.flat.size == param_count(config)
    rng = np.random.default_rng(0)
    x, eps = rng.random((5, 560)), rng.standard_normal((5, 3))
    assert check_model(model, x, eps, method="directional").passed(1e-6)
    # the configuration round-trips, and a mirrored decoder keeps configs as they were
    assert TrainConfig.from_json(config.to_json()) == config
    assert "decoder_hidden_dims" not in TrainConfig().to_json()
    again = type(model)(**model.config())
    assert np.array_equal(again.params.flat, model.params.flat)
    assert "decoder_hidden_dims" not in build_model(TrainConfig(), 784).config()
    with pytest.raises(ValueError, match="decoder_hidden_dims"):
        TrainConfig(decoder_hidden_dims=(0,)).validate()
