"""Async engine and session factory (asyncpg); after-commit callbacks; LISTEN for a queue's
wake-ups; a bare asyncpg pool for the hottest statements."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, cast

import asyncpg
import orjson
from sqlalchemy import text
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement
from sqlalchemy.util import LRUCache

from zapflow.config import Settings

SessionFactory = async_sessionmaker[AsyncSession]


def create_engine(
    settings: Settings, *, pool_size: int | None = None, pre_ping: bool = True
) -> AsyncEngine:
    """``pre_ping=False`` saves the round trips (BEGIN, ROLLBACK) of a check per checkout. A
    connection lost meanwhile then fails its caller once and SQLAlchemy invalidates the pool on
    that disconnect error: the API answers 503 (the client retries), the worker's activities and
    relay passes retry and get a fresh connection.

    ``hide_parameters``: a failed statement's error (logged, or in a Temporal failure) shows the
    SQL but not the values, which hold message text and provider secrets. JSON is read back with
    orjson, as the webhooks read it: jsonb prints a number stored as ``1e+30`` as a 31-digit
    integer, which the standard library would return as an int no 64-bit JSON writer takes."""
    return create_async_engine(
        settings.database_url,
        pool_size=pool_size or settings.database_pool_size,
        max_overflow=settings.database_max_overflow,
        pool_pre_ping=pre_ping,
        pool_recycle=1800,
        connect_args={"server_settings": {"application_name": "zapflow"}},
        hide_parameters=True,
        json_deserializer=orjson.loads,
    )


def session_factory(engine: AsyncEngine) -> SessionFactory:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


def attach(factory: SessionFactory, **info: Any) -> None:
    """Give every session ``factory`` opens from now on these ``info`` entries (the process's
    cache, its outbox publisher), for the after-commit effects of the operations it runs."""
    factory.configure(info={**factory.kw.get("info", {}), **info})


AFTER_COMMIT = "after_commit"
AFTER_COMMIT_KEYED = "after_commit_keyed"  # key → its callback (``after_commit_last``)


def after_commit(session: AsyncSession, callback: Callable[[], Awaitable[None]]) -> None:
    """Run ``callback`` once ``session``'s transaction has committed (``transaction`` and the
    API's request session both do): a domain operation registers its own effects (a cache
    invalidation, publishing the events it staged) so that no caller has to remember them, and
    none happens for a change that rolled back."""
    session.info.setdefault(AFTER_COMMIT, []).append(callback)


def after_commit_last(
    session: AsyncSession, key: str, callback: Callable[[], Awaitable[None]]
) -> None:
    """``after_commit``, once per ``key`` for the transaction, after every callback registered
    before this call (a later call moves it last): a transaction's events are published in one
    go after everything its steps registered (a contact's cache dropped before its news)."""
    callbacks = session.info.setdefault(AFTER_COMMIT, [])
    keyed = session.info.setdefault(AFTER_COMMIT_KEYED, {})
    if key in keyed:
        callbacks.remove(keyed[key])
    keyed[key] = callback
    callbacks.append(callback)


async def run_after_commit(session: AsyncSession) -> None:
    """The callbacks registered on ``session``, in order; call it right after the commit."""
    session.info.pop(AFTER_COMMIT_KEYED, None)
    for callback in session.info.pop(AFTER_COMMIT, []):
        await callback()


@asynccontextmanager
async def transaction(factory: SessionFactory) -> AsyncIterator[AsyncSession]:
    """A session that commits when the block succeeds and rolls back when it raises; after the
    commit it runs the callbacks registered with ``after_commit``."""
    async with factory() as session:
        async with session.begin():
            yield session
        await run_after_commit(session)


@asynccontextmanager
async def autocommit(factory: SessionFactory) -> AsyncIterator[AsyncConnection]:
    """A pooled connection on which every statement commits on its own: no BEGIN and COMMIT
    round trips, for statements that stand alone (the relay's claim and finish)."""
    engine: AsyncEngine = factory.kw["bind"]
    async with engine.connect() as connection:
        yield await connection.execution_options(isolation_level="AUTOCOMMIT")


async def advisory_lock(session: AsyncSession, name: str, *, shared: bool = False) -> None:
    """Postgres's transaction-scoped advisory lock on ``name`` (hashed), waited for."""
    function = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
    await session.execute(text(f"SELECT {function}(hashtextextended(:name, 0))"), {"name": name})


def driver_dsn(settings: Settings) -> str:
    """The database URL as asyncpg itself takes it (SQLAlchemy's names its dialect)."""
    return settings.database_url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def listen_forever(settings: Settings, channel: str, wake: asyncio.Event) -> None:
    """Set ``wake`` on each NOTIFY on ``channel``, reconnecting forever; a queue's consumer
    sweeps as well, which covers any notification missed while disconnected."""
    dsn = driver_dsn(settings)
    while True:
        try:
            connection = await asyncpg.connect(dsn)
        except (OSError, asyncpg.PostgresError):
            await asyncio.sleep(1)
            continue
        try:
            closed = asyncio.Event()
            connection.add_termination_listener(lambda *_, ended=closed: ended.set())
            await connection.add_listener(channel, lambda *_: wake.set())
            await closed.wait()
        finally:
            with contextlib.suppress(Exception):
                await connection.close()


# A webhook or a list page holds a connection for one round trip.
DRIVER_POOL_SIZE = 10


def create_driver_pool(settings: Settings) -> asyncpg.Pool:
    """An asyncpg pool without SQLAlchemy, for the hottest statements (the webhook's insert,
    ``DriverReads``).
    Not opened yet (``await`` it): with no minimum size, opening connects nothing, so the API
    starts while Postgres is down and answers 503 meanwhile."""
    return asyncpg.create_pool(
        driver_dsn(settings),
        min_size=0,
        max_size=DRIVER_POOL_SIZE,
        max_inactive_connection_lifetime=300,
        server_settings={"application_name": "zapflow"},
        init=_codecs,
        reset=_nothing_to_reset,
    )


async def _nothing_to_reset(_: asyncpg.Connection) -> None:
    """A connection goes back to the pool as it is: this pool runs single statements (no
    session settings, LISTEN, advisory locks or cursors), so asyncpg's reset query (``RESET
    ALL; UNLISTEN *; ...``: one more round trip per request, ~14 % of a message page's API
    samples) would undo nothing. asyncpg still rolls back a transaction left open."""


async def _codecs(connection: asyncpg.Connection) -> None:
    """json and jsonb as Python values (orjson); uuid as text, its JSON form: orjson writes a
    str itself, where asyncpg's UUID cost a Python call each (~1,800 on a board page)."""
    for kind in ("json", "jsonb"):
        await connection.set_type_codec(
            kind,
            schema="pg_catalog",
            encoder=lambda v: orjson.dumps(v).decode(),
            decoder=orjson.loads,
        )
    await connection.set_type_codec("uuid", schema="pg_catalog", encoder=str, decoder=str)


# a fixed statement compiled: (the statement, its SQL, its values' names in order, their
# processors, the values written in the statement)
_Fixed = tuple[ClauseElement, str, tuple[str, ...], dict[str, Any], dict[str, Any]]


class DriverReads:
    """Runs SQLAlchemy Core selects on the bare asyncpg pool, for the hottest list reads.

    A select is built as usual, compiled once per shape (SQLAlchemy's own cache key and
    statement cache), and its bound values are handed to asyncpg: no session, no pooled
    SQLAlchemy connection, no BEGIN/COMMIT, no result processing. Measured on the inbox page
    (50 rows): 3.2 API CPU-ms through a session, about 1 this way. Values come back as asyncpg
    decodes them (jsonb through orjson, uuids as text: see ``create_driver_pool``).
    """

    def __init__(self, pool: asyncpg.Pool, dialect: Dialect) -> None:
        self._pool = pool
        self._dialect = dialect
        self._compiled: LRUCache[Any, Any] = LRUCache(500)
        self._fixed: dict[int, _Fixed] = {}

    def _sql(self, statement: Executable) -> tuple[str, list[Any]]:
        # what Connection.execute does before it hands a statement to the driver
        cached, extracted, _, _ = statement._compile_w_cache(
            self._dialect, compiled_cache=self._compiled, column_keys=[]
        )
        compiled = cast(SQLCompiler, cached)
        params = compiled.construct_params(extracted_parameters=extracted, escape_names=False)
        processors = compiled._bind_processors
        args = []
        for name in compiled.positiontup or ():
            process = processors.get(name)
            args.append(process(params[name]) if callable(process) else params[name])
        return compiled.string, args

    async def fetch(self, statement: Executable) -> list[asyncpg.Record]:
        return await self._fetch(*self._sql(statement))

    async def fetch_fixed(self, statement: ClauseElement, **values: Any) -> list[asyncpg.Record]:
        """``statement`` is built once (a module's constant) with a named ``bindparam`` for
        each value; it is compiled on its first call, so later calls build no statement and
        compute no cache key (for a large select, more CPU than running it)."""
        found = self._fixed.get(id(statement))
        if found is None:
            compiled = cast(SQLCompiler, statement.compile(dialect=self._dialect))
            names = tuple(compiled.positiontup or ())
            processors = {n: p for n, p in compiled._bind_processors.items() if callable(p)}
            constants = {n: compiled.binds[n].effective_value for n in names if n not in values}
            # the statement is kept with its id, so the id cannot name another statement later
            found = self._fixed[id(statement)] = (
                statement,
                compiled.string,
                names,
                processors,
                constants,
            )
        _, sql, names, processors, constants = found
        values = {**constants, **values}
        args = [processors[n](values[n]) if n in processors else values[n] for n in names]
        return await self._fetch(sql, args)

    async def _fetch(self, sql: str, args: list[Any]) -> list[asyncpg.Record]:
        async with self._pool.acquire() as connection:
            return await connection.fetch(sql, *args)
