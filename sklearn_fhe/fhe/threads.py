"""Let concrete trace circuits from any thread, not only the one that imported it.

concrete keeps the stack of ``fhe.tag`` names of the circuit being traced in a
``threading.local`` whose ``stack`` attribute is set once, at import, in the importing thread:
tracing from any other thread (a web server's worker, a thread pool calling ``predict``) fails
with ``'_thread._local' object has no attribute 'stack'``. We replace it, at sklearn_fhe's import,
with a thread-local that starts every thread with an empty stack.
"""

from __future__ import annotations

import importlib
import threading

# the module, not the ``fhe.tag`` function that concrete.fhe.extensions exports under its name
tag = importlib.import_module("concrete.fhe.extensions.tag")


class _TagStack(threading.local):
    """Per-thread stack of tag names; ``__init__`` runs in each thread on its first use."""

    def __init__(self) -> None:
        self.stack: list = []


def trace_from_any_thread() -> None:
    """Give concrete's tag context an empty stack in every thread (idempotent)."""
    if not isinstance(tag.tag_context, _TagStack):
        tag.tag_context = _TagStack()
