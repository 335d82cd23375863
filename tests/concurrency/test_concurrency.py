"""Threads sharing estimators and compiling at once (scenarios in ``scenarios.py``).

Each scenario runs in a child process whose working directory is a fresh empty folder: it must
pass and leave that folder empty (concrete's debug artifacts go elsewhere).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO
from tests.concurrency.scenarios import SCENARIOS

#: A child that hangs (a deadlock) fails the test instead of blocking the suite.
TIMEOUT_SECONDS = 300


#: Scenarios that run encrypted executions (marked ``execute``).
ENCRYPTED = {name for name in SCENARIOS if name.startswith("same_")}


@pytest.mark.parametrize("scenario", [
    pytest.param(name, marks=[pytest.mark.execute] if name in ENCRYPTED else [])
    for name in sorted(SCENARIOS)
])
def test_scenario_in_an_empty_working_directory(scenario, tmp_path) -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO), SKLEARN_FHE_KEY_CACHE=str(REPO / ".fhe_keys"))
    child = subprocess.run(
        [sys.executable, "-m", "tests.concurrency.scenarios", scenario],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=TIMEOUT_SECONDS,
    )
    assert child.returncode == 0, f"exit status {child.returncode}\n{child.stderr[-4000:]}"
    assert child.stdout.strip().endswith("ok")
    assert os.listdir(tmp_path) == []
