"""The collapse experiment: KL per unit, active units, ELBO and log p(x) of six VAEs.

The quick mode runs once through the command line and trains every variant (plain,
warm-up, free bits, beta 0.5, beta 2, the stronger decoder). Its numbers are checked
against what they claim to be: the active units against a recount from the trained
models' posterior means, the KL per unit against the ELBO's KL term, the importance-
weighted bound against the ELBO, the free-bits floor in the trained model's loss, and the
ordering a working beta must produce.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from scratchvae import checkpoint
from scratchvae.cli import main
from scratchvae.evaluate import elbo, latent_means
from scratchvae.experiments import collapse
from scratchvae.train import TrainConfig, build_model, load_data

NAMES = ["plain", "warmup", "free-bits", "beta-0.5", "beta-2", "stronger"]


@pytest.fixture(scope="module")
def quick(tmp_path_factory, data_dir):
    """The quick run: ``(results, out folder)``."""
    out = tmp_path_factory.mktemp("collapse-quick")
    assert main(["experiment", "collapse", "--quick", "--out", str(out),
                 "--data-dir", str(data_dir)]) == 0
    return json.loads((out / "results.json").read_text()), out


def _trained(out, name):
    """The quick run's model ``name``, its configuration and the binarized test images."""
    run_dir = out / "models" / name
    config = TrainConfig.from_json(json.loads((run_dir / "config.json").read_text()))
    model = build_model(config, 784)
    checkpoint.restore(run_dir / "checkpoint.npz", model)
    return model, config, load_data(config)[3]


def test_results_record_every_variant_and_its_budget(quick):
    results, out = quick
    assert results["experiment"] == "collapse" and results["quick"] is True
    setup, rows = results["setup"], results["numbers"]["variants"]
    assert list(rows) == NAMES and list(setup["budgets"]) == NAMES
    for budget in setup["budgets"].values():
        assert budget["epochs"] == 4 and budget["batch_size"] == 100
        assert budget["train_seconds"] > 0
    settings = setup["variants"]
    assert settings["warmup"]["warmup_epochs"] == 2 and settings["plain"]["warmup_epochs"] == 0
    assert settings["free-bits"]["free_bits"] == collapse.FREE_BITS
    assert (settings["beta-0.5"]["beta"], settings["beta-2"]["beta"]) == (0.5, 2.0)
    assert settings["stronger"]["decoder_hidden_dims"] == [400, 400]
    assert settings["stronger"]["hidden_dims"] == settings["plain"]["hidden_dims"] == [200]
    assert "decoder_hidden_dims" not in settings["plain"]
    for r in rows.values():
        assert len(r["kl_per_dim"]) == 50 and len(r["posterior_mean_variance"]) == 50
    assert set(results["figures"]) == {"kl_per_unit.png", "unit_activity.png"}
    for name in results["figures"]:
        assert (out / name).stat().st_size > 10_000


def test_the_configurations_differ_only_in_their_remedy(quick):
    """Each variant is the plain run with one field changed: seed, data, architecture and
    budget are shared, so differences come from the objective."""
    out = quick[1]
    plain = json.loads((out / "models" / "plain" / "config.json").read_text())
    changed = {"warmup": {"warmup_epochs"}, "free-bits": {"free_bits"}, "beta-0.5": {"beta"},
               "beta-2": {"beta"}, "stronger": {"decoder_hidden_dims"}}
    for name, fields in changed.items():
        cfg = json.loads((out / "models" / name / "config.json").read_text())
        assert {k for k in cfg.keys() | plain.keys() if cfg.get(k) != plain.get(k)} == fields, \
            name
    assert plain["binarize"] == "dynamic" and plain["latent_dim"] == 50


@pytest.mark.parametrize("name", ["plain", "beta-2", "stronger"])
def test_active_units_match_a_recount_from_the_posterior_means(quick, name):
    results, out = quick
    row = results["numbers"]["variants"][name]
    model, _, x_test = _trained(out, name)
    mu = latent_means(model, x_test).astype(np.float64)
    variance = ((mu - mu.mean(axis=0)) ** 2).mean(axis=0)
    assert row["active_units"] == int(np.sum(variance > 0.01))
    assert np.allclose(row["posterior_mean_variance"], variance, rtol=1e-3, atol=1e-7)


@pytest.mark.parametrize("name", ["plain", "free-bits", "beta-0.5"])
def test_kl_per_unit_is_the_mean_of_the_closed_form_and_sums_to_the_elbo_kl(quick, name):
    results, out = quick
    row = results["numbers"]["variants"][name]
    model, _, x_test = _trained(out, name)
    mu, logvar = (np.asarray(a, dtype=np.float64) for a in model.encode(model.asarray(x_test)))
    direct = 0.5 * (np.exp(logvar) + mu ** 2 - 1 - logvar).mean(axis=0)
    assert np.allclose(row["kl_per_dim"], direct, rtol=1e-4, atol=1e-5)
    assert sum(row["kl_per_dim"]) == pytest.approx(row["test_kl"], abs=0.01)
    assert elbo(model, x_test)["kl"] == pytest.approx(row["test_kl"], rel=1e-4)


def test_the_importance_weighted_bound_is_tighter_than_the_elbo(quick):
    """E[log (1/K) sum w_k] >= ELBO: with K = 100 the gap is several nats on binarized
    MNIST; a log-likelihood that dropped the log-sum-exp or the prior would break it."""
    for name, r in quick[0]["numbers"]["variants"].items():
        assert r["test_neg_elbo"] == pytest.approx(r["test_recon"] + r["test_kl"], abs=0.01)
        gap = r["test_neg_elbo"] - r["test_nll"]
        assert 1.0 < gap < 40.0, (name, gap)
        assert 60.0 < r["test_nll"] < 300.0, name      # 784 fair coins: 543 nats


def test_a_heavier_kl_weight_carries_less_information(quick):
    rows = quick[0]["numbers"]["variants"]
    assert rows["beta-2"]["test_kl"] < rows["plain"]["test_kl"] < rows["beta-0.5"]["test_kl"]
    assert rows["beta-2"]["active_units"] <= rows["beta-0.5"]["active_units"]
    # less information about x in z: a worse reconstruction
    assert rows["beta-2"]["test_recon"] > rows["plain"]["test_recon"] > \
        rows["beta-0.5"]["test_recon"]


def test_free_bits_lifts_the_weakest_units(quick):
    """Below the floor a unit's KL costs nothing, so the encoder spends it: the least
    informative unit carries more than in the plain run."""
    rows = quick[0]["numbers"]["variants"]
    assert min(rows["free-bits"]["kl_per_dim"]) > 1.5 * min(rows["plain"]["kl_per_dim"])


def test_the_free_bits_model_pays_the_floor_in_its_loss(quick):
    """The trained free-bits model's loss is R + sum_j max(lambda, mean-KL_j), computed
    here by hand from its encoder: units below the floor are charged lambda, not their
    KL."""
    model, config, x_test = _trained(quick[1], "free-bits")
    assert model.free_bits == collapse.FREE_BITS == config.free_bits
    x = model.asarray(x_test[:200])
    eps = model.asarray(np.random.default_rng(0).standard_normal((200, 50)))
    res = model.loss(x, eps=eps)
    mu, logvar = (np.asarray(a, dtype=np.float64) for a in model.encode(x))
    kl_d = 0.5 * (np.exp(logvar) + mu ** 2 - 1 - logvar).mean(axis=0)
    floor = np.maximum(kl_d, collapse.FREE_BITS).sum()
    assert float(res.loss) == pytest.approx(float(res.recon) + floor, rel=1e-5)
    assert float(res.kl) == pytest.approx(kl_d.sum(), rel=1e-4)
    if np.any(kl_d < collapse.FREE_BITS):           # then the floor is charged
        assert float(res.loss) > float(res.recon) + kl_d.sum() + 1e-3


def test_table_lists_every_variant(quick):
    lines = collapse.collapse_table(quick[0])
    assert "K = 100" in lines[0]
    assert len(lines) == 2 + len(NAMES)
    assert lines[2].startswith("plain ELBO") and "/50" in lines[2]


def test_the_same_command_again_reuses_models_and_evaluations(quick, data_dir, capsys):
    results, out = quick
    capsys.readouterr()
    assert main(["experiment", "collapse", "--quick", "--out", str(out),
                 "--data-dir", str(data_dir)]) == 0
    log = capsys.readouterr().out
    assert "training" not in log and "evaluating" not in log, log
    again = json.loads((out / "results.json").read_text())
    assert again["numbers"] == results["numbers"]
