"""The numpy and concrete-python versions sklearn_fhe works with, checked at import.

An incompatible version does not fail where it is installed but deep inside concrete at predict
time (numpy 2: ``RuntimeError: Values can only be constructed from arrays of signed and
unsigned integers.``). ``check_dependencies`` runs first thing in ``sklearn_fhe/__init__.py``,
before anything imports concrete, and raises one ``ImportError`` naming the installed versions,
the required ranges and the ``pip install`` command that fixes them.

Versions are compared on their release numbers (``2.1.0rc1`` is ``2.1.0``) by a small parser:
``packaging`` is not a dependency of sklearn_fhe nor of the packages it needs.
"""

from __future__ import annotations

import importlib.metadata
import re
from typing import Optional

#: Requirements checked at import, in pyproject.toml's spelling (tests/test_import_checks.py
#: keeps the two in step), with why they matter. Only ``>=``, ``>``, ``<=`` and ``<`` are
#: understood.
REQUIREMENTS = {
    "numpy": (
        ">=1.23,<2",
        "concrete-python 2.x is built against numpy 1.x: with numpy 2 encryption fails inside "
        "concrete",
    ),
    "concrete-python": (">=2.8", "the oldest release sklearn_fhe supports"),
}

_OPERATORS = {
    ">=": lambda a, b: a >= b,
    ">": lambda a, b: a > b,
    "<=": lambda a, b: a <= b,
    "<": lambda a, b: a < b,
}


def release(version: str) -> tuple[int, ...]:
    """The release numbers of ``version`` without trailing zeros (``"2.0.1rc1"`` → ``(2, 0, 1)``,
    ``"2.0"`` → ``(2,)``), so that ``2`` and ``2.0.0`` compare equal."""
    match = re.match(r"\s*v?(\d+(?:\.\d+)*)", version)
    if match is None:
        raise ValueError(f"Cannot read the version {version!r}: expected numbers like '1.26.4'.")
    numbers = [int(part) for part in match.group(1).split(".")]
    while len(numbers) > 1 and numbers[-1] == 0:
        numbers.pop()
    return tuple(numbers)


def satisfies(version: str, specifier: str) -> bool:
    """Whether ``version`` meets every clause of ``specifier`` (e.g. ``">=1.23,<2"``)."""
    installed = release(version)
    for clause in specifier.split(","):
        match = re.fullmatch(r"\s*(>=|<=|>|<)\s*(\d[\w.+!-]*)\s*", clause)
        if match is None:
            raise ValueError(
                f"Unsupported requirement clause {clause!r} in {specifier!r}: use >=, >, <= or <."
            )
        operator, bound = match.groups()
        if not _OPERATORS[operator](installed, release(bound)):
            return False
    return True


def installed_version(distribution: str) -> Optional[str]:
    """The version of ``distribution`` that ``import`` will load, ``None`` if not installed.

    numpy's comes from the module itself (cheap, and always the one imported); other
    distributions' from their metadata, so that checking concrete does not import it.
    """
    if distribution == "numpy":
        import numpy

        return numpy.__version__
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def problems() -> dict[str, str]:
    """Distribution → what is wrong with it, for each requirement not met."""
    found = {}
    for distribution, (specifier, reason) in REQUIREMENTS.items():
        version = installed_version(distribution)
        if version is None:
            found[distribution] = f"{distribution} is not installed (needed: {specifier})."
        elif not satisfies(version, specifier):
            found[distribution] = (
                f"{distribution} {version} is installed, sklearn_fhe needs "
                f"{distribution}{specifier} ({reason})."
            )
    return found


def check_dependencies() -> None:
    """Raise one ``ImportError`` listing every requirement of ``REQUIREMENTS`` not met.

    Raises
    ------
    ImportError
        Naming each installed version, the required range and the ``pip install`` command
        that installs compatible versions.
    """
    found = problems()
    if not found:
        return
    fix = " ".join(f'"{name}{REQUIREMENTS[name][0]}"' for name in found)
    raise ImportError(
        "sklearn_fhe cannot run with the installed packages:\n"
        + "".join(f"  - {message}\n" for message in found.values())
        + f"Fix: pip install {fix}\n"
        "If pip then reports that another package needs other versions, install sklearn_fhe "
        "in a virtual environment of its own."
    )
