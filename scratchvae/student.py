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
"""

from __future__ import annotations

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


def write_student_versions(out_dir, sources=("notebooks", "derivations"),
                           root=None) -> list[Path]:
    """Write the student version of every notebook with exercises under ``sources``.

    A notebook without exercise cells has nothing to fill in and is not copied (read it
    where it is).

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

    Returns the paths written, in order. Each file is written atomically.
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
    written = []
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
    return written
