"""Sphinx configuration for the skfal documentation.

Build: ``pip install ".[docs]"`` then
``sphinx-build -W -b html docs docs/_build/html``. Offline by design: no
remote intersphinx inventory is fetched (set ``SKFAL_DOCS_ONLINE=1`` to link
to the NumPy, SciPy and scikit-learn docs when a network is available).
"""

import os

import skfal

project = "skfal"
author = "the skfal developers"
copyright = "2026, the skfal developers"
release = skfal.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]
autosummary_generate = True
numpydoc_show_class_members = False
templates_path = []
exclude_patterns = ["_build", "auto_examples/*.ipynb", "auto_examples/*.py"]
html_theme = "pydata_sphinx_theme"
html_theme_options = {"navigation_with_keys": False}

sphinx_gallery_conf = {
    "examples_dirs": ["../examples"],
    "gallery_dirs": ["auto_examples"],
    "filename_pattern": r"/(plot_|quickstart)",  # run these; show others as code
    "abort_on_example_error": True,
    "download_all_examples": False,
    "remove_config_comments": True,
}

if os.environ.get("SKFAL_DOCS_ONLINE"):
    extensions.append("sphinx.ext.intersphinx")
    intersphinx_mapping = {
        "numpy": ("https://numpy.org/doc/stable/", None),
        "scipy": ("https://docs.scipy.org/doc/scipy/", None),
        "sklearn": ("https://scikit-learn.org/stable/", None),
    }
