"""Domain errors raised by services; one handler turns them into JSON for the API and messages for pages."""
from __future__ import annotations


class DomainError(Exception):
    """Base class: ``status`` is the HTTP status, ``code`` a stable machine-readable name."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str = "", fields: dict | None = None, **details):
        super().__init__(message)
        self.message = message
        self.fields = fields or {}
        self.details = details

    def to_dict(self) -> dict:
        body = {"code": self.code, "message": str(self.message)}
        if self.fields:
            body["fields"] = self.fields
        body.update({k: v for k, v in self.details.items() if v is not None})
        return {"error": body}


class ValidationError(DomainError):
    """Input is malformed; ``fields`` maps field names to lists of messages."""

    status = 422
    code = "validation_error"


class BusinessRuleError(DomainError):
    """Input is well-formed but a business rule forbids the change."""

    status = 422
    code = "business_rule"


class NotFound(DomainError):
    status = 404
    code = "not_found"


class Forbidden(DomainError):
    status = 403
    code = "forbidden"


class Unauthorized(DomainError):
    status = 401
    code = "unauthorized"


class Conflict(DomainError):
    """A stale write (optimistic locking) or a uniqueness clash."""

    status = 409
    code = "conflict"
