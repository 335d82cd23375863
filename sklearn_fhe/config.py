"""Global settings of sklearn_fhe, in the style of ``sklearn.set_config`` / ``config_context``.

``n_jobs`` says how many workers run the encrypted circuit calls of a request (scikit-learn's
meaning: None is 1 unless a ``joblib.parallel_config`` context says otherwise, -1 is every core
or every Dask worker). It is a setting of where the work runs, not of the model: it changes no
result, so it is not an estimator parameter (the tree ensembles' own ``n_jobs`` stays scikit-
learn's training parallelism). ``show_progress`` turns the progress bars of long encrypted work
on (True), off (False), or on only when stderr is a terminal ("auto", the default);
``progress_delay`` is how many seconds the work must last before a bar shows.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Any, Iterator, Optional, Union

_DEFAULTS: dict = {"n_jobs": None, "show_progress": "auto", "progress_delay": 2.0}
_global_config = dict(_DEFAULTS)
_local = threading.local()


def _config() -> dict:
    if not hasattr(_local, "config"):
        _local.config = dict(_global_config)
    return _local.config


def get_config() -> dict:
    """The current settings (a copy): ``n_jobs``, ``show_progress``, ``progress_delay``."""
    return dict(_config())


def _check(n_jobs: Any, show_progress: Any, progress_delay: Any) -> None:
    if n_jobs is not None and (isinstance(n_jobs, bool) or not isinstance(n_jobs, int)
                               or n_jobs == 0):
        raise ValueError(f"n_jobs must be None or a non-zero int, got {n_jobs!r}.")
    if show_progress is not None and show_progress not in (True, False, "auto"):
        raise ValueError(f"show_progress must be True, False or 'auto', got {show_progress!r}.")
    if progress_delay is not None and (isinstance(progress_delay, bool) or not isinstance(
            progress_delay, (int, float)) or progress_delay < 0):
        raise ValueError(f"progress_delay must be a number of seconds >= 0, got "
                         f"{progress_delay!r}.")


_UNSET = object()


def set_config(n_jobs: Any = _UNSET, show_progress: Optional[Union[bool, str]] = None,
               progress_delay: Optional[float] = None) -> None:
    """Change the settings of this thread (and the defaults of threads started later).

    Parameters
    ----------
    n_jobs : int or None, optional
        Workers for the encrypted circuit calls of ``predict(X, fhe="execute")`` (joblib's
        meaning: None is 1 unless in a ``joblib.parallel_config`` context; -1 all of them).
        Unchanged when not given.
    show_progress : {True, False, "auto"}, optional
        Progress bars for long encrypted work; "auto": only when stderr is a terminal.
    progress_delay : float, optional
        Seconds before a bar appears (shorter work shows none).

    Examples
    --------
    >>> import sklearn_fhe
    >>> sklearn_fhe.set_config(show_progress=False)
    >>> sklearn_fhe.get_config()["show_progress"]
    False
    >>> sklearn_fhe.set_config(show_progress="auto")
    """
    changes = {"show_progress": show_progress, "progress_delay": progress_delay}
    if n_jobs is not _UNSET:
        changes["n_jobs"] = n_jobs
    _check(changes.get("n_jobs"), show_progress, progress_delay)
    changes = {k: v for k, v in changes.items() if v is not None or k == "n_jobs"}
    _config().update(changes)
    _global_config.update(changes)


@contextmanager
def config_context(**settings: Any) -> Iterator[None]:
    """Settings for the duration of a ``with`` block (this thread), then the previous ones.

    Examples
    --------
    >>> import sklearn_fhe
    >>> with sklearn_fhe.config_context(n_jobs=2):  # doctest: +SKIP
    ...     y = estimator.predict(X, fhe="execute")
    """
    unknown = set(settings) - set(_DEFAULTS)
    if unknown:
        raise TypeError(f"Unknown sklearn_fhe settings {sorted(unknown)}; known: "
                        f"{sorted(_DEFAULTS)}.")
    _check(settings.get("n_jobs"), settings.get("show_progress"), settings.get("progress_delay"))
    config = _config()
    previous = dict(config)
    config.update(settings)
    try:
        yield
    finally:
        config.clear()
        config.update(previous)
