"""The features experiment: linear probes on PCA, AE and VAE codes of MNIST.

The quick mode runs once through the command line; its numbers must show what a working
pipeline shows (the pixel baseline near the known accuracy of a linear classifier, larger
codes classifying better, the VAE's means kept near the prior's scale). The hand-written
classifier is checked on its own: the loss against a direct evaluation, the gradient
against finite differences, and a separable problem it must solve.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from scratchvae import classifier
from scratchvae.cli import main
from scratchvae.experiments import common
from scratchvae.gradcheck import numerical_gradient, rel_error


@pytest.fixture(scope="module")
def quick(tmp_path_factory, data_dir):
    """The quick run: ``(results, out folder)``."""
    out = tmp_path_factory.mktemp("features-quick")
    assert main(["experiment", "features", "--quick", "--out", str(out),
                 "--data-dir", str(data_dir)]) == 0
    return json.loads((out / "results.json").read_text()), out


def test_results_record_the_setup_and_every_number(quick):
    results, out = quick
    assert results["experiment"] == "features" and results["quick"] is True
    sizes = [str(d) for d in results["setup"]["code_sizes"]]
    assert sizes == ["2", "10"]
    budgets = results["setup"]["budgets"]
    assert set(budgets) == {f"{kind}_d{d}" for kind in ("ae", "vae") for d in sizes}
    for budget in budgets.values():
        assert budget["epochs"] == 3 and budget["batch_size"] == 128
        assert budget["train_seconds"] > 0
    numbers = results["numbers"]
    for table in ("test_accuracy", "train_accuracy"):
        for labels in ("all", "few"):
            row = numbers[table][labels]
            assert set(row) == {"pca", "ae", "vae", "pixels"}
            for method in ("pca", "ae", "vae"):
                assert set(row[method]) == set(sizes)
    labels = results["setup"]["labels"]
    assert (labels["all"], labels["few"]) == (5000, 100)
    assert set(results["figures"]) == {"embeddings_2d.png", "accuracy.png"}
    for name in results["figures"]:
        assert (out / name).stat().st_size > 10_000


def test_accuracies_are_those_of_working_features(quick):
    acc = quick[0]["numbers"]["test_accuracy"]
    # a linear classifier on 5000 MNIST images reaches about 0.87-0.90; a broken one, 0.1
    assert 0.82 < acc["all"]["pixels"] < 0.95
    assert acc["few"]["pixels"] < acc["all"]["pixels"] - 0.1  # 100 labels are not 5000
    for method in ("pca", "ae", "vae"):
        assert acc["all"][method]["2"] > 0.25          # chance is 0.1
        # ten dimensions keep more of the digit than two
        assert acc["all"][method]["10"] > acc["all"][method]["2"] + 0.15


def test_vae_means_stay_near_the_prior_scale(quick):
    """The KL term keeps Var(mu) + E[sigma^2] near 1 per dimension: the 2-D means lie
    within about sqrt(2) of their centre; PCA's coordinates spread further."""
    radius = quick[0]["numbers"]["embedding_2d_rms_radius"]
    assert radius["vae"] < 2.0
    assert radius["pca"] > radius["vae"]
    units = quick[0]["numbers"]["vae_active_units"]
    assert 1 <= units["2"] <= 2 and 1 <= units["10"] <= 10


def test_cross_entropy_matches_its_definition_and_stays_finite():
    rng = np.random.default_rng(0)
    logits, y = rng.normal(size=(6, 4)) * 3, np.array([0, 3, 1, 1, 2, 0])
    loss, _ = classifier.softmax_cross_entropy_forward(logits, y)
    direct = np.mean([-np.log(np.exp(a[c]) / np.exp(a).sum())
                      for a, c in zip(logits, y, strict=True)])
    assert loss == pytest.approx(direct, rel=1e-12)
    big, _ = classifier.softmax_cross_entropy_forward(logits + 1000.0, y)  # exp(1000) overflows
    assert big == pytest.approx(loss, rel=1e-10)


def test_cross_entropy_gradient_matches_finite_differences():
    rng = np.random.default_rng(1)
    logits, y = rng.normal(size=(5, 3)), np.array([2, 0, 1, 1, 0])
    _, cache = classifier.softmax_cross_entropy_forward(logits, y)
    analytic = classifier.softmax_cross_entropy_backward(cache)
    numeric = numerical_gradient(lambda: classifier.softmax_cross_entropy_forward(logits, y)[0],
                                 logits)
    assert rel_error(analytic, numeric) < 1e-8


def test_classifier_separates_separable_classes():
    rng = np.random.default_rng(2)
    centres = np.array([[4.0, 0.0], [-4.0, 0.0], [0.0, 4.0]])
    y = rng.integers(0, 3, size=300)
    h = centres[y] + rng.normal(size=(300, 2)) * 0.5
    clf = classifier.SoftmaxRegression(2, 3, seed=0)
    before = np.mean(clf.predict(h) == y)
    loss = clf.fit(h, y, steps=300, batch_size=32, lr=0.05, weight_decay=0.0)
    assert np.mean(clf.predict(h) == y) == 1.0 and before < 0.9
    assert loss < 0.05


def test_few_labels_are_balanced_and_distinct():
    y = np.repeat(np.arange(10), 30)
    idx = common.few_labels(y, 7, seed=0)
    assert len(set(idx.tolist())) == 70
    assert np.array_equal(np.bincount(y[idx]), np.full(10, 7))
    assert not np.array_equal(idx, common.few_labels(y, 7, seed=1))


def test_standardize_uses_the_training_statistics():
    h_train = np.array([[1.0, 5.0], [3.0, 5.0], [5.0, 5.0]])
    a, b = classifier.standardize(h_train, np.array([[3.0, 6.0]]))
    assert np.allclose(a[:, 0].mean(), 0) and np.allclose(a[:, 0].std(), 1)
    assert np.allclose(a[:, 1], 0) and np.allclose(b, [[0.0, 1.0]])  # constant: centred only
