"""Cell statuses: the one list every part of the harness (and every report) shares.

``ok``, ``wrong`` and ``diverged`` cells were measured and checked against the oracle; the
others could not be: the strategy or problem does not pose the query (``unsupported``), the
cell raised (``error``), ran past ``--timeout`` (``timeout``), passed ``--max-memory`` or
ran out of memory (``oom``), or its process was killed by a signal deqbench did not send
(``killed``).
"""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    OK = "ok"
    WRONG = "wrong"
    UNSUPPORTED = "unsupported"
    DIVERGED = "diverged"
    ERROR = "error"
    TIMEOUT = "timeout"
    OOM = "oom"
    KILLED = "killed"


#: Statuses that fail verification when the strategy claims the query exact: its answer is
#: wrong, or there was no trustworthy answer to check.
FAILED_VERIFICATION = frozenset({Status.WRONG, Status.DIVERGED, Status.ERROR})
#: Statuses of a claimed-exact cell that was never verified because it was stopped: these
#: fail a run too (exit code 1), for a run that did not check a claim has not passed it.
UNVERIFIED = frozenset({Status.TIMEOUT, Status.OOM, Status.KILLED})
