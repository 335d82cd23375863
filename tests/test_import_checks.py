"""What ``import sklearn_fhe`` checks and quiets: incompatible numpy / concrete-python versions
fail at import with one clear error (never deep inside concrete at predict time), and concrete's
``pkg_resources`` deprecation warning stays out of this process and of joblib workers.

Each import runs in a child Python (``sys.executable``) whose versions are faked before
sklearn_fhe is imported: the test process's own imports are already done.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from sklearn_fhe import dependencies
from sklearn_fhe.dependencies import REQUIREMENTS, release, satisfies
from sklearn_fhe.dependency_warnings import ENVIRONMENT_FILTER, quiet_pkg_resources_warning

from .conftest import REPO

#: Reports, after the failed import, whether concrete had been imported (it must not be).
REPORT_CONCRETE = """
try:
    import sklearn_fhe
finally:
    print("concrete imported:", "concrete" in sys.modules)
"""

#: Makes importlib.metadata report ``FAKE_CONCRETE`` (a version, or None: not installed).
FAKE_CONCRETE = """
import importlib.metadata
_real_version = importlib.metadata.version

def _version(name):
    if name == "concrete-python":
        if FAKE_CONCRETE is None:
            raise importlib.metadata.PackageNotFoundError(name)
        return FAKE_CONCRETE
    return _real_version(name)

importlib.metadata.version = _version
"""


def child_environment() -> dict[str, str]:
    """This process's environment without ``PYTHONWARNINGS``, which importing sklearn_fhe here
    extended: a child must show what its own import does."""
    return {name: value for name, value in os.environ.items() if name != "PYTHONWARNINGS"}


def run_python(code: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """``code`` run by this interpreter in the repository, output captured."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], cwd=REPO, env=child_environment(),
        capture_output=True, text=True, timeout=timeout,
    )


def import_with(numpy_version: str | None = None, concrete_version: str | None = "real"):
    """``import sklearn_fhe`` in a child with numpy's ``__version__`` and concrete-python's
    installed version faked (``"real"``: left alone; ``None``: not installed)."""
    code = "import sys\nimport numpy\n"
    if numpy_version is not None:
        code += f"numpy.__version__ = {numpy_version!r}\n"
    if concrete_version != "real":
        code += f"FAKE_CONCRETE = {concrete_version!r}\n" + FAKE_CONCRETE
    return run_python(code + REPORT_CONCRETE)


def assert_one_clear_import_error(result: subprocess.CompletedProcess, *expected: str) -> str:
    """The child failed with one ImportError containing ``expected``, before importing
    concrete, with no frame of concrete in its traceback; returns the error's text."""
    assert result.returncode != 0, "import sklearn_fhe should have failed"
    assert "concrete imported: False" in result.stdout, result.stdout
    assert result.stderr.count("Traceback") == 1, result.stderr
    assert f"{os.sep}concrete{os.sep}" not in result.stderr, result.stderr
    message = result.stderr[result.stderr.index("ImportError: "):]
    for text in expected:
        assert text in message, f"{text!r} not in:\n{message}"
    return message


# -- the version arithmetic ------------------------------------------------------------------
@pytest.mark.parametrize("version, specifier, expected", [
    ("1.26.4", ">=1.23,<2", True),
    ("1.23", ">=1.23,<2", True),
    ("1.23.0", ">=1.23,<2", True),
    ("1.22.4", ">=1.23,<2", False),
    ("2.1.0", ">=1.23,<2", False),
    ("2.0.0", ">=1.23,<2", False),
    ("2.0.0rc1", ">=1.23,<2", False),  # numpy 2's pre-releases are numpy 2
    ("1.26.4+local", ">=1.23,<2", True),
    ("2.11.0", ">=2.8", True),
    ("2.7.9", ">=2.8", False),
    ("10.0", ">=2.8", True),  # numbers, not strings: 10 > 2
    ("2.8", ">2.8", False),
    ("2.8", "<=2.8.0", True),
])
def test_satisfies(version, specifier, expected):
    assert satisfies(version, specifier) is expected


def test_release_ignores_trailing_zeros_and_suffixes():
    assert release("2") == release("2.0.0") == release("2.0.0rc1") == (2,)
    assert release("1.26.4.dev0+abc") == (1, 26, 4)


@pytest.mark.parametrize("bad", ["==2.0", "~=1.23", ">=1.23;<2"])
def test_unsupported_clause_names_the_operators(bad):
    with pytest.raises(ValueError, match="use >=, >, <= or <"):
        satisfies("1.26.4", bad)


def test_requirements_agree_with_pyproject():
    """The ranges checked at import are those pyproject.toml declares, clause for clause."""
    # imported here: that module skips itself where no TOML reader is installed
    from .test_dependencies import project_table, requirement_name

    declared = {requirement_name(r): r for r in project_table()["dependencies"]}
    for name, (specifier, _) in REQUIREMENTS.items():
        requirement = declared[name]
        clauses = requirement[len(name):].replace(" ", "").split(",")
        assert sorted(clauses) == sorted(specifier.split(",")), (
            f"pyproject.toml requires {requirement!r}, sklearn_fhe/dependencies.py checks "
            f"{name}{specifier}: change both together."
        )


def test_installed_versions_pass():
    assert dependencies.problems() == {}


# -- import sklearn_fhe with incompatible versions -------------------------------------------
def test_numpy_2_fails_at_import_with_the_fix():
    message = assert_one_clear_import_error(
        import_with(numpy_version="2.1.0"),
        "numpy 2.1.0 is installed", "numpy>=1.23,<2", 'pip install "numpy>=1.23,<2"',
    )
    assert "concrete-python" not in message.split("Fix:")[1]  # only what is wrong is fixed


def test_old_concrete_fails_at_import_with_the_fix():
    assert_one_clear_import_error(
        import_with(concrete_version="2.5.1"),
        "concrete-python 2.5.1 is installed", 'pip install "concrete-python>=2.8"',
    )


def test_missing_concrete_fails_at_import():
    assert_one_clear_import_error(
        import_with(concrete_version=None),
        "concrete-python is not installed", 'pip install "concrete-python>=2.8"',
    )


def test_every_problem_in_one_error():
    assert_one_clear_import_error(
        import_with(numpy_version="2.0.2", concrete_version="2.7.0"),
        "numpy 2.0.2 is installed", "concrete-python 2.7.0 is installed",
        'pip install "numpy>=1.23,<2" "concrete-python>=2.8"',
    )


# -- concrete's pkg_resources warning --------------------------------------------------------
def test_environment_filter_is_added_once_and_keeps_the_users(monkeypatch):
    monkeypatch.setenv("PYTHONWARNINGS", "error::DeprecationWarning")
    quiet_pkg_resources_warning()
    quiet_pkg_resources_warning()
    assert os.environ["PYTHONWARNINGS"] == f"error::DeprecationWarning,{ENVIRONMENT_FILTER}"


def test_import_prints_no_pkg_resources_warning():
    result = run_python("import sklearn_fhe")
    assert result.returncode == 0, result.stderr
    assert "pkg_resources" not in result.stderr


def test_grid_search_workers_print_no_pkg_resources_warning():
    """Joblib workers unpickle the parent's warnings filters, pkg_resources's own among them,
    which imports pkg_resources before sklearn_fhe: only a filter a worker starts with (from
    the environment it inherits) keeps the warning out."""
    result = run_python("""
        from sklearn.datasets import make_regression
        from sklearn.model_selection import GridSearchCV
        from sklearn_fhe import FHELinearRegression

        X, y = make_regression(n_samples=40, n_features=3, random_state=0)
        search = GridSearchCV(FHELinearRegression(), {"n_bits": [3, 4]}, cv=2, n_jobs=2)
        print("best n_bits:", search.fit(X, y).best_params_["n_bits"])
    """, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "best n_bits:" in result.stdout
    assert "pkg_resources" not in result.stderr, result.stderr
