"""The API reference (docs/api.rst) lists every public name of the package."""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

import sklearn_fhe

API_PAGE = Path(__file__).resolve().parents[1] / "docs" / "api.rst"


def public_names() -> list[tuple[str, str]]:
    """(module, name) for every name of sklearn_fhe.__all__ and of each submodule's __all__."""
    names = [("sklearn_fhe", name) for name in sklearn_fhe.__all__]
    for info in pkgutil.walk_packages(sklearn_fhe.__path__, "sklearn_fhe."):
        if info.name.endswith(".__main__"):  # the command line: importing it runs it
            continue
        module = importlib.import_module(info.name)
        names += [(info.name, name) for name in getattr(module, "__all__", [])]
    return names


def documented_entries(text: str) -> set[str]:
    """Fully qualified names listed in the autosummary blocks of ``text``."""
    entries, module, in_summary = set(), None, False
    for line in text.splitlines():
        current = re.match(r"\.\. currentmodule:: (\S+)", line)
        if current:
            module = current.group(1)
        if line.startswith(".. autosummary::"):
            in_summary = True
            continue
        if in_summary:
            if line and not line.startswith(" "):
                in_summary = False
            elif line.strip() and not line.strip().startswith(":"):
                entries.add(f"{module}.{line.strip()}")
    return entries


def resolve(qualified: str):
    module, _, name = qualified.rpartition(".")
    return getattr(importlib.import_module(module), name)


def test_every_public_name_is_in_the_api_reference():
    entries = documented_entries(API_PAGE.read_text())
    documented_objects = {id(resolve(entry)) for entry in entries}
    missing = [
        f"{module}.{name}"
        for module, name in public_names()
        if f"{module}.{name}" not in entries
        # a re-export (sklearn_fhe.X is sklearn_fhe.linear_model.X) is documented once;
        # numbers and strings are compared by name only
        and not (
            not isinstance(getattr(importlib.import_module(module), name), (int, float, str))
            and id(getattr(importlib.import_module(module), name)) in documented_objects
        )
    ]
    assert not missing, f"add these public names to docs/api.rst: {missing}"


def test_the_api_reference_lists_only_existing_names():
    for entry in documented_entries(API_PAGE.read_text()):
        resolve(entry)  # raises if docs/api.rst names something that does not exist
