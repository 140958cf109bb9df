"""Who a WhatsApp message is from: a contact's identities (phone, JID, ``@lid``, BSUID,
username) and how inbound traffic finds its contact by them.

Resolution order: the BSUID first (Meta's id of a user for this business: a user with a username
may send no phone at all, and a phone number can change hands), then the phone, the JIDs, the
lid. A number change (Meta's ``user_changed_number`` / ``user_changed_user_id`` system messages)
also names the previous phone and BSUID: they find the contact the new ones attach to, so the
person is not split in two. What a message adds (a phone shared later, a new BSUID) is attached
to the contact found, unless another contact already holds it: such pairs are duplicates for an
agent to merge (``services/contact_merge.py``), never silently moved.

Finding costs one indexed read (``(company_id, kind, value)`` is unique); creating a contact
takes a transaction-scoped advisory lock per identity first, so two conversations of one person
(a BSUID-keyed and a phone-keyed chat) never create two contacts at once. Locks come in one
order: the company's creation lock (shared here, exclusive for a CSV import with rows that may
create phoneless contacts, ``lock_creation``), then the identities' in one sorted statement.
An import is one transaction over many batches: locking each batch's identities as it came,
two imports (or an import and a webhook) naming the same people in other orders deadlocked.
The relay's transaction of several conversations resolves them as a group (``KnownOwners``):
one read for all, the unknown ones' locks in one sorted statement, before anything is stored.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from sqlalchemy import Text, and_, cast, func, select, text
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from zapflow.db import advisory_lock
from zapflow.models import Contact, ContactIdentity, IdentityKind
from zapflow.whatsapp import jid as jids
from zapflow.whatsapp.types import InboundMessage

Key = tuple[IdentityKind, str]


def alias_key(alias: str) -> Key:
    """The identity a WhatsApp address names: ``x@lid`` a lid, a BSUID (bare or ``@bsuid``),
    anything else a JID (user or group)."""
    if jids.is_lid(alias):
        return IdentityKind.LID, alias
    if jids.is_bsuid(alias):
        return IdentityKind.BSUID, jids.split_jid(alias)[0]
    return IdentityKind.JID, alias


def searched_identity(q: str) -> Key | None:
    """The identity a search names exactly: ``@name`` a username, ``BR.1502…`` a BSUID."""
    text = q.strip()
    if text.startswith("@") and len(text) > 1 and " " not in text:
        return IdentityKind.USERNAME, text
    if jids.is_bsuid(text):
        return IdentityKind.BSUID, jids.split_jid(text)[0]
    return None


def holders_of(company_id: Any, kind: Any, value: Any) -> Any:
    """The ids of the company's contacts holding the identity (a subquery; one row at most)."""
    return select(col(ContactIdentity.contact_id)).where(
        col(ContactIdentity.company_id) == company_id,
        col(ContactIdentity.kind) == kind,
        col(ContactIdentity.value) == value,
    )


@dataclass(frozen=True)
class Identity:
    """The names under which WhatsApp calls the other party of a chat. ``previous`` holds the
    names a number change left behind (they find the contact, they are not attached)."""

    phone: str | None
    lid: str | None
    aliases: tuple[str, ...]
    name: str | None
    user_id: str | None = None
    username: str | None = None
    previous: tuple[Key, ...] = field(default=())
    phone_changed: bool = False  # the phone replaces the contact's (a number change)

    @classmethod
    def of_chat(cls, remote_jid: str, messages: Sequence[InboundMessage]) -> Identity:
        if jids.is_group(remote_jid):
            return cls(phone=None, lid=None, aliases=(remote_jid,), name=None)
        change = next((c for m in messages if (c := _number_change(m))), None)
        phone = (
            next((m.phone for m in messages if m.phone), None)
            or jids.phone_from_jid(remote_jid)
            or next((p for m in messages if (p := shared_phone(m))), None)
        )
        user_ids = [m.user_id for m in messages if m.user_id]
        usernames = [m.username for m in messages if m.username and not m.from_me]
        previous: tuple[Key, ...] = ()
        if change is not None:
            previous = tuple((kind, value) for kind, value in change["previous"] if value)
            phone = change["phone"] or phone
            user_ids += [change["user_id"]] if change["user_id"] else []
        return cls(
            phone=phone,
            lid=next((m.lid for m in messages if m.lid), None),
            # the chat's key and each message's own address (a BSUID-keyed chat's phone JID)
            aliases=tuple(sorted({*user_ids, remote_jid, *(m.remote_jid for m in messages)})),
            name=next((m.push_name for m in messages if m.push_name and not m.from_me), None),
            user_id=user_ids[-1] if user_ids else None,
            username=usernames[-1] if usernames else None,
            previous=previous,
            phone_changed=change is not None and change["phone"] is not None,
        )

    def names(self) -> list[Key]:
        """This person's own identities, in the order that finds their contact."""
        found: list[Key] = []
        if self.user_id:
            found.append((IdentityKind.BSUID, self.user_id))
        if self.phone:
            found.append((IdentityKind.PHONE, self.phone))
        found += [alias_key(alias) for alias in self.aliases]
        if self.lid:
            found.append((IdentityKind.LID, self.lid))
        if self.username:
            found.append((IdentityKind.USERNAME, self.username))
        return list(dict.fromkeys(found))


def shared_phone(message: InboundMessage) -> str | None:
    """The phone a user shared from the business's contact request (Meta: a ``contacts``
    message with ``origin: contact_request``), the way a BSUID-only user gives a number."""
    if message.type != "contacts" or message.payload.get("origin") != "contact_request":
        return None
    for card in message.payload.get("contacts") or []:
        for phone in card.get("phones") or []:
            if isinstance(phone, dict) and phone.get("phone"):
                return str(phone["phone"])
    return None


def _number_change(message: InboundMessage) -> dict[str, Any] | None:
    change = message.payload.get("identity_change") if message.type == "system" else None
    if not isinstance(change, dict):
        return None
    previous = [
        (IdentityKind.BSUID, change.get("previous_user_id")),
        (IdentityKind.PHONE, message.phone if change.get("phone") else None),
    ]
    return {"phone": change.get("phone"), "user_id": change.get("user_id"), "previous": previous}


@dataclass(frozen=True)
class ResolvedContact:
    id: uuid.UUID
    changed: bool  # an existing contact took new identity data: its cached copy is stale
    # Meta named this BSUID's phone, held by another contact: (that contact, the BSUID's)
    revealed: tuple[uuid.UUID, uuid.UUID] | None = None
    created: bool = False  # by this transaction: no other transaction can see it yet


async def resolve_contact(
    session: AsyncSession,
    company_id: uuid.UUID,
    identity: Identity,
    known: KnownOwners | None = None,
) -> ResolvedContact:
    """The contact these identities name (created if none does), with what they add attached.
    A known contact that gains nothing costs one read and takes no lock; none with ``known``
    (read for a group of conversations at once, see ``KnownOwners``)."""
    own = identity.names()
    keys = [*own, *identity.previous]
    owners = known.owners(company_id, keys) if known is not None else None
    locked = owners is not None and known is not None and known.locked(company_id, own)
    if owners is None:
        owners = await owners_of(session, company_id, keys)
    found = _first_owner(owners, keys)
    if found is None and not locked:
        await lock_identities(session, company_id, own)
        owners = await owners_of(session, company_id, keys)
        found = _first_owner(owners, keys)
    if found is not None and known is not None and known.created(found.id):
        resolved = ResolvedContact(found.id, changed=False, created=True)
    else:
        resolved = await _resolved(session, company_id, identity, owners, found)
    if known is not None and (resolved.created or resolved.changed or resolved.revealed):
        known.wrote(company_id, keys, {resolved.id, *(resolved.revealed or ())})
    return resolved


async def _resolved(
    session: AsyncSession,
    company_id: uuid.UUID,
    identity: Identity,
    owners: dict[Key, Owner],
    found: Owner | None,
) -> ResolvedContact:
    """The contact found (with what the identity adds attached), else a new one."""
    if found is None:
        contact_id = await _create(session, company_id, identity)
        return ResolvedContact(contact_id, changed=False, created=True)
    held = {key for key, owner in owners.items() if owner.id == found.id}
    revealed = _revealed(owners, identity)
    if all(key in owners for key in identity.names()) and not _changes(found, identity, held):
        return ResolvedContact(found.id, changed=False, revealed=revealed)
    changed = await _attach(session, company_id, found.id, identity, owners)
    return ResolvedContact(found.id, changed, revealed)


class KnownOwners:
    """The owners of a group of conversations' identities (the relay's transaction of several,
    activities/conversations.py), read in one statement, and the creation locks of those no
    contact holds yet, taken in one sorted statement before any conversation is stored (then a
    re-read), and the contacts of those still unknown that share no identity with another of
    the group created in two statements: what ``resolve_contact`` reads, locks and creates per
    conversation otherwise. What an earlier conversation of the group wrote (a contact created,
    changed or merged, the identities it named) is read again, so the group resolves as one by
    one."""

    def __init__(self) -> None:
        self._owners: dict[tuple[uuid.UUID, Key], Owner] = {}
        self._read: set[tuple[uuid.UUID, Key]] = set()
        self._locked: set[tuple[uuid.UUID, Key]] = set()
        self._stale: set[tuple[uuid.UUID, Key]] = set()
        self._stale_contacts: set[uuid.UUID] = set()
        self._created: set[uuid.UUID] = set()

    @classmethod
    async def read(
        cls, session: AsyncSession, wanted: Sequence[tuple[uuid.UUID, Identity]]
    ) -> KnownOwners:
        known = cls()
        by_company: dict[uuid.UUID, list[Identity]] = {}
        for company_id, identity in wanted:
            by_company.setdefault(company_id, []).append(identity)
        for company_id in sorted(by_company):
            identities = by_company[company_id]
            keys = list(dict.fromkeys(k for i in identities for k in [*i.names(), *i.previous]))
            owners = await owners_of(session, company_id, keys)
            new = [i for i in identities if _first_owner(owners, [*i.names(), *i.previous]) is None]
            if new:  # one sorted statement for them all, then what other transactions created
                own = list(dict.fromkeys(k for i in new for k in i.names()))
                await lock_identities(session, company_id, own)
                owners = await owners_of(session, company_id, keys)
                known._locked.update((company_id, key) for key in own)
                owners |= await known._create(session, company_id, _apart(new, owners))
            known._read.update((company_id, key) for key in keys)
            known._owners.update(((company_id, key), owner) for key, owner in owners.items())
        return known

    def owners(self, company_id: uuid.UUID, keys: Sequence[Key]) -> dict[Key, Owner] | None:
        """The owners of ``keys`` as read, or None when they must be read again."""
        named = [(company_id, key) for key in keys]
        if any(k not in self._read or k in self._stale for k in named):
            return None
        owners = {key: self._owners[k] for key, k in zip(keys, named, strict=True)
                  if k in self._owners}  # fmt: skip
        if any(owner.id in self._stale_contacts for owner in owners.values()):
            return None
        return owners

    async def _create(
        self, session: AsyncSession, company_id: uuid.UUID, identities: list[Identity]
    ) -> dict[Key, Owner]:
        """A contact for each identity (as ``_create`` makes one), in two statements; the
        owners of their identities."""
        if not identities:
            return {}
        ids = [uuid.uuid4() for _ in identities]
        rows = [
            {"id": contact_id, "company_id": company_id, "phone_number": i.phone,
             "wa_id": jids.digits(i.phone) if i.phone else None, "lid": i.lid,
             "name": i.name or ""}
            for contact_id, i in zip(ids, identities, strict=True)
        ]  # fmt: skip
        await session.execute(insert(Contact).values(rows))
        others: dict[uuid.UUID, Sequence[Key]] = {
            contact_id: [k for k in i.names() if k[0] not in (IdentityKind.PHONE, IdentityKind.LID)]
            for contact_id, i in zip(ids, identities, strict=True)
        }
        await attach_to_contacts(session, company_id, others)
        self._created |= set(ids)
        return {
            key: Owner(contact_id, i.phone, i.lid, i.name or "")
            for contact_id, i in zip(ids, identities, strict=True)
            for key in i.names()
        }

    def created(self, contact_id: uuid.UUID) -> bool:
        """Created by ``read`` for its conversation (which finds it as its own new contact)."""
        return contact_id in self._created

    def locked(self, company_id: uuid.UUID, keys: Sequence[Key]) -> bool:
        return all((company_id, key) in self._locked for key in keys)

    def wrote(self, company_id: uuid.UUID, keys: Sequence[Key], contacts: set[uuid.UUID]) -> None:
        self._stale.update((company_id, key) for key in keys)
        self._stale_contacts |= contacts


def _apart(identities: list[Identity], owners: dict[Key, Owner]) -> list[Identity]:
    """The identities no contact holds that share no identity with another of the list (two
    conversations of one new person: the first creates the contact, the second finds it)."""
    unknown = [i for i in identities if _first_owner(owners, [*i.names(), *i.previous]) is None]
    named: dict[Key, int] = {}
    for identity in unknown:
        for key in {*identity.names(), *identity.previous}:
            named[key] = named.get(key, 0) + 1
    return [i for i in unknown if all(named[k] == 1 for k in {*i.names(), *i.previous})]


def _revealed(owners: dict[Key, Owner], identity: Identity) -> tuple[uuid.UUID, uuid.UUID] | None:
    """One person split in two: a message names a BSUID and a phone (Meta's ``from`` beside
    ``from_user_id``, or a shared number) while the BSUID's contact has no phone and another
    holds it (a chat from before BSUIDs). Not for a number change, which moves the phone."""
    if not (identity.user_id and identity.phone) or identity.previous or identity.phone_changed:
        return None
    by_bsuid = owners.get((IdentityKind.BSUID, identity.user_id))
    by_phone = owners.get((IdentityKind.PHONE, identity.phone))
    if by_bsuid is None or by_phone is None or by_bsuid.id == by_phone.id:
        return None
    return (by_phone.id, by_bsuid.id) if by_bsuid.phone_number is None else None


class Owner(NamedTuple):
    """The contact that holds an identity, as far as resolving needs it."""

    id: uuid.UUID
    phone_number: str | None
    lid: str | None
    name: str


async def owners_of(
    session: AsyncSession, company_id: uuid.UUID, keys: Sequence[Key]
) -> dict[Key, Owner]:
    if not keys:
        return {}
    # a join on the keys unnested: an import's batch asks for a thousand, which as an IN list
    # of pairs made a filter tried on every identity of the company (quadratic over a file)
    wanted = (
        func.unnest(
            cast([kind.value for kind, _ in keys], ARRAY(Text)),
            cast([value for _, value in keys], ARRAY(Text)),
        )
        .table_valued("kind", "value")
        .render_derived(name="wanted")
    )
    query = (
        select(
            col(ContactIdentity.kind),
            col(ContactIdentity.value),
            col(Contact.id),
            col(Contact.phone_number),
            col(Contact.lid),
            col(Contact.name),
        )
        .join(Contact, col(Contact.id) == col(ContactIdentity.contact_id))
        .join(
            wanted,
            and_(
                col(ContactIdentity.kind) == wanted.c.kind,
                col(ContactIdentity.value) == wanted.c.value,
            ),
        )
        .where(col(ContactIdentity.company_id) == company_id)
    )
    return {
        (IdentityKind(kind), value): Owner(contact_id, phone, lid, name)
        for kind, value, contact_id, phone, lid, name in await session.execute(query)
    }


def _first_owner(owners: dict[Key, Owner], keys: Sequence[Key]) -> Owner | None:
    return next((owners[key] for key in keys if key in owners), None)


async def lock_creation(
    session: AsyncSession, company_id: uuid.UUID, *, exclusive: bool = False
) -> None:
    """The company's lock on creating contacts by identity, until the transaction ends: shared
    by webhooks' creations (each then locks its identities), exclusive for an import, whose
    many batches could not lock theirs in one order (and would hold one lock per row)."""
    await advisory_lock(session, f"{company_id}:contact-creation", shared=not exclusive)


async def lock_identities(
    session: AsyncSession, company_id: uuid.UUID, keys: Sequence[Key]
) -> None:
    """The company's creation lock (shared), then one transaction-scoped advisory lock per
    identity, taken in a fixed order."""
    await lock_creation(session, company_id)
    names = sorted(f"{company_id}:{kind.value}:{value}" for kind, value in keys)
    await session.execute(
        text(
            "SELECT count(pg_advisory_xact_lock(h)) FROM (SELECT hashtextextended(k, 0) AS h"
            " FROM unnest(CAST(:names AS text[])) AS k ORDER BY 1) AS locks"
        ),
        {"names": names},
    )


async def attach_identities(
    session: AsyncSession, company_id: uuid.UUID, contact_id: uuid.UUID, keys: Sequence[Key]
) -> set[Key]:
    """Adds the identities no contact holds yet; returns those this call attached."""
    return await attach_to_contacts(session, company_id, {contact_id: keys})


async def attach_to_contacts(
    session: AsyncSession, company_id: uuid.UUID, found: dict[uuid.UUID, Sequence[Key]]
) -> set[Key]:
    """Adds each contact's identities that no contact holds yet, in one statement; returns
    those attached."""
    rows = [(contact_id, kind, value) for contact_id, keys in found.items() for kind, value in keys]
    if not rows:
        return set()
    params = {
        "company_id": company_id,
        "contact_ids": [contact_id for contact_id, _, _ in rows],
        "kinds": [kind.value for _, kind, _ in rows],
        "values": [value for _, _, value in rows],
    }
    return {(IdentityKind(k), v) for k, v in (await session.execute(ATTACH, params)).all()}


# arrays, not a VALUES list: one statement whatever the count (an import attaches a thousand)
ATTACH = text(
    """
    INSERT INTO contact_identities (company_id, contact_id, kind, value)
    SELECT CAST(:company_id AS uuid), k.contact_id, k.kind, k.value
      FROM unnest(CAST(:contact_ids AS uuid[]), CAST(:kinds AS text[]), CAST(:values AS text[]))
        AS k(contact_id, kind, value)
    ON CONFLICT (company_id, kind, value) DO NOTHING
    RETURNING kind, value
    """
)


async def _create(session: AsyncSession, company_id: uuid.UUID, identity: Identity) -> uuid.UUID:
    """A new contact; its phone and lid identities come from the contacts trigger."""
    statement = (
        insert(Contact)
        .values(
            id=uuid.uuid4(),
            company_id=company_id,
            phone_number=identity.phone,
            wa_id=jids.digits(identity.phone) if identity.phone else None,
            lid=identity.lid,
            name=identity.name or "",
        )
        .returning(col(Contact.id))
    )
    contact_id = (await session.execute(statement)).scalar_one()
    others = [k for k in identity.names() if k[0] not in (IdentityKind.PHONE, IdentityKind.LID)]
    await attach_identities(session, company_id, contact_id, others)
    return contact_id


async def _attach(
    session: AsyncSession,
    company_id: uuid.UUID,
    contact_id: uuid.UUID,
    identity: Identity,
    owners: dict[Key, Owner],
) -> bool:
    """Attach what the identity adds to the contact (the row locked); whether it changed (its
    row, or the identities its public copy lists as ``aliases``)."""
    missing = [key for key in identity.names() if key not in owners]
    held = {key for key, owner in owners.items() if owner.id == contact_id}
    attached = await attach_identities(session, company_id, contact_id, missing)
    held |= attached
    contact = await session.get(Contact, contact_id, with_for_update=True, populate_existing=True)
    assert contact is not None
    changes = _changes(contact, identity, held)
    for name, value in changes.items():
        setattr(contact, name, value)
    if changes:
        await session.flush()
    return bool(changes or attached)


def _changes(contact: Contact | Owner, identity: Identity, held: set[Key]) -> dict[str, Any]:
    """What the contact's row takes from the identity: a phone or lid it holds and the row
    lacks (or a changed number), a name when it has none."""
    changes: dict[str, Any] = {}
    phone = identity.phone
    replaceable = contact.phone_number is None or identity.phone_changed
    if (
        phone
        and replaceable
        and contact.phone_number != phone
        and (IdentityKind.PHONE, phone) in held
    ):
        changes.update(phone_number=phone, wa_id=jids.digits(phone))
    if identity.lid and not contact.lid and (IdentityKind.LID, identity.lid) in held:
        changes["lid"] = identity.lid
    if identity.name and not contact.name:
        changes["name"] = identity.name
    return changes
