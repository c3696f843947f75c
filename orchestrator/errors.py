"""The one error hierarchy.

Every failure a user can cause is an ``OrchError`` subclass that knows its HTTP
status, so the API maps errors to responses in exactly one handler and the CLI
can print the same message the daemon produced.
"""

from __future__ import annotations


class OrchError(Exception):
    """Root of all domain errors; ``status`` is the HTTP code it maps to."""

    status: int = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Invalid(OrchError):
    """The request is well-formed but breaks a rule (bad ID, bad option...)."""

    status = 400


class Unauthorized(OrchError):
    status = 401


class NotFound(OrchError):
    status = 404


class Conflict(OrchError):
    """The request clashes with current state (duplicate ID, reserved devint...)."""

    status = 409


class Gone(OrchError):
    """It was there and was removed outside orch (a run's folder deleted by hand): unlike a
    404 (no such thing) or a 409 (not yet), asking again will never succeed (410 Gone)."""

    status = 410


class TooLarge(OrchError):
    status = 413


class Unprocessable(OrchError):
    """The payload itself cannot be used: broken package, malformed manifest."""

    status = 422


class DiskFull(OrchError):
    """The disk under the home is (nearly) full: the write was refused or could not land.

    Nothing was recorded; the same request succeeds once space returns (507
    Insufficient Storage). The store raises it for SQLite's "disk is full", the
    API's disk gate before a write starts, so callers can tell it from a bug.
    """

    status = 507


class Unavailable(OrchError):
    """The daemon is shutting down or a dependency is not ready."""

    status = 503
