"""Contacts in CSV: import (the upload spooled and checked, then batched upserts by phone, bad
rows reported and never fatal) and export (keyset batches from a server-side cursor, never the
whole table in memory). Cells a spreadsheet would run as formulas are escaped on the way out.

A contact's WhatsApp identities beyond the phone travel too: ``bsuid`` (Meta's business-scoped
user id, the newest) and ``username`` are exported, and an imported row's are attached to the
contact it created or updated (unless another contact holds them). A row without a phone (a
customer known only by BSUID or username) is the contact holding its BSUID, else its username,
or a new phoneless contact holding them.
"""

from __future__ import annotations

import asyncio
import codecs
import csv
import io
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import IO, Any, Literal

import orjson
from pydantic import ValidationError as PydanticValidationError
from sqlalchemy import Row, bindparam, case, func, literal_column, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from zapflow.db import SessionFactory, advisory_lock
from zapflow.errors import PayloadTooLarge, Unprocessable
from zapflow.models import Contact, ContactIdentity, IdentityKind
from zapflow.schemas.contacts import (
    TAG_SEPARATORS,
    ContactCreate,
    ContactFields,
    ImportReport,
    error_location,
    error_message,
)
from zapflow.services.contacts import NEWEST_FIRST, ContactFilter, filtered, forget_contacts
from zapflow.services.identities import Key, attach_to_contacts, lock_creation, owners_of
from zapflow.whatsapp import jid as jids

MAX_IMPORT_BYTES = 10 * 1024 * 1024
IMPORT_BATCH = 500
EXPORT_BATCH = 1000
# Cells a spreadsheet would run as a formula are exported behind a "'" (OWASP CSV injection),
# as are cells already starting with one, so that import strips exactly what export added.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_ESCAPED_START = (*_FORMULA_START, "'")

ImportMode = Literal["skip", "update"]
IMPORT_COLUMNS = ("phone_number", "name", "email", "tags", "custom_fields")
IDENTITY_COLUMNS = (IdentityKind.BSUID, IdentityKind.USERNAME)  # attached, not contact fields
IDENTITY_NAMES = {kind.value for kind in IDENTITY_COLUMNS}
EXPORT_ONLY_COLUMNS = ("created_at",)  # accepted so an export imports as is; ignored
IDENTITY_MAX = 256
CUSTOM_PREFIX = "custom."


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


@dataclass(frozen=True)
class ImportRow:
    contact: ContactCreate | ContactFields  # the latter: no phone, found by its identities
    identities: list[Key]

    @property
    def key(self) -> str | Key:
        """What the row is found by: its phone, else its first identity (BSUID first)."""
        if isinstance(self.contact, ContactCreate):
            return self.contact.phone_number
        return self.identities[0]


def _identities(fields: dict[str, Any], problems: list[tuple[str, str]]) -> list[Key]:
    """Takes the identity cells out of a row's fields, checked."""
    found: list[Key] = []
    for kind in IDENTITY_COLUMNS:
        value = fields.pop(kind.value, None)
        if value is None:
            continue
        if len(value) > IDENTITY_MAX:
            problems.append((kind.value, f"longer than {IDENTITY_MAX} characters"))
        elif kind == IdentityKind.BSUID and not jids.is_bsuid(value):
            problems.append((kind.value, "not a business-scoped user id (such as BR.1502…)"))
        else:
            found.append((kind, jids.split_jid(value)[0] if kind == IdentityKind.BSUID else value))
    return found


@dataclass
class _CsvRows:
    """Reads records from the spooled file; each becomes a valid contact or row errors."""

    reader: Iterator[list[str]]
    header: list[str]
    stream: io.TextIOWrapper  # over the spool (closing it would close the spool)
    number: int = 1  # the header's
    seen: dict[str | Key, int] = field(default_factory=dict)  # key → the row that had it first
    finished: bool = False

    def next_batch(self, report: ImportReport) -> list[ImportRow]:
        batch: list[ImportRow] = []
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

    def _contact(self, cells: list[str], report: ImportReport) -> ImportRow | None:
        if not any(cell.strip() for cell in cells):
            return None  # a blank line
        if len(cells) != len(self.header):
            message = f"{len(cells)} cells where the header has {len(self.header)}"
            report.fail(self.number, None, message)
            return None
        fields, problems = _row_fields(dict(zip(self.header, cells, strict=True)))
        identities = _identities(fields, problems)
        phoneless = "phone_number" not in fields and bool(identities)
        try:
            model = ContactFields if phoneless else ContactCreate
            row = ImportRow(model.model_validate(fields), identities)
        except PydanticValidationError as exc:
            problems += [(error_location(e["loc"]), error_message(e["msg"])) for e in exc.errors()]
            row = None
        if row is not None and not problems:
            first = self.seen.setdefault(row.key, self.number)
            if first == self.number:
                return row
            if phoneless:
                problems.append((row.identities[0][0].value, f"the same contact as row {first}"))
            else:
                problems.append(("phone_number", f"the same number as row {first}"))
        for column, message in problems:
            report.fail(self.number, column, message)
        return None


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
    return _CsvRows(reader=reader, header=header, stream=text)


def _creates_by_identity(spool: IO[bytes]) -> bool:
    """Whether a row may have no phone but a BSUID or username (one that may create a contact
    by its identities; erring towards yes), read ahead of the import; the spool is rewound."""
    rows = _open_rows(spool)
    try:
        named = [i for i, column in enumerate(rows.header) if column in IDENTITY_NAMES]
        phone = rows.header.index("phone_number") if "phone_number" in rows.header else None
        return bool(named) and any(
            (phone is None or not _unescape(cells[phone]))
            and any(_unescape(cells[i]) for i in named)
            for cells in rows.reader
            if len(cells) == len(rows.header)
        )
    except csv.Error:
        return True  # the import stops there; what comes before may be such a row
    finally:
        rows.stream.detach()
        spool.seek(0)


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
    known = (*IMPORT_COLUMNS, *IDENTITY_COLUMNS, *EXPORT_ONLY_COLUMNS)
    problems = {
        "unknown": [c for c in header if c not in known and not _is_custom(c)],
        "repeated": sorted({c for c in header if header.count(c) > 1}),
        "missing": [] if {"phone_number", *IDENTITY_COLUMNS} & {*header} else ["phone_number"],
    }
    if any(problems.values()):
        message = "; ".join(f"{kind} column {', '.join(c)}" for kind, c in problems.items() if c)
        raise Unprocessable(
            f"file: {message}",
            code="unreadable_csv",
            details={**problems, "allowed": [*known, "custom.<key>"]},
        )


async def import_contacts(
    session: AsyncSession,
    company_id: uuid.UUID,
    spool: IO[bytes],
    mode: ImportMode,
    tag: str | None = None,
) -> ImportReport:
    """Upserts the file's contacts by phone in batches; bad rows are reported, never fatal.
    Parsing runs in a thread, so a large file does not stall the event loop. ``tag`` (a
    campaign's CSV audience) is added to every imported contact, whatever tags its row gives.
    The existing contacts it updated are invalidated once committed. A file with a row that
    may create a contact by BSUID or username (no phone) takes the company's creation lock
    first (``identities.lock_creation``): its batches could not lock their identities in one
    order, and two imports, or an import and a webhook, naming the same people deadlocked.
    Imports of one company run one at a time: two naming the same phones in other orders
    (each one transaction over its batches) deadlocked on the contact rows."""
    report = ImportReport()
    updated: list[uuid.UUID] = []
    await advisory_lock(session, f"{company_id}:contact-import")
    if await asyncio.to_thread(_creates_by_identity, spool):
        await lock_creation(session, company_id, exclusive=True)  # before any row is touched
    rows = await asyncio.to_thread(_open_rows, spool)
    while not rows.finished:
        batch = await asyncio.to_thread(rows.next_batch, report)
        if batch:
            created, changed = await _upsert(session, company_id, batch, mode, report)
            updated += changed
            if tag is not None:
                await _add_tag(session, [*created, *changed], tag)
    forget_contacts(session, updated)
    return report


async def _add_tag(session: AsyncSession, contact_ids: list[uuid.UUID], tag: str) -> None:
    await session.execute(
        update(Contact)
        .where(col(Contact.id).in_(contact_ids), ~col(Contact.tags).contains([tag]))
        .values(tags=func.array_append(col(Contact.tags), tag))
        .execution_options(synchronize_session=False)
    )


async def _upsert(
    session: AsyncSession,
    company_id: uuid.UUID,
    batch: list[ImportRow],
    mode: ImportMode,
    report: ImportReport,
) -> tuple[list[uuid.UUID], list[uuid.UUID]]:
    """Upserts one batch and counts it in ``report``; returns the ids of the created and of
    the updated contacts. The identities of the rows created or updated are attached."""
    phoned = [r for r in batch if isinstance(r.contact, ContactCreate)]
    values = [
        {"company_id": company_id, "wa_id": jids.digits(r.key)} | r.contact.model_dump()
        for r in phoned
        if isinstance(r.key, str)
    ]
    rows: list[Any] = []
    if values:
        # a parameter list: SQLAlchemy sends multi-row INSERTs compiled once (insertmanyvalues)
        connection = await session.connection()
        rows = list((await connection.execute(_UPSERTS[mode], values)).all())
    by_phone = {r.key: r.identities for r in phoned if r.identities}
    owners: dict[uuid.UUID, Sequence[Key]] = {
        contact_id: by_phone.get(phone, []) for _, contact_id, phone in rows
    }
    rows += await _upsert_phoneless(session, company_id, batch, mode, owners)
    await attach_to_contacts(session, company_id, owners)
    created = [contact_id for is_new, contact_id, _ in rows if is_new]
    updated = [contact_id for is_new, contact_id, _ in rows if not is_new]
    report.created += len(created)
    report.updated += len(updated)
    report.skipped += len(batch) - len(rows)
    return created, updated


async def _upsert_phoneless(
    session: AsyncSession,
    company_id: uuid.UUID,
    batch: list[ImportRow],
    mode: ImportMode,
    owners: dict[uuid.UUID, Sequence[Key]],
) -> list[tuple[bool, uuid.UUID, None]]:
    """The rows without a phone: each is the contact holding its BSUID (else its username),
    updated as ``mode`` says, or a new phoneless contact; adds each contact's identities to
    ``owners``. The import holds the company's creation lock (``import_contacts``): no webhook
    creates one of these people meanwhile."""
    rows = [r for r in batch if not isinstance(r.contact, ContactCreate)]
    if not rows:
        return []
    keys = [key for r in rows for key in r.identities]
    held = await owners_of(session, company_id, keys)
    done: list[tuple[bool, uuid.UUID, None]] = []
    new: list[dict[str, Any]] = []
    for row in rows:
        owner = next((held[key] for key in row.identities if key in held), None)
        if owner is not None and mode == "skip":
            continue
        fields = row.contact.model_dump()
        if owner is None:
            contact_id = uuid.uuid4()
            new.append({"id": contact_id, "company_id": company_id, **fields})
        else:
            contact_id = owner.id
            await session.execute(UPDATE_FOUND, {"contact_id": contact_id, **fields})
        owners[contact_id] = row.identities
        done.append((owner is None, contact_id, None))
    if new:  # Core, as the rows with a phone: ORM objects cost more than the rows' insert
        await (await session.connection()).execute(insert(Contact), new)
    return done


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
    return statement.returning(
        literal_column("xmax = 0"), col(Contact.id), col(Contact.phone_number)
    )


_UPSERTS = {mode: _upsert_statement(mode) for mode in ("skip", "update")}
_COLUMNS = Contact.__table__.c  # type: ignore[attr-defined]
# a row without a phone updating the contact found by its identities, as the upsert would
UPDATE_FOUND = (
    update(Contact)
    .where(col(Contact.id) == bindparam("contact_id"))
    .values(
        name=case((bindparam("name") == "", col(Contact.name)), else_=bindparam("name")),
        email=func.coalesce(bindparam("email", type_=_COLUMNS.email.type), col(Contact.email)),
        tags=case(
            (func.cardinality(bindparam("tags", type_=_COLUMNS.tags.type)) == 0, col(Contact.tags)),
            else_=bindparam("tags", type_=_COLUMNS.tags.type),
        ),
        custom_fields=col(Contact.custom_fields).op("||")(
            bindparam("custom_fields", type_=_COLUMNS.custom_fields.type)
        ),
        updated_at=func.now(),
    )
    .execution_options(synchronize_session=False)
)


# --- CSV export ------------------------------------------------------------------------------

EXPORT_COLUMNS = (
    "phone_number", "name", "email", "tags", "custom_fields", "created_at", "bsuid", "username",
)  # fmt: skip


def _newest_identity(kind: IdentityKind) -> Any:
    return (
        select(col(ContactIdentity.value))
        .where(
            col(ContactIdentity.contact_id) == col(Contact.id),
            col(ContactIdentity.kind) == kind,
        )
        .order_by(col(ContactIdentity.created_at).desc())
        .limit(1)
        .scalar_subquery()
        .label(kind.value)
    )


def safe_cell(cell: str) -> str:
    """The cell as exported: behind a "'" where a spreadsheet would run it as a formula."""
    return "'" + cell if cell.startswith(_ESCAPED_START) else cell


_EXPORTED = (
    col(Contact.phone_number),
    col(Contact.name),
    col(Contact.email),
    col(Contact.tags),
    col(Contact.custom_fields),
    col(Contact.created_at),
    *map(_newest_identity, IDENTITY_COLUMNS),
)


def _export_cells(contact: Row[Any]) -> list[str]:
    return [
        contact.phone_number or "",
        safe_cell(contact.name),
        safe_cell(contact.email or ""),
        safe_cell(";".join(contact.tags)),
        orjson.dumps(contact.custom_fields).decode() if contact.custom_fields else "",
        contact.created_at.isoformat(),
        contact.bsuid or "",
        safe_cell(contact.username or ""),
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
