"""The course website, built and read as a reader reads it: in a real browser.

The site is built once per session (``scratchvae-course build`` into ``build/course/``;
notebooks already executed by ``tests/test_notebooks.py`` in the same run are read from the
shared jupyter-cache instead of being executed again), served by Python's ``http.server``
and opened page by page in headless Chromium (the system's package, driven by Playwright).
Every page must load without a JavaScript error and without a request leaving the site;
every equation must be typeset by the MathJax the site serves itself; every image must
load; every internal link must reach a file of the site, and its ``#anchor`` an element of
that page. The search page must find "reparameterization", and the site must work opened
from disk as well. Screenshots of the home page and of a derivation page are written to
``build/screenshots/``.

The test needs the ``site`` extra (``pip install -e ".[site]"``) and a Chromium
(``apt-get install chromium`` on Debian; ``SCRATCHVAE_CHROMIUM`` names another binary); it
skips, saying which is missing, where they cannot be had. It is marked ``slow``
(``-m "not slow"`` deselects it). ``SCRATCHVAE_SITE_ONLY=GLOB`` builds only the notebooks
matching the glob (``scratchvae-course build --only``), for a quick run while writing.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import re
import shutil
import threading
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from scratchvae.student import has_solutions

pytestmark = [
    pytest.mark.slow,
    # Sphinx's notices to its extensions about its next major version are not ours to fix
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::PendingDeprecationWarning"),
]

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "build" / "course"
SHOTS = ROOT / "build" / "screenshots"
BROWSERS = ("chromium", "chromium-browser", "google-chrome")
#: Raw TeX left in the visible text: \( \) \[ \] or $...$ (code and typeset math excluded).
RAW_MATH = re.compile(r"\\\(|\\\)|\\\[|\\\]|\$[^$\s][^$]*\$|\\begin\{")

PAGE_STATE_JS = """async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    await MathJax.startup.promise;
  }
  const images = Array.from(document.images);
  for (const img of images) { img.loading = "eager"; }
  await Promise.all(images.map(img => img.complete ? null : new Promise(done => {
    img.addEventListener("load", done); img.addEventListener("error", done);
    setTimeout(done, 10000);
  })));
  const skip = "pre, code, script, style, textarea, mjx-container, .MathJax";
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const texts = [];
  while (walker.nextNode()) {
    const node = walker.currentNode;
    const parent = node.parentElement;
    if (!parent || parent.closest(skip)) continue;
    if (!parent.getClientRects().length) continue;  // not displayed
    texts.push(node.textContent);
  }
  const math = Array.from(document.querySelectorAll(".math"));
  return {
    text: texts.join(" "),
    math: math.length,
    untypeset: math.filter(el => !el.querySelector("mjx-container"))
                   .map(el => el.textContent.slice(0, 80)),
    typeset: document.querySelectorAll("mjx-container").length,
    brokenImages: images.filter(img => !(img.complete && img.naturalWidth > 0))
                        .map(img => img.getAttribute("src")),
    images: images.length,
    links: Array.from(document.querySelectorAll("a[href]")).map(a => a.href),
  };
}"""


class _Ids(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids = set()

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("id", "name") and value:
                self.ids.add(value)


@functools.cache
def _ids(path: Path) -> frozenset:
    parser = _Ids()
    parser.feed(path.read_text(encoding="utf-8", errors="replace"))
    return frozenset(parser.ids)


def _chromium() -> str | None:
    named = os.environ.get("SCRATCHVAE_CHROMIUM")
    if named:
        return named
    return next((found for name in BROWSERS if (found := shutil.which(name))), None)


@pytest.fixture(scope="session")
def site():
    """Build the site once; return the builder's summary."""
    for module in ("sphinx", "myst_nb", "jupyter_cache", "sphinx_book_theme"):
        pytest.importorskip(module, reason=f"the site needs {module}: pip install -e \".[site]\"")
    from scratchvae.course_site import build

    summary = build(out=OUT, root=ROOT, quiet=True, only=os.environ.get("SCRATCHVAE_SITE_ONLY"))
    print(f"site: {summary['pages']} pages in {summary['seconds']:.0f} s; notebooks "
          f"{len(summary['cached'])} from the cache, {len(summary['executed'])} executed, "
          f"{len(summary['skipped'])} without outputs; {summary['warnings']} Sphinx warnings")
    return summary


@pytest.fixture(scope="session")
def browser():
    """Headless Chromium from the system's package manager, driven by Playwright."""
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="pip install -e \".[site]\" (Playwright)")
    executable = _chromium()
    if executable is None:
        pytest.skip("no Chromium found (apt-get install chromium; or set "
                    "SCRATCHVAE_CHROMIUM to a Chromium binary)")
    with sync_api.sync_playwright() as playwright:
        try:
            chromium = playwright.chromium.launch(executable_path=executable,
                                                  args=["--no-sandbox"])
        except Exception as err:  # a browser that does not start cannot test anything
            pytest.skip(f"Chromium at {executable} does not start: {str(err)[:300]}")
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def server(site):
    """The built site served over HTTP, as by ``python -m http.server -d build/course``."""
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(OUT))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()


class Reader:
    """One browser tab that records what went wrong while a page was read."""

    def __init__(self, browser, base: str):
        self.base = base
        self.page = browser.new_page(viewport={"width": 1400, "height": 900})
        self.problems: list[str] = []
        self.page.on("console", lambda m: self.problems.append(f"console {m.type}: {m.text}")
                     if m.type in ("error", "assert") else None)
        self.page.on("pageerror", lambda err: self.problems.append(f"JavaScript error: {err}"))
        self.page.on("requestfailed", lambda r: self.problems.append(
            f"request failed: {r.url} ({r.failure})"))
        self.page.on("response", lambda r: self.problems.append(f"HTTP {r.status}: {r.url}")
                     if r.status >= 400 else None)
        self.page.on("request", lambda r: None if r.url.startswith((base, "data:", "blob:"))
                     else self.problems.append(f"request outside the site: {r.url}"))

    def read(self, url: str) -> dict:
        self.problems.clear()
        self.page.goto(url, wait_until="load")
        state = self.page.evaluate(PAGE_STATE_JS)
        self.page.wait_for_timeout(50)  # let late console messages arrive
        state["problems"] = list(self.problems)
        return state


def _pages() -> list[Path]:
    return sorted(p for p in OUT.rglob("*.html") if "_static" not in p.relative_to(OUT).parts)


def _link_problem(href: str, base: str, out: Path = OUT) -> str | None:
    """What is wrong with an internal link (``None`` when it resolves or is external):
    ``base`` is the URL of the site's root, ``out`` its folder."""
    if not href.startswith(base):
        return None
    parts = urlsplit(href)
    path = unquote(parts.path)[len(urlsplit(base).path):]
    target = out / path
    if path == "" or path.endswith("/"):
        target = target / "index.html"
    if not target.is_file():
        return f"link to a missing file: {href}"
    anchor = unquote(parts.fragment)
    if anchor and target.suffix == ".html" and anchor not in _ids(target):
        return f"link to a missing anchor: {href}"
    return None


def _check_state(state: dict, base: str) -> list[str]:
    problems = list(state["problems"])
    raw = RAW_MATH.findall(state["text"])
    if raw:
        problems.append(f"raw TeX in the visible text: {sorted(set(raw))[:5]}")
    if state["untypeset"]:
        problems.append(f"{len(state['untypeset'])} of {state['math']} equations not typeset,"
                        f" e.g. {state['untypeset'][:2]}")
    if state["math"] and not state["typeset"]:
        problems.append("math on the page but no MathJax output")
    problems += [f"image not loaded: {src}" for src in state["brokenImages"]]
    problems += [p for href in dict.fromkeys(state["links"])
                 if (p := _link_problem(href, base))]
    return problems


def test_the_checks_catch_what_they_look_for(tmp_path):
    """The link and raw-math checks, on a page made for them (no build, no browser)."""
    (tmp_path / "a.html").write_text('<h1 id="top">A</h1>', encoding="utf-8")
    base = "http://127.0.0.1:1/"
    assert _link_problem(base + "a.html#top", base, tmp_path) is None
    assert _link_problem("https://example.org/x.html", base, tmp_path) is None
    assert "missing file" in _link_problem(base + "b.html", base, tmp_path)
    assert "missing anchor" in _link_problem(base + "a.html#bottom", base, tmp_path)
    for raw in ("the bound $p(x)$ holds", r"so \(x\) is", r"\[ x \]", r"\begin{align}"):
        assert RAW_MATH.search(raw), raw
    for prose in ("costs 5 dollars", "x | y", "a (b) [c]"):
        assert not RAW_MATH.search(prose), prose


def test_the_site_builds(site):
    assert site["pages"] > 10, site
    assert (OUT / "index.html").is_file()
    assert (OUT / "_static" / "mathjax" / "tex-chtml.js").is_file(), \
        "MathJax is not bundled into _static/mathjax/"


def test_every_page_reads_well_in_the_browser(site, browser, server):
    reader = Reader(browser, server)
    failures, math_pages, equations, images = {}, 0, 0, 0
    pages = _pages()
    for page_file in pages:
        rel = page_file.relative_to(OUT).as_posix()
        state = reader.read(server + rel)
        math_pages += bool(state["math"])
        equations += state["typeset"]
        images += state["images"]
        problems = _check_state(state, server)
        if problems:
            failures[rel] = problems
    print(f"{len(pages)} pages read; {equations} equations typeset on {math_pages} pages; "
          f"{images} images")
    assert not failures, "\n".join(f"{page}:\n  " + "\n  ".join(problems[:8])
                                   for page, problems in failures.items())
    assert math_pages and equations, "no page has any typeset math"
    assert images, "no page has any image"


def test_the_search_finds_reparameterization(site, browser, server):
    reader = Reader(browser, server)
    reader.read(server + "search.html")
    box = reader.page.locator("input[name='q']:visible").first
    box.fill("reparameterization")
    box.press("Enter")
    reader.page.wait_for_selector("#search-results ul.search li", timeout=30_000)
    reader.page.wait_for_function(
        "() => !document.querySelector('#search-results .search-summary') || "
        "document.querySelector('#search-results .search-summary').textContent.trim()")
    results = reader.page.eval_on_selector_all(
        "#search-results ul.search li a", "links => links.map(a => a.href)")
    assert results, "the search found nothing"
    for href in results:
        assert _link_problem(href, server) is None, href
    wanted = [p for p in (OUT / "derivations").glob("*reparameterization*.html")]
    for page_file in wanted:  # the derivation of the trick itself, when it was built
        assert any(href.split("#")[0].endswith(page_file.name) for href in results), results
    assert not reader.problems, reader.problems


def test_the_site_opens_from_disk_and_screenshots(site, browser):
    """Opened from files (no server): the home page and a derivation page read as well,
    and their screenshots are written to build/screenshots/."""
    base = OUT.as_uri() + "/"
    reader = Reader(browser, base)
    derivations = sorted((OUT / "derivations").glob("0*.html"))
    assert derivations, "no derivation page was built"
    derivation = next((p for p in derivations if "reparameterization" in p.name),
                      derivations[0])
    SHOTS.mkdir(parents=True, exist_ok=True)
    for page_file, shot in ((OUT / "index.html", "home.png"), (derivation, "derivation.png")):
        state = reader.read(page_file.as_uri())
        problems = _check_state(state, base)
        assert not problems, f"{page_file.name} from disk:\n" + "\n".join(problems)
        reader.page.screenshot(path=str(SHOTS / shot))
        assert (SHOTS / shot).stat().st_size > 10_000
    assert state["typeset"] > 10, "the derivation page shows too few typeset equations"


def test_exercise_pages_show_the_student_version(site, browser, server):
    exercise = [p for p in sorted((ROOT / "notebooks").glob("*.ipynb"))
                if has_solutions(json.loads(p.read_text(encoding="utf-8")))
                and (OUT / "notebooks" / f"{p.stem}.html").is_file()]
    if not exercise:
        pytest.skip("no notebook with exercises")
    reader = Reader(browser, server)
    for source in exercise:
        state = reader.read(f"{server}notebooks/{source.stem}.html")
        text = reader.page.inner_text("main")
        assert "### BEGIN SOLUTION" not in text
        assert "NotImplementedError" in text and "not implemented" in text, source.name
        assert "scratchvae exercises --out" in text, source.name
        assert not state["problems"], state["problems"]
