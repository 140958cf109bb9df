"""EXPLAIN (ANALYZE, BUFFERS) of the CRM API's list queries on a seeded database.

Each query is written as SQL mirroring what its service sends (conversation inbox, message
history, contact search and list with their counts, deals of a stage), prepared with parameters
as the API's driver does, run once to warm the cache, then explained. Prints each plan and a
summary (indexes used, execution time), and flags any sequential scan on messages, conversations
or contacts. Exit code 1 when one was found.

    .venv/bin/zapflow seed-demo --contacts 100000 --messages 1000000
    .venv/bin/python bench/explain_plans.py --database-url postgresql://postgres@127.0.0.1:54329/zapflow

``--generic-plans`` explains the plans Postgres caches for a prepared statement after five
executions (``plan_cache_mode = force_generic_plan``): they do not see the parameters' values.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

WATCHED = ("messages", "conversations", "contacts")
SEQ_SCAN = re.compile(r"(?:Parallel )?Seq Scan on (\w+)")
INDEX = re.compile(
    r"(?:Index Scan|Index Only Scan|Bitmap Index Scan)(?: Backward)? (?:using|on) (\w+)"
)
EXECUTION = re.compile(r"Execution Time: ([\d.]+) ms")
PAGE = 50

INBOX = """
SELECT c.*, ct.id AS contact_id_, ct.name, ct.phone_number, i.name AS instance_name
FROM conversations c
JOIN contacts ct ON ct.id = c.contact_id
JOIN whatsapp_instances i ON i.id = c.instance_id
WHERE c.company_id = $1 {where}
ORDER BY c.last_message_at DESC, c.id DESC
LIMIT {limit}"""
MESSAGES = """
SELECT m.* FROM messages m
WHERE m.conversation_id = $1 {where}
ORDER BY m.created_at DESC, m.id DESC
LIMIT {limit}"""
CONTACTS = "SELECT ct.* FROM contacts ct WHERE ct.company_id = $1 {where}"
CONTACTS_PAGE = CONTACTS + " ORDER BY ct.created_at DESC, ct.id DESC OFFSET {offset} LIMIT {limit}"
CONTACTS_COUNT = "SELECT count(*) FROM (" + CONTACTS + ") AS matching"
DEALS = """
SELECT d.*, ct.name AS contact_name, ct.phone_number, s.name AS stage_name, s.color
FROM deals d
JOIN contacts ct ON ct.id = d.contact_id
JOIN stages s ON s.id = d.stage_id
WHERE d.company_id = $1 AND d.stage_id = $2
ORDER BY d.created_at DESC, d.id DESC
LIMIT {limit}"""


@dataclass(frozen=True)
class Query:
    name: str
    sql: str
    types: tuple[str, ...]  # Postgres types of $1, $2, ...
    args: tuple[Any, ...]


@dataclass(frozen=True)
class Explained:
    query: Query
    plan: str

    @property
    def indexes(self) -> list[str]:
        return list(dict.fromkeys(INDEX.findall(self.plan)))

    @property
    def seq_scans(self) -> list[str]:
        return list(dict.fromkeys(SEQ_SCAN.findall(self.plan)))

    @property
    def flagged(self) -> list[str]:
        return [table for table in self.seq_scans if table in WATCHED]

    @property
    def milliseconds(self) -> float:
        found = EXECUTION.search(self.plan)
        return float(found.group(1)) if found else float("nan")


async def subjects(connection: asyncpg.Connection, company_id: uuid.UUID | None) -> dict[str, Any]:
    """The company with the most messages (or the one given) and what its queries point at."""
    if company_id is None:
        company_id = await connection.fetchval(
            "SELECT company_id FROM conversations GROUP BY company_id"
            " ORDER BY sum(message_count) DESC LIMIT 1"
        )
        if company_id is None:
            raise SystemExit("no conversations here: seed first (zapflow seed-demo)")
    longest = await connection.fetchrow(
        "SELECT id, message_count FROM conversations WHERE company_id = $1"
        " ORDER BY message_count DESC LIMIT 1",
        company_id,
    )
    inbox_cursor = await connection.fetchrow(
        "SELECT last_message_at, id FROM conversations WHERE company_id = $1"
        " ORDER BY last_message_at DESC, id DESC OFFSET 1000 LIMIT 1",
        company_id,
    )
    message_cursor = await connection.fetchrow(
        "SELECT created_at, id FROM messages WHERE conversation_id = $1"
        " ORDER BY created_at DESC, id DESC OFFSET $2 LIMIT 1",
        longest["id"],
        min(PAGE * 10, longest["message_count"] - 1),
    )
    stage = await connection.fetchrow(
        "SELECT stage_id, count(*) AS deals FROM deals WHERE company_id = $1"
        " GROUP BY stage_id ORDER BY count(*) DESC LIMIT 1",
        company_id,
    )
    return {
        "company_id": company_id,
        "conversation": longest,
        "inbox_cursor": inbox_cursor,
        "message_cursor": message_cursor,
        "stage": stage,
    }


def queries(s: dict[str, Any]) -> list[Query]:
    company = s["company_id"]
    limit = PAGE + 1  # keyset pages read one more row to know whether another page follows
    found: list[Query] = [
        Query("inbox, first page", INBOX.format(where="", limit=limit), ("uuid",), (company,)),
        Query(
            "inbox, page after 1,000 rows (cursor)",
            INBOX.format(where="AND (c.last_message_at, c.id) < ($2, $3)", limit=limit),
            ("uuid", "timestamptz", "uuid"),
            (company, *s["inbox_cursor"]),
        ),
        Query(
            "inbox, open and unassigned",
            INBOX.format(where="AND c.status = 'open' AND c.assigned_user_id IS NULL", limit=limit),
            ("uuid",),
            (company,),
        ),
        Query(
            f"messages of the longest chat ({s['conversation']['message_count']:,}), first page",
            MESSAGES.format(where="", limit=limit),
            ("uuid",),
            (s["conversation"]["id"],),
        ),
    ]
    if s["message_cursor"] is not None:
        found.append(
            Query(
                "messages, a later page (cursor)",
                MESSAGES.format(where="AND (m.created_at, m.id) < ($2, $3)", limit=limit),
                ("uuid", "timestamptz", "uuid"),
                (s["conversation"]["id"], *s["message_cursor"]),
            )
        )
    for label, where, types, extra in (
        ("contacts", "", (), ()),
        ("contacts, name ILIKE '%joa%'", "AND ct.name ILIKE $2", ("text",), ("%joa%",)),
        ("contacts, tags @> {vip}", "AND ct.tags @> $2", ("text[]",), (["vip"],)),
    ):
        args = (company, *extra)
        all_types = ("uuid", *types)
        found.append(Query(f"{label}: count", CONTACTS_COUNT.format(where=where), all_types, args))
        found.append(
            Query(
                f"{label}: first page",
                CONTACTS_PAGE.format(where=where, offset=0, limit=PAGE),
                all_types,
                args,
            )
        )
    found.append(
        Query(
            "contacts: page 100 (OFFSET 4950)",
            CONTACTS_PAGE.format(where="", offset=PAGE * 99, limit=PAGE),
            ("uuid",),
            (company,),
        )
    )
    if s["stage"] is not None:
        found.append(
            Query(
                f"deals of a stage ({s['stage']['deals']:,} deals)",
                DEALS.format(limit=limit),
                ("uuid", "uuid"),
                (company, s["stage"]["stage_id"]),
            )
        )
    return found


def literal(value: Any) -> str:
    """A SQL literal for EXECUTE's arguments (values read from the database or parsed here)."""
    if isinstance(value, list):
        return "ARRAY[" + ", ".join(literal(item) for item in value) + "]::text[]"
    if isinstance(value, datetime):
        return f"'{value.isoformat()}'::timestamptz"
    if isinstance(value, uuid.UUID):
        return f"'{value}'::uuid"
    return "'" + str(value).replace("'", "''") + "'"


async def explain(connection: asyncpg.Connection, number: int, query: Query) -> Explained:
    name = f"q{number}"
    types = ", ".join(query.types)
    await connection.execute(f"PREPARE {name}({types}) AS {query.sql}")
    execute = f"EXECUTE {name}({', '.join(literal(arg) for arg in query.args)})"
    await connection.execute(execute)  # warm the cache: pages read once, like a live API
    rows = await connection.fetch(f"EXPLAIN (ANALYZE, BUFFERS) {execute}")
    await connection.execute(f"DEALLOCATE {name}")
    return Explained(query, "\n".join(row[0] for row in rows))


async def run(args: argparse.Namespace) -> int:
    url = re.sub(r"^postgresql\+asyncpg://", "postgresql://", args.database_url)
    connection = await asyncpg.connect(url)
    try:
        mode = "force_generic_plan" if args.generic_plans else "force_custom_plan"
        await connection.execute(f"SET plan_cache_mode = {mode}")
        chosen = await subjects(connection, args.company_id)
        sizes = await connection.fetch(
            "SELECT relname, n_live_tup FROM pg_stat_user_tables WHERE relname = ANY($1)"
            " ORDER BY relname",
            list(WATCHED),
        )
        print(f"company {chosen['company_id']}; plan_cache_mode = {mode}")
        print("rows: " + ", ".join(f"{r['relname']} {r['n_live_tup']:,}" for r in sizes))
        results = []
        for number, query in enumerate(queries(chosen)):
            explained = await explain(connection, number, query)
            results.append(explained)
            print(f"\n=== {query.name}\n{query.sql.strip()}\n--- plan\n{explained.plan}")
    finally:
        await connection.close()
    print(f"\n{'query':<52} {'ms':>8}  indexes [seq scans; !! = on a watched table]")
    for explained in results:
        scans = [f"{t} !!" if t in WATCHED else t for t in explained.seq_scans]
        seq = f" [seq scan: {', '.join(scans)}]" if scans else ""
        indexes = ", ".join(explained.indexes) or "-"
        print(f"{explained.query.name:<52} {explained.milliseconds:>8.2f}  {indexes}{seq}")
    flagged = [e.query.name for e in results if e.flagged]
    if flagged:
        print(f"\n{len(flagged)} quer{'y' if len(flagged) == 1 else 'ies'} scan a watched table")
        return 1
    print(f"\nno sequential scan on {', '.join(WATCHED)}")
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", required=True, help="the seeded database")
    parser.add_argument("--company-id", type=uuid.UUID, help="default: the most messages")
    parser.add_argument(
        "--generic-plans",
        action="store_true",
        help="explain the generic plans a prepared statement settles on",
    )
    sys.exit(asyncio.run(run(parser.parse_args())))


if __name__ == "__main__":
    main()
