"""The documentation lists every public name and documents every method.

The HTML checks read ``docs/_build/html`` when it exists (CI builds it just
before running this file); otherwise they build the docs into a temporary
directory without running the gallery, or skip when the docs requirements
(``pip install ".[docs]"``) are missing.
"""

import importlib.util
import inspect
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import skfal

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
API = DOCS / "api.rst"
BUILT = DOCS / "_build" / "html"
DOCS_REQUIREMENTS = ("sphinx", "numpydoc", "sphinx_gallery", "pydata_sphinx_theme")

PUBLIC = [name for name in skfal.__all__ if name != "__version__"]
CLASSES = [name for name in PUBLIC if inspect.isclass(getattr(skfal, name))]
FUNCTIONS = [name for name in PUBLIC if name not in CLASSES]


def public_methods(cls):
    """Every public method of ``cls``, inherited ones included."""
    return sorted(
        name
        for name, member in inspect.getmembers(cls)
        if not name.startswith("_") and callable(member) and not inspect.isclass(member)
    )


def test_every_public_name_is_documented():
    listed = {line.strip() for line in API.read_text().splitlines()}
    missing = [name for name in PUBLIC if name not in listed]
    assert not missing, f"add {missing} to docs/api.rst"


@pytest.fixture(scope="module")
def html(tmp_path_factory):
    """The built HTML: ``docs/_build/html``, or a fresh build without the gallery."""
    if BUILT.is_dir():
        return BUILT
    missing = [m for m in DOCS_REQUIREMENTS if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f'no docs build and no {", ".join(missing)}: pip install ".[docs]"')
    # Build a copy of the sources, so that the files autosummary and
    # sphinx-gallery generate (docs/generated, docs/auto_examples) are not
    # replaced by those of a build whose examples did not run.
    tmp = tmp_path_factory.mktemp("docs")
    ignore = shutil.ignore_patterns("_build", "generated", "auto_examples")
    shutil.copytree(DOCS, tmp / "docs", ignore=ignore)
    shutil.copytree(ROOT / "examples", tmp / "examples", ignore=ignore)
    command = [sys.executable, "-m", "sphinx", "-q", "-b", "html"]
    command += ["-D", "plot_gallery=0", str(tmp / "docs"), str(tmp / "html")]
    build = subprocess.run(command, capture_output=True, text=True)
    assert build.returncode == 0, build.stdout + build.stderr
    return tmp / "html"


def anchors(page):
    assert page.is_file(), f"{page} was not built"
    return set(re.findall(r'\bid="([^"]+)"', page.read_text(encoding="utf-8")))


@pytest.mark.parametrize("name", CLASSES)
def test_every_public_method_has_an_anchor(html, name):
    cls = getattr(skfal, name)
    methods = public_methods(cls)
    assert methods, f"{name} has no public method?"
    ids = anchors(html / "generated" / f"skfal.{name}.html")
    assert f"skfal.{name}" in ids
    missing = [m for m in methods if f"skfal.{name}.{m}" not in ids]
    assert not missing, (
        f"generated/skfal.{name}.html documents no {missing}: "
        "docs/_templates/class.rst must document every member "
        "(rebuild the docs, or delete docs/_build, if this build is stale)"
    )


@pytest.mark.parametrize("name", FUNCTIONS)
def test_every_public_function_has_an_anchor(html, name):
    assert f"skfal.{name}" in anchors(html / "generated" / f"skfal.{name}.html")


def test_front_page_example_runs():
    """The front page's example block runs as written."""
    text = (DOCS / "index.rst").read_text()
    match = re.search(r"\.\. code-block:: python\n\n((?:   .*\n|\n)+)", text)
    assert match, "docs/index.rst has no python example"
    code = "\n".join(line[3:] for line in match.group(1).splitlines())
    namespace = {}
    exec(compile(code, str(DOCS / "index.rst"), "exec"), namespace)
    assert namespace["reg"].n_queries_ == 100
    assert np.allclose(namespace["reg"].coef_, np.arange(1, 6), atol=0.3)
