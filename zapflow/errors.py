"""zapflow's error base class: a status code, a stable code, a message and details for clients."""

from __future__ import annotations

from typing import Any


class ZapflowError(Exception):
    status_code = 400
    code = "bad_request"

    def __init__(
        self,
        message: str,
        *,
        details: Any = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        self.headers = headers
        if code:
            self.code = code


class NotFound(ZapflowError):
    status_code = 404
    code = "not_found"


class Unauthorized(ZapflowError):
    status_code = 401
    code = "unauthorized"


class Forbidden(ZapflowError):
    status_code = 403
    code = "forbidden"


class Conflict(ZapflowError):
    status_code = 409
    code = "conflict"


class Unprocessable(ZapflowError):
    status_code = 422
    code = "validation_error"


class PayloadTooLarge(ZapflowError):
    status_code = 413
    code = "payload_too_large"


class TooManyRequests(ZapflowError):
    status_code = 429
    code = "rate_limited"


class ServiceUnavailable(ZapflowError):
    status_code = 503
    code = "service_unavailable"
