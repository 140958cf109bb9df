"""The WhatsApp Business Management API's message templates: list (every page), create, delete.

``GET /{waba_id}/message_templates`` answers Graph API pages (``data`` plus ``paging.cursors``);
the next page is asked for with the ``after`` cursor on our own base URL, never by following the
``paging.next`` link the answer carries (it would take the access token wherever it points).
"""

from __future__ import annotations

from typing import Any

from zapflow.whatsapp.cloud import CloudApiClient

TEMPLATE_FIELDS = (
    "id,name,language,status,category,components,quality_score,rejected_reason,parameter_format"
)
PAGE_SIZE = 100
MAX_PAGES = 100  # 10,000 templates: far above Meta's per-account limit


class CloudTemplates(CloudApiClient):
    """Templates of one WhatsApp Business Account, with the number's access token."""

    def __init__(self, base_url: str, http: Any, account_id: str, access_token: str) -> None:
        super().__init__(base_url, http, phone_number_id="", access_token=access_token)
        self._account_id = account_id

    @property
    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._access_token}"}

    async def list_all(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        after: str | None = None
        for _ in range(MAX_PAGES):
            params = {"fields": TEMPLATE_FIELDS, "limit": PAGE_SIZE}
            if after:
                params["after"] = after
            body = await self._request(
                "GET", f"{self._account_id}/message_templates", self._headers, params=params
            )
            page = body.get("data") if isinstance(body, dict) else None
            if not isinstance(page, list):
                raise self._error(None, "a templates page without 'data'", retryable=False)
            found.extend(t for t in page if isinstance(t, dict))
            after = _next_cursor(body)
            if after is None:
                return found
        return found

    async def create(self, template: dict[str, Any]) -> dict[str, Any]:
        """Meta's answer: ``{"id", "status", "category"}``."""
        path = f"{self._account_id}/message_templates"
        body = await self._request("POST", path, self._headers, json=template)
        return body if isinstance(body, dict) else {}

    async def delete(self, name: str, graph_id: str | None = None) -> None:
        params = {"name": name, **({"hsm_id": graph_id} if graph_id else {})}
        path = f"{self._account_id}/message_templates"
        await self._request("DELETE", path, self._headers, params=params)


def _next_cursor(body: dict[str, Any]) -> str | None:
    paging = body.get("paging")
    if not isinstance(paging, dict) or not paging.get("next"):
        return None
    cursors = paging.get("cursors")
    after = cursors.get("after") if isinstance(cursors, dict) else None
    return after if isinstance(after, str) and after else None
