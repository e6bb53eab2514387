"""The compare experiment (AE, VAE, GAN): its quick mode through the command line, the
Fréchet distance against closed forms, the classifier whose features it uses, options."""

from __future__ import annotations

import json

import numpy as np
import pytest

from scratchvae.cli import main
from scratchvae.experiments import compare
from scratchvae.experiments.generation import frechet_distance, moments


@pytest.fixture(scope="module")
def quick(tmp_path_factory, data_dir):
    """The quick run: ``(results, out folder)``."""
    out = tmp_path_factory.mktemp("compare-quick")
    assert main(["experiment", "compare", "--quick", "--out", str(out),
                 "--data-dir", str(data_dir)]) == 0
    return json.loads((out / "results.json").read_text()), out


def test_results_record_the_setup_and_every_number(quick):
    results, out = quick
    assert results["experiment"] == "compare" and results["quick"] is True
    budgets = results["setup"]["budgets"]
    assert set(budgets) == {"ae", "vae", "gan"}
    for budget in budgets.values():      # the same data, the same number of epochs
        assert budget["epochs"] == 3 and budget["batch_size"] == 128
        assert budget["train_seconds"] > 0
    numbers = results["numbers"]
    assert set(numbers["frechet_classifier_features"]) == set(compare.SETS)
    assert set(numbers["nearest_train_distance"]) == set(compare.SETS) - {"train_images"} \
        | {"test_images"}
    assert set(numbers["interpolation"]) == {"ae", "vae", "gan"}
    assert set(numbers["capabilities"]) == {"AE", "VAE", "GAN"}
    assert numbers["capabilities"]["GAN"]["encoder"].startswith("no")
    assert numbers["capabilities"]["AE"]["likelihood"].startswith("no")
    assert set(results["figures"]) == {"samples.png", "interpolations.png",
                                       "nearest_neighbours.png"}
    for name in results["figures"]:
        assert (out / name).stat().st_size > 10_000


def test_the_scores_rank_the_image_sets_as_they_must(quick):
    numbers = quick[0]["numbers"]
    fd = numbers["frechet_classifier_features"]
    assert numbers["classifier_test_accuracy"] > 0.8
    # real images are nearest to the test images; every generator is further
    assert all(fd["train_images"] < fd[k] / 3 for k in ("vae", "ae_fitted", "ae_prior", "gan"))
    # the AE's decoder fed with codes like its own beats one fed with N(0, I) codes
    assert fd["ae_fitted"] < fd["ae_prior"]
    near = numbers["nearest_train_distance"]
    assert near["ae_fitted"]["median"] < near["ae_prior"]["median"]
    for key in ("vae", "ae_fitted", "ae_prior", "gan"):
        assert near[key]["p05"] <= near[key]["median"]
    assert near["test_images"]["ratio_to_test"] == 1.0


def test_reconstruction_and_likelihood_are_those_of_working_models(quick, data_dir):
    from scratchvae import datasets

    numbers = quick[0]["numbers"]
    x = datasets.load("mnist", str(data_dir)).x_test[:1000].astype(np.float64)
    mean_image_error = float(np.mean(np.sum((x - x.mean(axis=0)) ** 2, axis=1)))
    for key in ("ae", "vae"):   # better than answering the mean image for every input
        assert 0 < numbers["test_reconstruction_sq_error"][key] < 0.9 * mean_image_error
    ll = numbers["vae_test_log_likelihood"]
    assert ll["elbo"] < ll["log_px"] < 0     # the importance-weighted bound is tighter
    assert (ll["k"], ll["n_images"]) == (50, 100)


def test_frechet_distance_matches_the_closed_form_of_diagonal_gaussians():
    r"""For diagonal covariances the matrices commute and
    :math:`d^2 = \lVert m_1 - m_2\rVert^2 + \sum_i (\sqrt{a_i} - \sqrt{b_i})^2`."""
    rng = np.random.default_rng(0)
    m1, m2 = rng.normal(size=6), rng.normal(size=6)
    a, b = rng.uniform(0.1, 3, 6), rng.uniform(0.1, 3, 6)
    closed = np.sum((m1 - m2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert frechet_distance(m1, np.diag(a), m2, np.diag(b)) == pytest.approx(closed, rel=1e-10)
    # the trace of sqrt(C1 C2) without the square root (tr C1 C2) is not the same number
    wrong = np.sum((m1 - m2) ** 2) + np.sum(a + b - 2 * a * b)
    assert abs(wrong - closed) > 0.1


def test_frechet_distance_of_rotated_gaussians_and_of_a_set_with_itself():
    """C2 = R C1 R^T (a rotation) shares C1's eigenvalues: with equal means the distance
    is tr(C1 + C2) - 2 tr((C1^1/2 C2 C1^1/2)^1/2), checked against SciPy's sqrtm; and
    a set compared with itself is at distance 0."""
    from scipy.linalg import sqrtm

    rng = np.random.default_rng(1)
    a = rng.normal(size=(4, 4))
    c1 = a @ a.T + 0.1 * np.eye(4)
    q, _ = np.linalg.qr(rng.normal(size=(4, 4)))
    c2 = q @ c1 @ q.T
    r = sqrtm(c1).real
    expected = np.trace(c1 + c2) - 2 * np.trace(sqrtm(r @ c2 @ r).real)
    assert frechet_distance(np.zeros(4), c1, np.zeros(4), c2) == pytest.approx(expected,
                                                                               rel=1e-8)
    assert expected > 0.1
    m, c = moments(rng.normal(size=(300, 5)))
    assert abs(frechet_distance(m, c, m, c)) < 1e-9


def test_the_classifier_learns_separable_classes_and_gives_128_features():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 10, size=600)
    centres = rng.uniform(0, 1, (10, 784))
    x = (centres[y] + 0.05 * rng.normal(size=(600, 784))).astype(np.float32)
    clf = compare.MNISTClassifier(seed=0)
    before = np.mean(clf.predict(x) == y)
    clf.fit(x, y, epochs=3)
    assert np.mean(clf.predict(x) == y) == 1.0 and before < 0.5
    feats = clf.features(x[:7])
    assert feats.shape == (7, 128) and feats.min() >= 0          # after a ReLU
