"""Contacts: tenant-scoped search and offset pages, the cached read by id (and its
invalidation), and the writes (create, update, delete, atomic tag edits), each dropping the
contact's cached copy once committed. Field rules and bodies: ``schemas/contacts.py``; CSV import
and export: ``services/contact_csv.py``."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    DateTime,
    Integer,
    Select,
    String,
    Uuid,
    any_,
    bindparam,
    delete,
    func,
    literal,
    or_,
    select,
    text,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB, aggregate_order_by, insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col

from zapflow.cache import Cache, forget
from zapflow.db import DriverReads, SessionFactory
from zapflow.errors import Conflict, NotFound, Unprocessable
from zapflow.models import Contact, ContactIdentity, IdentityKind
from zapflow.schemas.contacts import (
    MAX_TAGS,
    PHONE_CHARS,
    ContactCreate,
    ContactPublic,
    ContactUpdate,
)
from zapflow.services.identities import holders_of, searched_identity
from zapflow.services.queries import get_scoped
from zapflow.whatsapp import jid as jids

CONTACT_CACHE_SECONDS = 300
INVALIDATE_CHUNK = 500  # keys per Redis round trip when an import updated many contacts


# --- reads -----------------------------------------------------------------------------------

# A contact's ``aliases`` (the API's field): its WhatsApp addresses other than the phone, read
# from its identities (the one place they are kept), oldest first.
ALIAS_KINDS = (IdentityKind.JID, IdentityKind.LID, IdentityKind.BSUID)
ALIASES = (
    select(
        func.coalesce(
            func.jsonb_agg(
                aggregate_order_by(
                    col(ContactIdentity.value),
                    col(ContactIdentity.created_at),
                    col(ContactIdentity.value),
                )
            ),
            text("'[]'::jsonb"),
            type_=JSONB,
        )
    )
    .where(
        col(ContactIdentity.contact_id) == col(Contact.id),
        # equalities, not IN: a statement built once binds no expanding list (fetch_fixed)
        or_(*(col(ContactIdentity.kind) == kind for kind in ALIAS_KINDS)),
    )
    .scalar_subquery()
    .label("aliases")
)


def _column(name: str) -> Any:
    return ALIASES if name == "aliases" else col(getattr(Contact, name))


async def aliases_of(session: AsyncSession, contact_id: uuid.UUID) -> list[str]:
    query = select(ALIASES).select_from(Contact).where(col(Contact.id) == contact_id)
    return list((await session.execute(query)).scalar_one())


async def public_of(session: AsyncSession, contact: Contact) -> ContactPublic:
    """The contact as the API shows it (its ``aliases`` from its identities)."""
    aliases = await aliases_of(session, contact.id)
    return ContactPublic.model_validate({**contact.model_dump(), "aliases": aliases})


@dataclass(frozen=True)
class ContactFilter:
    q: str | None = None
    tags: tuple[str, ...] = ()
    created_since: datetime | None = None


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def search_pattern(q: str) -> tuple[str, dict[str, Any]]:
    """What ``q`` looks like picks the search, so each can use its index, with the values of its
    ``pattern`` (and ``kind``, ``value``): a username (``@name``) or a BSUID the contact holding
    it (or an email prefix), an email prefix if it holds ``@``, phone digits (anywhere in the
    number) if it is phone-like, else a name fragment (ILIKE, served by the trigram index
    ``idx_contacts_name_trgm``)."""
    text = q.strip()
    email = _like_escape(text.lower()) + "%"
    identity = searched_identity(text)
    if identity is not None:
        kind, value = identity
        return "identity", {"pattern": email, "kind": kind, "value": value}
    if "@" in text:
        return "email", {"pattern": email}
    if PHONE_CHARS.match(text) and jids.digits(text):
        return "phone_number", {"pattern": f"%{jids.digits(text)}%"}
    return "name", {"pattern": f"%{_like_escape(text)}%"}


def _searched(search: str, company_id: Any, values: dict[str, Any]) -> ColumnElement[bool]:
    """The condition of ``search`` over ``values`` (literals, or ``bindparam``s)."""
    pattern = values["pattern"]
    if search == "identity":
        holders = col(Contact.id).in_(holders_of(company_id, values["kind"], values["value"]))
        return or_(holders, col(Contact.email).like(pattern))
    field = col(getattr(Contact, search))
    return field.ilike(pattern) if search == "name" else field.like(pattern)


def search_condition(company_id: uuid.UUID, q: str) -> ColumnElement[bool]:
    search, values = search_pattern(q)
    return _searched(search, company_id, values)


def filtered(company_id: uuid.UUID, where: ContactFilter, *columns: Any) -> Select[Any]:
    """The company's contacts matching ``where``: ``columns`` of them, else the rows."""
    query = select(*(columns or (Contact,))).where(col(Contact.company_id) == company_id)
    if where.q and where.q.strip():
        query = query.where(search_condition(company_id, where.q))
    if where.tags:
        query = query.where(col(Contact.tags).contains(list(where.tags)))
    if where.created_since is not None:
        query = query.where(col(Contact.created_at) >= where.created_since)
    return query


NEWEST_FIRST = (col(Contact.created_at).desc(), col(Contact.id).desc())


# Counting a big company's every contact for each page cost more than the page: the total is
# exact up to this many matches, and past it says only "at least this many".
COUNT_AT_MOST = 1_000


@dataclass(frozen=True)
class Total:
    count: int
    exact: bool  # False: at least ``count`` contacts match


Shape = tuple[str | None, bool, bool]  # the search, whether tags, whether created_since
_PAGES: dict[Shape, Select[Any]] = {}
_PUBLIC_FIELDS = tuple(ContactPublic.model_fields)


def _bound(where: ContactFilter) -> tuple[Shape, dict[str, Any]]:
    """The filter's shape (which conditions it holds: one statement per shape) and the values
    of their ``bindparam``s."""
    values: dict[str, Any] = {}
    column = None
    if where.q and where.q.strip():
        column, found = search_pattern(where.q)
        values.update(found)
    if where.tags:
        values["tags"] = list(where.tags)
    if where.created_since is not None:
        values["created_since"] = where.created_since
    return (column, bool(where.tags), where.created_since is not None), values


def _page_statement(shape: Shape) -> Select[Any]:
    """The capped total and one page for filters of ``shape``, in one statement built once:
    one row per contact of the page, each with the total (one row of nulls but the total for
    an empty page). Values: ``company_id``, the filter's, ``skip``, ``rows``."""
    statement = _PAGES.get(shape)
    if statement is not None:
        return statement
    column, tags, created_since = shape
    company = bindparam("company_id", type_=Uuid())
    conditions = [col(Contact.company_id) == company]
    if column is not None:
        kind_type = ContactIdentity.__table__.c.kind.type  # type: ignore[attr-defined]
        params = {
            "pattern": bindparam("pattern", type_=String()),
            "kind": bindparam("kind", type_=kind_type),
            "value": bindparam("value", type_=String()),
        }
        conditions.append(_searched(column, company, params))
    if tags:
        tags_type = Contact.__table__.c.tags.type  # type: ignore[attr-defined]  # text[]
        conditions.append(col(Contact.tags).contains(bindparam("tags", type_=tags_type)))
    if created_since:
        since = bindparam("created_since", type_=DateTime(timezone=True))
        conditions.append(col(Contact.created_at) >= since)
    matched = select(col(Contact.id)).where(*conditions).limit(COUNT_AT_MOST + 1).subquery()
    total = select(func.count().label("total")).select_from(matched).subquery("total")
    page = (
        select(*(_column(name) for name in _PUBLIC_FIELDS))
        .where(*conditions)
        .order_by(*NEWEST_FIRST)
        .offset(bindparam("skip", type_=Integer()))
        .limit(bindparam("rows", type_=Integer()))
        .lateral("page")
    )
    statement = _PAGES[shape] = (
        select(total.c.total, *page.c)
        .select_from(total)
        .outerjoin(page, true())
        .order_by(page.c.created_at.desc(), page.c.id.desc())
    )  # at most 4 x 2 x 2 shapes
    return statement


async def page_contacts(
    reads: DriverReads, company_id: uuid.UUID, where: ContactFilter, page: int, limit: int
) -> tuple[list[dict[str, Any]], Total]:
    """One page, newest first, as ``ContactPublic`` dicts (column values, no model per row),
    and the total of matching contacts: one statement on the driver pool, built once per shape
    of filter (the contact search was among the costliest reads through a session)."""
    shape, values = _bound(where)
    found = await reads.fetch_fixed(
        _page_statement(shape),
        company_id=company_id,
        skip=(page - 1) * limit,
        rows=limit,
        **values,
    )
    counted = found[0]["total"]
    total = Total(min(counted, COUNT_AT_MOST), exact=counted <= COUNT_AT_MOST)
    rows = [{name: row[name] for name in _PUBLIC_FIELDS} for row in found if row["id"] is not None]
    return rows, total


async def get_contact(
    session: AsyncSession, company_id: uuid.UUID, contact_id: uuid.UUID
) -> Contact:
    return await get_scoped(session, Contact, company_id, contact_id)


# --- cache -----------------------------------------------------------------------------------


def contact_cache_key(contact_id: uuid.UUID) -> str:
    return f"contact:{contact_id}"


async def cached_contact(
    cache: Cache, sessions: SessionFactory, company_id: uuid.UUID, contact_id: uuid.UUID
) -> dict[str, Any]:
    """The contact's row as JSON, read through the cache (a session only when it misses). The
    entry is keyed by id alone and holds its ``company_id``, checked on every read: another
    company's contact stays a 404."""

    async def load() -> dict[str, Any]:
        async with sessions() as session:
            contact = await get_contact(session, company_id, contact_id)
            return (await public_of(session, contact)).model_dump(mode="json") | {
                "company_id": str(contact.company_id)
            }

    row: dict[str, Any] = await cache.get(
        contact_cache_key(contact_id), CONTACT_CACHE_SECONDS, load
    )
    if row["company_id"] != str(company_id):
        raise NotFound("contact not found")
    return row


def forget_contacts(session: AsyncSession, contact_ids: Sequence[uuid.UUID]) -> None:
    """Drops the contacts' cached copies everywhere once ``session``'s change is committed;
    every write of a contact here does it for its own."""
    keys = [contact_cache_key(contact_id) for contact_id in contact_ids]
    for start in range(0, len(keys), INVALIDATE_CHUNK):
        forget(session, *keys[start : start + INVALIDATE_CHUNK])


# --- writes ----------------------------------------------------------------------------------


async def _phone_taken(session: AsyncSession, company_id: uuid.UUID, phone: str) -> Conflict:
    query = select(col(Contact.id)).where(
        col(Contact.company_id) == company_id, col(Contact.phone_number) == phone
    )
    existing = (await session.execute(query)).scalar_one_or_none()
    return Conflict(
        "phone_number: a contact with this phone number exists",
        code="duplicate_phone",
        details={"field": "phone_number", "existing_id": existing},
    )


async def create_contact(
    session: AsyncSession, company_id: uuid.UUID, data: ContactCreate
) -> Contact:
    statement = (
        insert(Contact)
        .values(company_id=company_id, wa_id=jids.digits(data.phone_number), **data.model_dump())
        .on_conflict_do_nothing(index_elements=["company_id", "phone_number"])
        .returning(Contact)
    )
    contact = (await session.execute(statement)).scalar_one_or_none()
    if contact is None:
        raise await _phone_taken(session, company_id, data.phone_number)
    return contact


async def update_contact(
    session: AsyncSession, company_id: uuid.UUID, contact_id: uuid.UUID, data: ContactUpdate
) -> Contact:
    changes = data.changes()
    contact = await get_contact(session, company_id, contact_id)
    if "phone_number" in changes:
        changes["wa_id"] = jids.digits(changes["phone_number"])
    try:
        async with session.begin_nested():
            for name, value in changes.items():
                setattr(contact, name, value)
            await session.flush()
    except IntegrityError:  # the (company, phone) unique index: another contact has it
        raise await _phone_taken(session, company_id, changes["phone_number"]) from None
    forget_contacts(session, [contact_id])
    return contact


async def delete_contact(
    session: AsyncSession, company_id: uuid.UUID, contact_id: uuid.UUID
) -> None:
    """Deletes the contact with its conversations, messages, deals and notes (FK cascades)."""
    statement = (
        delete(Contact)
        .where(col(Contact.id) == contact_id, col(Contact.company_id) == company_id)
        .returning(col(Contact.id))
    )
    if (await session.execute(statement)).scalar_one_or_none() is None:
        raise NotFound("contact not found")
    forget_contacts(session, [contact_id])


def _has_tag(tag: str) -> ColumnElement[bool]:
    return literal(tag) == any_(col(Contact.tags))


async def add_tag(
    session: AsyncSession, company_id: uuid.UUID, contact_id: uuid.UUID, tag: str
) -> Contact:
    """Appends ``tag`` in SQL when missing, so concurrent edits of the list are not lost."""
    statement = (
        update(Contact)
        .where(
            col(Contact.id) == contact_id,
            col(Contact.company_id) == company_id,
            ~_has_tag(tag),
            func.cardinality(col(Contact.tags)) < MAX_TAGS,
        )
        .values(tags=func.array_append(col(Contact.tags), tag))
        .returning(Contact)
        .execution_options(populate_existing=True)
    )
    contact = (await session.execute(statement)).scalar_one_or_none()
    if contact is not None:
        forget_contacts(session, [contact_id])
        return contact
    contact = await get_contact(session, company_id, contact_id)
    if tag not in contact.tags:
        raise Unprocessable(f"tags: a contact has at most {MAX_TAGS} tags")
    return contact


async def remove_tag(
    session: AsyncSession, company_id: uuid.UUID, contact_id: uuid.UUID, tag: str
) -> None:
    statement = (
        update(Contact)
        .where(col(Contact.id) == contact_id, col(Contact.company_id) == company_id, _has_tag(tag))
        .values(tags=func.array_remove(col(Contact.tags), tag))
        .returning(col(Contact.id))
    )
    if (await session.execute(statement)).scalar_one_or_none() is None:
        await get_contact(session, company_id, contact_id)  # 404, or the tag was not there
    else:
        forget_contacts(session, [contact_id])
