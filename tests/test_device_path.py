"""The GPU path, proven on the CPU.

Everything CuPy-specific lives in ``scratchvae/backend.py`` and ``scratchvae/rng.py``; the
rest of the package is array-API code. Here it runs on ``array_api_strict`` on its
non-default device ``device1``, which refuses implicit host copies and mixed devices as a
GPU does: the whole training run (data on the device once, checkpoints, resume, the NaN
guard, evaluation, pictures) and the portability of checkpoints between devices. The
CuPy lines that can run without a GPU (a missing CuPy, driver, GPU or CUDA library) run
here against stand-in ``cupy`` modules.
"""

from __future__ import annotations

import json
import sys
import types

import array_api_strict
import numpy as np
import pytest
from array_api_strict._array_object import Array as StrictArray

import scratchvae as sv
from scratchvae import backend, checkpoint
from scratchvae.cli import main
from scratchvae.train import TrainConfig, TrainingError, build_model, train

DEVICE1 = array_api_strict.Device("device1")
# one BLAS thread: reruns are bit-identical whatever the load (see scratchvae/threads.py)
SMALL = dict(n_train=600, n_test=200, hidden_dims=(32,), latent_dim=4, batch_size=100,
             threads=1)
STRICT = dict(backend="array_api_strict", device="device1")


def strip_times(metrics):
    return [{k: v for k, v in m.items() if k not in ("epoch_seconds", "examples_per_second")}
            for m in metrics]


def read_metrics(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def count_reads(monkeypatch) -> list:
    """Record every conversion of a device value to a Python number (a GPU sync)."""
    reads = []
    for name in ("__float__", "__bool__", "__int__"):
        original = getattr(StrictArray, name)

        def counted(self, _original=original, _name=name):
            reads.append(_name)
            return _original(self)

        monkeypatch.setattr(StrictArray, name, counted)
    return reads


# ---- devices -------------------------------------------------------------------------

def test_devices_are_normalized_or_refused_by_name():
    assert backend.normalize_device("numpy") == "cpu"
    assert backend.normalize_device("numpy", "cpu") == "cpu"
    assert backend.normalize_device("array_api_strict", "device1") == DEVICE1
    assert backend.normalize_device("array_api_strict", DEVICE1) is DEVICE1
    with pytest.raises(ValueError, match="device for backend 'numpy' must be None or 'cpu'"):
        backend.normalize_device("numpy", 0)
    with pytest.raises(ValueError, match="device for backend 'array_api_strict' must be one"):
        backend.normalize_device("array_api_strict", "gpu0")
    with pytest.raises(ValueError, match="device for backend 'numpy'"):
        sv.VAE(8, (4,), 2, device=1)


def test_a_model_built_on_a_device_starts_from_the_host_weights():
    """Initial weights are drawn on the host from the seed, then moved: the same seed
    gives bit-identical weights on every backend and device, and everything the model
    allocates or draws lands on its device."""
    ref = sv.VAE(8, (16,), 2, likelihood="gaussian", sigma_dec="learned", seed=3)
    dev = sv.VAE(8, (16,), 2, likelihood="gaussian", sigma_dec="learned", seed=3, **STRICT)
    assert dev.device == DEVICE1 and dev.params.flat.device == DEVICE1
    np.testing.assert_array_equal(sv.to_numpy(dev.params.flat), ref.params.flat)
    x = dev.asarray(np.random.default_rng(0).random((5, 8)))
    res = dev.loss(x)
    dev.backward()
    for out in (res.loss, res.z, dev.grads.flat, dev.sample(2), dev.rng.permutation(4)):
        assert out.device == DEVICE1
    opt = sv.optim.Adam(dev.params)
    opt.step(dev.grads)
    assert all(buf.device == DEVICE1 for buf in opt.state.values())


# ---- the generator's state -------------------------------------------------------------

def test_a_gpu_generator_state_restores_on_the_cpu():
    """CuPy's state is a seed (kind "seed"); restored on the CPU it seeds PCG64."""
    gen = sv.Generator(0)
    gen.set_state(json.dumps({"kind": "seed", "seed": 1234}))
    np.testing.assert_array_equal(gen.normal((4,), np.float64),
                                  np.random.default_rng(1234).standard_normal(4))


def test_a_format_1_state_and_a_bad_state():
    gen = sv.Generator(5)
    bare = json.dumps(np.random.default_rng(9).bit_generator.state)  # format 1 wrote this
    gen.set_state(bare)
    np.testing.assert_array_equal(gen.normal((3,), np.float64),
                                  np.random.default_rng(9).standard_normal(3))
    for bad in ("[1, 2]", '{"kind": "mt19937"}', "not json", '{"kind": "seed"}'):
        with pytest.raises(ValueError, match="not a generator state"):
            gen.set_state(bad)


# ---- a whole training run on a device ----------------------------------------------------

@pytest.mark.usefixtures("data_dir")
def test_training_on_a_device_equals_numpy_bit_for_bit(tmp_path):
    """float64, the same seed: NumPy and the device run give identical metrics and
    parameters after two epochs (the strict stand-in runs the same float64 operations),
    with dynamic binarization and a validation split moved to the device once."""
    common = dict(SMALL, dtype="float64", epochs=2, binarize="dynamic", n_validation=100)
    train(TrainConfig(**common), tmp_path / "np", quiet=True)
    train(TrainConfig(**common, **STRICT), tmp_path / "dev", quiet=True)
    assert strip_times(read_metrics(tmp_path / "np")) == \
        strip_times(read_metrics(tmp_path / "dev"))
    a = checkpoint.read(tmp_path / "np" / "checkpoint.npz")
    b = checkpoint.read(tmp_path / "dev" / "checkpoint.npz")
    np.testing.assert_array_equal(a["params"], b["params"])
    assert b["written_on"] == {"backend": "array_api_strict", "device": str(DEVICE1)}


@pytest.mark.usefixtures("data_dir")
def test_resume_on_a_device_is_bit_exact_and_portable(tmp_path):
    """1 + 2 epochs on the device equal 3 at once; a device checkpoint continues on the
    CPU and a CPU checkpoint on the device, with parameters and optimizer state carried
    exactly."""
    full, part = tmp_path / "full", tmp_path / "part"
    train(TrainConfig(epochs=3, **SMALL, **STRICT), full, quiet=True)
    train(TrainConfig(epochs=1, **SMALL, **STRICT), part, quiet=True)
    train(TrainConfig(epochs=3, **SMALL, **STRICT), part, resume=True, quiet=True)
    a, b = checkpoint.read(full / "checkpoint.npz"), checkpoint.read(part / "checkpoint.npz")
    np.testing.assert_array_equal(a["params"], b["params"])
    assert a["rng_state"] == b["rng_state"]
    assert strip_times(read_metrics(full)) == strip_times(read_metrics(part))

    cpu = build_model(TrainConfig(**SMALL), 784)  # device checkpoint -> CPU model
    opt = sv.optim.Adam(cpu.params)
    checkpoint.restore(full / "checkpoint.npz", cpu, opt)
    np.testing.assert_array_equal(cpu.params.flat, a["params"])
    np.testing.assert_array_equal(opt.state["m_scaled"], a["optimizer_state"]["m_scaled"])
    # ... and back: a CPU run resumed on the device
    train(TrainConfig(epochs=1, **SMALL), tmp_path / "cpu", quiet=True)
    train(TrainConfig(epochs=2, **SMALL, **STRICT), tmp_path / "cpu", resume=True, quiet=True)
    assert [m["epoch"] for m in read_metrics(tmp_path / "cpu")] == [1, 2]


@pytest.mark.usefixtures("data_dir")
@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the overflow is the point
@pytest.mark.parametrize("extra", [{}, dict(free_bits=0.5, binarize="dynamic",
                                            optimizer="adagrad", weight_decay=1e-4),
                                   dict(estimator="A", n_samples=2, optimizer="sgd")])
def test_the_gpu_loop_reads_nothing_back_per_step_and_still_names_the_bad_step(
        tmp_path, monkeypatch, extra):
    """With host reads treated as costly (as on a GPU), an epoch converts no device value
    to a Python number before it ends, and a diverging run still stops with the epoch and
    the first bad step, keeping the last good checkpoint."""
    import scratchvae.train as train_module

    monkeypatch.setattr(train_module, "host_reads_are_free", lambda xp: False)
    reads = count_reads(monkeypatch)
    config = TrainConfig(epochs=1, **SMALL, **STRICT, **extra)
    model = build_model(config, 784)
    opt = train_module.build_optimizer(config, model)
    x = model.asarray(np.random.default_rng(0).random((600, 784)))
    means = train_module.train_epoch(model, opt, x, config, epoch=1)
    assert reads == [] and all(np.isfinite(v) for v in means.values())

    monkeypatch.undo()
    monkeypatch.setattr(train_module, "host_reads_are_free", lambda xp: False)
    train(config, tmp_path, quiet=True)
    before = checkpoint.read(tmp_path / "checkpoint.npz")["params"]
    bad = TrainConfig(**{**config.to_json(), "hidden_dims": (32,), "epochs": 3, "lr": 1e30})
    with pytest.raises(TrainingError, match=r"at epoch 2, step \d+;.*--lr"):
        train(bad, tmp_path, resume=True, quiet=True)
    after = checkpoint.read(tmp_path / "checkpoint.npz")
    assert after["epoch"] == 1
    np.testing.assert_array_equal(after["params"], before)


@pytest.mark.usefixtures("data_dir")
def test_evaluation_and_pictures_of_a_device_run(tmp_path):
    """Evaluation takes the data on the device or on the host, with the same result; the
    pictures of a device run are drawn."""
    from scratchvae.cli import _write_plots
    from scratchvae.evaluate import active_units, elbo, log_likelihood

    train(TrainConfig(epochs=1, dtype="float64", **SMALL, **STRICT), tmp_path, quiet=True)
    model = build_model(TrainConfig(dtype="float64", **SMALL, **STRICT), 784)
    checkpoint.restore(tmp_path / "checkpoint.npz", model)
    x_host = np.random.default_rng(1).random((50, 784))
    state = model.rng.get_state()
    on_host = elbo(model, x_host, batch_size=20), log_likelihood(model, x_host, k=7)
    model.rng.set_state(state)
    on_dev = (elbo(model, model.asarray(x_host), batch_size=20),
              log_likelihood(model, model.asarray(x_host), k=7))
    assert on_host == on_dev
    assert active_units(model, model.asarray(x_host))[0] == active_units(model, x_host)[0]
    with pytest.raises(TypeError, match=r"x has dtype \S*float32 but the model computes in"):
        elbo(model, array_api_strict.asarray(x_host.astype(np.float32), device=DEVICE1))
    written = _write_plots(tmp_path)
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in written)


# ---- what a machine without a working GPU is told ------------------------------------------

def fake_cupy(n_gpus=1, count_error=None, kernel_error=None):
    """A stand-in ``cupy`` module that fails the way a broken CUDA set-up does."""
    def get_device_count():
        if count_error is not None:
            raise count_error
        return n_gpus

    def ones(*args, **kwargs):
        raise kernel_error

    runtime = types.SimpleNamespace(getDeviceCount=get_device_count)
    return types.SimpleNamespace(cuda=types.SimpleNamespace(runtime=runtime), ones=ones,
                                 float32="float32")


@pytest.mark.parametrize(("cupy_module", "message"), [
    (None, r"CuPy is not installed .*pip install 'scratchvae\[gpu\]'.*cupy-cuda13x\[ctk\]"),
    (fake_cupy(count_error=RuntimeError(
        "cudaErrorInsufficientDriver: CUDA driver version is insufficient\nfor CUDA runtime")),
     r"working driver, but CUDA reports: cudaErrorInsufficientDriver: CUDA driver version "
     r"is insufficient for CUDA runtime; check `nvidia-smi`"),
    (fake_cupy(n_gpus=0), r"CUDA sees none; check `nvidia-smi` and CUDA_VISIBLE_DEVICES"),
    (fake_cupy(kernel_error=RuntimeError("CuPy failed to load libnvrtc.so.12")),
     r"cannot compile or run a kernel \(RuntimeError: CuPy failed to load libnvrtc.so.12\); "
     r"the CUDA libraries \(NVRTC.*cupy-cuda12x\[ctk\]"),
])
def test_a_missing_gpu_is_one_line_naming_the_fix(monkeypatch, capsys, cupy_module, message):
    monkeypatch.setitem(sys.modules, "cupy", cupy_module)
    for make in (lambda: backend.get_namespace("cupy"), lambda: sv.VAE(8, backend="cupy"),
                 lambda: sv.Generator(0, backend="cupy"), lambda: sv.VAE(8).to("cupy")):
        with pytest.raises(backend.BackendUnavailableError, match=message) as info:
            make()
        assert isinstance(info.value, ImportError) and isinstance(info.value, RuntimeError)
        assert "\n" not in str(info.value)
    assert main(["train", "--backend", "cupy", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(("scratchvae train: error: the 'cupy'",
                           "scratchvae train: error: CuPy sees"))


def test_fused_kernels_on_cupy_and_numpy_only():
    xp = backend.get_namespace("numpy")
    assert backend.fused_kernel(xp, "adam", like=np.zeros(3)) is not None
    with pytest.raises(ValueError, match="needs like="):
        backend.fused_kernel(xp, "adam")
    assert backend.fused_kernel(array_api_strict, "adagrad") is None
    with pytest.raises(ValueError, match="name must be one of"):
        backend.fused_kernel(array_api_strict, "rmsprop")
    assert backend.host_reads_are_free(array_api_strict)


def test_the_evaluation_reads_nothing_back_per_chunk(monkeypatch):
    """The log weights of a chunk with given noise and unchecked values convert no device
    value to a Python number (a GPU would wait at each), and still refuse a bad eps shape."""
    model = sv.VAE(12, (8,), 3, seed=0, **STRICT)
    x = model.asarray(np.random.default_rng(0).random((5, 12)))
    mu, logvar = model.encode(x)
    eps = model.rng.normal((4, 5, 3), model.dtype)
    reads = count_reads(monkeypatch)
    log_w = model.log_weights(x, mu=mu, logvar=logvar, eps=eps, check_values=False)
    assert reads == [] and log_w.shape == (4, 5)
    model.log_weights(x, mu=mu, logvar=logvar, eps=eps)  # checked: reads the values
    assert "__bool__" in reads
    with pytest.raises(ValueError, match=r"eps must have shape \(n, 5, 3\)"):
        model.log_weights(x, eps=eps[:, :4, :], check_values=False)
