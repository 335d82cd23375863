"""``examples/quickstart.py`` (README's main command) reports the pipeline its search chose."""

from __future__ import annotations

import re
import subprocess
import sys

from .conftest import REPO


def test_quickstart_reports_the_best_pipeline():
    result = subprocess.run(
        [sys.executable, str(REPO / "examples" / "quickstart.py")],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    best = re.search(r"GridSearchCV best n_bits: (\d+)", result.stdout)
    reported = re.search(r"quantized \((\d+) bits\)", result.stdout)
    assert best and reported, result.stdout
    assert reported.group(1) == best.group(1), result.stdout
    assert "pkg_resources" not in result.stderr
