"""The anomaly experiment: its metrics against brute force, its scores against the VAE's own
importance weights, and the quick run's record (``scratchvae experiment anomaly --quick``)."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest

import scratchvae as sv
from scratchvae.cli import main
from scratchvae.experiments import anomaly


@pytest.fixture(scope="module")
def quick(tmp_path_factory, data_dir):
    """results.json of one quick run, and the folder it wrote."""
    if not (data_dir / "fashion-mnist" / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"Fashion-MNIST not found under {data_dir}; set SCRATCHVAE_DATA")
    out = tmp_path_factory.mktemp("anomaly")
    assert main(["experiment", "anomaly", "--quick", "--out", str(out),
                 "--data-dir", str(data_dir)]) == 0
    return json.loads((out / "results.json").read_text()), out


# ---- the metrics, written by hand, against their definitions ----------------------------

def test_auroc_is_the_pairwise_count_with_ties_counted_half():
    rng = np.random.default_rng(0)
    for _ in range(20):
        s = rng.integers(0, 6, size=40).astype(float)       # many ties
        y = rng.random(40) < 0.3
        y[:2] = [True, False]
        pos, neg = s[y], s[~y]
        brute = np.mean([(a > b) + 0.5 * (a == b) for a, b in itertools.product(pos, neg)])
        assert anomaly.auroc(s, y) == pytest.approx(brute, abs=1e-12)
        fpr, tpr = anomaly.roc_curve(s, y)                  # its area is the same number
        assert np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2) == pytest.approx(brute)


def test_auprc_is_the_mean_precision_at_each_anomaly():
    rng = np.random.default_rng(1)
    for _ in range(20):
        s = rng.normal(size=50)                             # no ties
        y = rng.random(50) < 0.2
        y[:2] = [True, False]
        brute = np.mean([np.sum(y & (s >= t)) / np.sum(s >= t) for t in s[y]])
        assert anomaly.auprc(s, y) == pytest.approx(brute, abs=1e-12)
    assert anomaly.auprc([3.0, 2.0, 1.0, 0.0], [1, 1, 0, 0]) == 1.0
    assert anomaly.auprc([0.0, 1.0, 2.0, 3.0], [1, 0, 0, 0]) == pytest.approx(0.25)


def test_metrics_refuse_one_class_only():
    with pytest.raises(ValueError, match="both"):
        anomaly.auroc([0.1, 0.2], [1, 1])


# ---- the VAE scores against the library's importance weights -----------------------------

def test_vae_scores_agree_with_the_models_log_weights():
    rng = np.random.default_rng(2)
    x = (rng.random((30, 12)) < 0.4).astype(np.float64)
    model = sv.VAE(12, (8,), 3, dtype="float64", seed=3)
    k = 25
    model.reseed(7)
    scores = anomaly.vae_scores(model, x, k=k, batch_size=30, chunk=10)
    model.reseed(7)                                         # the same draws again
    log_w = model.log_weights(x, n_samples=k)                # (K, N)
    m = log_w.max(axis=0)
    log_px = m + np.log(np.exp(log_w - m).sum(axis=0)) - math.log(k)
    np.testing.assert_allclose(scores["neg_log_px"], -log_px, rtol=1e-12)
    mu, logvar = model.encode(x)
    kl = 0.5 * np.sum(np.exp(logvar) + mu ** 2 - 1 - logvar, axis=1)
    np.testing.assert_allclose(scores["neg_elbo"] - scores["recon_prob"], kl, rtol=1e-10)
    # the bound holds draw for draw: log of a mean >= mean of logs (Jensen)
    assert np.all(-scores["neg_log_px"] >= log_w.mean(axis=0) - 1e-9)


def test_pca_error_with_fewer_components_is_the_smaller_pca():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(200, 30)) @ rng.normal(size=(30, 30))
    big = anomaly.PCA(x, 20)
    small = anomaly.PCA(x, 2)
    np.testing.assert_allclose(anomaly.pca_error(big, x, 2),
                               anomaly.squared_error(x, small.reconstruct(x)), rtol=1e-8)
    assert np.all(anomaly.pca_error(big, x, 20) < anomaly.pca_error(big, x, 2))


# ---- the quick run ----------------------------------------------------------------------

def test_results_record_the_setup_and_the_budget(quick):
    results, out = quick
    assert results["experiment"] == "anomaly" and results["quick"] is True
    budget = results["setup"]["training_budget"]
    assert budget["epochs"] == anomaly.QUICK["epochs"] and budget["batch_size"] == 128
    assert len(budget["models"]) == 2 * 2 * 2 + 2 * 2 * 2      # held-out and OOD, VAE and AE
    assert results["setup"]["k_importance_samples"] == anomaly.QUICK["k"]
    for name in results["figures"]:
        assert (out / name).stat().st_size > 10_000
    assert set(results["numbers"]) >= {"held_out", "held_out_mean_auroc",
                                       "held_out_worse_than_chance", "ood", "published"}


def test_held_out_counts_match_the_data(quick, data_dir):
    results, _ = quick
    ds = sv.datasets.load("mnist", data_dir)
    n, n_test = anomaly.QUICK["n_train"], anomaly.QUICK["n_test"]
    for digit in anomaly.QUICK["digits"]:
        entry = results["numbers"]["held_out"][str(digit)]
        assert entry["n_train"] == int(np.sum(ds.y_train[:n] != digit))
        assert entry["anomaly_fraction"] == pytest.approx(np.mean(ds.y_test[:n_test] == digit),
                                                          abs=1e-4)


def test_held_out_digit_1_is_the_likelihood_failure_and_0_is_not(quick):
    numbers = quick[0]["numbers"]
    one, zero = numbers["held_out"]["1"], numbers["held_out"]["0"]
    assert one["ink_auroc"] < 0.2                  # a held-out 1 has less ink than most digits
    for d in anomaly.LATENT_DIMS:
        key = f"latent_{d}"
        assert one[key]["auroc"]["neg_log_px"] < 0.3
        assert one[key]["mean_neg_log_px"]["anomaly"] < one[key]["mean_neg_log_px"]["normal"]
        assert one[key]["corr_neg_log_px_ink"] > 0.5
        assert zero[key]["auroc"]["neg_log_px"] > 0.7
        assert zero[key]["auprc"]["neg_log_px"] > 2 * zero["anomaly_fraction"]
        assert 1 in numbers["held_out_worse_than_chance"][key]["neg_log_px"]
        assert 0 not in numbers["held_out_worse_than_chance"][key]["neg_log_px"]
        for score in anomaly.SCORES:
            mean = numbers["held_out_mean_auroc"][key][score]
            assert mean == pytest.approx((one[key]["auroc"][score]
                                          + zero[key]["auroc"][score]) / 2, abs=1e-4)


def test_out_of_distribution_both_directions(quick):
    ood = quick[0]["numbers"]["ood"]
    for d in anomaly.LATENT_DIMS:
        mnist_model = ood["mnist->fashion-mnist"][f"latent_{d}"]
        assert min(mnist_model["auroc"].values()) > 0.9
        assert mnist_model["mean_neg_log_px"]["fashion-mnist"] > \
            mnist_model["mean_neg_log_px"]["mnist"] + 50
        fashion_model = ood["fashion-mnist->mnist"][f"latent_{d}"]
        assert fashion_model["auroc"]["neg_log_px"] < 0.5   # it prefers the foreign digits
        assert fashion_model["foreign_preferred"] > 0.5


@pytest.mark.parametrize("args, word", [
    (["--digit", "12"], "--digit must be an integer 0-9"),
    (["--digit", "-1"], "--digit must be an integer 0-9"),
])
def test_bad_options_exit_2_with_one_line(args, word, tmp_path, capsys):
    assert main(["experiment", "anomaly", "--quick", "--out", str(tmp_path), *args]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert word in err and "Traceback" not in err
