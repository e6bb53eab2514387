"""The gan experiment: its quick mode through the command line, and its options.

Three epochs on 4096 images do not make good digits, but they must move the generator
from the grey noise of its initialization towards the data: darker images (MNIST is
mostly black) nearer to the training images.
"""

from __future__ import annotations

import json

import pytest

from scratchvae.cli import main


@pytest.fixture(scope="module")
def quick(tmp_path_factory, data_dir):
    """The quick run: ``(results, out folder)``."""
    out = tmp_path_factory.mktemp("gan-quick")
    assert main(["experiment", "gan", "--quick", "--out", str(out),
                 "--data-dir", str(data_dir)]) == 0
    return json.loads((out / "results.json").read_text()), out


def test_results_record_the_setup_and_every_number(quick):
    results, out = quick
    assert results["experiment"] == "gan" and results["quick"] is True
    budget = results["setup"]["budget"]
    assert budget["epochs"] == 3 and budget["batch_size"] == 128 and budget["train_seconds"] > 0
    gan = results["setup"]["gan"]
    assert (gan["lr"], gan["beta1"], gan["noise_dim"]) == (1e-3, 0.5, 96)
    assert gan["steps_per_epoch"] == 4096 // 128
    numbers = results["numbers"]
    for key in ("d_loss", "g_loss", "d_real", "d_fake"):
        assert len(numbers["per_epoch"][key]) == 3
    assert set(results["figures"]) == {"samples_by_epoch.png", "curves.png"}
    for name in results["figures"]:
        assert (out / name).stat().st_size > 10_000
    samples = sorted(p.name for p in (out / "models" / "gan" / "samples").iterdir())
    assert samples == [f"epoch_{e:03d}.npy" for e in range(4)]


def test_the_losses_are_those_of_the_verdicts(quick):
    """L_D >= -log D(x) - log(1 - D(G(z))) of the mean verdicts (Jensen: the loss of the
    mean is at most the mean loss), and both players' numbers stay in range."""
    import math

    f = quick[0]["numbers"]["final_epoch"]
    assert 0 < f["d_fake"] < f["d_real"] < 1          # the discriminator is not fooled yet
    assert f["d_loss"] >= -math.log(f["d_real"]) - math.log(1 - f["d_fake"]) - 1e-3
    assert f["g_loss"] >= -math.log(f["d_fake"]) - 1e-3
    assert f["g_loss"] > math.log(2)                   # the generator is behind


def test_training_moves_the_generator_towards_the_data(quick):
    numbers = quick[0]["numbers"]
    near, grey = numbers["nearest_train_distance"], numbers["mean_grey"]
    assert near["gan_samples"] < near["untrained_generator"] - 1.0
    assert near["test_images"] < near["gan_samples"]   # still far from real images
    assert abs(grey["untrained_generator"] - 0.5) < 0.05  # tanh of small values: grey
    assert abs(grey["gan_samples"] - grey["training_images"]) < \
        abs(grey["untrained_generator"] - grey["training_images"]) - 0.05


def test_rerunning_reuses_the_trained_gan(quick, data_dir, capsys):
    results, out = quick
    capsys.readouterr()
    assert main(["experiment", "gan", "--quick", "--out", str(out),
                 "--data-dir", str(data_dir)]) == 0
    assert "training the GAN" not in capsys.readouterr().out
    again = json.loads((out / "results.json").read_text())
    assert again["numbers"]["per_epoch"] == results["numbers"]["per_epoch"]
