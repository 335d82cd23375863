"""Sphinx configuration of the sklearn_fhe documentation.

Build (from the repository root): ``sphinx-build -W -b html docs docs/_build/html``
"""

import sys
from pathlib import Path

import sklearn_fhe

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

project = "sklearn_fhe"
author = "sklearn_fhe developers"
copyright = "sklearn_fhe developers"
release = version = sklearn_fhe.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

# API reference: one page per public object, generated from its numpydoc docstring
autosummary_generate = True
autodoc_default_options = {"members": True}
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False

sphinx_gallery_conf = {
    "examples_dirs": str(ROOT / "examples"),
    "gallery_dirs": "auto_examples",
    # every example runs during the build; they use "simulate" or a few encrypted rows
    "filename_pattern": r".*\.py$",
    "remove_config_comments": True,
    "download_all_examples": False,
    "within_subsection_order": "FileNameSortKey",
}

html_theme = "pydata_sphinx_theme"
html_title = "sklearn_fhe"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
}
html_static_path = []
templates_path = ["_templates"]
exclude_patterns = ["_build", "auto_examples/*.ipynb", "auto_examples/*.py",
                    "auto_examples/*.zip", "auto_examples/*.json", "auto_examples/*.md5"]


def skip_foreign_members(app, what, name, obj, skip, options):
    """Document the members sklearn_fhe defines (its own and those its mixin shares); leave
    the methods inherited from scikit-learn, skorch and torch (``get_params``, ``score``, the
    ``set_*_request`` of metadata routing...) to their own documentation."""
    if what != "class":
        return None
    function = getattr(obj, "fget", obj)  # a property documents its getter
    module = getattr(function, "__module__", None) or ""
    if not module.startswith("sklearn_fhe"):
        return True
    return None


def setup(app):
    app.connect("autodoc-skip-member", skip_foreign_members)
