"""The API floor of the webhook-ack and crm-read scenarios (issue 16): a bare Starlette app on
uvicorn (uvloop, httptools) with an asyncpg pool — no middleware, no ORM, no pydantic, no auth,
no cache — serving the same SQL zapflow issues for the same URLs, started by the bench beside
zapflow in the same run, so zapflow's overhead shows as a ratio on any machine.

- ``POST /webhooks/cloud/{token}``: the signature check, zapflow's parser, then per event one
  ``INSERT … ON CONFLICT DO NOTHING RETURNING id`` into ``inbox_events`` (the same row zapflow
  stores, so its relay can take it) and the relay's ``NOTIFY``, in one transaction. Not done:
  the instance lookup (the instance is fixed) and routing by phone number.
- The CRM reads of the mix: the statements zapflow's routes run (read from Postgres's statement
  log, see bench/README.md), rows turned to JSON with orjson; no gzip.

    ZAPFLOW_FLOOR_DATABASE_URL=... ZAPFLOW_FLOOR_COMPANY_ID=... ZAPFLOW_FLOOR_INSTANCE_ID=... \
    ZAPFLOW_FLOOR_APP_SECRET=... python -m zapflow.bench.api_floor PORT [WORKERS]
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from zapflow.bench import floor_sql
from zapflow.services.inbox import event_type
from zapflow.whatsapp import cloud
from zapflow.whatsapp.errors import MalformedPayload
from zapflow.whatsapp.types import dedupe_key, event_to_dict

INSERT_INBOX = """
INSERT INTO inbox_events (company_id, instance_id, provider, event_type, dedupe_key, payload,
                          status, correlation_id)
VALUES ($1, $2, 'cloud', $3, $4, $5::jsonb, 'pending', $6)
ON CONFLICT (instance_id, dedupe_key) DO NOTHING RETURNING id
"""
NOTIFY = "SELECT pg_notify('zapflow_inbox', '')"
POOL_SIZE = 10  # zapflow's default pool per API process


def json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status, media_type="application/json")


def _json_text(value: Any) -> str:
    return orjson.dumps(value).decode()


async def json_codecs(connection: asyncpg.Connection) -> None:
    """json and jsonb columns as Python objects (orjson), as zapflow's engine reads them."""
    for kind in ("json", "jsonb"):
        await connection.set_type_codec(
            kind,
            encoder=lambda v: orjson.dumps(v).decode(),
            decoder=orjson.loads,
            schema="pg_catalog",
        )


class Floor:
    """The floor's state: its pool and the tenant it serves (the one zapflow's bench made)."""

    def __init__(self, dsn: str, company_id: str, instance_id: str, app_secret: str) -> None:
        self.dsn = dsn.replace("postgresql+asyncpg://", "postgresql://", 1)
        self.company_id, self.instance_id = uuid.UUID(company_id), uuid.UUID(instance_id)
        self.app_secret = app_secret
        self.pool: asyncpg.Pool | None = None

    @property
    def db(self) -> asyncpg.Pool:
        assert self.pool is not None
        return self.pool

    async def webhook(self, request: Request) -> Response:
        raw = await request.body()
        signature = request.headers.get("x-hub-signature-256")
        if not cloud.verify_signature(raw, signature, self.app_secret):
            return json({"error": {"code": "unauthorized"}}, 401)
        try:
            events = cloud.parse_webhook(orjson.loads(raw))
        except (orjson.JSONDecodeError, MalformedPayload) as exc:
            return json({"error": {"code": "malformed_payload", "message": str(exc)}}, 400)
        correlation_id = uuid.uuid4().hex
        stored = 0
        async with self.db.acquire() as connection, connection.transaction():
            for event in events:
                row = (event_type(event).value, dedupe_key(event), event_to_dict(event))
                found = await connection.fetch(
                    INSERT_INBOX, self.company_id, self.instance_id, *row, correlation_id
                )
                stored += len(found)
            if stored:
                await connection.execute(NOTIFY)
        return json({"stored": stored, "duplicates": len(events) - stored})

    def reader(self, read: floor_sql.Read) -> Callable[[Request], Awaitable[Response]]:
        """The endpoint of one CRM read: the route's statements, the company fixed."""

        async def endpoint(request: Request) -> Response:
            params = {**request.query_params, **request.path_params}
            async with self.db.acquire() as connection:
                body = await read(connection, self.company_id, params)
            if body is None:
                return json({"error": {"code": "not_found"}}, 404)
            return Response(body, media_type="application/json")

        return endpoint

    async def ready(self, _: Request) -> Response:
        return json({"ready": self.pool is not None}, 200 if self.pool else 503)


def create_app() -> Starlette:
    """From ``ZAPFLOW_FLOOR_*`` variables (uvicorn's workers import it by name)."""
    floor = Floor(
        os.environ["ZAPFLOW_FLOOR_DATABASE_URL"],
        os.environ["ZAPFLOW_FLOOR_COMPANY_ID"],
        os.environ["ZAPFLOW_FLOOR_INSTANCE_ID"],
        os.environ["ZAPFLOW_FLOOR_APP_SECRET"],
    )

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        floor.pool = await asyncpg.create_pool(
            floor.dsn, min_size=1, max_size=POOL_SIZE, init=json_codecs
        )
        yield
        await floor.pool.close()

    routes = [
        Route("/webhooks/cloud/{token}", floor.webhook, methods=["POST"]),
        Route("/readyz", floor.ready),
        *(
            Route(path, floor.reader(floor_sql.READS[name]))
            for name, path in floor_sql.PATHS.items()
        ),
    ]
    return Starlette(routes=routes, lifespan=lifespan)


def serve(app: Any, port: int, workers: int | None = None) -> None:
    """uvicorn as bare as it goes (uvloop, httptools, no access log), as the floors run; ``app``
    an app, or with ``workers`` an import string of its factory."""
    uvicorn.run(
        app,
        factory=isinstance(app, str),
        host="127.0.0.1",
        port=port,
        workers=workers,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
    )


def main(argv: list[str]) -> None:
    port, *workers = argv
    serve("zapflow.bench.api_floor:create_app", int(port), int(workers[0]) if workers else None)


if __name__ == "__main__":
    main(sys.argv[1:])
