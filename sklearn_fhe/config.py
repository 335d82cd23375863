"""Global settings of sklearn_fhe, in the style of ``sklearn.set_config`` / ``config_context``.

``n_jobs`` says how many workers run the encrypted circuit calls of a request (scikit-learn's
meaning: None is 1 unless a ``joblib.parallel_config`` context says otherwise, -1 is every core
or every Dask worker). It is a setting of where the work runs, not of the model: it changes no
result, so it is not an estimator parameter (the tree ensembles' own ``n_jobs`` stays scikit-
learn's training parallelism). ``show_progress`` turns the progress bars of long encrypted work
on (True), off (False), or on only when stderr is a terminal ("auto", the default);
``progress_delay`` is how many seconds the work must last before a bar shows.

``memory_budget`` bounds the memory a compilation may plan for (compiling, generating keys and
running a full batch), checked against ``fhe_cost()``'s estimate before anything is allocated:
a compilation over it is refused with an error naming the knobs, where it would otherwise end
with the process killed. ``slow_row_warning_s``: ``fit`` warns when the fitted model's
estimated seconds per encrypted row exceed it.
"""

from __future__ import annotations

import os
import re
import threading
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Optional, Union

#: Share of the memory available when compiling that the default budget allows (the rest
#: stays for the user's own data, the OS and estimation error).
DEFAULT_MEMORY_SHARE = 0.7

_DEFAULTS: dict = {"n_jobs": None, "show_progress": "auto", "progress_delay": 2.0,
                   "memory_budget": None, "slow_row_warning_s": 10.0}
_global_config = dict(_DEFAULTS)
_local = threading.local()

_UNITS = {"": 1, "B": 1, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12,
          "KIB": 2 ** 10, "MIB": 2 ** 20, "GIB": 2 ** 30, "TIB": 2 ** 40}


def _config() -> dict:
    if not hasattr(_local, "config"):
        _local.config = dict(_global_config)
    return _local.config


def get_config() -> dict:
    """The current settings (a copy): ``n_jobs``, ``show_progress``, ``progress_delay``,
    ``memory_budget``, ``slow_row_warning_s``."""
    return dict(_config())


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def parse_bytes(value: Union[int, float, str]) -> int:
    """A size in bytes from a number or a string such as ``"8GB"`` or ``"512 MiB"``."""
    if _is_number(value):
        if value <= 0:
            raise ValueError(f"memory_budget must be positive, got {value!r}.")
        return int(value)
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([A-Za-z]*)\s*", str(value))
    if match is None or match.group(2).upper() not in _UNITS or float(match.group(1)) <= 0:
        raise ValueError(
            f"memory_budget must be None, a number of bytes or a size such as '8GB' or "
            f"'512MiB', got {value!r}."
        )
    return int(float(match.group(1)) * _UNITS[match.group(2).upper()])


def _check_n_jobs(n_jobs: Any) -> None:
    if n_jobs is not None and (isinstance(n_jobs, bool) or not isinstance(n_jobs, int)
                               or n_jobs == 0):
        raise ValueError(f"n_jobs must be None or a non-zero int, got {n_jobs!r}.")


def _check_show_progress(show_progress: Any) -> None:
    if show_progress not in (True, False, "auto"):
        raise ValueError(f"show_progress must be True, False or 'auto', got {show_progress!r}.")


def _check_seconds(name: str) -> Callable[[Any], None]:
    def check(value: Any) -> None:
        if value is not None and (not _is_number(value) or value < 0):
            raise ValueError(f"{name} must be a number of seconds >= 0, got {value!r}.")
    return check


def _check_memory_budget(value: Any) -> None:
    if value is not None:
        parse_bytes(value)


_CHECKS = {
    "n_jobs": _check_n_jobs,
    "show_progress": _check_show_progress,
    "progress_delay": _check_seconds("progress_delay"),
    "memory_budget": _check_memory_budget,
    "slow_row_warning_s": _check_seconds("slow_row_warning_s"),
}
#: Settings whose None means something (not "unchanged") when given to set_config.
_NONE_IS_A_VALUE = {"n_jobs", "memory_budget", "slow_row_warning_s"}
_UNSET = object()


def _checked(settings: dict) -> dict:
    unknown = set(settings) - set(_DEFAULTS)
    if unknown:
        raise TypeError(f"Unknown sklearn_fhe settings {sorted(unknown)}; known: "
                        f"{sorted(_DEFAULTS)}.")
    for name, value in settings.items():
        if value is not None or name in _NONE_IS_A_VALUE:
            _CHECKS[name](value)
    return settings


def set_config(n_jobs: Any = _UNSET, show_progress: Optional[Union[bool, str]] = None,
               progress_delay: Optional[float] = None, memory_budget: Any = _UNSET,
               slow_row_warning_s: Any = _UNSET) -> None:
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
    memory_budget : int, str or None, optional
        Bytes (or a size such as ``"8GB"``) a compilation may plan to use; None (the
        default) is 70% of the memory available when compiling. Unchanged when not given.
    slow_row_warning_s : float or None, optional
        ``fit`` warns when the estimated seconds per encrypted row exceed it (default 10);
        None never warns. Unchanged when not given.

    Examples
    --------
    >>> import sklearn_fhe
    >>> sklearn_fhe.set_config(show_progress=False)
    >>> sklearn_fhe.get_config()["show_progress"]
    False
    >>> sklearn_fhe.set_config(show_progress="auto")
    """
    given = {"n_jobs": n_jobs, "show_progress": show_progress, "progress_delay": progress_delay,
             "memory_budget": memory_budget, "slow_row_warning_s": slow_row_warning_s}
    changes = {name: value for name, value in given.items()
               if value is not _UNSET and (value is not None or name in _NONE_IS_A_VALUE)}
    _checked(changes)
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
    _checked(settings)
    config = _config()
    previous = dict(config)
    config.update(settings)
    try:
        yield
    finally:
        config.clear()
        config.update(previous)


def _meminfo_available() -> Optional[int]:
    """Linux's MemAvailable (free memory plus what the page cache would give back)."""
    try:
        with open("/proc/meminfo") as meminfo:
            fields = dict(line.split(":", 1) for line in meminfo if ":" in line)
    except OSError:
        return None
    value = fields.get("MemAvailable")
    return None if value is None else int(value.split()[0]) * 1024


def available_memory_bytes() -> Optional[int]:
    """Memory available to new allocations now (Linux: MemAvailable; elsewhere the free
    physical pages), or None when the system does not say."""
    available = _meminfo_available()
    if available is not None:
        return available
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def memory_budget_bytes() -> Optional[int]:
    """The budget in force: the configured one, else a share of the memory available now
    (None when neither is known)."""
    configured = get_config()["memory_budget"]
    if configured is not None:
        return parse_bytes(configured)
    available = available_memory_bytes()
    return None if available is None else int(DEFAULT_MEMORY_SHARE * available)
