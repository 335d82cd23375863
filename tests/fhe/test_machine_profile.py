"""The machine profile behind fhe_cost(): measured on first use in a few seconds, cached in the
cache directory; the shipped one as fallback; the full calibration from the command line."""

from __future__ import annotations

import json
import time

import pytest

from sklearn_fhe.fhe import cache, cost, crypto_parameters, machine_profile


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SKLEARN_FHE_CACHE_DIR", str(tmp_path))
    machine_profile.forget_current_profile()
    yield tmp_path
    machine_profile.forget_current_profile()


def test_shipped_profile_is_complete_and_positive():
    profile = machine_profile.shipped_profile()
    assert all(value > 0 for name, value in profile.to_dict().items()
               if isinstance(value, float))


def test_without_a_measurement_fitting_uses_the_shipped_profile(empty_cache):
    profile = machine_profile.current_profile()
    assert profile.machine == "shipped"
    assert not list(empty_cache.glob("machine_profile-*"))  # nothing was measured


@pytest.mark.execute
def test_first_use_calibrates_quickly_and_caches(empty_cache):
    start = time.perf_counter()
    profile = machine_profile.current_profile(calibrate_if_missing=True)
    assert time.perf_counter() - start < 60  # a few seconds on an idle machine
    assert profile.quick and profile.pbs_s_per_complexity > 0
    stored = list(empty_cache.glob("machine_profile-*.json"))
    assert len(stored) == 1 and json.loads(stored[0].read_text())["quick"] is True
    machine_profile.forget_current_profile()
    assert machine_profile.current_profile(calibrate_if_missing=True) == profile  # cached


def test_key_parameter_choices_are_cached(empty_cache, monkeypatch):
    first = crypto_parameters.key_parameters(3, 7, 1e-8)
    assert (empty_cache / next(p.name for p in empty_cache.iterdir()
                               if p.name.startswith("key_parameters"))).exists()
    crypto_parameters._CHOICES.clear()

    def no_compile(*args):
        raise AssertionError("compiled again")

    monkeypatch.setattr(crypto_parameters, "_compile_proxy", no_compile)
    assert crypto_parameters.key_parameters(3, 7, 1e-8) == first  # read from the cache
    assert first.serialized_key_bytes < first.bootstrap_key_bytes


def test_an_unwritable_cache_is_skipped(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("SKLEARN_FHE_CACHE_DIR", str(blocker / "below"))
    cache.write_json("x.json", {"a": 1})  # no error
    assert cache.read_json("x.json") is None


@pytest.mark.execute
def test_full_calibration_from_the_command_line(tmp_path, capsys):
    output = tmp_path / "profile.json"
    assert cost.main(["--calibrate", "--quick", "--output", str(output)]) == 0
    assert json.loads(output.read_text())["pbs_s_per_complexity"] > 0
    assert "machine profile" in capsys.readouterr().out
