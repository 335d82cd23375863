"""The Hypothesis profiles of the property suite and each property's example budget."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, Phase, settings

#: Environment variable selecting the profile.
PROFILE_VARIABLE = "HYPOTHESIS_PROFILE"

#: Examples of each property relative to its ``ci`` budget.
_SCALE = {"ci": 1, "large": 10, "execute": 1}


def active_profile() -> str:
    name = os.environ.get(PROFILE_VARIABLE, "ci")
    if name not in _SCALE:
        raise ValueError(f"{PROFILE_VARIABLE}={name!r}: choose one of {sorted(_SCALE)}.")
    return name


def load_profile() -> None:
    """Register the profiles and load the one the environment asks for."""
    common = dict(
        deadline=None,  # an example fits and compiles a model: seconds, not milliseconds
        database=None,  # nothing written into the working directory
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        print_blob=True,  # a failure prints the decorator that replays it
        # no "explain" phase: it reruns a failing example hundreds of times (minutes each)
        phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
    )
    settings.register_profile("ci", derandomize=True, **common)
    settings.register_profile("large", derandomize=False, **common)
    settings.register_profile("execute", derandomize=True, **common)
    settings.load_profile(active_profile())


def examples(ci_budget: int) -> int:
    """The number of examples of a property whose ``ci`` budget is ``ci_budget``."""
    return ci_budget * _SCALE[active_profile()]


def checks_execute() -> bool:
    """Whether properties also run the encrypted circuit (the ``execute`` profile)."""
    return active_profile() == "execute"
