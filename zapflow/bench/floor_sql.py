"""The CRM reads of the API floor (bench/api_floor.py): for each route of the crm-read mix, the
statements zapflow's route runs, as Postgres logged them (``log_min_duration_statement = 0``,
one request per route on seed-demo data; bench/README.md says how to capture them again), and
the rows as JSON. Differences, all in the floor's favour except the board's: the company is
fixed (no API key lookup, rate limit or company settings read), nothing is cached (zapflow
serves contact details and funnel stages from its cache, so the floor's board reads the stages
each time: one query more than zapflow's), and the JSON is the rows as they come."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg
import orjson

from zapflow.services.paging import decode_cursor, encode_cursor

PAGE = 50

CONVERSATION_COLUMNS = """conversations.id, conversations.company_id, conversations.instance_id,
conversations.contact_id, conversations.remote_jid, conversations.status, conversations.is_paused,
conversations.assigned_user_id, conversations.last_message_at, conversations.last_inbound_at,
conversations.last_message_preview, conversations.unread_count, conversations.message_count,
conversations.workflow_id, conversations.created_at, conversations.updated_at"""
CONVERSATION_LIST = f"""SELECT {CONVERSATION_COLUMNS}, contacts.id AS id_1, contacts.name,
contacts.phone_number, whatsapp_instances.name AS name_1
FROM conversations JOIN contacts ON contacts.id = conversations.contact_id
JOIN whatsapp_instances ON whatsapp_instances.id = conversations.instance_id
WHERE conversations.company_id = $1::UUID {{after}}
ORDER BY conversations.last_message_at DESC, conversations.id DESC LIMIT $2::INTEGER"""
AFTER = "AND (conversations.last_message_at, conversations.id) < ($3::TIMESTAMPTZ, $4::UUID)"
CONVERSATION = f"SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE conversations.id = $1::UUID"
MESSAGE_PAGE = """SELECT messages.id, messages.company_id, messages.conversation_id,
messages.instance_id, messages.message_key_id, messages.client_id, messages.direction,
messages.from_me, messages.type, messages.body, messages.media, messages.payload,
messages.participant, messages.reply_to_key_id, messages.provider_timestamp, messages.status,
messages.status_updated_at, messages.error, messages.sent_by, messages.sent_by_user_id,
messages.created_at
FROM messages WHERE messages.conversation_id = $1::UUID
ORDER BY messages.created_at DESC, messages.id DESC LIMIT $2::INTEGER"""
CONTACT_COLUMNS = """contacts.phone_number, contacts.name, contacts.email, contacts.tags,
contacts.custom_fields, contacts.id, contacts.company_id, contacts.wa_id, contacts.lid,
(SELECT coalesce(jsonb_agg(contact_identities.value ORDER BY contact_identities.created_at,
contact_identities.value), '[]'::jsonb) FROM contact_identities
WHERE contact_identities.contact_id = contacts.id
AND contact_identities.kind IN ('jid', 'lid', 'bsuid')) AS aliases,
contacts.created_at, contacts.updated_at"""
CONTACT_COUNT = """SELECT count(*) FROM contacts
WHERE contacts.company_id = $1::UUID AND contacts.name ILIKE $2::VARCHAR"""
CONTACT_SEARCH = f"""SELECT {CONTACT_COLUMNS} FROM contacts
WHERE contacts.company_id = $1::UUID AND contacts.name ILIKE $2::VARCHAR
ORDER BY contacts.created_at DESC, contacts.id DESC LIMIT $3::INTEGER OFFSET $4::INTEGER"""
CONTACT = f"SELECT {CONTACT_COLUMNS} FROM contacts WHERE contacts.id = $1::UUID"
FUNNEL = """SELECT funnels.name, funnels.description, funnels.id, funnels.company_id,
funnels.created_at, funnels.updated_at FROM funnels WHERE funnels.id = $1::UUID"""
STAGES = """SELECT id, funnel_id, name, color, position, created_at FROM stages
WHERE funnel_id = $1::UUID ORDER BY position"""
DEAL_TOTALS = """SELECT deals.stage_id, deals.currency, count(*), sum(deals.value) FROM deals
WHERE deals.company_id = $1::UUID AND deals.funnel_id = $2::UUID AND deals.status = 'open'
GROUP BY deals.stage_id, deals.currency"""
BOARD_DEALS = """SELECT anon_1.title, anon_1.value, anon_1.currency, anon_1.funnel_id,
anon_1.stage_id, anon_1.contact_id, anon_1.owner_user_id, anon_1.id, anon_1.company_id,
anon_1.status, anon_1.closed_at, anon_1.created_at, anon_1.updated_at,
contacts.name AS contact_name, contacts.phone_number AS contact_phone_number
FROM (SELECT unnest($1::UUID[]) AS id) AS anon_2 JOIN LATERAL (
  SELECT deals.title, deals.value, deals.currency, deals.funnel_id, deals.stage_id,
         deals.contact_id, deals.owner_user_id, deals.id, deals.company_id, deals.status,
         deals.closed_at, deals.created_at, deals.updated_at
  FROM deals WHERE deals.company_id = $2::UUID AND deals.funnel_id = $3::UUID
   AND deals.stage_id = anon_2.id AND deals.status = 'open'
  ORDER BY deals.created_at DESC, deals.id DESC LIMIT $4::INTEGER) AS anon_1 ON true
JOIN contacts ON contacts.id = anon_1.contact_id
ORDER BY anon_1.stage_id, anon_1.created_at DESC, anon_1.id DESC"""


def _default(value: Any) -> Any:
    if isinstance(value, Decimal | uuid.UUID):  # asyncpg's UUID subclass is not orjson's
        return str(value)
    raise TypeError(type(value).__name__)


def dumps(body: Any) -> bytes:
    return orjson.dumps(body, default=_default)


def rows(records: list[asyncpg.Record]) -> list[dict[str, Any]]:
    return [dict(record) for record in records]


Connection = Any  # an asyncpg connection, or a pool's proxy of one
Read = Callable[[Connection, uuid.UUID, dict[str, str]], Awaitable[bytes | None]]


async def conversation_list(db: Connection, company: uuid.UUID, q: dict[str, str]) -> bytes:
    limit = int(q.get("limit", PAGE))
    if cursor := q.get("cursor"):  # zapflow's cursors: the load generator has zapflow's
        at, last = decode_cursor(cursor, (datetime, uuid.UUID))
        found = await db.fetch(CONVERSATION_LIST.format(after=AFTER), company, limit + 1, at, last)
    else:
        found = await db.fetch(CONVERSATION_LIST.format(after=""), company, limit + 1)
    data = rows(found[:limit])
    more = len(found) > limit
    next_cursor = encode_cursor(data[-1]["last_message_at"], data[-1]["id"]) if more else None
    return dumps({"data": data, "next_cursor": next_cursor})


async def message_page(db: Connection, company: uuid.UUID, q: dict[str, str]) -> bytes | None:
    conversation = await db.fetchrow(CONVERSATION, uuid.UUID(q["conversation_id"]))
    if conversation is None or conversation["company_id"] != company:
        return None
    limit = int(q.get("limit", PAGE))
    found = await db.fetch(MESSAGE_PAGE, conversation["id"], limit + 1)
    return dumps({"data": rows(found[:limit]), "has_more": len(found) > limit})


async def contact_search(db: Connection, company: uuid.UUID, q: dict[str, str]) -> bytes:
    pattern, limit = f"%{q.get('q', '')}%", int(q.get("limit", 20))
    total = await db.fetchval(CONTACT_COUNT, company, pattern)
    found = await db.fetch(CONTACT_SEARCH, company, pattern, limit, 0)
    return dumps({"data": rows(found), "total": total})


async def contact_detail(db: Connection, company: uuid.UUID, q: dict[str, str]) -> bytes | None:
    contact = await db.fetchrow(CONTACT, uuid.UUID(q["contact_id"]))
    if contact is None or contact["company_id"] != company:
        return None
    return dumps(dict(contact))


async def deal_board(db: Connection, company: uuid.UUID, q: dict[str, str]) -> bytes | None:
    funnel = await db.fetchrow(FUNNEL, uuid.UUID(q["funnel_id"]))
    if funnel is None or funnel["company_id"] != company:
        return None
    stages = rows(await db.fetch(STAGES, funnel["id"]))
    totals = await db.fetch(DEAL_TOTALS, company, funnel["id"])
    deals = await db.fetch(BOARD_DEALS, [s["id"] for s in stages], company, funnel["id"], PAGE)
    for stage in stages:
        stage["deal_count"] = sum(t["count"] for t in totals if t["stage_id"] == stage["id"])
        stage["value_totals"] = {
            t["currency"]: t["sum"] for t in totals if t["stage_id"] == stage["id"]
        }
        stage["deals"] = [dict(d) for d in deals if d["stage_id"] == stage["id"]]
    return dumps({**dict(funnel), "stages": stages})


PATHS = {  # route name (crm.MIX) -> path
    "conversation list": "/api/v1/conversations",
    "message page": "/api/v1/conversations/{conversation_id}/messages",
    "contact search": "/api/v1/contacts",
    "contact detail": "/api/v1/contacts/{contact_id}",
    "deal board": "/api/v1/funnels/{funnel_id}/board",
}
READS: dict[str, Read] = {
    "conversation list": conversation_list,
    "message page": message_page,
    "contact search": contact_search,
    "contact detail": contact_detail,
    "deal board": deal_board,
}
