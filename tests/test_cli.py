"""The command line: every subcommand runs, bad values exit 2 with one line."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from scratchvae import checkpoint
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


def test_a_line_written_after_the_last_checkpoint_is_not_kept_twice(run_dir, tmp_path):
    """A run stopped after appending epoch 3's line but before saving its checkpoint
    trains epoch 3 again on resume: the stale line goes, the new one stays."""
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    epochs_done = checkpoint.read(copy / "checkpoint.npz")["epoch"]
    stale = {"epoch": epochs_done + 1, "train_loss": -1.0}
    with open(copy / "metrics.jsonl", "a") as f:
        f.write(json.dumps(stale) + "\n")
    assert main(["train", "--resume", str(copy), "--epochs", str(epochs_done + 1),
                 "--quiet", "--no-plots"]) == 0
    lines = [json.loads(line) for line in (copy / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in lines] == list(range(1, epochs_done + 2))
    assert lines[-1]["train_loss"] > 0


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
    assert main(["gradcheck", "--likelihood", "gaussian_per_pixel", "--estimator", "A"]) == 0
    assert "PASS" in capsys.readouterr().out


@pytest.mark.parametrize("args, word", [
    (["train", "--epochs", "0"], "--epochs must be"),
    (["train", "--batch-size", "0"], "--batch-size"),
    (["train", "--lr", "0"], "--lr must be"),
    (["train", "--lr", "-0.1"], "lr"),
    (["train", "--dataset", "cifar10"], "--dataset"),
    (["train", "--epochs", "many"], "--epochs"),
    (["train", "--hidden-dims", "4x"], "--hidden-dims"),
    (["train", "--out", "/proc/version/run"], "--out"),
    (["train", "--resume", "/nonexistent/run"], "--resume"),
    (["train", "--binarize", "dynamic", "--likelihood", "gaussian"],
     "--binarize dynamic needs --likelihood bernoulli"),
    (["train", "--n-validation", "-5"], "--n-validation"),
    (["train", "--free-bits", "0.5", "--estimator", "A"], "--free-bits needs --estimator B"),
    (["train", "--sigma-dec", "-1", "--likelihood", "gaussian"], "--sigma-dec"),
    (["train", "--device", "0"], "--device for backend 'numpy' must be None or 'cpu'"),
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


def test_resume_refuses_options_the_run_fixes(run_dir, capsys):
    before = (run_dir / "config.json").read_text()
    assert main(["train", "--resume", str(run_dir), "--lr", "0.1", "--latent-dim", "5"]) == 2
    err = capsys.readouterr().err
    assert err == ("scratchvae train: error: --lr, --latent-dim cannot change when resuming "
                   "(the run's config.json fixes them); start a new run with --out to "
                   "change them\n")
    assert (run_dir / "config.json").read_text() == before


def test_resume_with_nothing_to_do_says_so_and_changes_nothing(run_dir, capsys):
    files = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}
    done = len((run_dir / "metrics.jsonl").read_text().splitlines())
    assert main(["train", "--resume", str(run_dir), "--epochs", "1", "--no-plots"]) == 0
    out = capsys.readouterr().out
    assert f"is already at epoch {done} of the 1 asked for: nothing to do" in out
    assert {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()} == files


def test_resume_without_a_checkpoint_says_how_to_start_over(tmp_path, capsys):
    (tmp_path / "config.json").write_text(json.dumps({"hidden_dims": [32]}))
    assert main(["train", "--resume", str(tmp_path), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "has no checkpoint.npz to resume from" in err and "without --resume" in err


@pytest.mark.usefixtures("data_dir")
@pytest.mark.parametrize(("args", "message"), [
    (["--n-train", "100000"], "--n-train 100000 is more than the 60000 train images of mnist"),
    (["--hidden-dims", ""], "--hidden-dims: expected sizes such as 400 or 500,500"),
    (["--hidden-dims", "100000,100000"], "this model needs about"),
    (["--threads", "0"], "--threads: expected 'auto' or an integer >= 1"),
])
def test_impossible_sizes_exit_2_and_leave_no_folder(tmp_path, capsys, args, message):
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), "--quiet", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()


@pytest.mark.usefixtures("data_dir")
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_a_run_that_fails_in_its_first_epoch_leaves_no_folder(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), *SMALL, "--lr", "1e30"]) == 1
    err = capsys.readouterr().err
    assert "at epoch 1, step" in err and "no checkpoint was written" in err
    assert not out.exists()


def test_an_interrupted_run_says_what_is_kept(tmp_path, capsys, monkeypatch, data_dir):
    import scratchvae.train

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(scratchvae.train, "train", interrupted)
    assert main(["train", "--out", str(tmp_path / "new"), *SMALL]) == 130
    assert "no epoch had ended, so there is no checkpoint; start again" in \
        capsys.readouterr().err
    assert not (tmp_path / "new").exists()


def test_an_interrupted_resume_names_its_checkpoint(run_dir, capsys, monkeypatch):
    import scratchvae.train

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(scratchvae.train, "train", interrupted)
    assert main(["train", "--resume", str(run_dir), "--epochs", "50"]) == 130
    err = capsys.readouterr().err
    assert "the checkpoint of epoch " in err and f"--resume {run_dir}" in err
    assert (run_dir / "checkpoint.npz").is_file()


def test_sample_refuses_an_absurd_number_of_images(run_dir, capsys):
    assert main(["sample", str(run_dir), "--n", "100000"]) == 2
    assert "--n must be between 1 and 2500" in capsys.readouterr().err


def test_evaluate_estimates_its_time_shows_progress_and_records_the_epoch(run_dir, capsys):
    assert main(["evaluate", str(run_dir), "--k", "300", "--n-test", "200",
                 "--threads", "1"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith("log p(x) with K=300 on 200 images: about ")
    assert "(timed on the first of 6 chunks)" in lines[0]
    assert any("6/6 chunks" in line and "left" in line for line in lines)
    result = json.loads((run_dir / "evaluation.json").read_text())
    assert result["epoch"] == checkpoint_epoch(run_dir)
    assert f"evaluated the checkpoint of epoch {result['epoch']}" in out


def checkpoint_epoch(run_dir):
    from scratchvae import checkpoint

    return checkpoint.read(run_dir / "checkpoint.npz")["epoch"]


def test_every_option_has_help_with_its_default_and_the_readme_names_it():
    from scratchvae.cli import build_parser

    readme = (ROOT / "README.md").read_text()
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command").choices
    no_default = {"--resume", "--quiet", "--no-plots", "--out", "--data-dir", "--device",
                  "--backend"}
    for name, sub in subparsers.items():
        for action in sub._actions:
            if not action.option_strings or action.dest == "help":
                continue
            flag = action.option_strings[0]
            assert action.help, f"{name} {flag} has no help text"
            if flag not in no_default and not (name == "exercises"):
                assert "default" in action.help, f"{name} {flag}: no default in its help"
            assert f"`{flag}" in readme or f"{flag} " in readme or f"{flag}`" in readme, \
                f"the README does not mention {name} {flag}"


def test_exercises_copies_only_notebooks_with_exercises(tmp_path, capsys):
    assert main(["exercises", "--out", str(tmp_path), "--root", str(ROOT)]) == 0
    out = capsys.readouterr().out
    written = sorted(p.name for p in tmp_path.rglob("*.ipynb"))
    assert written == ["03_build_vae_layer_by_layer.ipynb"]
    assert "have no exercises to fill in and were not copied" in out
    assert "01_ae_vs_vae.ipynb" in out
