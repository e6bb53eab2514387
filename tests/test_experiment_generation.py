"""``scratchvae experiment generation``: the quick run end to end, its numbers, its pieces.

The quick run (about half a minute) is made once for the module through the command line;
the tests check what it wrote, and that the numbers tell apart what a broken experiment
would not: the VAE's prior samples closer to the data than the AE's random codes, linear
paths cutting inside the sphere where spherical ones keep the norm, a used latent dimension
changing the image more than an unused one. The pieces (Fréchet distance, nearest
neighbours, slerp, path statistics) are checked against brute-force or library versions.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from scratchvae.cli import main
from scratchvae.experiments import generation as g
from scratchvae.train import TrainConfig

SETS = ("test_images", "vae_prior", "vae_posterior", "ae_prior", "ae_fitted_gaussian")
PATHS = ("vae_linear", "vae_spherical", "ae_linear", "ae_spherical")


@pytest.fixture(scope="module")
def quick(tmp_path_factory, data_dir):
    if not (data_dir / "fashion-mnist").is_dir():
        pytest.skip(f"Fashion-MNIST not found under {data_dir}; set SCRATCHVAE_DATA")
    out = tmp_path_factory.mktemp("generation")
    assert main(["experiment", "generation", "--quick", "--out", str(out),
                 "--data-dir", str(data_dir)]) == 0
    return out, json.loads((out / "results.json").read_text())


def test_quick_run_writes_results_and_figures(quick):
    out, results = quick
    assert results["experiment"] == "generation" and results["quick"] is True
    assert set(results["numbers"]) == set(g.DATASETS)
    for name in g.DATASETS:
        numbers, setup = results["numbers"][name], results["setup"][name]
        assert set(numbers["samples"]) == set(SETS)
        assert set(numbers["interpolation"]) == set(PATHS)
        for model in ("vae", "ae"):
            budget = setup["budget"][model]
            assert budget["epochs"] == g.QUICK.epochs and budget["batch_size"] == g.BATCH_SIZE
            assert budget["train_seconds"] > 0
        assert setup["n_train"] == g.QUICK.n_train
    assert len(results["figures"]) == 4 * len(g.DATASETS)
    for figure in results["figures"]:
        assert (out / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_prior_matters(quick):
    _, results = quick
    for name in g.DATASETS:
        samples = results["numbers"][name]["samples"]
        latent = results["numbers"][name]["latent"]
        # held-out real images are the closest to the training images
        assert samples["test_images"]["frechet_pca"] < samples["vae_prior"]["frechet_pca"]
        # the VAE's codes are near N(0, I); the AE's are nowhere near it
        assert (latent["vae_posterior_draws"]["frechet_to_prior"]
                < latent["ae_codes"]["frechet_to_prior"] / 5)
        # decoding N(0, I) is worse than decoding the AE's own fitted code density
        assert samples["ae_fitted_gaussian"]["frechet_pca"] < samples["ae_prior"]["frechet_pca"]
        assert samples["test_images"]["label_tv"] < samples["ae_prior"]["label_tv"]
    mnist = results["numbers"]["mnist"]["samples"]
    assert mnist["vae_prior"]["frechet_pca"] < mnist["ae_prior"]["frechet_pca"] / 2


def test_interpolations_and_traversals(quick):
    _, results = quick
    for name in g.DATASETS:
        paths = results["numbers"][name]["interpolation"]
        assert paths["vae_linear"]["midpoint_norm_ratio"] < 0.9
        assert abs(paths["vae_spherical"]["midpoint_norm_ratio"] - 1) < 0.1
        for key in PATHS:
            assert paths[key]["path_ratio"] >= 1
            assert 1 / (g.STEPS - 1) <= paths[key]["max_step_share"] <= 1
        vae = results["numbers"][name]["traversal"]["vae"]
        assert vae["kl"] == [*sorted(vae["kl"][:-1], reverse=True), min(vae["kl"])]
        assert vae["pixel_change"][0] > 2 * vae["pixel_change"][-1]
        assert 0 <= vae["active_units"] <= g.LATENT_DIM


def test_from_a_run_of_another_data_set_exits_2(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.npz").write_bytes(b"")
    (run / "config.json").write_text(json.dumps(TrainConfig(dataset="frey").to_json()))
    assert main(["experiment", "generation", "--quick", "--out", str(tmp_path / "out"),
                 "--from", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--from" in err and "frey" in err


# ---- the pieces ------------------------------------------------------------------------

def test_frechet_distance_matches_scipy_matrix_square_root():
    from scipy.linalg import sqrtm

    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((2, 6, 6))
    c1, c2 = a @ a.T + 0.1 * np.eye(6), b @ b.T + 0.1 * np.eye(6)
    m1, m2 = rng.standard_normal((2, 6))
    expected = np.sum((m1 - m2) ** 2) + np.trace(c1 + c2 - 2 * np.real(sqrtm(c1 @ c2)))
    assert g.frechet_distance(m1, c1, m2, c2) == pytest.approx(expected, rel=1e-9)
    assert g.frechet_distance(m1, c1, m1, c1) == pytest.approx(0, abs=1e-9)
    # one dimension: (m1 - m2)^2 + (s1 - s2)^2
    assert g.frechet_distance([1.0], [[4.0]], [3.0], [[9.0]]) == pytest.approx(4 + 1)


def test_nearest_matches_brute_force():
    rng = np.random.default_rng(1)
    queries, reference = rng.random((7, 5)), rng.random((30, 5))
    dist, index = g.nearest(queries, reference, block=3)
    full = np.linalg.norm(queries[:, None] - reference[None], axis=2)
    np.testing.assert_array_equal(index, full.argmin(axis=1))
    np.testing.assert_allclose(dist, full.min(axis=1), rtol=1e-5)


def test_slerp_keeps_the_norm_and_turns_at_a_constant_rate():
    rng = np.random.default_rng(2)
    z0, z1 = rng.standard_normal((2, 4, 20))
    z1 *= (np.linalg.norm(z0, axis=1) / np.linalg.norm(z1, axis=1))[:, None]
    t = np.linspace(0, 1, 5)
    path = g.slerp(z0, z1, t)
    np.testing.assert_allclose(path[0], z0, atol=1e-12)
    np.testing.assert_allclose(path[-1], z1, atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(path, axis=2),
                               np.broadcast_to(np.linalg.norm(z0, axis=1), (5, 4)), rtol=1e-12)
    cos = np.sum(path * z0, axis=2) / np.linalg.norm(path, axis=2) / np.linalg.norm(z0, axis=1)
    angle = np.arccos(np.clip(cos, -1, 1))
    np.testing.assert_allclose(angle, t[:, None] * angle[-1][None, :], atol=1e-7)  # arccos
    # the straight line is shorter half-way, by cos(omega / 2)
    np.testing.assert_allclose(np.linalg.norm(g.lerp(z0, z1, t)[2], axis=1),
                               np.linalg.norm(z0, axis=1) * np.cos(angle[-1] / 2), rtol=1e-12)
    # (anti)parallel pairs fall back to the straight line
    np.testing.assert_allclose(g.slerp(z0, 2 * z0, t), g.lerp(z0, 2 * z0, t), atol=1e-12)


def test_path_stats_of_an_even_path_and_of_a_jump():
    x0, x1 = np.zeros(4), np.ones(4)
    even = g.lerp(x0[None], x1[None], np.linspace(0, 1, 5))
    assert g.path_stats(even) == pytest.approx({"path_ratio": 1.0, "max_step_share": 0.25})
    jump = np.stack([x0, x0, x0, x0, x1])[:, None]
    assert g.path_stats(jump) == pytest.approx({"path_ratio": 1.0, "max_step_share": 1.0})
    detour = np.stack([x0, 2 * x1, x1])[:, None]   # out past the end and back
    assert g.path_stats(detour)["path_ratio"] == pytest.approx(3.0)


def test_total_variation():
    assert g.total_variation([0.5, 0.5, 0], [0, 0.5, 0.5]) == pytest.approx(0.5)
    assert g.total_variation([1, 0], [1, 0]) == 0
