"""The errors frontend_api raises on purpose: one root, `ApiError`.

Each subclass carries the HTTP status and a one-line message a user can act on; the app
turns them into JSON problem responses (`{"detail": ..., "errors": [...]}`).  This module
must never import FastAPI: the worker and the CLI catch these too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a request: a dotted field path and why."""

    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}"


class ApiError(Exception):
    """Root of frontend_api's errors; `status` is the HTTP status it maps to."""

    status: int = 400

    def __init__(self, message: str, problems: Sequence[Problem] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.problems = tuple(problems)


class InvalidRequest(ApiError):
    """The request is well-formed JSON but its content is wrong (422)."""

    status = 422


class Conflict(ApiError):
    """The request replays something already used: an order nonce, an order (409)."""

    status = 409


class IdempotencyMismatch(ApiError):
    """An Idempotency-Key was reused with a different request body (422)."""

    status = 422


class NotFound(ApiError):
    """No such job, submission, dispute or address record (404)."""

    status = 404


class PayloadTooLarge(ApiError):
    """The body or an uploaded file exceeds the configured limit (413)."""

    status = 413


class Unavailable(ApiError):
    """A backend (chain node, artifact store, broker) did not answer (503)."""

    status = 503


class ConfigError(ApiError):
    """The settings are incomplete or inconsistent (e.g. no relayer key for the worker)."""

    status = 500
