"""Progress bars: shown on a terminal (here a forced one), never on a non-terminal or when
switched off; the settings behind them."""

from __future__ import annotations

import io
import sys
import time

import numpy as np
import pytest

import sklearn_fhe
from sklearn_fhe import config_context, get_config, progress, set_config


class Terminal(io.StringIO):
    """A stderr that says it is a terminal."""

    def isatty(self) -> bool:
        return True


@pytest.fixture
def compiled_model(fhe_configuration):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 4)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    model = sklearn_fhe.FHELogisticRegression(n_bits=4).fit(X, y)
    return model.compile(configuration=fhe_configuration), X


def predict_with_stderr(monkeypatch, stream, model, X, **settings) -> str:
    monkeypatch.setattr(sys, "stderr", stream)
    with config_context(progress_delay=0, **settings):
        model.predict(X, fhe="simulate")
    monkeypatch.undo()
    return stream.getvalue()


def test_bar_on_a_terminal(monkeypatch, compiled_model):
    model, X = compiled_model
    shown = predict_with_stderr(monkeypatch, Terminal(), model, X[:40])
    assert "circuit calls" in shown and "/4 " in shown  # 40 rows: 16 + 16 + 4 + 4 (4 calls)


def test_no_bar_when_not_a_terminal_or_switched_off(monkeypatch, compiled_model):
    model, X = compiled_model
    assert predict_with_stderr(monkeypatch, io.StringIO(), model, X[:40]) == ""
    assert predict_with_stderr(monkeypatch, Terminal(), model, X[:40], show_progress=False) == ""


def test_short_work_shows_no_bar(monkeypatch, compiled_model):
    model, X = compiled_model
    assert predict_with_stderr(monkeypatch, Terminal(), model, X[:40]) != ""
    monkeypatch.setattr(sys, "stderr", stream := Terminal())
    with config_context(progress_delay=60):  # the work is over long before a minute
        model.predict(X[:40], fhe="simulate")
    monkeypatch.undo()
    assert stream.getvalue() == ""


def test_compile_shows_a_bar_on_a_terminal(monkeypatch, compiled_model, fhe_configuration):
    model, _ = compiled_model
    monkeypatch.setattr(sys, "stderr", stream := Terminal())
    with config_context(progress_delay=0):
        model.compile(configuration=fhe_configuration)
    monkeypatch.undo()
    assert "compiling" in stream.getvalue()


def test_activity_bar_for_one_long_call(monkeypatch):
    monkeypatch.setattr(sys, "stderr", stream := Terminal())
    with config_context(progress_delay=0), progress.activity("key generation", interval=0.02):
        time.sleep(0.2)
    monkeypatch.undo()
    assert "key generation" in stream.getvalue()


def test_settings():
    assert get_config() == {"n_jobs": None, "show_progress": "auto", "progress_delay": 2.0,
                            "memory_budget": None, "slow_row_warning_s": 10.0}
    with config_context(n_jobs=2, show_progress=False):
        assert get_config()["n_jobs"] == 2 and get_config()["show_progress"] is False
    assert get_config()["n_jobs"] is None
    set_config(n_jobs=-1)
    try:
        assert get_config()["n_jobs"] == -1
    finally:
        set_config(n_jobs=None)
    with pytest.raises(ValueError, match="n_jobs must be None or a non-zero int"):
        set_config(n_jobs=0)
    with pytest.raises(ValueError, match="show_progress must be True, False or 'auto'"):
        set_config(show_progress="yes")
    with pytest.raises(ValueError, match="progress_delay"):
        set_config(progress_delay=-1)
    with pytest.raises(TypeError, match="Unknown sklearn_fhe settings"):
        with config_context(jobs=2):
            pass
