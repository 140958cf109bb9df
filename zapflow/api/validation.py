"""Text Postgres cannot store (a NUL character, an unpaired surrogate), refused with a 422 naming
the field before it reaches a query. (PATCH fields that may be omitted but not null:
``schemas/fields.py``.) And a media URL the egress policy refuses, refused when it is given, or
an uploaded file the company does not have."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from zapflow.egress import EgressPolicy, EgressRefused
from zapflow.errors import Unprocessable
from zapflow.services import media_files

if TYPE_CHECKING:
    from zapflow.schemas.messages import MediaIn

T = TypeVar("T")


UNSTORABLE = "contains a NUL character or an unpaired surrogate, which cannot be stored"


def storable(text: str) -> bool:
    """Postgres text and jsonb hold UTF-8 without U+0000."""
    if "\x00" in text:
        return False
    try:
        text.encode()
    except UnicodeEncodeError:  # a lone surrogate, as json.loads reads "\ud800"
        return False
    return True


def unstorable_fields(value: Any, field: str) -> list[str]:
    """Where in a decoded JSON document (``field`` names its root) a string or a key is not
    ``storable``, depth first."""
    found: list[str] = []
    pending: list[tuple[Any, str]] = [(value, field)]
    while pending:
        item, where = pending.pop()
        if isinstance(item, str):
            if not storable(item):
                found.append(where)
        elif isinstance(item, dict):
            for key, child in item.items():
                if not isinstance(key, str) or storable(key):  # YAML keys may be numbers
                    pending.append((child, f"{where}.{key}"))
                else:
                    found.append(f"{where}.{key.encode('unicode_escape').decode()}")
        elif isinstance(item, list):
            pending.extend((child, f"{where}.{i}") for i, child in enumerate(item))
    return sorted(found)


def unstorable_error(fields: Iterable[str]) -> Unprocessable:
    """The 422 for ``fields``, in the shape of a request validation error."""
    details = [{"field": f, "message": UNSTORABLE, "type": "unstorable_text"} for f in fields]
    return Unprocessable(f"{details[0]['field']}: {UNSTORABLE}", details=details)


def check_media_url(egress: EgressPolicy, url: object, field: str) -> None:
    """A media URL we or the provider will fetch: a 422 naming ``field`` when the policy refuses
    it without DNS (scheme, literal address, forbidden name); the name's addresses are checked
    when the message is sent."""
    try:
        egress.check_url(str(url))
    except EgressRefused as exc:
        raise Unprocessable(
            f"{field}: {exc.reason}", code="egress_refused", details={"field": field}
        ) from None


async def checked_media(
    egress: EgressPolicy,
    session: AsyncSession,
    company_id: uuid.UUID,
    media: MediaIn,
    field: str,
) -> dict[str, Any]:
    """A message's or canned response's media as stored: its URL checked by the egress policy,
    or its uploaded file found in the company and described from it."""
    if media.url is not None:
        check_media_url(egress, media.url, f"{field}.url")
    return await media_files.referenced_media(session, company_id, media.stored(), field)
