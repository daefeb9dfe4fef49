"""The engine's exception hierarchy; each maps to one HTTP status in the API and the pages."""

from __future__ import annotations


class OrchestratorError(Exception):
    http_status = 400

    def __init__(self, message: str, field_errors: dict | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field_errors = field_errors or {}


class NotFound(OrchestratorError):
    http_status = 404


class Conflict(OrchestratorError):
    http_status = 409


class Gone(OrchestratorError):
    """What was asked for existed but has expired (an expired callback token: HTTP 410)."""

    http_status = 410


class RunCancelled(Conflict):
    """A `cancel_new` concurrency limit cancelled the new run at once; it is stored, with
    the reason, as `process` (its id goes with the HTTP 409)."""

    def __init__(self, message: str, process: object) -> None:
        super().__init__(message, {"process": str(getattr(process, "pk", process))})
        self.process = process


class PreconditionFailed(OrchestratorError):
    """A workflow's run predicate refused the start (HTTP 412)."""

    http_status = 412


class FormInvalid(OrchestratorError):
    """Input does not validate; `field_errors` name the fields, `form` the page's schema."""

    http_status = 400

    def __init__(self, message: str, field_errors: dict | None = None, form: dict | None = None):
        super().__init__(message, field_errors)
        if form is not None:
            self.field_errors = {**self.field_errors, "form": form}


class ProcessFailureError(Exception):
    """Raise from a step to fail the process with a message and structured details."""

    def __init__(self, message: str, details: object = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class IdempotencyKeyReused(OrchestratorError):
    """An idempotency key sent again with a different request (HTTP 422)."""

    http_status = 422
