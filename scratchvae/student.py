"""Student versions of the course notebooks: the solutions taken out.

An exercise cell in a notebook holds a working solution between two marker lines::

    def linear_forward(x, W, b):
        ### BEGIN SOLUTION
        y = x @ W + b
        ### END SOLUTION
        return y, (x, W)

:func:`write_student_versions` (``scratchvae exercises --out DIR`` on the command line)
copies the notebooks that have such blocks, with every block replaced by
``raise NotImplementedError("exercise: linear_forward")`` (naming the function to write)
and the outputs cleared. The checkers that follow each exercise are in
:mod:`scratchvae.exercises`.

Cells carry their role in their metadata, ``{"scratchvae": {"exercise": MARKER, "role":
ROLE}}``: ``"setup"`` (the backend line, the imports), ``"solution"`` (a cell the student
fills in) or ``"check"`` (the checker cell that follows), MARKER naming the exercise
(``ex_kl``). :func:`run_exercise` runs one exercise's checks from a notebook, and the
student copy gets a ``test_exercises.py`` and ``pytest.ini`` with one pytest marker per
exercise, so that ``pytest -m ex_kl`` in that folder runs the checks of the student's
own KL, as task-based courses do.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path

from .files import atomic_write

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
STUB = "raise NotImplementedError"
_DEF = re.compile(r"^(\s*)(?:async\s+)?def\s+(\w+)\s*\(")


def _exercise_name(lines: list[str], indent: str) -> str:
    """The function a solution block at ``indent`` sits in: the nearest ``def`` above it
    with a smaller indentation, or ``None`` at the top level of the cell."""
    for line in reversed(lines):
        m = _DEF.match(line)
        if m and len(m.group(1)) < len(indent):
            return m.group(2)
    return None


def strip_solutions(source: str) -> str:
    """Replace every block from ``### BEGIN SOLUTION`` to ``### END SOLUTION`` (marker
    lines included) by one ``raise NotImplementedError("exercise: NAME")`` at the
    indentation of the ``BEGIN`` line, NAME being the function the block sits in. Text
    without markers comes back unchanged.

    Raises ``ValueError`` for an unmatched or nested marker.
    """
    out, opened = [], None
    for number, line in enumerate(source.split("\n"), 1):
        marker = line.strip()
        if marker == BEGIN:
            if opened is not None:
                raise ValueError(f"line {number}: {BEGIN!r} inside the solution block "
                                 f"opened on line {opened}")
            opened = number
            indent = line[: len(line) - len(line.lstrip())]
            name = _exercise_name(out, indent)
            what = f"exercise: {name}" if name else "exercise: complete this cell"
            out.append(f'{indent}{STUB}("{what}")' + ("\r" if line.endswith("\r") else ""))
        elif marker == END:
            if opened is None:
                raise ValueError(f"line {number}: {END!r} without a {BEGIN!r} before it")
            opened = None
        elif opened is None:
            out.append(line)
    if opened is not None:
        raise ValueError(f"the solution block opened on line {opened} has no {END!r}")
    return "\n".join(out)


def _source_text(cell: dict) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def has_solutions(notebook: dict) -> bool:
    """Whether a notebook (the JSON as a dict) has a solution block in a code cell."""
    return any(cell.get("cell_type") == "code" and BEGIN in _source_text(cell)
               for cell in notebook.get("cells", []))


def student_notebook(notebook: dict, name: str = "notebook") -> dict:
    """The student version of a notebook (the JSON as a dict, modified in place and
    returned): solutions stripped from code cells, outputs and execution counts cleared."""
    for index, cell in enumerate(notebook.get("cells", [])):
        if cell.get("cell_type") != "code":
            continue
        try:
            cell["source"] = strip_solutions(_source_text(cell)).splitlines(keepends=True)
        except ValueError as err:
            raise ValueError(f"{name}, code cell {index}: {err}") from None
        cell["outputs"] = []
        cell["execution_count"] = None
        cell.get("metadata", {}).pop("execution", None)
    return notebook


#: The exercises of the course's notebooks, by pytest marker (see ``pyproject.toml``).
MARKERS = {
    "ex_linear": "the affine layer (notebook 03, section 1)",
    "ex_activations": "the activations' backward (notebook 03, section 2)",
    "ex_bernoulli": "the Bernoulli log-likelihood (notebook 03, section 3)",
    "ex_kl": "the KL divergence to the prior (notebook 03, section 4)",
    "ex_reparam": "the reparameterization (notebook 03, section 5)",
    "ex_vae": "the whole VAE's backward pass (notebook 03, section 6)",
    "ex_own_vae": "your own pieces assembled into a VAE (notebook 03, section 8)",
}

_STUDENT_TESTS = '''"""The checks of your exercises, one pytest marker per exercise.

    pytest -m ex_kl          # the checks of your KL only
    pytest                   # all of them

Each test runs the set-up cells and your exercise cells of the notebooks in this folder,
then the checker cells of one exercise, and fails with the checker's diagnosis.
"""

from pathlib import Path

import pytest

from scratchvae.student import exercise_markers, run_exercise

HERE = Path(__file__).resolve().parent
CASES = [(path, marker) for path in sorted(HERE.rglob("*.ipynb"))
         if ".ipynb_checkpoints" not in path.parts for marker in exercise_markers(path)]


@pytest.mark.parametrize("path, marker", [
    pytest.param(path, marker, marks=getattr(pytest.mark, marker),
                 id=f"{path.stem}-{marker}") for path, marker in CASES])
def test_exercise(path, marker):
    passed, output = run_exercise(path, marker)
    assert passed, output
'''


def _cell_tag(cell: dict) -> dict:
    """A code cell's ``{"exercise": MARKER, "role": ROLE}`` (empty if it has none)."""
    if cell.get("cell_type") != "code":
        return {}
    return cell.get("metadata", {}).get("scratchvae", {})


def exercise_markers(notebook) -> list[str]:
    """The markers of the exercises with a check cell in ``notebook`` (a path or the JSON
    as a dict), in their order."""
    if not isinstance(notebook, dict):
        notebook = json.loads(Path(notebook).read_text(encoding="utf-8"))
    found = [_cell_tag(c).get("exercise") for c in notebook.get("cells", [])
             if _cell_tag(c).get("role") == "check"]
    return list(dict.fromkeys(found))


def run_exercise(path, marker: str) -> tuple[bool, str]:
    """Run the checks of exercise ``marker`` in the notebook at ``path``: its set-up cells
    and all its solution cells (whose functions the checks may combine), then the check
    cells of ``marker``. Returns whether every check those cells ran passed (their
    ``progress`` entries), and what they printed. A notebook without that exercise
    raises ``ValueError``."""
    notebook = json.loads(Path(path).read_text(encoding="utf-8"))
    cells = [(_cell_tag(c), compile(_source_text(c), f"{Path(path).name}, cell {i}", "exec"))
             for i, c in enumerate(notebook.get("cells", [])) if _cell_tag(c)]
    checks = [code for tag, code in cells if tag.get("role") == "check"
              and tag.get("exercise") == marker]
    if not checks:
        raise ValueError(f"{path} has no check cell for the exercise {marker!r}")
    namespace = {"__name__": "__exercise__"}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        for tag, code in cells:
            if tag.get("role") in ("setup", "solution"):
                exec(code, namespace)
        progress = namespace.setdefault("progress", {})
        before = set(progress)
        for code in checks:
            exec(code, namespace)
    ran = {k: v for k, v in progress.items() if k not in before}
    return bool(ran) and all(ran.values()), out.getvalue()


def _write_text(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))
    return path


def write_student_versions(out_dir, sources=("notebooks", "derivations"),
                           root=None) -> list[Path]:
    """Write the student version of every notebook with exercises under ``sources``.

    A notebook without exercise cells has nothing to fill in and is not copied (read it
    where it is). Where the notebooks have tagged exercises, ``out_dir/test_exercises.py``
    and ``out_dir/pytest.ini`` are written too: ``pytest -m ex_kl`` there runs the checks
    of one exercise on the student's own functions (:func:`run_exercise`). Each file is
    written atomically.

    Parameters
    ----------
    out_dir : path
        ``out_dir/<folder>/<name>.ipynb`` receives the student version of
        ``root/<folder>/<name>.ipynb`` (subfolders are kept).
    sources : str or sequence of str
        Folders, relative to ``root``, to copy; missing ones are skipped, but at least
        one must exist.
    root : path, optional
        Where the folders are (default: the current directory).

    Returns
    -------
    list of Path
        The paths written, in order.
    """
    root = Path.cwd() if root is None else Path(root)
    out_dir = Path(out_dir)
    sources = (sources,) if isinstance(sources, str) else tuple(sources)
    folders = [s for s in sources if (root / s).is_dir()]
    if not folders:
        names = ", ".join(str(root / s) for s in sources)
        raise FileNotFoundError(f"no notebook folder found: {names} does not exist; run "
                                "from the repository root or name it (--root on the command "
                                "line, root= in Python)")
    out_resolved = out_dir.resolve()
    notebooks = [(folder, path) for folder in folders
                 for path in sorted((root / folder).rglob("*.ipynb"))
                 if ".ipynb_checkpoints" not in path.parts
                 and out_resolved not in path.resolve().parents]
    written, markers = [], []
    for folder, path in notebooks:
        notebook = json.loads(path.read_text(encoding="utf-8"))
        if not has_solutions(notebook):
            continue
        target = out_dir / folder / path.relative_to(root / folder)
        text = json.dumps(student_notebook(notebook, str(path)), indent=1, sort_keys=True,
                          ensure_ascii=False)
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(target, lambda f, text=text: f.write((text + "\n").encode("utf-8")))
        written.append(target)
        markers += exercise_markers(notebook)
    if markers:
        ini = "[pytest]\nmarkers =\n" + "".join(
            f"    {m}: {MARKERS.get(m, 'an exercise')}\n" for m in dict.fromkeys(markers))
        written.append(_write_text(out_dir / "pytest.ini", ini))
        written.append(_write_text(out_dir / "test_exercises.py", _STUDENT_TESTS))
    return written
