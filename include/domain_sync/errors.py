"""The error taxonomy of the sync, declared once: every stage error is permanent or transient.

- `PermanentError`: a retry cannot help (bad credentials, a bad mapping or setting, a quality or
  deletion-guard stop, a refused certificate, a stage run without its input). The task fails at once.
- `TransientError`: the service is busy or away, or throttling outlasted the retry budget. Airflow's
  task retry may succeed; `delay` is the wait the service asked for, when it named one.

The DAGs turn this into their retry rule in one place (`domain_sync.pipeline.retry_policy`); nothing
else decides what is retried. Besides transient errors only the connection-level built-ins
(ConnectionError, TimeoutError, OSError) are retried; anything else raised is a defect and fails the
task at once, as a retry would only repeat it. So a client library's error for a service that is
away must be wrapped into a `TransientError` where it escapes (domain.connect, the Graph reader's
classify, the LDAP writers).
"""

from __future__ import annotations


class SyncError(Exception):
    """Base of every error the sync raises on purpose."""


class PermanentError(SyncError):
    """Retrying cannot help: a person must change a setting, a credential, the data or the plan."""


class TransientError(SyncError):
    """The tenant or the domain did not answer well enough now; a later try may succeed."""

    def __init__(self, message: str, delay: float | None = None):
        super().__init__(message)
        self.delay = delay


class UnknownName(PermanentError, ValueError):
    """The code asked for a stage, frame or other definition by a name that does not exist: a defect that
    no retry can fix (a ValueError too, as a bad argument)."""


class StageInputMissing(PermanentError):
    """A stage ran without the output of the stage before it in the same run."""
