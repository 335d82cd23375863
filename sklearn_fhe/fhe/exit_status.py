"""Keep a process's exit status true after it ran an FHE circuit.

concrete registers an ``atexit`` handler (``terminate_df_parallelization``) that ends the process
with status 0 as soon as a circuit has been simulated or executed: ``sys.exit(3)``, an uncaught
exception and a failing pytest run would all report success to a shell, a scheduler or CI. That
handler also ends the process before Python's own finalization (later ``atexit`` handlers, buffered
output). We unregister it when sklearn_fhe is imported.

The handler only matters for concrete's dataflow runtime (``Configuration(dataflow_parallelize=
True)``); a process that used it also exits cleanly without the handler, with its true status
(``tests/fhe/test_exit_status.py`` runs both cases in child processes).
"""

from __future__ import annotations

import atexit

import concrete.compiler as concrete_compiler


def keep_exit_status() -> None:
    """Unregister concrete's exit handler that overwrites the process exit status with 0."""
    atexit.unregister(concrete_compiler._terminate_df_parallelization)
