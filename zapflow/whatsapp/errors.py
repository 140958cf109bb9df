"""How a provider adapter fails: a webhook body it cannot read, a send the provider refused."""

from __future__ import annotations

from typing import Any


class MalformedPayload(ValueError):
    """A webhook body does not have the provider's documented shape; the message says where."""


class ProviderError(Exception):
    """A send failed. ``retryable`` is True for 429, 5xx, provider throttling codes and requests
    that never reached the provider (``status_code`` None); a lost answer (``status_code`` None)
    and other refusals are permanent."""

    def __init__(
        self,
        status_code: int | None,
        message: str,
        *,
        retryable: bool,
        retry_after: float | None = None,
        body: Any = None,
        code: str | int | None = None,
        provider: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.retryable = retryable
        self.retry_after = retry_after
        self.body = body
        self.code = code
        self.provider = provider

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_provider_error, (self.__dict__.copy(),))

    def __str__(self) -> str:
        status = self.status_code if self.status_code is not None else "no response"
        kind = "retryable" if self.retryable else "permanent"
        return f"{self.provider or 'provider'} {status} ({kind}): {self.message}"


def _rebuild_provider_error(state: dict[str, Any]) -> ProviderError:
    return ProviderError(
        state["status_code"],
        state["message"],
        retryable=state["retryable"],
        retry_after=state["retry_after"],
        body=state["body"],
        code=state["code"],
        provider=state["provider"],
    )
