"""Sphinx configuration of the course website (built by ``scratchvae-course build``).

The pages are staged by :mod:`scratchvae.course_site` into a source folder next to the
output: this file, the hand-written pages beside it, the notebooks (exercise notebooks in
their student version) and the generated pages. Notebooks are executed in quick mode before
Sphinx runs and read back from the jupyter-cache whose folder the builder passes as
``nb_execution_cache_path``.
"""

project = "scratchvae"
author = "the scratchvae course"
copyright = "the scratchvae course"

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    # MathJax 3 served from the site's own _static/mathjax/ (never from a CDN)
    "sphinx-mathjax-offline",
]

exclude_patterns = ["_build", "**.ipynb_checkpoints"]
root_doc = "index"
language = "en"

# Markdown: $...$ and $$...$$ math, anchors for headings (links such as `notebook.ipynb#x`).
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 4
# `$$...$$` inside a paragraph is display math, as in Jupyter.
myst_dmath_double_inline = True
suppress_warnings = ["myst.header", "misc.highlighting_failure"]

# Notebooks: read from the jupyter-cache (the builder fills it, in quick mode).
nb_execution_mode = "cache"
nb_execution_raise_on_error = True
nb_execution_timeout = 600
nb_execution_show_tb = True
nb_merge_streams = True
nb_ipywidgets_js = {}  # no widgets in the course; nothing loaded from a CDN

# The API reference from the NumPy-style docstrings.
autodoc_mock_imports = ["cupy", "cupyx"]
autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "show-inheritance": True}
napoleon_numpy_docstring = True
napoleon_google_docstring = False
napoleon_use_rtype = False

html_theme = "sphinx_book_theme"
html_title = "scratchvae · the VAE from scratch"
html_static_path = ["_static"]
html_favicon = "_static/favicon.svg"
html_last_updated_fmt = None
html_copy_source = False
html_show_sourcelink = False
html_theme_options = {
    "show_toc_level": 2,
    "home_page_in_toc": True,
    "use_download_button": False,
    "use_fullscreen_button": False,
    "use_repository_button": False,
    "navigation_with_keys": False,
    "search_bar_text": "Search the course…",
}
# The theme's colour mode when the reader has not chosen one (an empty one is an error).
html_context = {"default_mode": "light"}
