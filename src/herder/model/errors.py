"""The one exception tree of herder.

    HerderError
    ├── InvalidSpec            bad input: a spec, a name, a duration, a param (API: 422)
    ├── NotFound (LookupError) an id or a name that does not exist (API: 404)
    ├── Unauthorized           no token, or a token that is unknown, expired or revoked (API: 401)
    ├── Forbidden              a known caller without the permission asked for (API: 403)
    ├── Conflict               the request is valid but the state forbids it (API: 409)
    │   ├── NameTaken
    │   └── InvalidTransition  a run status change the state machine refuses
    ├── StaleOwner             a write from a server that no longer owns the row (API: 409)
    └── BackendError           a backend failed; foreign errors are translated to this
        └── RunLost            the backend has no trace of a run it was given

The API maps each class to an HTTP status in one place (``herder.api.errors``).
"""

from __future__ import annotations

from typing import Any


class HerderError(Exception):
    """The root of every error herder raises on purpose."""

    code = "error"

    def __init__(self, message: str, *, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class InvalidSpec(HerderError):
    """Input that does not follow the rules; nothing was changed."""

    code = "invalid"


class NotFound(HerderError, LookupError):
    """An object that does not exist (or that the caller may not see)."""

    code = "not_found"


class Unauthorized(HerderError):
    """No credential, or one that is malformed, unknown, expired or revoked."""

    code = "unauthorized"


class Forbidden(HerderError):
    """The caller may see the object but not do this to it."""

    code = "forbidden"


class Conflict(HerderError):
    """A valid request that the current state does not allow."""

    code = "conflict"


class NameTaken(Conflict):
    code = "name_taken"


class InvalidTransition(Conflict):
    """A run status change that ``model.runs.TRANSITIONS`` does not allow."""

    code = "invalid_transition"


class StaleOwner(HerderError):
    """A write from a server whose claim on the row has expired or moved on."""

    code = "stale_owner"


class BackendError(HerderError):
    """A backend could not do what was asked."""

    code = "backend_error"


class RunLost(BackendError):
    """The backend has no record of the run: it cannot say how it ended."""

    code = "run_lost"
