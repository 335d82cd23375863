"""The cryptographic parameters concrete will choose for a circuit's table lookups, without
compiling the circuit.

Key sizes, the time of one programmable bootstrap (PBS) and the size of a ciphertext all follow
from the parameters concrete's optimizer picks. They depend on a lookup's input width, on the
widest value its output feeds (a sum over many lookups needs room in the same encoding) and on
the error probability each PBS may have (concrete splits ``global_p_error`` over every PBS of
the compiled module). A small *proxy* circuit with those three properties, compiled without
keys, gets the same choice in a fraction of a second; choices are cached per concrete version
in the cache directory, so a width is compiled once per machine.
"""

from __future__ import annotations

import math
import tempfile
import threading
from dataclasses import asdict, dataclass
from typing import Any, Optional

import numpy as np

from ..errors import BitWidthError
from . import cache

#: Bytes of one torus coefficient (u64).
_COEFFICIENT_BYTES = 8
#: Elements a proxy sums at most to reach the circuit's widest value.
_MAX_PROXY_ELEMENTS = 1 << 12
_LOCK = threading.Lock()
_CHOICES: dict[str, "KeyParameters"] = {}


@dataclass(frozen=True)
class KeyParameters:
    """One bootstrap parameter set, as concrete chose it for a proxy circuit.

    Attributes
    ----------
    polynomial_size, glwe_dimension, lwe_dimension, level : int
        The bootstrap key's parameters (``lwe_dimension`` is the small key's dimension).
    bootstrap_key_bytes, keyswitch_key_bytes : int
        Their size in memory once generated (concrete's statistics).
    complexity_per_pbs : float
        concrete's cost model of one PBS with these keys (key switch included).
    """

    polynomial_size: int
    glwe_dimension: int
    lwe_dimension: int
    level: int
    bootstrap_key_bytes: int
    keyswitch_key_bytes: int
    complexity_per_pbs: float

    @property
    def serialized_key_bytes(self) -> int:
        """Compressed (seeded) evaluation keys: only the body of each GLWE ciphertext of the
        bootstrap key travels, the masks are regenerated from a seed; the key-switch key's LWE
        bodies likewise."""
        big = self.glwe_dimension * self.polynomial_size
        bootstrap = self.lwe_dimension * self.level * (self.glwe_dimension + 1)
        return _COEFFICIENT_BYTES * (bootstrap * self.polynomial_size + big * self.level)

    @property
    def keygen_work(self) -> float:
        """Key generation's work, in polynomial products: one GGSW ciphertext per bit of the
        small key, ``level * (k + 1)`` GLWE encryptions each, a product of size N (N log N)
        in each, then their conversion to the Fourier domain alike."""
        n = self.polynomial_size
        return (self.lwe_dimension * self.level * (self.glwe_dimension + 1)
                * n * math.log2(n))

    @property
    def ciphertext_bytes(self) -> int:
        """One LWE ciphertext under the large key (what lives between lookups)."""
        return _COEFFICIENT_BYTES * (self.glwe_dimension * self.polynomial_size + 1)


def circuit_key_parameters(circuit: Any) -> KeyParameters:
    """A compiled circuit's (first) bootstrap parameter set, from concrete's statistics."""
    statistics = circuit.statistics
    (parameters, count), *_ = statistics["programmable_bootstrap_count_per_parameter"].items()
    return KeyParameters(
        polynomial_size=int(parameters.polynomial_size()),
        glwe_dimension=int(parameters.glwe_dimension()),
        lwe_dimension=int(parameters.input_lwe_dimension()),
        level=int(parameters.level()),
        bootstrap_key_bytes=int(statistics["size_of_bootstrap_keys"]),
        keyswitch_key_bytes=int(statistics["size_of_keyswitch_keys"]),
        complexity_per_pbs=float(statistics["complexity"]) / max(int(count), 1),
    )


def p_error_bucket(p_error: float) -> int:
    """The power of two at or below ``p_error`` (choices are cached per power)."""
    return int(math.floor(math.log2(p_error)))


def key_parameters(lookup_bits: int, widest_bits: int, p_error: float) -> KeyParameters:
    """concrete's choice for ``lookup_bits``-wide lookups whose outputs add up to
    ``widest_bits``, each PBS erring with probability at most ``p_error``."""
    from concrete import fhe

    lookup_bits = max(int(lookup_bits), 1)
    widest_bits = max(int(widest_bits), lookup_bits)
    bucket = p_error_bucket(p_error)
    key = f"{lookup_bits}-{widest_bits}-{bucket}"
    with _LOCK:
        if key in _CHOICES:
            return _CHOICES[key]
        name = f"key_parameters-concrete-{fhe.__version__}.json"
        stored = cache.read_json(name) or {}
        if key in stored:
            choice = KeyParameters(**stored[key])
        else:
            choice = _compile_proxy(lookup_bits, widest_bits, 2.0 ** bucket)
            stored[key] = asdict(choice)
            cache.write_json(name, stored)
        _CHOICES[key] = choice
        return choice


def _compile_proxy(lookup_bits: int, widest_bits: int, p_error: float) -> KeyParameters:
    """Compile (no keys) a lookup of ``lookup_bits`` on each of ``m`` elements whose outputs
    are summed to ``widest_bits``, and read concrete's choice from its statistics."""
    from concrete import fhe
    from concrete.fhe.compilation.artifacts import DebugArtifacts

    elements = int(min(max(2 ** (widest_bits - lookup_bits), 2), _MAX_PROXY_ELEMENTS))
    top = 2 ** lookup_bits - 1
    table = fhe.LookupTable([top - i for i in range(top + 1)])  # a bijection: never folded

    def proxy(x):
        return np.sum(table[x])

    rng = np.random.default_rng(0)
    inputset = [rng.integers(0, top + 1, size=elements) for _ in range(4)]
    inputset.append(np.zeros(elements, dtype=np.int64))  # the sum reaches elements * top
    configuration = fhe.Configuration(
        p_error=p_error, global_p_error=None, show_progress=False,
        dump_artifacts_on_unexpected_failures=False,
    )
    with tempfile.TemporaryDirectory(prefix="sklearn_fhe_proxy_") as scratch:
        try:
            circuit = fhe.Compiler(proxy, {"x": "encrypted"}).compile(
                inputset, configuration, artifacts=DebugArtifacts(scratch))
        except RuntimeError as error:  # concrete's NoParametersFound: the model's fails alike
            raise BitWidthError(
                f"No cryptographic parameters exist for {lookup_bits}-bit table lookups whose "
                f"outputs add up to {widest_bits} bits with an error probability of "
                f"{p_error:.2g} per lookup: lower n_bits, or set rounding_threshold_bits to "
                f"narrow the lookups. (concrete: {str(error).splitlines()[0]})"
            ) from error
    return circuit_key_parameters(circuit)
