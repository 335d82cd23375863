"""Progress bars (tqdm) for long encrypted work: circuit calls, compilation, key generation.

A bar shows only when the settings allow it (``sklearn_fhe.set_config(show_progress=...)``):
"auto" means stderr is a terminal, so tests, logs and pipes never get one; and only once the work
has lasted ``progress_delay`` seconds, so quick calls stay silent.
"""

from __future__ import annotations

import sys
import threading
from contextlib import contextmanager
from typing import Iterator, Optional

from tqdm.auto import tqdm

from .config import get_config


def enabled() -> bool:
    """Whether bars may show now (settings, and a terminal on stderr for "auto")."""
    setting = get_config()["show_progress"]
    if setting == "auto":
        isatty = getattr(sys.stderr, "isatty", None)
        return bool(isatty and isatty())
    return bool(setting)


def steps(total: int, description: str) -> tqdm:
    """A bar counting ``total`` steps (call ``update(n)``, then ``close()``); disabled (a no-op)
    when bars are off."""
    return tqdm(total=total, desc=description, unit="call", file=sys.stderr,
                disable=not enabled(), delay=get_config()["progress_delay"], leave=False)


@contextmanager
def activity(description: str, interval: float = 0.5) -> Iterator[None]:
    """A bar of elapsed time around one long call that reports no steps (compilation, key
    generation): a thread refreshes it until the block ends."""
    if not enabled():
        yield
        return
    bar = tqdm(total=None, desc=description, file=sys.stderr, leave=False,
               delay=get_config()["progress_delay"], bar_format="{desc}: {elapsed}")
    done = threading.Event()

    def refresh() -> None:
        while not done.wait(interval):
            bar.update(0)  # tqdm shows the bar once its delay has passed, on an update

    thread: Optional[threading.Thread] = threading.Thread(target=refresh, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
        bar.close()
