"""The command line: every subcommand runs, bad values exit 2 with one line."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from scratchvae.cli import main

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--n-train", "500", "--n-test", "200", "--hidden-dims", "32", "--latent-dim", "2",
         "--batch-size", "100", "--quiet"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, data_dir):
    out = tmp_path_factory.mktemp("run")
    assert main(["train", "--epochs", "2", "--out", str(out), *SMALL]) == 0
    return out


def test_train_writes_run_directory(run_dir):
    names = {p.name for p in run_dir.iterdir()}
    assert {"config.json", "metrics.jsonl", "checkpoint.npz", "reconstructions.png",
            "samples.png", "latent.png", "curves.png", "manifold.png"} <= names
    for png in run_dir.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len((run_dir / "metrics.jsonl").read_text().splitlines()) == 2


def test_resume_continues_to_more_epochs(run_dir, tmp_path, capsys):
    assert main(["train", "--resume", str(run_dir), "--epochs", "3", "--quiet",
                 "--no-plots"]) == 0
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3]


def test_evaluate_reports_iwae_above_elbo(run_dir, capsys):
    assert main(["evaluate", str(run_dir), "--k", "50", "--n-test", "100"]) == 0
    result = json.loads((run_dir / "evaluation.json").read_text())
    assert result["log_likelihood"] >= result["test_elbo"] - 3 * result["log_likelihood_stderr"]
    assert 0 <= result["active_units"] <= 2
    assert "log p(x)" in capsys.readouterr().out


def test_sample_and_plot(run_dir, tmp_path):
    out = tmp_path / "s.png"
    assert main(["sample", str(run_dir), "--n", "16", "--out", str(out)]) == 0
    assert out.read_bytes()[:4] == b"\x89PNG"
    assert main(["plot", str(run_dir)]) == 0


def test_gradcheck_command_passes(capsys):
    assert main(["gradcheck", "--likelihood", "gaussian_learned", "--estimator", "A"]) == 0
    assert "PASS" in capsys.readouterr().out


@pytest.mark.parametrize("args, word", [
    (["train", "--epochs", "0"], "epochs"),
    (["train", "--batch-size", "0"], "batch_size"),
    (["train", "--lr", "0"], "lr"),
    (["train", "--lr", "-0.1"], "lr"),
    (["train", "--dataset", "cifar10"], "--dataset"),
    (["train", "--epochs", "many"], "--epochs"),
    (["train", "--hidden-dims", "4x"], "--hidden-dims"),
    (["train", "--out", "/proc/version/run"], "--out"),
    (["train", "--resume", "/nonexistent/run"], "--resume"),
    (["train", "--binarize", "dynamic", "--likelihood", "gaussian"], "binarize"),
    (["train", "--n-validation", "-5"], "n_validation"),
    (["train", "--free-bits", "0.5", "--estimator", "A"], "free_bits"),
    (["train", "--sigma-dec", "-1", "--likelihood", "gaussian"], "sigma_dec"),
    (["train", "--device", "0"], "device for backend 'numpy' must be None or 'cpu'"),
    (["evaluate", "/nonexistent/run"], "config.json"),
    (["evaluate", ".", "--k", "0"], "--k"),
    (["frobnicate"], "invalid choice"),
])
def test_bad_values_exit_2_with_one_line(args, word, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert word in err and "Traceback" not in err


def test_missing_data_offline_names_the_files(tmp_path, capsys, monkeypatch):
    from scratchvae import datasets

    monkeypatch.setattr(datasets, "MIRRORS", {k: ("file:///nonexistent/",)
                                              for k in datasets.MIRRORS})
    code = main(["train", "--data-dir", str(tmp_path), "--out", str(tmp_path / "r"), "--quiet"])
    assert code == 1
    err = capsys.readouterr().err
    assert str(tmp_path / "mnist" / "train-images-idx3-ubyte.gz") in err


def test_python_dash_m_help():
    for cmd in ("train", "evaluate", "sample", "plot", "gradcheck", "exercises"):
        out = subprocess.run([sys.executable, "-m", "scratchvae", cmd, "--help"], cwd=ROOT,
                             capture_output=True, text=True, check=True,
                             env={**os.environ, "PYTHONPATH": str(ROOT)}).stdout
        assert "usage: scratchvae" in out


def test_readme_test_command_is_what_ci_runs():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    command = 'pip install -e ".[test]" && python -m pytest'
    assert command in readme and command in ci


def test_cupy_without_a_gpu_is_one_line(capsys):
    from importlib.util import find_spec

    if find_spec("cupy") is not None:
        pytest.skip("CuPy is installed here; this checks the message when it is absent")
    assert main(["train", "--backend", "cupy"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "pip install" in err


def test_gradcheck_on_a_missing_gpu_is_one_line(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)
    assert main(["gradcheck", "--backend", "cupy"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("scratchvae gradcheck: error: the 'cupy' backend needs CuPy")
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("command", [["evaluate", "--k", "5"], ["sample"], ["plot"]])
def test_loading_a_run_on_a_missing_gpu_is_one_line(run_dir, command, capsys, monkeypatch):
    """A run opened with --backend cupy where CuPy cannot run: exit 2, one line, no data
    read and nothing written."""
    monkeypatch.setitem(sys.modules, "cupy", None)  # CuPy not importable, here or not
    before = {p.name: p.stat().st_mtime_ns for p in run_dir.iterdir()}
    assert main([command[0], str(run_dir), *command[1:], "--backend", "cupy"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"scratchvae {command[0]}: error: the 'cupy' backend needs CuPy")
    assert {p.name: p.stat().st_mtime_ns for p in run_dir.iterdir()} == before


def test_a_run_opens_on_the_backend_asked_for(run_dir, tmp_path):
    """--backend numpy on a CPU run is accepted (and is how a GPU run opens on the CPU)."""
    out = tmp_path / "s.png"
    assert main(["sample", str(run_dir), "--backend", "numpy", "--n", "4",
                 "--out", str(out)]) == 0
    assert out.read_bytes()[:4] == b"\x89PNG"


def test_out_of_memory_is_one_line(monkeypatch, capsys, tmp_path):
    """Running out of (GPU) memory is one line naming the fix (CuPy's OutOfMemoryError
    is a MemoryError)."""
    import scratchvae.train

    def oom(*args, **kwargs):
        raise MemoryError("Out of memory allocating 1,234,567,890 bytes\n(allocated so far)")

    monkeypatch.setattr(scratchvae.train, "train", oom)
    assert main(["train", "--out", str(tmp_path), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err == ("scratchvae: error: out of memory (MemoryError: Out of memory allocating "
                   "1,234,567,890 bytes (allocated so far)); lower --batch-size (or --k for "
                   "evaluate); the last checkpoint is kept\n")
