"""What the two outbound clients share: the POST, and turning every failure into ``ProviderError``.

A request that never left (no connection) is retryable. One whose answer was lost (a read
timeout, a connection dropped mid-answer) is not: the provider may have accepted the message, and
resending could deliver it twice. The send then fails with that reason for an agent to check; a
Cloud API status echoing the idempotency key (``StatusUpdate.callback_data``) reconciles it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar

import httpx
import orjson

from zapflow.whatsapp.errors import ProviderError
from zapflow.whatsapp.types import OutboundMessage, Provider, SendResult

# failures before the request reached the provider: safe to send again
NOT_SENT = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.ProxyError,
    httpx.UnsupportedProtocol,
    httpx.LocalProtocolError,
)
ANSWER_LOST = (
    "no answer from the provider ({}): it may have taken the message, so it is not resent"
    " automatically (check the chat, then retry it)"
)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """``Retry-After`` as seconds (delta-seconds or an HTTP date); None when absent, unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def response_body(response: httpx.Response) -> Any:
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return response.text


class ProviderClient(ABC):
    provider: ClassVar[Provider]

    def __init__(self, base_url: str, http: httpx.AsyncClient, *, timeout: float | None = None):
        self._base_url = base_url.rstrip("/")
        self._http = http
        self._timeout = timeout

    @abstractmethod
    async def send(self, msg: OutboundMessage) -> SendResult: ...

    @abstractmethod
    async def mark_read(self, key_id: str, remote_jid: str) -> None:
        """Tell WhatsApp the customer's message (and those before it) was read."""

    @abstractmethod
    def _describe_error(self, body: Any) -> tuple[str | None, str | int | None]:
        """(provider's error message, provider's error code) from an error body."""

    def _retryable_code(self, code: str | int | None) -> bool:
        return False

    async def _post(self, path: str, payload: dict[str, Any], headers: dict[str, str]) -> Any:
        return await self._request("POST", path, headers, json=payload)

    async def _request(self, method: str, path: str, headers: dict[str, str], **kwargs: Any) -> Any:
        url = f"{self._base_url}/{path.lstrip('/')}"
        timeout = self._timeout if self._timeout is not None else httpx.USE_CLIENT_DEFAULT
        try:
            response = await self._http.request(
                method, url, headers=headers, timeout=timeout, **kwargs
            )
        except NOT_SENT as exc:
            raise self._error(None, f"connection failed: {exc!r}", retryable=True) from exc
        except httpx.TransportError as exc:
            raise self._error(
                None, ANSWER_LOST.format(type(exc).__name__), retryable=False
            ) from exc
        if response.is_success:
            return response_body(response)
        raise self._error_from(response)

    def _error_from(self, response: httpx.Response) -> ProviderError:
        body = response_body(response)
        message, code = self._describe_error(body)
        status = response.status_code
        return self._error(
            status,
            message or f"HTTP {status} {response.reason_phrase}".strip(),
            retryable=status == 429 or status >= 500 or self._retryable_code(code),
            retry_after=parse_retry_after(response.headers.get("retry-after")),
            body=body,
            code=code,
        )

    def _error(self, status: int | None, message: str, **kwargs: Any) -> ProviderError:
        return ProviderError(status, message, provider=self.provider, **kwargs)

    def _missing_id(self, body: Any) -> ProviderError:
        return self._error(
            None, "success response without a message id", retryable=False, body=body
        )
