"""The course as a website: ``scratchvae-course build [--out DIR]``.

The site is built with Sphinx and MyST-NB from the repository's own sources:

* the hand-written pages and the Sphinx configuration in ``docs/``;
* every notebook of ``notebooks/`` and ``derivations/``, executed in quick mode
  (``SCRATCHVAE_QUICK=1``) with its figures and outputs. A notebook with exercises is shown
  in its student version (:func:`scratchvae.student.student_notebook`: solutions replaced,
  checker cells kept), executed as it is, so that its checkers report "not implemented";
* ``derivations/README.md``, ``SLIDE_INDEX.md`` and ``ERRATA.md``; the course map and the
  table of full runs from ``README.md``; the runs committed under ``results/``;
* the API reference, generated from the docstrings (autodoc and napoleon).

Executions are kept in a jupyter-cache (default ``build/jupyter_cache/``), keyed by the code
of the notebook: a notebook whose code has not changed is never executed again, and the
notebook tests store their executions in the same cache (:func:`store_executed`), so that a
test run followed by a site build executes each notebook once. Math is rendered by the copy
of MathJax 3 that the ``sphinx-mathjax-offline`` package bundles, served from the site's own
``_static/mathjax/``. The output folder opens from disk (``index.html``) or from
``python -m http.server -d DIR``.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import fnmatch
import html
import importlib
import json
import os
import pkgutil
import re
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .student import has_solutions, student_notebook

FOLDERS = ("notebooks", "derivations")
CELL_TIMEOUT_S = 600
#: How to install each optional package a notebook may require (the version tested).
INSTALL = {"torch": "pip install torch==2.13.0"}
#: Written into the output folder: only a folder holding it (or an empty one) is replaced.
MARKER = ".scratchvae-course"
#: Markdown pages of the notes, staged under their folder (README.md becomes its index).
NOTES = ("SLIDE_INDEX.md", "ERRATA.md")


@dataclass
class Page:
    """A notebook as the site shows it."""

    source: Path        # the notebook in the repository
    rel: Path           # its path relative to the repository root (and to the site)
    notebook: dict      # the page's notebook (the student version for exercises)
    student: bool       # whether solutions were taken out
    missing: list       # optional packages it needs that cannot be imported


def repository_root(start=None) -> Path:
    """The checkout holding ``docs/conf.py`` and the notebooks: ``start`` (default: the
    current folder), else the checkout this module belongs to."""
    here = Path(__file__).resolve().parents[1]
    for candidate in (Path(start or Path.cwd()).resolve(), here):
        if (candidate / "docs" / "conf.py").is_file() and (candidate / "notebooks").is_dir():
            return candidate
    raise FileNotFoundError("the course sources (docs/conf.py, notebooks/) were not found in "
                            f"{Path(start or Path.cwd()).resolve()} or {here}; run from the "
                            "repository root or pass --root")


def default_cache(root) -> Path:
    """Where executed notebooks are kept unless told otherwise: ``build/jupyter_cache``."""
    return Path(root) / "build" / "jupyter_cache"


def find_notebooks(root, only=None) -> list[Path]:
    """The notebooks under ``notebooks/`` and ``derivations/`` (paths relative to ``root``),
    restricted to those whose relative path matches the glob ``only`` if given."""
    root = Path(root)
    found = sorted(path.relative_to(root) for folder in FOLDERS if (root / folder).is_dir()
                   for path in (root / folder).rglob("*.ipynb")
                   if ".ipynb_checkpoints" not in path.parts)
    if only:
        found = [rel for rel in found
                 if fnmatch.fnmatch(rel.as_posix(), only) or fnmatch.fnmatch(rel.name, only)]
    return found


def missing_requirements(notebook: dict) -> list[str]:
    """The optional packages named in ``metadata.scratchvae.requires`` that do not import."""
    missing = []
    for module in notebook.get("metadata", {}).get("scratchvae", {}).get("requires", []):
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(module)
    return missing


def _insert_after_title(notebook: dict, text: str) -> None:
    """Insert a Markdown cell after the first Markdown cell (the title and slides line)."""
    cells = notebook["cells"]
    cell = {"cell_type": "markdown", "metadata": {}, "source": text}
    if notebook.get("nbformat_minor", 0) >= 5:  # cells have ids from nbformat 4.5 on
        cell["id"] = f"site-note-{len(cells)}"
    first = next((i for i, c in enumerate(cells) if c.get("cell_type") == "markdown"), -1)
    cells.insert(first + 1, cell)


STUDENT_NOTE = (
    "```{{note}}\n**This is the student version.** The solutions are taken out: each exercise "
    "cell raises `NotImplementedError` and names the function to write, and the checker "
    "after it reports *not implemented yet*, as in the outputs below. Run it on your "
    "machine with `scratchvae exercises --out student/` and `jupyter lab student/`; see "
    "[Exercises]({exercises}).\n```\n")

MISSING_NOTE = (
    "```{{warning}}\nThis page is shown without outputs: it needs {names}, which could not be "
    "imported where the site was built (`{install}`).\n```\n")


_INLINE_MATH = re.compile(r"(?<![\\$])\$(?!\$)[^$\n]+?(?<![\\$])\$(?!\$)")


def table_math(text: str) -> str:
    """Jupyter typesets math before it splits a table row at its bars; MyST splits first.
    In table rows, write the bars inside ``$...$`` as ``\\vert`` (and ``\\|`` as
    ``\\Vert``), which typeset the same, so that both read the table alike."""
    def in_math(m):
        return re.sub(r"(?<!\\)\|", r"\\vert{}", m.group(0).replace("\\|", "\\Vert{}"))

    return "\n".join(_INLINE_MATH.sub(in_math, line) if line.lstrip().startswith("|") else line
                     for line in text.split("\n"))


def page_notebook(root, rel) -> Page:
    """The notebook ``rel`` as the site shows it: the student version when it has
    exercises (with a note on running it), a note when a requirement is missing."""
    source = Path(root) / rel
    notebook = json.loads(source.read_text(encoding="utf-8"))
    student = has_solutions(notebook)
    if student:
        notebook = student_notebook(notebook, str(rel))
    for cell in notebook.get("cells", []):
        if cell.get("cell_type") == "markdown":
            cell["source"] = table_math("".join(cell.get("source", "")))
    missing = missing_requirements(notebook)
    if student:
        exercises = "../" * (len(Path(rel).parts) - 1) + "exercises.md"
        _insert_after_title(notebook, STUDENT_NOTE.format(exercises=exercises))
    if missing:
        install = "; ".join(INSTALL.get(m, f"pip install {m}") for m in missing)
        _insert_after_title(notebook, MISSING_NOTE.format(names=", ".join(missing),
                                                          install=install))
    return Page(source, Path(rel), notebook, student, missing)


# ----------------------------------------------------------------------------- execution

def _nbformat():
    import nbformat

    return nbformat


def _as_node(notebook):
    """An ``nbformat`` v4 node, read as MyST-NB reads the staged file (so that both hash
    the same code cells)."""
    nbformat = _nbformat()
    text = notebook if isinstance(notebook, str) else json.dumps(notebook)
    return nbformat.reads(text, as_version=4)


def _open_cache(cache_dir):
    from jupyter_cache import get_cache

    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    return get_cache(str(cache_dir))


def is_cached(cache_dir, notebook) -> bool:
    """Whether the cache holds an execution of this notebook's code."""
    with contextlib.suppress(KeyError):
        return _open_cache(cache_dir).match_cache_notebook(_as_node(notebook)) is not None
    return False


def store_executed(cache_dir, source, executed, uri: str, seconds: float) -> None:
    """Store the outputs of ``executed`` (the notebook after execution) in the cache under
    the key of ``source`` (the same notebook before execution): its code cells, their
    metadata and the kernelspec, as jupyter-cache and MyST-NB hash them."""
    from jupyter_cache.base import CacheBundleIn

    bundle = _as_node(source)
    ran = [c for c in executed.cells if c.cell_type == "code"]
    cells = [c for c in bundle.cells if c.cell_type == "code"]
    if len(ran) != len(cells):
        raise ValueError(f"{uri}: {len(ran)} executed code cells for {len(cells)} in the source")
    for cell, done in zip(cells, ran, strict=True):
        cell.outputs = done.get("outputs", [])
        cell.execution_count = done.get("execution_count")
    if "language_info" in executed.metadata:
        bundle.metadata["language_info"] = executed.metadata["language_info"]
    _open_cache(cache_dir).cache_notebook_bundle(
        CacheBundleIn(bundle, uri, data={"execution_seconds": seconds}),
        check_validity=False, overwrite=True)


@contextlib.contextmanager
def quick_kernel_environment(root):
    """The environment a notebook kernel inherits, as in the notebook tests: quick mode,
    the repository importable, and matplotlib's inline backend."""
    saved = dict(os.environ)
    os.environ["SCRATCHVAE_QUICK"] = "1"
    paths = [str(root), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    os.environ["PYTHONPATH"] = os.pathsep.join(paths)
    os.environ.pop("MPLBACKEND", None)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def execute_into_cache(root, page: Page, cache_dir) -> float:
    """Execute the page's notebook in a fresh kernel started in the folder of its source
    (so that relative paths such as ``../results`` work) and store it; return seconds."""
    import nbclient

    notebook = _as_node(page.notebook)
    source = copy.deepcopy(notebook)
    client = nbclient.NotebookClient(notebook, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                                     resources={"metadata": {"path": str(page.source.parent)}})
    start = time.perf_counter()
    with quick_kernel_environment(root):
        try:
            client.execute()
        except Exception as err:
            raise RuntimeError(f"{page.rel.as_posix()} failed to execute in quick mode: "
                               f"{err}") from err
    seconds = time.perf_counter() - start
    store_executed(cache_dir, source, notebook, page.rel.as_posix(), seconds)
    return seconds


# ----------------------------------------------------------------------------- staging

_CODE_PATH = re.compile(r"(?<!\[)`((?:notebooks|derivations)/[\w.-]+\.(?:ipynb|md))`")
_LINK = re.compile(r"(!?)\[((?:[^\[\]]|\[[^\]]*\])*)\]\(([^)\s]+)\)")


def _relative(target: str, page_dir: str) -> str:
    return os.path.relpath(target, page_dir or ".").replace(os.sep, "/")


def fix_links(text: str, page_dir: str, staged: set[str]) -> str:
    """Make a Markdown page's links work on the site. ``page_dir`` is the page's folder
    and ``staged`` the files of the site (both relative to its root):

    * a code span naming a staged notebook or page by its path from the repository root
      (``notebooks/10_anomaly.ipynb`` in backquotes) becomes a link to it;
    * a link to a ``README.md`` that is staged as ``index.md`` points to the index;
    * a relative link to a file that is not part of the site keeps only its text.
    """
    def linkify(m):
        path = m.group(1)
        if path.endswith("README.md"):
            path = path[: -len("README.md")] + "index.md"
        if path not in staged:
            return m.group(0)
        return f"[`{m.group(1)}`]({_relative(path, page_dir)})"

    def check(m):
        bang, label, target = m.groups()
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            return m.group(0)
        path, _, anchor = target.partition("#")
        full = os.path.normpath(os.path.join(page_dir, path)).replace(os.sep, "/")
        if full.endswith("README.md") and full[: -len("README.md")] + "index.md" in staged:
            return f"{bang}[{label}]({path[: -len('README.md')]}index.md" \
                   f"{'#' + anchor if anchor else ''})"
        if full in staged:
            return m.group(0)
        return label

    return _LINK.sub(check, _CODE_PATH.sub(linkify, text))


def _section(text: str, heading: str) -> str:
    """The body of the Markdown section ``heading`` (a whole heading line), up to the next
    heading of the same or a higher level; empty when there is none."""
    lines = text.splitlines()
    level = len(heading) - len(heading.lstrip("#"))
    try:
        start = lines.index(heading)
    except ValueError:
        return ""
    body = []
    for line in lines[start + 1:]:
        m = re.match(r"^(#+) ", line)
        if m and len(m.group(1)) <= level:
            break
        body.append(line)
    return "\n".join(body).strip()


def _cells(row: str) -> list[str]:
    """The cells of a Markdown table row (``\\|`` is a bar inside a cell)."""
    return [c.strip().replace("\\|", "|")
            for c in re.split(r"(?<!\\)\|", row.strip().strip("|"))]


def course_map(section: str) -> str:
    """The README's course map as the home page shows it: one subsection per lecture topic
    (a row of the table) listing its slides, derivation, notebook, library and tests, then
    the paragraphs that follow the table (up to the next heading)."""
    lines = section.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("|")), None)
    if start is None:
        return ""
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append(_cells(line))
    header, body = rows[0], [r for r in rows[2:] if len(r) == len(rows[0])]
    parts = []
    for row in body:
        parts += [f"### {row[0]}", ""]
        parts += [f"- **{name}**: {value}" for name, value in zip(header[1:], row[1:],
                                                                     strict=True)]
        parts.append("")
    after = []
    for line in lines[start + len(rows):]:
        if line.startswith("#"):
            break
        after.append(line)
    return "\n".join(parts + after).strip()


def _title(notebook: dict, fallback: str) -> str:
    for cell in notebook.get("cells", []):
        if cell.get("cell_type") == "markdown":
            source = "".join(cell.get("source", ""))
            m = re.search(r"^#\s+(.+)$", source, re.M)
            if m:
                return m.group(1).strip()
    return fallback


def _summary(notebook: dict) -> str:
    """The first sentence-like line of prose after the title and the slides line."""
    for cell in notebook.get("cells", []):
        if cell.get("cell_type") != "markdown":
            continue
        for line in "".join(cell.get("source", "")).splitlines():
            line = line.strip()
            if line and not line.startswith(("#", "**Slides", "|", "*Running", "```", "<")) \
                    and not re.match(r"^\*?\*?(Running|Time|Runs)", line):
                return line if len(line) < 240 else line[:237].rsplit(" ", 1)[0] + " …"
    return ""


def _results_markdown(root: Path, readme: str) -> tuple[str, dict[str, bytes]]:
    """The results page: the README's table of full runs, then each committed run in
    ``results/`` with its command, wall time, code version, headline numbers and figures.
    Returns the Markdown and the files to stage (site path -> bytes)."""
    parts, files = [], {}
    table = readme.split("**Full runs so far**", 1)
    if len(table) == 2:
        lines = table[1].splitlines()
        start = next((i for i, line in enumerate(lines) if line.startswith("|")), None)
        if start is not None:
            rows = []
            for line in lines[start:]:
                if not line.startswith("|"):
                    break
                rows.append(line)
            parts += ["## Summary of the full runs", "", *rows, ""]
    for folder in sorted(p for p in (root / "results").glob("*") if p.is_dir()):
        result_file = folder / "results.json"
        if not result_file.is_file():
            continue
        data = json.loads(result_file.read_text(encoding="utf-8"))
        name = folder.name
        parts += [f"## `{name}`", ""]
        facts = []
        if "command" in data:
            facts.append(f"- command: `{data['command']}`")
        if "wall_seconds" in data:
            facts.append(f"- wall time: {data['wall_seconds'] / 60:.1f} min")
        for key in ("code_version", "machine", "epochs", "seed", "backend", "units"):
            if key in data:
                facts.append(f"- {key.replace('_', ' ')}: {data[key]}")
        for key in ("final", "best_test"):
            if isinstance(data.get(key), dict):
                values = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                                   for k, v in data[key].items())
                facts.append(f"- {key.replace('_', ' ')}: {values}")
        site_json = f"results/{name}/results.json"
        files[site_json] = result_file.read_bytes()
        facts.append(f"- all the numbers: {{download}}`results.json <{site_json}>`")
        parts += [*facts, ""]
        for png in sorted(folder.glob("*.png")):
            site_png = f"results/{name}/{png.name}"
            files[site_png] = png.read_bytes()
            parts += [f"```{{figure}} {site_png}", f":alt: {name}: {png.stem}", "",
                      f"`{png.name}`", "```", ""]
    if not any(p.startswith("## `") for p in parts):
        parts.append("No full run is committed yet.")
    return "\n".join(parts), files


def _api_pages() -> dict[str, str]:
    """``api/index.md`` and one page per module of the library."""
    import scratchvae

    names = sorted(m.name for m in pkgutil.walk_packages(scratchvae.__path__, "scratchvae.")
                   if not m.name.endswith("__main__"))
    pages, rows = {}, []
    for name in ["scratchvae", *names]:
        doc = ""
        with contextlib.suppress(Exception):
            doc = (importlib.import_module(name).__doc__ or "").strip().split("\n\n")[0]
        # reST roles and literals of the first paragraph, as Markdown code
        doc = re.sub(r":[\w:]+:`~?([^`]*)`|``([^`]*)``", lambda m: f"`{m.group(1) or m.group(2)}`",
                     " ".join(doc.split())).replace("|", "\\|")
        rows.append(f"| [`{name}`]({name}.md) | {html.escape(doc, quote=False)} |")
        options = ":no-members:\n" if name == "scratchvae" else ""
        pages[f"api/{name}.md"] = (f"# `{name}`\n\n```{{eval-rst}}\n.. automodule:: {name}\n"
                                   f"{'   ' + options if options else ''}```\n")
    pages["api/index.md"] = "\n".join([
        "# API reference", "",
        "Generated from the docstrings of the library: array shapes, the formulas (rendered "
        "below as math) and the derivation each function implements. The objects most used "
        "are re-exported by the package: `scratchvae.VAE`, `scratchvae.AE`, "
        "`scratchvae.optim`, `scratchvae.gradcheck`.", "",
        "| module | what it holds |", "| --- | --- |", *rows, "",
        "```{toctree}", ":hidden:", ":maxdepth: 1", "",
        *["scratchvae", *names], "```", ""])
    return pages


def stage(root, src, only=None) -> list[Page]:
    """Write the site's sources into ``src``: the pages of ``docs/``, the notebooks as the
    site shows them, the notes, and the generated pages. Files whose content is unchanged
    are left alone (Sphinx then re-reads only what changed); stale ones are removed."""
    root, src = Path(root), Path(src)
    files: dict[str, bytes] = {}
    for path in sorted((root / "docs").rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            files[path.relative_to(root / "docs").as_posix()] = path.read_bytes()

    pages = [page_notebook(root, rel) for rel in find_notebooks(root, only)]
    for page in pages:
        files[page.rel.as_posix()] = (json.dumps(page.notebook, indent=1, ensure_ascii=False)
                                      + "\n").encode("utf-8")
    notes = {}
    for folder in FOLDERS:
        for name in ("README.md", *NOTES):
            if (root / folder / name).is_file():
                site = f"{folder}/{'index.md' if name == 'README.md' else name}"
                notes[site] = (root / folder / name).read_text(encoding="utf-8")
    by_folder = {folder: [p for p in pages if p.rel.parts[0] == folder] for folder in FOLDERS}
    if "notebooks/index.md" not in notes:
        rows = [f"| [{_title(p.notebook, p.rel.stem)}]({p.rel.relative_to('notebooks')}) | "
                f"{'student version · ' if p.student else ''}"
                f"{_summary(p.notebook).replace('|', chr(92) + '|')} |"
                for p in by_folder["notebooks"]]
        notes["notebooks/index.md"] = "\n".join([
            "# Course notebooks", "",
            "The lectures in code, in the order of the course: the autoencoder against the "
            "VAE, variational inference on a toy model, the VAE built layer by layer (with the "
            "exercises), training on MNIST, the GPU, PyTorch, and the applications. Each one "
            "was executed in quick mode when the site was built.", "",
            "| notebook | what it does |", "| --- | --- |", *rows, ""])
    staged = set(files) | set(notes) | {"index.md", "exercises.md", "results.md"}
    for site, text in notes.items():
        folder = site.split("/")[0]
        text = fix_links(text, folder, staged)
        if site.endswith("index.md"):
            docs = [p.rel.relative_to(folder).as_posix() for p in by_folder[folder]]
            text += "\n\n```{toctree}\n:hidden:\n:maxdepth: 1\n\n" + "\n".join(docs) + "\n```\n"
        files[site] = text.encode("utf-8")

    readme = (root / "README.md").read_text(encoding="utf-8")
    # The generated pieces replace the lines `% generated: NAME` of the pages of docs/ (all
    # at the site's root).
    lectures = course_map(_section(readme, "## The course map"))
    exercise_rows = [f"- [{_title(p.notebook, p.rel.stem)}]({p.rel.as_posix()})"
                     for p in pages if p.student]
    results, result_files = _results_markdown(root, readme)
    generated = {
        "course_map": lectures or "The course map is in `derivations/SLIDE_INDEX.md`.",
        "exercise_list": "\n".join(exercise_rows) or "No notebook with exercises is part of "
                                                    "this build.",
        "results": results,
    }
    for site in [s for s in files if s.endswith(".md") and "/" not in s]:
        text = re.sub(r"^% generated: (\w+)\s*$",
                      lambda m: fix_links(generated[m.group(1)], "", staged),
                      files[site].decode("utf-8"), flags=re.M)
        files[site] = text.encode("utf-8")
    files.update(result_files)
    files.update({k: v.encode("utf-8") for k, v in _api_pages().items()})

    src.mkdir(parents=True, exist_ok=True)
    for existing in sorted(src.rglob("*"), reverse=True):
        rel = existing.relative_to(src).as_posix()
        if existing.is_file() and rel not in files:
            existing.unlink()
        elif existing.is_dir() and not any(existing.iterdir()):
            existing.rmdir()
    for rel, data in files.items():
        target = src / rel
        if target.is_file() and target.read_bytes() == data:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return pages


# ----------------------------------------------------------------------------- build

def _check_out(out: Path) -> None:
    """Refuse an output folder that is not empty and was not written by this command."""
    if out.exists() and (not out.is_dir() or (any(out.iterdir())
                                              and not (out / MARKER).is_file())):
        raise FileExistsError(f"{out} is not empty and was not written by "
                              "scratchvae-course; choose another --out")


def _prepare_out(out: Path) -> None:
    """Empty the output folder (one this command wrote, see :func:`_check_out`)."""
    _check_out(out)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    (out / MARKER).write_text("built by scratchvae-course; replaced by the next build\n")


def build(out=None, root=None, only=None, cache=None, quiet=False) -> dict:
    """Build the site into ``out`` (default ``build/course``); return what was done:
    ``pages`` (HTML pages written), ``executed`` (notebook -> seconds, for those not found
    in the cache), ``cached`` (notebooks read from the cache), ``skipped`` (notebook ->
    missing packages), ``seconds`` (the whole build), ``warnings`` (Sphinx's count)."""
    from sphinx.application import Sphinx

    start = time.perf_counter()
    root = repository_root(root)
    out = Path(out) if out else root / "build" / "course"
    out = out.resolve()
    _check_out(out)
    cache = Path(cache) if cache else default_cache(root)
    src = out.parent / f"{out.name}-src"
    doctrees = out.parent / f"{out.name}-doctrees"

    def say(text):
        if not quiet:
            print(text, flush=True)

    pages = stage(root, src, only)
    executed, cached, skipped = {}, [], {}
    for page in pages:
        name = page.rel.as_posix()
        if page.missing:
            skipped[name] = page.missing
            say(f"  {name}: not executed, needs {', '.join(page.missing)}")
        elif is_cached(cache, page.notebook):
            cached.append(name)
        else:
            say(f"  {name}: executing in quick mode…")
            executed[name] = execute_into_cache(root, page, cache)
            say(f"  {name}: {executed[name]:.1f} s")
    say(f"notebooks: {len(cached)} from the cache, {len(executed)} executed, "
        f"{len(skipped)} shown without outputs")

    _prepare_out(out)
    overrides = {"nb_execution_cache_path": str(cache),
                 "nb_execution_excludepatterns": list(skipped)}
    with quick_kernel_environment(root):
        app = Sphinx(str(src), str(src), str(out), str(doctrees), "html",
                     confoverrides=overrides, status=None if quiet else sys.stdout,
                     warning=sys.stderr, freshenv=False, keep_going=True)
        app.build()
    if app.statuscode:
        raise RuntimeError(f"Sphinx failed (status {app.statuscode})")
    html_pages = sorted(p for p in out.rglob("*.html") if "_static" not in p.parts)
    seconds = time.perf_counter() - start
    warnings = getattr(app, "_warncount", None)
    say(f"built {len(html_pages)} pages in {seconds:.0f} s ({warnings} warnings): "
        f"{out / 'index.html'}")
    say(f"view it: open {out / 'index.html'} in a browser, or "
        f"python -m http.server -d {out} and http://localhost:8000/")
    return {"out": out, "pages": len(html_pages), "executed": executed, "cached": cached,
            "skipped": skipped, "seconds": seconds, "warnings": warnings}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="scratchvae-course",
                                     description="the course as a static website")
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="build the site (notebooks executed in quick mode, "
                       "cached)")
    b.add_argument("--out", default=None, help="output folder (default: build/course)")
    b.add_argument("--only", default=None, metavar="PATTERN",
                   help="only the notebooks whose path or name matches this glob, e.g. "
                        "'derivations/0[45]*' (for a quick look while writing)")
    b.add_argument("--cache", default=None, help="jupyter-cache folder of the executed "
                   "notebooks (default: build/jupyter_cache)")
    b.add_argument("--root", default=None, help="the repository (default: the current "
                   "folder, else the checkout of this package)")
    b.add_argument("--quiet", action="store_true", help="print only warnings and errors")
    args = parser.parse_args(argv)
    try:
        build(out=args.out, root=args.root, only=args.only, cache=args.cache,
              quiet=args.quiet)
    except ImportError as err:
        print(f"scratchvae-course: {err}; install the site's packages: "
              "pip install -e \".[site]\"", file=sys.stderr)
        return 2
    except (FileNotFoundError, FileExistsError) as err:
        print(f"scratchvae-course: error: {err}", file=sys.stderr)
        return 2
    except RuntimeError as err:
        print(f"scratchvae-course: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
