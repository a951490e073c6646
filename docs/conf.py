"""Sphinx configuration for the skfal documentation.

Build: ``pip install ".[docs]"`` then
``sphinx-build -W -b html docs docs/_build/html`` (add ``-j auto`` to run the
gallery's examples on every core, as CI does). Offline by design: no
remote intersphinx inventory is fetched (set ``SKFAL_DOCS_ONLINE=1`` to link
to the NumPy, SciPy and scikit-learn docs when a network is available).
"""

import os

import sphinx_gallery
from packaging.version import Version
from sphinx_gallery.sorting import ExplicitOrder

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
# Class pages come from _templates/class.rst: autodoc documents every method
# (inherited ones included), so numpydoc's own member tables are off.
templates_path = ["_templates"]
numpydoc_show_class_members = False
exclude_patterns = ["_build", "auto_examples/*.ipynb", "auto_examples/*.py"]
html_theme = "pydata_sphinx_theme"
html_title = f"skfal {release}"  # the navbar's; the default crowds it below 1100 px
# "On this page" lists each method of an API page, as fit() rather than
# FederatedActiveRegressor.fit().
html_theme_options = {"navigation_with_keys": False, "show_toc_level": 2}
toc_object_entries_show_parents = "hide"
html_static_path = ["_static"]
html_css_files = ["skfal.css"]


sphinx_gallery_conf = {
    "examples_dirs": ["../examples"],
    "gallery_dirs": ["auto_examples"],
    "filename_pattern": r"/(plot_|quickstart)",  # run these; show others as code
    "abort_on_example_error": True,
    "download_all_examples": False,
    # the quick start first, then by topic; any new example after these
    "within_subsection_order": ExplicitOrder(
        [
            "quickstart.py",
            "plot_fale_diamonds.py",
            "plot_samplers_diamonds.py",
            "plot_grid_search_budget.py",
            "plot_communication.py",
            "*",
        ]
    ),
    "remove_config_comments": True,
    # "Examples using X" on each API page (the templates' minigallery)
    "doc_module": ("skfal",),
    "backreferences_dir": "generated/backreferences",
}
if Version(sphinx_gallery.__version__) >= Version("0.17"):
    # The examples run in as many processes as sphinx-build's -j gives (one
    # without -j): most of the build's time, each example on its own.
    sphinx_gallery_conf["parallel"] = True

# Methods inherited from scikit-learn (get_params, set_output, set_fit_request,
# ...) bring docstrings that cross-reference scikit-learn's own user guide and
# glossary, which this offline build has no inventory for. Link those to
# scikit-learn.org (glossary terms and the few labels below) or, for any
# other label, keep the link text; references from skfal's own docstrings and
# pages are left alone, so -W still catches a broken one.
SKLEARN = "https://scikit-learn.org/stable/"
SKLEARN_LABELS = {
    "metadata_routing": "metadata_routing.html",
    "sphx_glr_auto_examples_miscellaneous_plot_set_output.py": (
        "auto_examples/miscellaneous/plot_set_output.html"
    ),
}


def _link_sklearn_references(app, env, node, contnode):
    from docutils import nodes

    if "docstring of sklearn." not in (node.source or ""):
        return None
    target, kind = node.get("reftarget", ""), node.get("reftype")
    if kind == "term":
        uri = f"{SKLEARN}glossary.html#term-{nodes.make_id(target)}"
    elif kind == "ref" and target in SKLEARN_LABELS:
        uri = SKLEARN + SKLEARN_LABELS[target]
    elif kind == "ref":
        return contnode
    else:
        return None
    reference = nodes.reference("", "", internal=False, refuri=uri)
    reference += contnode
    return reference


def setup(app):
    app.connect("missing-reference", _link_sklearn_references)


if os.environ.get("SKFAL_DOCS_ONLINE"):
    extensions.append("sphinx.ext.intersphinx")
    intersphinx_mapping = {
        "numpy": ("https://numpy.org/doc/stable/", None),
        "scipy": ("https://docs.scipy.org/doc/scipy/", None),
        "sklearn": ("https://scikit-learn.org/stable/", None),
    }
