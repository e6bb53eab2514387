"""Every notebook in notebooks/ and derivations/ runs top to bottom, in quick mode.

Each notebook must be stored with its outputs cleared, must execute without error in its
solution form, and, if it has exercise cells, its student version (solutions replaced by
``raise NotImplementedError``) must execute too, with the checkers reporting "not
implemented" instead of crashing. The kernel gets ``SCRATCHVAE_QUICK=1`` (fewer steps,
smaller subsets) and the repository on ``PYTHONPATH``, so ``import scratchvae`` works
whether or not the package is installed. The execution time of every notebook is
listed at the end of the run.

Each execution is also kept in the course website's jupyter-cache (``build/jupyter_cache``,
where the site's packages are installed), so that ``scratchvae-course build`` and
``tests/test_site.py`` later in the same run read it instead of executing the notebook again.

A notebook that needs an optional package names it in its metadata,
``{"scratchvae": {"requires": ["torch"]}}``; where that package cannot be imported, the
notebook (and its student version) is skipped, with the command that installs it.
"""

from __future__ import annotations

import copy
import importlib
import json
import os
import time
import warnings
from pathlib import Path

import pytest

from scratchvae.student import has_solutions, write_student_versions

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("notebooks", "derivations")
CELL_TIMEOUT_S = 600
#: How to install each optional package a notebook may require (the version tested).
INSTALL = {"torch": "pip install torch==2.13.0"}


def _find_notebooks() -> list[Path]:
    return sorted(path for folder in FOLDERS if (ROOT / folder).is_dir()
                  for path in (ROOT / folder).rglob("*.ipynb")
                  if ".ipynb_checkpoints" not in path.parts)


def _has_exercises(path: Path) -> bool:
    return has_solutions(json.loads(path.read_text(encoding="utf-8")))


NOTEBOOKS = _find_notebooks()
EXERCISES = [path for path in NOTEBOOKS if _has_exercises(path)]


def _name(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _skip_unless_requirements_import(path: Path) -> None:
    """Skip the calling test, naming the install command, when a package the notebook's
    metadata requires (``metadata.scratchvae.requires``) cannot be imported."""
    metadata = json.loads(path.read_text(encoding="utf-8")).get("metadata", {})
    for module in metadata.get("scratchvae", {}).get("requires", []):
        try:
            importlib.import_module(module)
        except ImportError:
            pytest.skip(f"needs {module}: {INSTALL.get(module, f'pip install {module}')}")


@pytest.fixture(scope="session")
def timings(pytestconfig):
    """Collects ``label -> seconds`` and prints the table after the last notebook ran."""
    times: dict[str, float] = {}
    yield times
    reporter = pytestconfig.pluginmanager.get_plugin("terminalreporter")
    capture = pytestconfig.pluginmanager.get_plugin("capturemanager")
    if not times or reporter is None:
        return
    with capture.global_and_fixture_disabled():
        reporter.ensure_newline()
        reporter.write_sep("-", "notebook execution times (SCRATCHVAE_QUICK=1)")
        for label, seconds in sorted(times.items()):
            reporter.write_line(f"{seconds:7.1f} s  {label}")


@pytest.fixture
def kernel_env(monkeypatch):
    """The environment the kernel inherits: quick mode, the repository importable, and
    matplotlib's inline backend (a non-interactive MPLBACKEND would only warn on show)."""
    monkeypatch.setenv("SCRATCHVAE_QUICK", "1")
    paths = [str(ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(paths))
    monkeypatch.delenv("MPLBACKEND", raising=False)


def _execute(path: Path, cwd: Path, label: str, timings: dict) -> str:
    """Run the notebook at ``path`` in a fresh python3 kernel started in ``cwd``; return
    the text it printed (streams and plain-text results)."""
    notebook = nbformat.read(path, as_version=4)
    source = copy.deepcopy(notebook)
    client = nbclient.NotebookClient(notebook, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                                     resources={"metadata": {"path": str(cwd)}})
    start = time.perf_counter()
    client.execute()
    timings[label] = time.perf_counter() - start
    _share_with_the_site(source, notebook, label, timings[label])
    print(f"{label}: {timings[label]:.1f} s")
    texts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                texts.append(output.get("text", ""))
            texts.append(output.get("data", {}).get("text/plain", ""))
    return "".join(texts)


def _share_with_the_site(source, executed, label: str, seconds: float) -> None:
    """Keep an execution in the site's jupyter-cache, keyed by the notebook's code, where
    the site build finds it. Only where the site's packages are installed; a cache that
    cannot be written (another process holding it) only costs the site an execution."""
    try:
        import jupyter_cache  # noqa: F401

        from scratchvae.course_site import default_cache, store_executed
    except ImportError:
        return
    try:
        store_executed(default_cache(ROOT), source, executed, label, seconds)
    except Exception as err:  # the cache is an optimization, never a reason to fail
        warnings.warn(f"{label}: not stored in the site's cache: {err}", stacklevel=2)


def test_notebooks_are_found():
    assert NOTEBOOKS, f"no notebooks under {ROOT / 'notebooks'} or {ROOT / 'derivations'}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_name)
def test_notebook_is_stored_without_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    dirty = [index for index, cell in enumerate(notebook.cells) if cell.cell_type == "code"
             and (cell.get("outputs") or cell.get("execution_count") is not None)]
    assert not dirty, (f"{_name(path)}: code cells {dirty} have outputs or execution counts; "
                       "clear them before committing (e.g. jupyter nbconvert "
                       "--clear-output --inplace)")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_name)
def test_notebook_runs(path, kernel_env, timings):
    _skip_unless_requirements_import(path)
    text = _execute(path, path.parent, _name(path), timings)
    assert ": FAIL — " not in text, f"a checker failed on the solution:\n{text}"


@pytest.mark.parametrize("path", EXERCISES, ids=_name)
def test_student_version_runs(path, tmp_path, kernel_env, timings):
    _skip_unless_requirements_import(path)
    folder = path.relative_to(ROOT).parts[0]
    written = write_student_versions(tmp_path, sources=(folder,), root=ROOT)
    student = tmp_path / path.relative_to(ROOT)
    assert student in written
    assert not _has_exercises(student)
    text = _execute(student, path.parent, f"{_name(path)} (student version)", timings)
    assert "not implemented" in text, text


def test_a_notebook_whose_requirement_is_missing_is_skipped_with_the_install_command(tmp_path):
    path = tmp_path / "needs.ipynb"
    notebook = nbformat.v4.new_notebook(metadata={"scratchvae": {"requires": [
        "json", "torch_missing_for_this_test"]}})
    nbformat.write(notebook, path)
    with pytest.raises(pytest.skip.Exception,
                       match=r"^needs torch_missing_for_this_test: pip install "
                             r"torch_missing_for_this_test$"):
        _skip_unless_requirements_import(path)
    notebook.metadata["scratchvae"]["requires"] = ["json"]
    nbformat.write(notebook, path)
    _skip_unless_requirements_import(path)  # importable: no skip


SLIDE_DECKS = ("000_a112e0488c5566e6.txt", "001_3b1f465fc19e6518.txt",
               "002_3facc1002d729879.txt", "003_77093d2977405e77.txt",
               "004_a9997e39466fe772.txt")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_name)
def test_notebook_opening_names_the_slide_decks_it_follows(path):
    notebook = nbformat.read(path, as_version=4)
    opening = next(cell.source for cell in notebook.cells if cell.cell_type == "markdown")
    named = [deck for deck in SLIDE_DECKS if deck in opening]
    assert "Slides followed" in opening and named, \
        f"{_name(path)}: its first cell names no slide deck of {SLIDE_DECKS}"
