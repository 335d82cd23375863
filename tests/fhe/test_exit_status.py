"""A process that ran an encrypted circuit exits with its true status (child processes)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import REPO

#: fit a tiny model, run it encrypted (key cache: fast), then the case's own ending
PREAMBLE = textwrap.dedent(f"""
    import sys, numpy as np
    from concrete import fhe
    import sklearn_fhe
    X = np.random.RandomState(0).randn(60, 3)
    model = sklearn_fhe.FHELogisticRegression(n_bits=3).fit(X, (X[:, 0] > 0).astype(int))
    model.compile(configuration=fhe.Configuration(
        use_insecure_key_cache=True, insecure_key_cache_location={str(REPO / '.fhe_keys')!r},
        enable_unsafe_features=True, show_progress=False, dataflow_parallelize=DATAFLOW))
    assert (model.predict(X[:4], fhe="execute") == model.predict(X[:4])).all()
    """)


def run_child(ending: str, dataflow: bool = False, tmp_path: Path = None) -> subprocess.CompletedProcess:
    code = PREAMBLE.replace("DATAFLOW", str(dataflow)) + textwrap.dedent(ending)
    return subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.execute
@pytest.mark.parametrize("dataflow", [False, True], ids=["default", "dataflow_runtime"])
@pytest.mark.parametrize("ending, status", [
    ("sys.exit(3)", 3),
    ("raise RuntimeError('boom')", 1),
    ("print('done', flush=True)", 0),
], ids=["sys_exit_3", "uncaught_exception", "normal_end"])
def test_exit_status_after_encrypted_run(ending, status, dataflow, tmp_path):
    child = run_child(ending, dataflow, tmp_path)
    assert child.returncode == status, child.stderr[-2000:]
    if status == 1:
        assert "RuntimeError: boom" in child.stderr


@pytest.mark.execute
def test_concrete_imported_first_still_keeps_status(tmp_path):
    """concrete's handler is registered at concrete's import; importing us later removes it."""
    child = run_child("sys.exit(4)", tmp_path=tmp_path)
    assert PREAMBLE.index("from concrete") < PREAMBLE.index("import sklearn_fhe")
    assert child.returncode == 4, child.stderr[-2000:]


@pytest.mark.execute
def test_pytest_run_with_a_failing_test_fails(tmp_path):
    """A test session that ran a circuit and then failed must exit 1: CI depends on it."""
    test_file = tmp_path / "test_fails.py"
    body = textwrap.indent(PREAMBLE.replace("DATAFLOW", "False"), "    ")
    test_file.write_text(f"def test_encrypted_then_fails():\n{body}\n    assert False\n")
    child = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test_file)],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert child.returncode == 1, child.stdout[-2000:] + child.stderr[-2000:]
    assert "1 failed" in child.stdout
