"""Message templates: the copy of each Cloud API number's templates (synced from the Graph API,
kept current by the status and quality webhooks), and the check of a send's parameters against
a template's components before anything is queued.

A template's parameters, read from its components: the header's (one text parameter, or a media
link for an IMAGE/VIDEO/DOCUMENT header), the body's (positional ``{{1}}``... or named
``{{first_name}}``, per ``parameter_format``), and a URL button's suffix. A send gives them as
``{"header": ..., "body": [...] | {...}, "buttons": {"0": ...}}``; what is missing, extra or of
the wrong kind is a 422 naming the field. Only APPROVED templates may be sent.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from zapflow.errors import Unprocessable
from zapflow.models import Template, TemplateStatus, WhatsAppInstance, WhatsAppProvider, utc_now
from zapflow.services.events import Event, stage
from zapflow.services.queries import get_scoped
from zapflow.whatsapp.types import TemplateUpdate

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}")
MEDIA_FORMATS = {"IMAGE": "image", "VIDEO": "video", "DOCUMENT": "document"}
MAX_PARAMETER_LENGTH = 1024
STATUSES = {s.value for s in TemplateStatus}


@dataclass(frozen=True)
class Parameters:
    """What a template asks for: header (None, "text" or a media kind), body names in order
    (``1``, ``2``... when positional), and the indexes of URL buttons with a suffix."""

    header: str | None = None
    body: tuple[str, ...] = ()
    named: bool = False
    buttons: tuple[int, ...] = ()
    header_name: str | None = None


def parameters_of(template: Template) -> Parameters:
    header: str | None = None
    header_name: str | None = None
    body: tuple[str, ...] = ()
    buttons: list[int] = []
    for component in template.components:
        kind = str(component.get("type", "")).upper()
        if kind == "HEADER":
            fmt = str(component.get("format", "TEXT")).upper()
            names = PLACEHOLDER.findall(str(component.get("text") or ""))
            header = MEDIA_FORMATS.get(fmt) or ("text" if names else None)
            header_name = names[0] if names else None
        elif kind == "BODY":
            body = tuple(dict.fromkeys(PLACEHOLDER.findall(str(component.get("text") or ""))))
        elif kind == "BUTTONS":
            for index, button in enumerate(component.get("buttons") or []):
                if isinstance(button, dict) and PLACEHOLDER.search(str(button.get("url") or "")):
                    buttons.append(index)
    named = template.parameter_format.upper() == "NAMED"
    return Parameters(header, body, named, tuple(buttons), header_name)


def check_usable(template: Template, where: str = "template") -> None:
    """Only an APPROVED template goes out; the others are refused with Meta's reason."""
    if template.status != TemplateStatus.APPROVED:
        reason = f": {template.reason}" if template.reason else ""
        raise Unprocessable(
            f"template {template.name!r} ({template.language}) is {template.status.value}{reason}",
            details={"field": where, "status": template.status.value, "reason": template.reason},
        )


def components_for(
    template: Template, values: dict[str, Any], where: str = "template.parameters"
) -> list[dict[str, Any]]:
    """The Cloud API ``components`` for a send of ``template`` with ``values``; a 422 naming
    the field when a value is missing, extra or not text."""
    wanted = parameters_of(template)
    extra = set(values) - {"header", "body", "buttons"}
    if extra:
        raise _invalid(f"{where}.{sorted(extra)[0]}", "is not a parameter of a template")
    components = []
    header = _header(wanted, values.get("header"), f"{where}.header")
    if header:
        components.append(header)
    body = _body(wanted, values.get("body"), f"{where}.body")
    if body:
        components.append(body)
    components.extend(_buttons(wanted, values.get("buttons"), f"{where}.buttons"))
    return components


def check_body_params(
    template: Template, params: Sequence[str], where: str, params_where: str
) -> None:
    """A send giving only body parameters (a follow-up, a flow's ``send_template``): the
    template usable (else a 422 naming ``where``), and ``params`` filling it (naming
    ``params_where`` and the part)."""
    check_usable(template, where)
    components_for(template, {"body": list(params)} if params else {}, params_where)


def _invalid(where: str, problem: str) -> Unprocessable:
    return Unprocessable(f"{where}: {problem}", details={"field": where})


def _text(value: Any, where: str) -> str:
    if not isinstance(value, (str, int, float)) or isinstance(value, bool) or value == "":
        raise _invalid(where, "needs a text value")
    text = str(value)
    if len(text) > MAX_PARAMETER_LENGTH:
        raise _invalid(where, f"at most {MAX_PARAMETER_LENGTH} characters")
    return text


def _header(wanted: Parameters, value: Any, where: str) -> dict[str, Any] | None:
    if wanted.header is None:
        if value is not None:
            raise _invalid(where, "this template's header takes no parameter")
        return None
    if value is None:
        raise _invalid(where, f"this template's header needs a {wanted.header} parameter")
    if wanted.header == "text":
        parameter: dict[str, Any] = {"type": "text", "text": _text(value, where)}
        if wanted.named and wanted.header_name:
            parameter["parameter_name"] = wanted.header_name
    else:
        link = _text(value, where)
        if not link.startswith("https://"):
            raise _invalid(where, f"a {wanted.header} header needs an https:// link")
        parameter = {"type": wanted.header, wanted.header: {"link": link}}
    return {"type": "header", "parameters": [parameter]}


def _body(wanted: Parameters, value: Any, where: str) -> dict[str, Any] | None:
    if not wanted.body:
        if value:
            raise _invalid(where, "this template's body takes no parameters")
        return None
    if wanted.named:
        if not isinstance(value, dict):
            raise _invalid(where, f"named parameters needed: {', '.join(wanted.body)}")
        for name in value:
            if name not in wanted.body:
                raise _invalid(f"{where}.{name}", "is not a parameter of this template")
        parameters = [
            {"type": "text", "parameter_name": n, "text": _text(value.get(n), f"{where}.{n}")}
            for n in wanted.body
        ]
    else:
        if not isinstance(value, list):
            raise _invalid(where, f"a list of {len(wanted.body)} values needed")
        if len(value) != len(wanted.body):
            raise _invalid(where, f"takes {len(wanted.body)} parameters, got {len(value)}")
        parameters = [
            {"type": "text", "text": _text(v, f"{where}.{i + 1}")} for i, v in enumerate(value)
        ]
    return {"type": "body", "parameters": parameters}


def _buttons(wanted: Parameters, value: Any, where: str) -> list[dict[str, Any]]:
    given = value or {}
    if not isinstance(given, dict):
        raise _invalid(where, "an object of button index to URL suffix needed")
    for key in given:
        if not str(key).isdecimal() or int(key) not in wanted.buttons:
            raise _invalid(f"{where}.{key}", "is not a URL button with a parameter")
    return [
        {
            "type": "button",
            "sub_type": "url",
            "index": str(index),
            "parameters": [
                {"type": "text", "text": _text(given.get(str(index)), f"{where}.{index}")}
            ],
        }
        for index in wanted.buttons
    ]


# --- the copy -----------------------------------------------------------------------------


async def find_template(
    session: AsyncSession,
    company_id: uuid.UUID,
    instance_id: uuid.UUID,
    name: str,
    language: str | None,
    where: str = "template",
) -> Template:
    """The number's template by name (and language, when given); a 422 naming ``where``."""
    query = select(Template).where(
        col(Template.company_id) == company_id,
        col(Template.instance_id) == instance_id,
        col(Template.name) == name,
        col(Template.status) != TemplateStatus.DELETED,
    )
    if language:
        query = query.where(col(Template.language) == language)
    found = list((await session.execute(query.limit(2))).scalars())
    if not found:
        raise Unprocessable(
            f"template {name!r}{f' ({language})' if language else ''} is not one of this"
            " number's templates (sync them first)",
            details={"field": where},
        )
    if len(found) > 1:
        raise Unprocessable(
            f"template {name!r} exists in several languages: give its language",
            details={"field": f"{where}.language"},
        )
    return found[0]


async def has_templates(
    session: AsyncSession, company_id: uuid.UUID, instance_id: uuid.UUID
) -> bool:
    """Whether the number's templates were synced (then sends check against them, not against
    the company's registered ``settings.templates``)."""
    query = select(col(Template.id)).where(
        col(Template.company_id) == company_id, col(Template.instance_id) == instance_id
    )
    return (await session.execute(query.limit(1))).first() is not None


@dataclass
class Filters:
    status: TemplateStatus | None = None
    category: str | None = None
    language: str | None = None
    instance_id: uuid.UUID | None = None


async def list_templates(
    session: AsyncSession, company_id: uuid.UUID, filters: Filters, limit: int = 500
) -> list[Template]:
    query = select(Template).where(col(Template.company_id) == company_id)
    if filters.status:
        query = query.where(col(Template.status) == filters.status)
    if filters.category:
        query = query.where(col(Template.category) == filters.category.upper())
    if filters.language:
        query = query.where(col(Template.language) == filters.language)
    if filters.instance_id:
        query = query.where(col(Template.instance_id) == filters.instance_id)
    query = query.order_by(col(Template.name), col(Template.language)).limit(limit)
    return list((await session.execute(query)).scalars())


def account_of(instance: WhatsAppInstance) -> str:
    """The number's WhatsApp Business Account id (``settings.waba_id``)."""
    account = (instance.settings or {}).get("waba_id")
    if instance.provider != WhatsAppProvider.CLOUD:
        raise Unprocessable(
            "Evolution instances have no message templates", details={"field": "instance_id"}
        )
    if not isinstance(account, str) or not (account.isascii() and account.isdecimal()):
        raise Unprocessable(
            "set the instance's settings.waba_id (its WhatsApp Business Account id) first",
            details={"field": "settings.waba_id"},
        )
    return account


async def cloud_numbers(session: AsyncSession) -> list[WhatsAppInstance]:
    """Every company's Cloud API numbers with an account to sync templates from."""
    query = select(WhatsAppInstance).where(
        col(WhatsAppInstance.provider) == WhatsAppProvider.CLOUD,
        col(WhatsAppInstance.settings)["waba_id"].astext.is_not(None),
    )
    return list((await session.execute(query.order_by(col(WhatsAppInstance.id)))).scalars())


def _row(instance: WhatsAppInstance, item: dict[str, Any]) -> dict[str, Any] | None:
    name, language = item.get("name"), item.get("language")
    if not isinstance(name, str) or not isinstance(language, str):
        return None
    status = str(item.get("status") or "UNKNOWN").upper()
    quality = item.get("quality_score")
    rejected = item.get("rejected_reason")
    components = item.get("components")
    return {
        "company_id": instance.company_id,
        "instance_id": instance.id,
        "name": name[:512],
        "language": language[:16],
        "graph_id": str(item["id"]) if item.get("id") is not None else None,
        "category": str(item.get("category") or "UTILITY").upper()[:32],
        "parameter_format": str(item.get("parameter_format") or "POSITIONAL").upper()[:16],
        "components": [c for c in components if isinstance(c, dict)]
        if isinstance(components, list)
        else [],
        "status": status if status in STATUSES else TemplateStatus.UNKNOWN.value,
        "reason": rejected if isinstance(rejected, str) and rejected != "NONE" else None,
        "quality": str(quality.get("score"))[:16] if isinstance(quality, dict) else None,
        "synced_at": utc_now(),
    }


async def store_synced(
    session: AsyncSession, instance: WhatsAppInstance, items: Sequence[dict[str, Any]]
) -> int:
    """Upsert the Graph API's list; templates it no longer lists become DELETED."""
    rows = [r for r in (_row(instance, item) for item in items) if r is not None]
    for chunk in range(0, len(rows), 500):
        statement = insert(Template).values(rows[chunk : chunk + 500])
        kept = ("graph_id", "category", "parameter_format", "components", "status", "reason")
        statement = statement.on_conflict_do_update(
            index_elements=["instance_id", "name", "language"],
            set_={
                **{k: statement.excluded[k] for k in (*kept, "quality", "synced_at")},
                "updated_at": utc_now(),
            },
        )
        await session.execute(statement)
    seen = [(r["name"], r["language"]) for r in rows]
    gone = update(Template).where(col(Template.instance_id) == instance.id)
    if seen:
        gone = gone.where(tuple_(col(Template.name), col(Template.language)).not_in(seen))
    await session.execute(gone.values(status=TemplateStatus.DELETED, updated_at=utc_now()))
    await stage(session, [Event("templates.synced", instance.company_id, {"count": len(rows)})])
    return len(rows)


async def apply_update(session: AsyncSession, company_id: uuid.UUID, event: TemplateUpdate) -> int:
    """A status or quality webhook, applied to the company's copies of that template."""
    changes: dict[str, Any] = {"updated_at": utc_now()}
    if event.status:
        status = event.status.upper()
        changes["status"] = status if status in STATUSES else TemplateStatus.UNKNOWN.value
        changes["reason"] = event.reason
    if event.quality:
        changes["quality"] = event.quality[:16]
    statement = (
        update(Template)
        .where(col(Template.company_id) == company_id, col(Template.graph_id) == event.template_id)
        .values(**changes)
        .returning(col(Template.id))
    )
    ids = list((await session.execute(statement)).scalars())
    if ids:
        data = {
            "ids": [str(i) for i in ids],
            **{k: v for k, v in changes.items() if k != "updated_at"},
        }
        await stage(session, [Event("template.updated", company_id, data)])
    return len(ids)


async def get_template(
    session: AsyncSession, company_id: uuid.UUID, template_id: uuid.UUID
) -> Template:
    return await get_scoped(session, Template, company_id, template_id)


async def record_created(
    session: AsyncSession, instance: WhatsAppInstance, asked: dict[str, Any], meta: dict[str, Any]
) -> Template:
    """The template Meta took for review (``meta``: its id, status and category)."""
    row = _row(instance, {**asked, **{k: v for k, v in meta.items() if v is not None}})
    assert row is not None
    await session.execute(
        insert(Template)
        .values(row)
        .on_conflict_do_update(
            index_elements=["instance_id", "name", "language"],
            set_={k: row[k] for k in ("graph_id", "category", "components", "status", "reason")},
        )
    )
    query = select(Template).where(
        col(Template.instance_id) == instance.id,
        col(Template.name) == row["name"],
        col(Template.language) == row["language"],
    )
    template = (await session.execute(query.execution_options(populate_existing=True))).scalar_one()
    await stage(
        session, [Event("template.updated", instance.company_id, {"ids": [str(template.id)]})]
    )
    return template


async def record_deleted(session: AsyncSession, template: Template) -> None:
    """Meta deletes a name in every language: so do we."""
    statement = (
        update(Template)
        .where(
            col(Template.instance_id) == template.instance_id, col(Template.name) == template.name
        )
        .values(status=TemplateStatus.DELETED, updated_at=utc_now())
        .returning(col(Template.id))
    )
    ids = [str(i) for i in (await session.execute(statement)).scalars()]
    data = {"ids": ids, "status": TemplateStatus.DELETED.value}
    await stage(session, [Event("template.updated", template.company_id, data)])
