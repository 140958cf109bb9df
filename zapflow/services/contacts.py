"""Contacts: the rules of their fields (E.164 phones, emails, tags, custom fields), tenant-scoped
search and offset pages, the cached read by id (and its invalidation), atomic tag edits, CSV
import (batched upserts by phone) and CSV export (keyset batches, never the whole table in
memory)."""

from __future__ import annotations

import asyncio
import codecs
import csv
import io
import re
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Annotated, Any, Literal

import orjson
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints
from pydantic import ValidationError as PydanticValidationError
from sqlalchemy import (
    Row,
    Select,
    any_,
    case,
    delete,
    func,
    literal,
    literal_column,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col

from zapflow.cache import Cache, forget
from zapflow.db import SessionFactory
from zapflow.errors import Conflict, NotFound, PayloadTooLarge, Unprocessable
from zapflow.models import Contact
from zapflow.services.paging import count_rows
from zapflow.services.queries import get_scoped
from zapflow.whatsapp import jid as jids

MAX_NAME_LENGTH = 200
MAX_EMAIL_LENGTH = 254
MAX_TAGS = 50
MAX_TAG_LENGTH = 50
TAG_SEPARATORS = re.compile(r"[;|]")
MAX_CUSTOM_FIELDS = 50
MAX_CUSTOM_KEY_LENGTH = 64
MAX_CUSTOM_VALUE_LENGTH = 1000
MAX_CUSTOM_FIELDS_BYTES = 8192
MAX_IMPORT_BYTES = 10 * 1024 * 1024
IMPORT_BATCH = 500
EXPORT_BATCH = 1000
MAX_REPORTED_ERRORS = 1000
CONTACT_CACHE_SECONDS = 300
INVALIDATE_CHUNK = 500  # keys per Redis round trip when an import updated many contacts

_PHONE_CHARS = re.compile(r"^\+?[\d\s().\-]+$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")
# Cells a spreadsheet would run as a formula are exported behind a "'" (OWASP CSV injection),
# as are cells already starting with one, so that import strips exactly what export added.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_ESCAPED_START = (*_FORMULA_START, "'")


# --- field rules -----------------------------------------------------------------------------


def normalize_phone(value: str) -> str:
    """Any usual spelling of an international number → E.164 (``+5511999999999``)."""
    number = jids.e164(value) if _PHONE_CHARS.match(value) else None
    if number is None or not 7 <= len(number) - 1 <= 15 or number.startswith("+0"):
        raise ValueError("not a phone number: give 7 to 15 digits starting with the country code")
    return number


def normalize_email(value: str) -> str:
    email = value.strip().lower()
    if len(email) > MAX_EMAIL_LENGTH or not _EMAIL.match(email):
        raise ValueError("not an email address")
    return email


def normalize_tag(value: str) -> str:
    tag = value.strip().lower()
    if not tag:
        raise ValueError("a tag cannot be empty")
    if len(tag) > MAX_TAG_LENGTH:
        raise ValueError(f"tag {tag[:20]!r}… is longer than {MAX_TAG_LENGTH} characters")
    if TAG_SEPARATORS.search(tag):
        raise ValueError(f"tag {tag!r} contains ';' or '|' (the CSV separators of tags)")
    return tag


def normalize_tags(values: list[str]) -> list[str]:
    """Trimmed, lower-case, without blanks or repeats, in the given order."""
    tags = list(dict.fromkeys(normalize_tag(v) for v in values if v.strip()))
    if len(tags) > MAX_TAGS:
        raise ValueError(f"at most {MAX_TAGS} tags")
    return tags


def _check_custom_fields(value: dict[str, Any]) -> dict[str, Any]:
    if len(value) > MAX_CUSTOM_FIELDS:
        raise ValueError(f"at most {MAX_CUSTOM_FIELDS} custom fields")
    if len(orjson.dumps(value)) > MAX_CUSTOM_FIELDS_BYTES:
        raise ValueError(f"custom fields take at most {MAX_CUSTOM_FIELDS_BYTES} bytes as JSON")
    return value


Phone = Annotated[
    str,
    AfterValidator(normalize_phone),
    Field(description="E.164 once stored; spaces, dashes and brackets are accepted"),
]
Name = Annotated[str, StringConstraints(strip_whitespace=True, max_length=MAX_NAME_LENGTH)]
Email = Annotated[str, AfterValidator(normalize_email)]
Tag = Annotated[str, AfterValidator(normalize_tag)]
Tags = Annotated[
    list[str],
    AfterValidator(normalize_tags),
    Field(description=f"Lower-cased, deduplicated; at most {MAX_TAGS} of {MAX_TAG_LENGTH} chars"),
]
CustomKey = Annotated[str, StringConstraints(min_length=1, max_length=MAX_CUSTOM_KEY_LENGTH)]
CustomValue = (
    bool
    | int
    | Annotated[float, Field(allow_inf_nan=False)]
    | Annotated[str, StringConstraints(max_length=MAX_CUSTOM_VALUE_LENGTH)]
    | None
)
CustomFields = Annotated[
    dict[CustomKey, CustomValue],
    AfterValidator(_check_custom_fields),
    Field(description="A flat object: string keys; string, number, boolean or null values"),
]


class ContactCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "phone_number": "+55 11 99999-0001",
                    "name": "Maria Souza",
                    "email": "maria@example.com",
                    "tags": ["lead", "VIP"],
                    "custom_fields": {"plan": "pro", "seats": 5},
                }
            ]
        },
    )

    phone_number: Phone
    name: Name = ""
    email: Email | None = None
    tags: Tags = Field(default_factory=list)
    custom_fields: CustomFields = Field(default_factory=dict)


class ContactUpdate(BaseModel):
    """Only the fields sent change; ``email: null`` clears the email, other fields refuse null."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"name": "Maria S. Souza", "tags": ["customer"]}]},
    )

    phone_number: Phone | None = None
    name: Name | None = None
    email: Email | None = None
    tags: Tags | None = None
    custom_fields: CustomFields | None = None

    def changes(self) -> dict[str, Any]:
        changes = self.model_dump(exclude_unset=True)
        nulls = sorted(k for k, v in changes.items() if v is None and k != "email")
        if nulls:
            raise Unprocessable(
                f"{nulls[0]}: may not be null",
                details=[{"field": f"body.{name}", "message": "may not be null"} for name in nulls],
            )
        return changes


def parse_update(fields: dict[str, Any]) -> ContactUpdate:
    """``fields`` validated as the API validates a PATCH body (for callers that are not the
    API, like a flow's node); a refusal names the field."""
    try:
        return ContactUpdate.model_validate(fields)
    except PydanticValidationError as exc:
        error = exc.errors()[0]
        raise Unprocessable(f"{_loc(error['loc'])}: {_message(error['msg'])}") from None


# --- reads -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ContactFilter:
    q: str | None = None
    tags: tuple[str, ...] = ()
    created_since: datetime | None = None


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def search_condition(q: str) -> ColumnElement[bool]:
    """What ``q`` looks like picks the column, so each search can use its index: an email
    prefix if it holds ``@``, phone digits (anywhere in the number) if it is phone-like, else a
    name fragment (ILIKE, served by the trigram index ``idx_contacts_name_trgm``)."""
    text = q.strip()
    if "@" in text:
        return col(Contact.email).like(_like_escape(text.lower()) + "%")
    if _PHONE_CHARS.match(text) and jids.digits(text):
        return col(Contact.phone_number).like(f"%{jids.digits(text)}%")
    return col(Contact.name).ilike(f"%{_like_escape(text)}%")


def filtered(company_id: uuid.UUID, where: ContactFilter, *columns: Any) -> Select[Any]:
    """The company's contacts matching ``where``: ``columns`` of them, else the rows."""
    query = select(*(columns or (Contact,))).where(col(Contact.company_id) == company_id)
    if where.q and where.q.strip():
        query = query.where(search_condition(where.q))
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


async def page_contacts(
    session: AsyncSession,
    company_id: uuid.UUID,
    where: ContactFilter,
    page: int,
    limit: int,
    fields: Sequence[str],
) -> tuple[list[dict[str, Any]], Total]:
    """One page, newest first, as dicts of ``fields`` (columns, not ORM rows), and the total of
    matching contacts (two queries at most)."""
    counted = await count_rows(session, filtered(company_id, where), at_most=COUNT_AT_MOST)
    total = Total(min(counted, COUNT_AT_MOST), exact=counted <= COUNT_AT_MOST)
    offset = (page - 1) * limit
    if total.exact and offset >= total.count:
        return [], total
    columns = [col(getattr(Contact, name)) for name in fields]
    query = filtered(company_id, where, *columns).order_by(*NEWEST_FIRST)
    rows = await session.execute(query.offset(offset).limit(limit))
    return [dict(zip(fields, row, strict=True)) for row in rows], total


async def get_contact(
    session: AsyncSession, company_id: uuid.UUID, contact_id: uuid.UUID
) -> Contact:
    return await get_scoped(session, Contact, company_id, contact_id)


# --- cache -----------------------------------------------------------------------------------


def contact_cache_key(contact_id: uuid.UUID) -> str:
    return f"contact:{contact_id}"


async def cached_contact(
    cache: Cache, session: AsyncSession, company_id: uuid.UUID, contact_id: uuid.UUID
) -> dict[str, Any]:
    """The contact's row as JSON, read through the cache. The entry is keyed by id alone and
    holds its ``company_id``, checked on every read: another company's contact stays a 404."""

    async def load() -> dict[str, Any]:
        return (await get_contact(session, company_id, contact_id)).model_dump(mode="json")

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


# --- CSV import ------------------------------------------------------------------------------

ImportMode = Literal["skip", "update"]
IMPORT_COLUMNS = ("phone_number", "name", "email", "tags", "custom_fields")
EXPORT_ONLY_COLUMNS = ("created_at",)  # accepted so an export imports as is; ignored
CUSTOM_PREFIX = "custom."


class RowError(BaseModel):
    row: int = Field(description="The record's number in the file, the header being row 1")
    field: str | None = Field(description="The column at fault; null for the whole row")
    message: str


class ImportReport(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "created": 120,
                    "updated": 8,
                    "skipped": 0,
                    "errors": [{"row": 7, "field": "phone_number", "message": "Field required"}],
                    "errors_omitted": 0,
                }
            ]
        }
    )

    created: int = 0
    updated: int = 0
    skipped: int = Field(0, description="Existing contacts left as they were (mode=skip)")
    errors: list[RowError] = Field(default_factory=list, description="Rows not imported, and why")
    errors_omitted: int = Field(0, description=f"Errors past the first {MAX_REPORTED_ERRORS}")

    def fail(self, row: int, column: str | None, message: str) -> None:
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append(RowError(row=row, field=column, message=message))
        else:
            self.errors_omitted += 1


async def spool_upload(chunks: AsyncIterator[bytes]) -> IO[bytes]:
    """The upload in a temporary file (in memory while small), refused over the size limit
    (413) or when it is not UTF-8 text without NULs (422), before any row is imported."""
    spool = tempfile.SpooledTemporaryFile(max_size=1024 * 1024)  # noqa: SIM115 (returned)
    decoder = codecs.getincrementaldecoder("utf-8")()
    size = 0
    try:
        async for chunk in chunks:
            size += len(chunk)
            if size > MAX_IMPORT_BYTES:
                raise PayloadTooLarge(
                    f"the file is over {MAX_IMPORT_BYTES // (1024 * 1024)} MB: split it",
                    details={"limit_bytes": MAX_IMPORT_BYTES},
                )
            if b"\x00" in chunk:  # Postgres text cannot hold it
                raise Unprocessable(
                    "file: contains a NUL character, which cannot be stored", code="unreadable_csv"
                )
            decoder.decode(chunk)
            spool.write(chunk)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        spool.close()
        raise Unprocessable(
            "file: not UTF-8 text (save it as 'CSV UTF-8')", code="unreadable_csv"
        ) from None
    except BaseException:
        spool.close()
        raise
    spool.seek(0)
    return spool


@dataclass
class _CsvRows:
    """Reads records from the spooled file; each becomes a valid contact or row errors."""

    reader: Iterator[list[str]]
    header: list[str]
    number: int = 1  # the header's
    seen: dict[str, int] = field(default_factory=dict)  # phone → the row that had it first
    finished: bool = False

    def next_batch(self, report: ImportReport) -> list[ContactCreate]:
        batch: list[ContactCreate] = []
        while len(batch) < IMPORT_BATCH:
            try:
                cells = next(self.reader)
            except StopIteration:
                self.finished = True
                break
            except csv.Error as exc:
                report.fail(self.number + 1, None, f"unreadable CSV from here on: {exc}")
                self.finished = True
                break
            self.number += 1
            contact = self._contact(cells, report)
            if contact is not None:
                batch.append(contact)
        return batch

    def _contact(self, cells: list[str], report: ImportReport) -> ContactCreate | None:
        if not any(cell.strip() for cell in cells):
            return None  # a blank line
        if len(cells) != len(self.header):
            message = f"{len(cells)} cells where the header has {len(self.header)}"
            report.fail(self.number, None, message)
            return None
        fields, problems = _row_fields(dict(zip(self.header, cells, strict=True)))
        try:
            contact = ContactCreate.model_validate(fields)
        except PydanticValidationError as exc:
            problems += [(_loc(e["loc"]), _message(e["msg"])) for e in exc.errors()]
            contact = None
        if contact is not None and not problems:
            first = self.seen.setdefault(contact.phone_number, self.number)
            if first == self.number:
                return contact
            problems.append(("phone_number", f"the same number as row {first}"))
        for column, message in problems:
            report.fail(self.number, column, message)
        return None


def _loc(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc)


def _message(pydantic_message: str) -> str:
    return pydantic_message.removeprefix("Value error, ")


def _unescape(cell: str) -> str:
    cell = cell.strip()
    return cell[1:] if cell.startswith("'") and cell[1:2].startswith(_ESCAPED_START) else cell


def _row_fields(cells: dict[str, str]) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """The given (non-empty) cells as ContactCreate input, and the cells that cannot be."""
    fields: dict[str, Any] = {}
    custom: dict[str, Any] = {}
    problems: list[tuple[str, str]] = []
    for column, raw in cells.items():
        value = _unescape(raw)
        if not value or column in EXPORT_ONLY_COLUMNS:
            continue
        if _is_custom(column):
            custom[column.removeprefix(CUSTOM_PREFIX)] = value
        elif column == "tags":
            fields["tags"] = TAG_SEPARATORS.split(value)
        elif column == "custom_fields":
            try:
                parsed = orjson.loads(value)
            except orjson.JSONDecodeError:
                parsed = None
            if isinstance(parsed, dict):
                custom = {**parsed, **custom}
            else:
                problems.append(("custom_fields", "not a JSON object"))
        else:
            fields[column] = value
    if custom:
        fields["custom_fields"] = custom
    return fields, problems


def _open_rows(spool: IO[bytes]) -> _CsvRows:
    text = io.TextIOWrapper(spool, encoding="utf-8-sig", newline="")
    first_line = text.readline()
    text.seek(0)
    # Spreadsheets in many locales (pt-BR among them) save CSV with ';' between cells.
    delimiter = max((",", ";", "\t"), key=first_line.count)
    reader = csv.reader(text, delimiter=delimiter)
    header = [_column(cell) for cell in next(reader, [])]
    _check_header(header)
    return _CsvRows(reader=reader, header=header)


def _column(cell: str) -> str:
    """Column names are case-insensitive; the keys of ``custom.<key>`` keep their case."""
    name = cell.strip()
    if name.lower().startswith(CUSTOM_PREFIX):
        return CUSTOM_PREFIX + name[len(CUSTOM_PREFIX) :]
    return name.lower()


def _is_custom(column: str) -> bool:
    return column.startswith(CUSTOM_PREFIX) and len(column) > len(CUSTOM_PREFIX)


def _check_header(header: list[str]) -> None:
    if not any(header):
        raise Unprocessable(
            "file: no header row (the first line names the columns, phone_number among them)",
            code="unreadable_csv",
        )
    known = (*IMPORT_COLUMNS, *EXPORT_ONLY_COLUMNS)
    problems = {
        "unknown": [c for c in header if c not in known and not _is_custom(c)],
        "repeated": sorted({c for c in header if header.count(c) > 1}),
        "missing": [] if "phone_number" in header else ["phone_number"],
    }
    if any(problems.values()):
        message = "; ".join(f"{kind} column {', '.join(c)}" for kind, c in problems.items() if c)
        raise Unprocessable(
            f"file: {message}",
            code="unreadable_csv",
            details={**problems, "allowed": [*known, "custom.<key>"]},
        )


async def import_contacts(
    session: AsyncSession, company_id: uuid.UUID, spool: IO[bytes], mode: ImportMode
) -> ImportReport:
    """Upserts the file's contacts by phone in batches; bad rows are reported, never fatal.
    Parsing runs in a thread, so a large file does not stall the event loop. The existing
    contacts it updated are invalidated once committed."""
    report = ImportReport()
    updated: list[uuid.UUID] = []
    rows = await asyncio.to_thread(_open_rows, spool)
    while not rows.finished:
        batch = await asyncio.to_thread(rows.next_batch, report)
        if batch:
            updated += await _upsert(session, company_id, batch, mode, report)
    forget_contacts(session, updated)
    return report


async def _upsert(
    session: AsyncSession,
    company_id: uuid.UUID,
    batch: list[ContactCreate],
    mode: ImportMode,
    report: ImportReport,
) -> list[uuid.UUID]:
    """Upserts one batch and counts it in ``report``; returns the ids of the updated contacts."""
    values = [
        {"company_id": company_id, "wa_id": jids.digits(c.phone_number), **c.model_dump()}
        for c in batch
    ]
    # a parameter list: SQLAlchemy sends multi-row INSERTs compiled once (insertmanyvalues)
    connection = await session.connection()
    rows = (await connection.execute(_UPSERTS[mode], values)).all()
    updated = [contact_id for created, contact_id in rows if not created]
    report.created += len(rows) - len(updated)
    report.updated += len(updated)
    report.skipped += len(batch) - len(rows)
    return updated


def _upsert_statement(mode: ImportMode) -> Any:
    statement = insert(Contact)
    target = ["company_id", "phone_number"]
    if mode == "skip":
        statement = statement.on_conflict_do_nothing(index_elements=target)
    else:
        new = statement.excluded
        # a cell left empty keeps what the contact has; custom fields are merged key by key
        statement = statement.on_conflict_do_update(
            index_elements=target,
            set_={
                "name": case((new.name == "", col(Contact.name)), else_=new.name),
                "email": func.coalesce(new.email, col(Contact.email)),
                "tags": case((func.cardinality(new.tags) == 0, col(Contact.tags)), else_=new.tags),
                "custom_fields": col(Contact.custom_fields).op("||")(new.custom_fields),
                "updated_at": func.now(),
            },
        )
    # xmax is 0 on a row this statement inserted, and set on one it updated
    return statement.returning(literal_column("xmax = 0"), col(Contact.id))


_UPSERTS = {mode: _upsert_statement(mode) for mode in ("skip", "update")}


# --- CSV export ------------------------------------------------------------------------------

EXPORT_COLUMNS = ("phone_number", "name", "email", "tags", "custom_fields", "created_at")


def _safe(cell: str) -> str:
    return "'" + cell if cell.startswith(_ESCAPED_START) else cell


_EXPORTED = (
    col(Contact.phone_number),
    col(Contact.name),
    col(Contact.email),
    col(Contact.tags),
    col(Contact.custom_fields),
    col(Contact.created_at),
)


def _export_cells(contact: Row[Any]) -> list[str]:
    return [
        contact.phone_number or "",
        _safe(contact.name),
        _safe(contact.email or ""),
        _safe(";".join(contact.tags)),
        orjson.dumps(contact.custom_fields).decode() if contact.custom_fields else "",
        contact.created_at.isoformat(),
    ]


def _drain(buffer: io.StringIO) -> str:
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return text


async def export_csv(
    sessions: SessionFactory, company_id: uuid.UUID, where: ContactFilter
) -> AsyncIterator[str]:
    """The matching contacts as CSV text, newest first, streamed from a server-side cursor in
    chunks of ``EXPORT_BATCH`` rows: one query and one snapshot, never all rows in memory."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(EXPORT_COLUMNS)
    yield _drain(buffer)
    query = filtered(company_id, where).with_only_columns(*_EXPORTED).order_by(*NEWEST_FIRST)
    async with sessions() as session:
        result = await session.stream(query.execution_options(yield_per=EXPORT_BATCH))
        async for rows in result.partitions():
            writer.writerows(_export_cells(row) for row in rows)
            yield _drain(buffer)
