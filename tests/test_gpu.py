"""Every user path on CuPy, on a real GPU (``pytest -m gpu``; skipped without one).

Model construction on a device given as an index or a ``cupy.cuda.Device``; loss,
backward and every optimizer (the fused kernels against the plain formulas); the
training run with its checkpoint each epoch, bit-exact resume and the NaN guard;
evaluation; pictures; the command line; gradient checks in float64 on the GPU; the
autoencoder; free bits; dynamic binarization; the exercise checkers; checkpoints moving
between the CPU and the GPU; and the course notebooks that offer the GPU switch.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import scratchvae as sv
from scratchvae import checkpoint
from scratchvae.cli import main
from scratchvae.train import TrainConfig, TrainingError, build_model, train

pytestmark = pytest.mark.gpu
ROOT = Path(__file__).resolve().parents[1]
SMALL = dict(n_train=600, n_test=200, hidden_dims=(32,), latent_dim=4, batch_size=100)
CLI_SMALL = ["--n-train", "500", "--n-test", "200", "--hidden-dims", "32", "--latent-dim", "2",
             "--batch-size", "100", "--quiet"]


@pytest.fixture(autouse=True)
def gpu():
    """CuPy, or a skip that says why there is no GPU here."""
    cupy = pytest.importorskip("cupy", reason="CuPy is not installed (no GPU run)")
    try:
        sv.backend.get_namespace("cupy")
    except sv.backend.BackendUnavailableError as err:
        pytest.skip(str(err))
    return cupy


def read_metrics(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_devices_as_int_or_device_and_host_initial_weights(gpu):
    ref = sv.VAE(784, (64,), 8, seed=5)
    for dev in (None, 0, gpu.cuda.Device(0)):
        model = sv.VAE(784, (64,), 8, seed=5, backend="cupy", device=dev)
        assert model.device == gpu.cuda.Device(0)
        assert model.params.flat.device == model.device
        np.testing.assert_array_equal(sv.to_numpy(model.params.flat), ref.params.flat)
        x = model.asarray(np.random.default_rng(0).random((16, 784)))
        assert isinstance(x, gpu.ndarray) and x.device == model.device
        model.loss(x)  # accepted: the device compares equal whatever named it
        model.backward()
    with pytest.raises(ValueError, match=r"device 99 does not exist: CUDA sees \d+ GPU"):
        sv.VAE(8, backend="cupy", device=99)


@pytest.mark.parametrize(("opt_cls", "kw"), [(sv.optim.Adam, {"weight_decay": 1e-3}),
                                             (sv.optim.Adagrad, {"lr": 0.05}),
                                             (sv.optim.SGD, {"lr": 0.01, "momentum": 0.9})])
@pytest.mark.parametrize("estimator", ["A", "B"])
def test_steps_on_the_gpu_match_numpy(opt_cls, kw, estimator):
    """float64, fixed noise: loss, gradients and 5 optimizer steps (fused kernels on the
    GPU, plain array operations on the CPU) agree to rounding."""
    models = [sv.VAE(8, (16,), 2, likelihood="gaussian", sigma_dec="learned",
                     estimator=estimator, dtype="float64", seed=0, backend=b)
              for b in ("numpy", "cupy")]
    opts = [opt_cls(m.params, **kw) for m in models]
    rng = np.random.default_rng(1)
    for _ in range(5):
        X, E = rng.random((6, 8)), rng.standard_normal((2, 6, 2))
        losses = []
        for m, opt in zip(models, opts, strict=True):
            losses.append(float(m.loss(m.asarray(X), m.asarray(E)).loss))
            m.backward()
            opt.step(m.grads)
        assert losses[1] == pytest.approx(losses[0], rel=1e-12)
    np.testing.assert_allclose(sv.to_numpy(models[1].params.flat), models[0].params.flat,
                               rtol=1e-10, atol=1e-12)
    for key, value in opts[0].state.items():
        np.testing.assert_allclose(sv.to_numpy(opts[1].state[key]), value, rtol=1e-10,
                                   atol=1e-14)


def test_gradcheck_in_float64_on_the_gpu():
    for likelihood in ("bernoulli", "gaussian_per_pixel"):
        model = sv.VAE(12, (7,), 3, likelihood=likelihood, estimator="A", activation="tanh",
                       dtype="float64", backend="cupy")
        rng = np.random.default_rng(0)
        x = model.asarray(rng.random((5, 12)))
        eps = model.asarray(rng.standard_normal((2, 5, 3)))
        report = sv.gradcheck.check_model(model, x, eps)
        assert report.passed(1e-6), report


def test_autoencoder_and_free_bits_train_on_the_gpu():
    X = np.random.default_rng(0).random((64, 20))
    for model in (sv.AE(20, (16,), 3, backend="cupy"),
                  sv.VAE(20, (16,), 3, free_bits=0.5, backend="cupy")):
        opt = sv.optim.Adam(model.params, lr=1e-2)
        x = model.asarray(X)
        losses = []
        for _ in range(30):
            losses.append(float(model.loss(x).loss))
            model.backward()
            opt.step(model.grads)
        assert losses[-1] < losses[0]
        assert model.sample(4).device == model.device


@pytest.mark.usefixtures("data_dir")
def test_train_checkpoint_resume_evaluate_and_plot_on_the_gpu(tmp_path):
    """One epoch, then a second by resuming: bit-exact against two epochs at once on the
    same GPU; dynamic binarization on the device; evaluation and pictures."""
    from scratchvae.cli import _write_plots
    from scratchvae.evaluate import active_units, elbo, log_likelihood

    config = TrainConfig(epochs=2, binarize="dynamic", backend="cupy", **SMALL)
    train(config, tmp_path / "full", quiet=True)
    train(TrainConfig(**{**config.to_json(), "hidden_dims": (32,), "epochs": 1}),
          tmp_path / "part", quiet=True)
    train(config, tmp_path / "part", resume=True, quiet=True)
    a = checkpoint.read(tmp_path / "full" / "checkpoint.npz")
    b = checkpoint.read(tmp_path / "part" / "checkpoint.npz")
    assert a["written_on"] == {"backend": "cupy", "device": 0}
    np.testing.assert_array_equal(a["params"], b["params"])
    assert a["rng_state"] == b["rng_state"]

    model = build_model(config, 784)
    checkpoint.restore(tmp_path / "full" / "checkpoint.npz", model)
    x = np.random.default_rng(0).random((100, 784)).round()
    e = elbo(model, x)
    ll, se = log_likelihood(model, x, k=50)
    assert ll > -e["loss"] - 3 * se
    assert 0 <= active_units(model, x)[0] <= 4
    for path in _write_plots(tmp_path / "full"):
        assert path.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.usefixtures("data_dir")
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_nan_guard_on_the_gpu_names_epoch_and_step(tmp_path):
    config = TrainConfig(epochs=1, backend="cupy", **SMALL)
    train(config, tmp_path, quiet=True)
    before = checkpoint.read(tmp_path / "checkpoint.npz")["params"]
    bad = TrainConfig(**{**config.to_json(), "hidden_dims": (32,), "epochs": 2, "lr": 1e30})
    with pytest.raises(TrainingError, match=r"at epoch 2, step \d+;"):
        train(bad, tmp_path, resume=True, quiet=True)
    np.testing.assert_array_equal(checkpoint.read(tmp_path / "checkpoint.npz")["params"],
                                  before)


@pytest.mark.usefixtures("data_dir")
def test_checkpoints_move_between_cpu_and_gpu(tmp_path):
    """GPU -> CPU and CPU -> GPU: parameters and optimizer state exactly; the run goes on."""
    gpu_run, cpu_run = tmp_path / "gpu", tmp_path / "cpu"
    train(TrainConfig(epochs=1, backend="cupy", **SMALL), gpu_run, quiet=True)
    saved = checkpoint.read(gpu_run / "checkpoint.npz")
    cpu_model = build_model(TrainConfig(**SMALL), 784)
    opt = sv.optim.Adam(cpu_model.params)
    checkpoint.restore(gpu_run / "checkpoint.npz", cpu_model, opt)
    np.testing.assert_array_equal(cpu_model.params.flat, saved["params"])
    np.testing.assert_array_equal(opt.state["v_scaled"], saved["optimizer_state"]["v_scaled"])
    assert main(["train", "--resume", str(gpu_run), "--epochs", "2", "--backend", "numpy",
                 "--quiet", "--no-plots"]) == 0
    train(TrainConfig(epochs=1, **SMALL), cpu_run, quiet=True)
    assert main(["train", "--resume", str(cpu_run), "--epochs", "2", "--backend", "cupy",
                 "--quiet", "--no-plots"]) == 0
    assert checkpoint.read(cpu_run / "checkpoint.npz")["written_on"]["backend"] == "cupy"


@pytest.mark.usefixtures("data_dir")
def test_every_command_on_the_gpu(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--backend", "cupy", "--device", "0", "--epochs", "1",
                 "--out", str(run), *CLI_SMALL]) == 0
    assert (run / "manifold.png").is_file()
    assert main(["evaluate", str(run), "--k", "20", "--n-test", "50"]) == 0
    assert main(["evaluate", str(run), "--k", "20", "--n-test", "50",
                 "--backend", "numpy"]) == 0
    assert main(["sample", str(run), "--n", "16", "--out", str(tmp_path / "s.png")]) == 0
    assert main(["plot", str(run)]) == 0
    assert main(["gradcheck", "--backend", "cupy", "--likelihood", "gaussian_per_pixel"]) == 0
    assert "PASS" in capsys.readouterr().out


def test_exercise_checkers_on_the_gpu(capsys):
    from scratchvae import activations, kl, layers, likelihoods, reparam
    from scratchvae import exercises as ex

    assert ex.check_linear_forward(layers.linear_forward, backend="cupy")
    assert ex.check_linear_backward(layers.linear_backward, backend="cupy")
    assert ex.check_activation_backward(activations.tanh_backward, "tanh", backend="cupy")
    assert ex.check_kl_std_normal(kl.kl_std_normal_forward, kl.kl_std_normal_backward,
                                  backend="cupy")
    assert ex.check_reparameterize_backward(reparam.reparameterize_backward, backend="cupy")
    assert ex.check_bernoulli_logpmf_backward(
        likelihoods.bernoulli_logpmf_backward, backend="cupy")
    assert "FAIL" not in capsys.readouterr().out


@pytest.mark.parametrize("name", ["notebooks/03_build_vae_layer_by_layer.ipynb",
                                  "notebooks/05_gpu_one_line.ipynb"])
@pytest.mark.usefixtures("data_dir")
def test_notebooks_with_the_gpu_switch(name, monkeypatch, tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("SCRATCHVAE_QUICK", "1")
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.delenv("MPLBACKEND", raising=False)
    notebook = nbformat.read(ROOT / name, as_version=4)
    switch = [c for c in notebook.cells if c.cell_type == "code"
              and c.source.lstrip().startswith('BACKEND = "numpy"')]
    assert switch, f"{name} has no BACKEND switch"
    switch[0].source = switch[0].source.replace('BACKEND = "numpy"', 'BACKEND = "cupy"', 1)
    nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str((ROOT / name).parent)}}).execute()
    text = "".join(o.get("text", "") + o.get("data", {}).get("text/plain", "")
                   for c in notebook.cells for o in c.get("outputs", []))
    assert "FAIL" not in text and "uses 'numpy' instead" not in text
