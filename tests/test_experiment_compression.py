"""`scratchvae experiment compression`: the rate–distortion points and the codecs.

The quick mode runs once (through the command line); its numbers must show what the
experiment claims: a higher beta buys a lower rate with a higher distortion, the codecs'
bytes are real bytes that decode back, the VAE's codec beats PCA's at a few bytes per
image, and headers make a small image's own JPEG or WebP file far larger than its share of
a mosaic. The coding functions are checked against brute-force counts.
"""

import itertools
import json
import math
import zlib
from collections import Counter

import numpy as np
import pytest

from scratchvae.cli import main
from scratchvae.experiments import Experiment, ExperimentError
from scratchvae.experiments import compression as c


@pytest.fixture(scope="module")
def quick(tmp_path_factory, data_dir):
    out = tmp_path_factory.mktemp("compression")
    assert main(["experiment", "compression", "--quick", "--out", str(out),
                 "--data-dir", str(data_dir)]) == 0
    return out, json.loads((out / "results.json").read_text())


def _rd(results, d, beta):
    (row,) = [r for r in results["numbers"]["rate_distortion"]
              if r["latent_dim"] == d and r["beta"] == beta]
    return row


def test_results_json_records_the_run(quick):
    out, results = quick
    assert results["experiment"] == "compression" and results["quick"] is True
    assert {"command", "code_version", "seed", "wall_seconds", "setup", "numbers",
            "figures"} <= set(results)
    assert set(results["numbers"]) == {"rate_distortion", "codec_vae", "codec_pca",
                                       "codec_image", "reference", "best_psnr_at_budget"}
    setup = results["setup"]
    assert [tuple(m) for m in setup["models"]] == [tuple(m) for m in c.QUICK.models]
    for name, budget in setup["training"].items():  # every model states its budget
        assert budget["epochs"] == c.QUICK.epochs and budget["batch_size"] == 64, name
        assert budget["train_seconds"] > 0
    assert sorted(results["figures"]) == ["codecs.png", "rate_distortion.png",
                                          "reconstructions.png"]
    for name in results["figures"]:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_beta_trades_rate_for_distortion(quick):
    _, results = quick
    rows = [_rd(results, 10, b) for b in (0.1, 1.0, 10.0)]
    rates = [r["rate_bits"] for r in rows]
    distortions = [r["distortion_nats"] for r in rows]
    assert rates[0] > rates[1] > rates[2] > 0
    assert distortions[0] < distortions[1] < distortions[2]
    assert rows[0]["psnr_mean_db"] > rows[2]["psnr_mean_db"] + 1
    for r in results["numbers"]["rate_distortion"]:
        assert r["rate_bits"] == pytest.approx(r["kl_nats"] / math.log(2), abs=2e-4)
        assert r["neg_elbo_nats"] == pytest.approx(r["distortion_nats"] + r["kl_nats"],
                                                   abs=2e-4)
        assert 0 <= r["active_units"] <= r["latent_dim"]


def test_every_vae_reconstructs_better_than_the_mean_image(quick):
    _, results = quick
    floor = results["numbers"]["reference"]["mean_image_psnr_db"]
    for r in results["numbers"]["rate_distortion"]:
        assert r["psnr_mean_db"] > floor + 1, r


def test_fine_quantization_costs_almost_nothing_in_psnr(quick):
    """The codec at its finest step decodes what the unquantized means decode."""
    _, results = quick
    for r in results["numbers"]["rate_distortion"]:
        finest = [v for v in results["numbers"]["codec_vae"]
                  if v["model"] == f"vae-d{r['latent_dim']}-beta{r['beta']:g}"
                  and v["step"] == min(c.QUICK.steps)]
        assert len(finest) == 1
        assert finest[0]["psnr_db"] == pytest.approx(r["psnr_mean_db"], abs=0.3)


def test_coarser_steps_cost_fewer_bytes(quick):
    _, results = quick
    for name in {v["model"] for v in results["numbers"]["codec_vae"]}:
        rows = sorted((v for v in results["numbers"]["codec_vae"] if v["model"] == name),
                      key=lambda v: v["step"])
        for key in ("bytes_fixed", "bytes_entropy"):
            sizes = [v[key] for v in rows]
            assert sizes == sorted(sizes, reverse=True) and sizes[0] > sizes[-1], (name, key)


def test_the_vae_codec_beats_pca_at_a_few_bytes(quick):
    _, results = quick
    best = results["numbers"]["best_psnr_at_budget"]
    assert best["VAE + zlib"]["16"] > best["PCA + zlib"]["16"] + 0.5


def test_headers_dominate_small_image_files(quick):
    _, results = quick
    rows = results["numbers"]["codec_image"]
    for fmt, q in itertools.product(("JPEG", "WEBP"), c.QUICK.qualities):
        (file,) = [r for r in rows if (r["format"], r["packing"], r["quality"]) == (fmt, "file", q)]
        (mosaic,) = [r for r in rows
                     if (r["format"], r["packing"], r["quality"]) == (fmt, "mosaic", q)]
        assert file["bytes"] > mosaic["bytes"] + 40
    for fmt, packing in itertools.product(("JPEG", "WEBP"), ("file", "mosaic")):
        line = sorted((r for r in rows if (r["format"], r["packing"]) == (fmt, packing)),
                      key=lambda r: r["quality"])
        assert [r["bytes"] for r in line] == sorted(r["bytes"] for r in line)
        assert line[-1]["psnr_db"] > line[0]["psnr_db"] + 5


# ---- the coding functions, against brute force ---------------------------------------------

def test_psnr_of_a_known_error():
    x = np.zeros((2, 4))
    x_hat = np.array([[0.1] * 4, [0.0, 0.0, 0.0, 0.2]])  # MSE 0.01 and 0.01
    np.testing.assert_allclose(c.psnr(x, x_hat), [20.0, 20.0])
    assert c.psnr(x, x)[0] == 100.0


def test_quantize_rounds_to_the_nearest_level():
    np.testing.assert_array_equal(c.quantize([[0.24, -0.26, 0.76]], 0.5), [[0, -1, 2]])


def test_fixed_length_code_against_a_count():
    rng = np.random.default_rng(3)
    train = np.stack([rng.integers(-3, 5, 200), rng.integers(0, 1, 200),
                      rng.integers(-40, 40, 200)], axis=1)
    test = np.stack([rng.integers(-5, 7, 30), np.zeros(30, int), rng.integers(-40, 40, 30)],
                    axis=1)
    code = c.LatentCode(train)
    # bits per dimension: the fewest b with 2**b >= levels seen in training
    for j in range(3):
        levels = train[:, j].max() - train[:, j].min() + 1
        assert code.bits[j] == next(b for b in itertools.count() if 2 ** b >= levels)
    data = code.fixed_length(test)
    assert len(data) == math.ceil(30 * code.bits.sum() / 8)
    clipped = np.clip(test, train.min(axis=0), train.max(axis=0))
    np.testing.assert_array_equal(code.from_fixed_length(data, 30), clipped)
    np.testing.assert_array_equal(code.from_zlib(code.zlib(test), 30), clipped)
    assert zlib.decompress(code.zlib(test)) == (clipped - train.min(axis=0)).astype(
        np.uint8).tobytes()


def test_entropy_code_length_is_the_empirical_entropy():
    """Designed on many symbols and measured on the same ones, the ideal code length per
    message is the sum over dimensions of the empirical entropies."""
    rng = np.random.default_rng(4)
    s = np.stack([rng.choice(4, 100_000, p=[0.5, 0.25, 0.125, 0.125]),
                  rng.integers(0, 8, 100_000)], axis=1)
    entropy = sum(-sum(n / len(s) * math.log2(n / len(s)) for n in Counter(s[:, j]).values())
                  for j in range(2))
    assert c.LatentCode(s).entropy_bits(s).mean() == pytest.approx(entropy, rel=1e-4)
    assert entropy == pytest.approx(1.75 + 3, abs=0.02)


def test_best_at_budget_and_frontier():
    points = [(5, 10.0), (3, 12.0), (8, 11.0), (20, 15.0), (3, 9.0)]
    assert c.best_at_budget(points, 8) == 12.0
    assert c.best_at_budget(points, 2) is None
    assert c.frontier(points) == [(3, 12.0), (20, 15.0)]


def test_plan_with_beta_keeps_one_vae_per_latent_size(tmp_path):
    plan = c.plan_of(Experiment("compression", tmp_path, quick=True, options={"beta": 2.0}))
    assert plan.models == ((2, 2.0), (10, 2.0))


def test_from_loads_the_run_it_names(quick):
    out, _ = quick
    run = out / "models" / "vae-d2-beta1"
    model, budget = c._from_run(Experiment("compression", out, from_run=run))
    saved = json.loads((run / "config.json").read_text())
    assert model.latent_dim == 2 and budget["epochs"] == saved["epochs"]
    assert budget["train_seconds"] > 0


# ---- bad options -----------------------------------------------------------------------------

@pytest.mark.parametrize("args, word", [
    (["--beta", "0"], "--beta"),
    (["--beta", "-1"], "--beta"),
    (["--beta", "nan"], "--beta"),
])
def test_bad_options_exit_2_with_one_line(args, word, tmp_path, capsys):
    assert main(["experiment", "compression", "--quick", "--out", str(tmp_path), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and word in err, err


def test_from_a_run_on_another_data_set_exits_2(quick, tmp_path, capsys):
    out, _ = quick
    run = tmp_path / "run"
    run.mkdir()
    source = out / "models" / "vae-d2-beta1"
    (run / "checkpoint.npz").write_bytes((source / "checkpoint.npz").read_bytes())
    config = json.loads((source / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "dataset": "fashion-mnist"}))
    assert main(["experiment", "compression", "--quick", "--out", str(tmp_path / "o"),
                 "--from", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--from" in err and "fashion-mnist" in err, err


def test_experiment_error_is_a_value_error():
    with pytest.raises(ExperimentError, match="--beta"):
        c.plan_of(Experiment("compression", ".", options={"beta": float("inf")}))
