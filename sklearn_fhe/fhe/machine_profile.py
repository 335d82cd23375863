"""How fast this machine runs concrete: the measured constants behind ``fhe_cost()``.

The time of a programmable bootstrap (PBS) follows concrete's own cost model of its parameters
(``KeyParameters.complexity_per_pbs``) times this machine's seconds per unit of it; encryption
and decryption follow the ciphertext's size; a circuit call has a fixed overhead; key generation
follows the keys' parameters. Those few constants are measured on small circuits:

- on first use, a *quick* calibration (a few seconds), cached in the user's cache directory
  (``sklearn_fhe.fhe.cache``) per machine and concrete version;
- ``python -m sklearn_fhe.fhe.cost --calibrate`` measures the same with larger circuits and more
  repeats, into the cache (or ``--output``);
- the profile shipped with the package (measured on one of our machines) is the fallback when
  nothing was measured here.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from . import cache
from .crypto_parameters import circuit_key_parameters

#: The profile shipped with the package (written by ``--calibrate --output`` on our machine).
SHIPPED_PROFILE = Path(__file__).with_name("machine_profile.json")

_LOCK = threading.Lock()
_CURRENT: Optional["MachineProfile"] = None


@dataclass(frozen=True)
class MachineProfile:
    """Measured costs of concrete on one machine.

    Attributes
    ----------
    pbs_s_per_complexity : float
        Seconds per unit of concrete's complexity of a PBS, amortized inside a wide tensor
        (the runtime spreads a tensor's PBS over the cores).
    call_s : float
        Fixed cost of one circuit call: encrypt, run and decrypt of a single value.
    encrypt_s_per_byte, decrypt_s_per_byte : float
        Client costs per byte of a ciphertext under the large key.
    leveled_call_s, leveled_input_s, leveled_output_s, leveled_s : float
        A circuit without lookups (a linear model): call overhead, encryption of one input,
        decryption of one output, one multiply-add term of its dot product.
    keygen_s_per_work : float
        Key generation per unit of ``KeyParameters.keygen_work``.
    machine : str
        Where and when it was measured; ``quick`` marks a first-use calibration.
    """

    pbs_s_per_complexity: float
    call_s: float
    encrypt_s_per_byte: float
    decrypt_s_per_byte: float
    leveled_call_s: float
    leveled_input_s: float
    leveled_output_s: float
    leveled_s: float
    keygen_s_per_work: float
    machine: str = ""
    quick: bool = False

    @classmethod
    def from_dict(cls, data: dict) -> "MachineProfile":
        return cls(**{name: data[name] for name in cls.__dataclass_fields__ if name in data})

    def to_dict(self) -> dict:
        return asdict(self)


def machine_key() -> str:
    """What a measured profile is valid for: this host, its cores and concrete's version."""
    from concrete import fhe

    return f"{platform.node()}-{os.cpu_count()}cores-concrete{fhe.__version__}"


def _cache_name() -> str:
    return f"machine_profile-{machine_key()}.json"


def shipped_profile() -> MachineProfile:
    """The profile shipped with the package."""
    return MachineProfile.from_dict(json.loads(SHIPPED_PROFILE.read_text()))


def cached_profile() -> Optional[MachineProfile]:
    """The profile measured on this machine, if any."""
    data = cache.read_json(_cache_name())
    try:
        return None if data is None else MachineProfile.from_dict(data)
    except (KeyError, TypeError):
        return None


def current_profile(calibrate_if_missing: bool = False) -> MachineProfile:
    """This machine's profile: cached, else measured now (quick) when asked, else shipped.

    Only ``fhe_cost()`` asks to calibrate: fitting and the memory check before compiling
    never wait for a measurement (memory does not depend on the machine's speed).
    """
    global _CURRENT
    with _LOCK:
        if _CURRENT is not None and (_CURRENT.machine != "shipped" or not calibrate_if_missing):
            return _CURRENT
        profile = cached_profile()
        if profile is None and calibrate_if_missing:
            profile = calibrate(quick=True)
            cache.write_json(_cache_name(), profile.to_dict())
        if profile is None:
            return replace(shipped_profile(), machine="shipped")
        _CURRENT = profile
        return profile


def forget_current_profile() -> None:
    """Read the profile again on next use (after a calibration, or in tests)."""
    global _CURRENT
    with _LOCK:
        _CURRENT = None


# -- measuring -----------------------------------------------------------------------------------
def _best_time(function: Callable, *args: Any, repeat: int) -> tuple[float, Any]:
    """Best of ``repeat`` wall times (noise on a shared machine only adds) and the result."""
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = function(*args)
        best = min(best, time.perf_counter() - start)
    return best, result


def _compile(function: Callable, inputset: list, configuration: Any) -> Any:
    from concrete import fhe
    from concrete.fhe.compilation.artifacts import DebugArtifacts

    with tempfile.TemporaryDirectory(prefix="sklearn_fhe_calibration_") as scratch:
        return fhe.Compiler(function, {"x": "encrypted"}).compile(
            inputset, configuration, artifacts=DebugArtifacts(scratch))


def _timings(circuit: Any, sample: np.ndarray, repeat: int) -> dict[str, float]:
    """Key generation once, then encrypt, run and decrypt separately (best of ``repeat``)."""
    start = time.perf_counter()
    circuit.keygen(force=True)
    keygen_s = time.perf_counter() - start
    circuit.encrypt_run_decrypt(sample)  # the first call loads the circuit
    encrypt_s, encrypted = _best_time(circuit.encrypt, sample, repeat=repeat)
    run_s, result = _best_time(circuit.run, encrypted, repeat=repeat)
    decrypt_s, _ = _best_time(circuit.decrypt, result, repeat=repeat)
    return {"keygen_s": keygen_s, "encrypt_s": encrypt_s, "run_s": run_s,
            "decrypt_s": decrypt_s}


def _lookup_circuit(elements: int, configuration: Any) -> Any:
    """3-bit lookups on ``elements`` values (a bijection, never folded), outputs kept apart."""
    from concrete import fhe

    table = fhe.LookupTable([7 - i for i in range(8)])
    rng = np.random.default_rng(0)
    inputset = [rng.integers(0, 8, size=elements) for _ in range(4)] + [np.full(elements, 7)]
    return _compile(lambda x: table[x], inputset, configuration)


def _dot_product_circuit(elements: int, configuration: Any) -> Any:
    """8-bit inputs into a 19-bit dot product by clear 5-bit weights, as a linear model."""
    weights = np.random.default_rng(1).integers(-15, 16, size=elements)
    rng = np.random.default_rng(0)
    inputset = [rng.integers(0, 256, size=elements) for _ in range(4)]
    inputset += [np.full(elements, 255), np.zeros(elements, dtype=np.int64)]
    return _compile(lambda x: np.dot(x, weights), inputset, configuration)


def calibrate(quick: bool = True, log: Optional[Callable[[str], None]] = None) -> MachineProfile:
    """Measure this machine's profile on small circuits.

    ``quick`` (first use, a few seconds): 32 lookups per call, best of 2. Otherwise 256 lookups
    and best of 5, for the command line's ``--calibrate``.
    """
    from .compile import default_configuration

    elements, repeat = (32, 2) if quick else (256, 5)
    configuration = default_configuration()
    lone = _lookup_circuit(1, configuration)
    wide = _lookup_circuit(elements, configuration)
    lone_t = _timings(lone, np.array([3]), repeat)
    wide_t = _timings(wide, np.arange(elements) % 8, repeat)
    parameters = circuit_key_parameters(wide)
    pbs_s = max(wide_t["run_s"] - lone_t["run_s"], 0.0) / (elements - 1)
    ciphertext = parameters.ciphertext_bytes
    dot_lone = _dot_product_circuit(1, configuration)
    dot_wide = _dot_product_circuit(elements, configuration)
    dot_lone_t = _timings(dot_lone, np.array([200]), repeat)
    dot_wide_t = _timings(dot_wide, np.arange(elements) % 256, repeat)
    profile = MachineProfile(
        pbs_s_per_complexity=pbs_s / parameters.complexity_per_pbs,
        call_s=lone_t["encrypt_s"] + lone_t["run_s"] + lone_t["decrypt_s"],
        encrypt_s_per_byte=wide_t["encrypt_s"] / elements / ciphertext,
        decrypt_s_per_byte=wide_t["decrypt_s"] / elements / ciphertext,
        leveled_call_s=dot_lone_t["encrypt_s"] + dot_lone_t["run_s"] + dot_lone_t["decrypt_s"],
        leveled_input_s=dot_wide_t["encrypt_s"] / elements,
        leveled_output_s=dot_wide_t["decrypt_s"],
        leveled_s=max(dot_wide_t["run_s"] - dot_lone_t["run_s"], 0.0) / (elements - 1),
        keygen_s_per_work=wide_t["keygen_s"] / parameters.keygen_work,
        machine=f"{machine_key()}, {time.strftime('%Y-%m-%d')}",
        quick=quick,
    )
    if log is not None:
        log(", ".join(f"{name} {value:.3g}" if isinstance(value, float) else f"{name} {value}"
                      for name, value in profile.to_dict().items()))
    return profile


def save_profile(profile: MachineProfile, path: Optional[Path] = None) -> Path:
    """Write ``profile`` to ``path``, or to this machine's entry of the cache."""
    if path is None:
        cache.write_json(_cache_name(), profile.to_dict())
        path = cache.cache_directory() / _cache_name()
    else:
        Path(path).write_text(json.dumps(profile.to_dict(), indent=1) + "\n")
    forget_current_profile()
    return Path(path)
