"""The manifest of a saved model: format, versions, and the SHA-256 of every file.

A saved model is a directory::

    manifest.json         format, versions, and {file: sha256} for every file below
    client/model.json     input checks and encoding, quantization, clear-side outputs (JSON)
    client/client.specs   concrete's client specs (key parameters, value types)
    server/model.json     batch shapes, the model's fingerprint
    server/server.zip     concrete's compiled server (the circuit functions)

Each role reads its own part only, after checking the manifest and the hashes of the files it
reads: a foreign directory, another format version, another concrete-python, or a file changed
since saving is an ``ArtifactError`` raised before anything is loaded.
"""

from __future__ import annotations

import hashlib
import json
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Iterable

from .errors import ArtifactError

FORMAT = "sklearn_fhe.model"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
CLIENT_FILES = ("client/model.json", "client/client.specs")
SERVER_FILES = ("server/model.json", "server/server.zip")


def sha256(path: Path) -> str:
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def concrete_version() -> str:
    try:
        return version("concrete-python")
    except PackageNotFoundError:  # pragma: no cover - concrete is a dependency
        return "unknown"


def write_manifest(directory: Path, files: Iterable[str]) -> dict:
    """Write ``manifest.json`` for ``files`` (paths relative to ``directory``)."""
    from .. import __version__

    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "sklearn_fhe": __version__,
        "concrete_python": concrete_version(),
        "files": {name: sha256(directory / name) for name in sorted(files)},
    }
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return manifest


def read_manifest(directory, files: Iterable[str]) -> dict:
    """Check ``directory``'s manifest and the hashes of ``files``; return the manifest."""
    directory = Path(directory)
    path = directory / MANIFEST
    if not path.is_file():
        raise ArtifactError(
            f"{str(directory)!r} is not a saved sklearn_fhe model: it has no {MANIFEST}. "
            "Save a fitted estimator with sklearn_fhe.deployment.save(estimator, directory)."
        )
    try:
        manifest = json.loads(path.read_text())
        fmt, fmt_version = manifest["format"], manifest["format_version"]
        hashes = manifest["files"]
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as error:
        raise ArtifactError(f"{path} is not a valid sklearn_fhe manifest ({error}).") from error
    if fmt != FORMAT:
        raise ArtifactError(f"{path} describes a {fmt!r}, not an sklearn_fhe model.")
    if fmt_version != FORMAT_VERSION:
        raise ArtifactError(
            f"{directory} was saved in model format version {fmt_version}; this sklearn_fhe "
            f"reads version {FORMAT_VERSION}. Save the model again with this version."
        )
    saved_with = manifest.get("concrete_python")
    if saved_with != concrete_version():
        raise ArtifactError(
            f"{directory} was compiled with concrete-python {saved_with}; this environment has "
            f"{concrete_version()}. Compiled circuits and key formats are tied to the version: "
            "save the model again here, or install the version it was saved with."
        )
    for name in files:
        expected = hashes.get(name) if isinstance(hashes, dict) else None
        file = directory / name
        if expected is None or not file.is_file():
            raise ArtifactError(f"{directory} has no {name}: the saved model is incomplete.")
        if sha256(file) != expected:
            raise ArtifactError(
                f"{file} has changed since the model was saved (its SHA-256 differs from the "
                "manifest's): refusing to load it."
            )
    return manifest
