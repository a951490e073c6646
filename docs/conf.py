"""Sphinx configuration for the skfal documentation."""

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
]
autosummary_generate = True
numpydoc_show_class_members = False
# Remote intersphinx inventories cannot be fetched offline; left out on purpose.
templates_path = []
exclude_patterns = ["_build"]
html_theme = "pydata_sphinx_theme"
