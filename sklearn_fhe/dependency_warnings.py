"""Keep concrete's ``pkg_resources is deprecated`` warning out of this process and its workers.

concrete declares its namespace through ``pkg_resources``, whose import warns. A filter in this
process is not enough for worker processes: importing ``pkg_resources`` adds a warnings filter
for its own ``PEP440Warning`` class, scikit-learn's ``Parallel`` (``GridSearchCV(n_jobs=2)``...)
ships the parent's warnings filters to each joblib worker with every task, and unpickling them
imports ``pkg_resources`` there — before the estimator, so before anything of sklearn_fhe can
install a filter. A worker process does start with the filters of ``PYTHONWARNINGS``, which it
inherits from this process's environment: the same one message is ignored there too.
"""

from __future__ import annotations

import os
import warnings

#: The start of the warning's message (matched case-insensitively, as ``-W`` options are).
MESSAGE = "pkg_resources is deprecated"
#: The same filter in ``-W`` / ``PYTHONWARNINGS`` form.
ENVIRONMENT_FILTER = f"ignore:{MESSAGE}:UserWarning"


def quiet_pkg_resources_warning() -> None:
    """Ignore the ``pkg_resources`` deprecation warning here and in child Python processes.

    Appends ``ENVIRONMENT_FILTER`` to ``os.environ["PYTHONWARNINGS"]`` (once; the user's own
    entries stay, and a later entry wins only for this message).
    """
    warnings.filterwarnings("ignore", message=MESSAGE, category=UserWarning)
    entries = [e for e in os.environ.get("PYTHONWARNINGS", "").split(",") if e]
    if ENVIRONMENT_FILTER not in entries:
        os.environ["PYTHONWARNINGS"] = ",".join([*entries, ENVIRONMENT_FILTER])
