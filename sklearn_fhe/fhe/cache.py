"""sklearn_fhe's cache directory: costs measured on this machine, concrete's parameter choices.

``SKLEARN_FHE_CACHE_DIR`` chooses it; otherwise ``$XDG_CACHE_HOME/sklearn_fhe`` or
``~/.cache/sklearn_fhe``. Files are JSON, written atomically (a reader in another process never
sees half a file), and a missing or unreadable file is simply not cached yet.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Optional


def cache_directory() -> Path:
    """Where sklearn_fhe keeps what it measured (created on first write)."""
    chosen = os.environ.get("SKLEARN_FHE_CACHE_DIR")
    if chosen:
        return Path(chosen)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "sklearn_fhe"


def read_json(name: str) -> Optional[Any]:
    """The cached document ``name``, or None when absent or unreadable."""
    try:
        return json.loads((cache_directory() / name).read_text())
    except (OSError, ValueError):
        return None


def write_json(name: str, data: Any) -> None:
    """Write ``name`` atomically; a cache that cannot be written is skipped, never an error
    (a read-only home must not stop a prediction)."""
    directory = cache_directory()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".tmp")
        with os.fdopen(handle, "w") as file:
            json.dump(data, file, indent=1)
        os.replace(temporary, directory / name)
    except OSError:  # not cached: measured again next time
        return
