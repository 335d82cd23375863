"""The runtime dependencies declared in pyproject.toml are the packages sklearn_fhe imports.

A declared dependency nothing imports costs every user an install; an imported package nobody
declared works only where it happens to be installed. Packages of an optional extra may only be
imported inside functions (so that ``import sklearn_fhe`` works without them).
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
from pathlib import Path

import pytest

from .conftest import REPO

tomllib = pytest.importorskip("tomllib" if sys.version_info >= (3, 11) else "tomli")

PACKAGE = REPO / "sklearn_fhe"

#: Declared runtime requirements that are version constraints for a dependency's own imports,
#: not imported by sklearn_fhe itself. Each needs a reason.
CONSTRAINT_ONLY = {
    "setuptools": "concrete-python imports pkg_resources, which setuptools 81 removed",
}


def normalized(name: str) -> str:
    """A distribution name as PEP 503 compares them."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    return normalized(re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement).group(1))


def project_table() -> dict:
    with open(REPO / "pyproject.toml", "rb") as file:
        return tomllib.load(file)["project"]


def imported_modules() -> dict[str, bool]:
    """Top-level module → whether some module of the package imports it at module level
    (False: only inside functions), over every module of sklearn_fhe."""
    found: dict[str, bool] = {}
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        top_level = {id(node) for node in tree.body}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                root = name.split(".")[0]
                found[root] = found.get(root, False) or id(node) in top_level
    return found


def third_party(modules: dict[str, bool]) -> dict[str, bool]:
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    return {name: eager for name, eager in modules.items()
            if name not in stdlib and name != PACKAGE.name}


def distributions_of(module: str) -> set[str]:
    """Distributions installing the top-level module (from the installed metadata)."""
    mapping = importlib.metadata.packages_distributions()
    if module not in mapping:
        pytest.fail(f"sklearn_fhe imports {module!r}, which no installed distribution provides.")
    return {normalized(name) for name in mapping[module]}


def test_every_runtime_dependency_is_imported():
    declared = {requirement_name(r) for r in project_table()["dependencies"]}
    provided = set().union(*(distributions_of(m) for m in third_party(imported_modules())))
    unused = declared - provided - set(CONSTRAINT_ONLY)
    assert not unused, (
        f"Runtime dependencies {sorted(unused)} are declared in pyproject.toml but no module of "
        "sklearn_fhe imports them: move them to the extra that uses them."
    )
    assert set(CONSTRAINT_ONLY) <= declared, "CONSTRAINT_ONLY names an undeclared requirement"


def test_every_imported_package_is_declared():
    project = project_table()
    runtime = {requirement_name(r) for r in project["dependencies"]}
    extras = {
        requirement_name(r)
        for name, requirements in project.get("optional-dependencies", {}).items()
        if name != "test"
        for r in requirements
    }
    for module, eager in third_party(imported_modules()).items():
        distributions = distributions_of(module)
        if distributions & runtime:
            continue
        assert distributions & extras, (
            f"sklearn_fhe imports {module!r} (from {sorted(distributions)}), which pyproject.toml "
            "declares neither as a runtime dependency nor in an optional extra."
        )
        assert not eager, (
            f"{module!r} belongs to an optional extra but is imported at module level: import it "
            "inside the function that needs it, so sklearn_fhe imports without it."
        )


def test_hummingbird_is_a_test_dependency_only():
    project = project_table()
    assert "hummingbird-ml" not in {requirement_name(r) for r in project["dependencies"]}
    assert "hummingbird-ml" in {
        requirement_name(r) for r in project["optional-dependencies"]["test"]
    }
