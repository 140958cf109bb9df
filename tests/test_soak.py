"""The soak (`make soak`, 10 minutes; ``ZAPFLOW_SOAK_SECONDS`` changes it): a mixed load on a
zapflow of its own (`zapflow api` and `zapflow worker` processes) — customers writing on both
providers with agents replying and statuses arriving (the ledger), CRM reads, SSE clients and
follow-ups — with the API's and the worker's memory sampled throughout.

It passes when no request failed, the ledger is clean, every follow-up ended (sent exactly once,
or cancelled), and neither process grew by more than ``GROWTH_BOUND_MIB`` after the warm-up. The
memory curve goes to bench/results/soak.json (and soak.png when matplotlib is installed)."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import psutil
import pytest

from tests.fixtures.app import Tenant
from tests.fixtures.ledger import Ledger
from tests.fixtures.system import System, api_subprocess, running_system
from tests.fixtures.traffic import EventListener, eventually
from zapflow.bench.stack import NEVER_REFUSED

pytestmark = pytest.mark.soak

SECONDS = float(os.environ.get("ZAPFLOW_SOAK_SECONDS", "600"))
WARM_UP_SECONDS = min(60.0, SECONDS / 5)
GROWTH_BOUND_MIB = 64  # per process, from the end of the warm-up to the end
SAMPLE_SECONDS = 5.0
READERS = 4
STREAMS = 20
RESULTS = Path(__file__).resolve().parents[1] / "bench" / "results"


@dataclass
class Soak:
    started: float = field(default_factory=time.monotonic)
    samples: list[dict[str, float]] = field(default_factory=list)
    requests: Counter[int] = field(default_factory=Counter)
    followups: list[str] = field(default_factory=list)  # their texts

    @property
    def running(self) -> bool:
        return time.monotonic() - self.started < SECONDS


@pytest.fixture
async def system(tmp_path: Path) -> AsyncIterator[System]:
    async with running_system(tmp_path) as running:
        yield running


async def _sample(soak: Soak, api: psutil.Process, system: System) -> None:
    while soak.running:
        soak.samples.append(
            {
                "t": round(time.monotonic() - soak.started, 1),
                "api_rss_mib": api.memory_info().rss / 2**20,
                "worker_rss_mib": system.worker_rss() / 2**20,
            }
        )
        await asyncio.sleep(SAMPLE_SECONDS)


async def _read_crm(soak: Soak, client: httpx.AsyncClient, ledger: Ledger) -> None:
    while soak.running:
        for path in ("/api/v1/conversations", "/api/v1/contacts", "/api/v1/deals"):
            soak.requests[(await client.get(path)).status_code] += 1
        for conversation_id in list(ledger.conversations)[:3]:
            answer = await client.get(f"/api/v1/conversations/{conversation_id}/messages")
            soak.requests[answer.status_code] += 1
        await asyncio.sleep(0.2)


async def _schedule_followups(soak: Soak, client: httpx.AsyncClient, ledger: Ledger) -> None:
    """A follow-up due in a few seconds on a conversation now and then; customers keep
    writing, so some are cancelled by their reply, the others are sent."""
    while soak.running:
        for conversation_id in list(ledger.conversations)[:2]:
            text = f"fu-{uuid.uuid4().hex}"
            answer = await client.post(
                f"/api/v1/conversations/{conversation_id}/followups",
                json={"after": "PT3S", "text": text, "cancel_on_reply": False},
            )
            soak.requests[answer.status_code] += 1
            if answer.status_code == 201:
                soak.followups.append(text)
        await asyncio.sleep(5)


async def _drive(soak: Soak, ledger: Ledger) -> None:
    while soak.running:
        await ledger.run(5, interval=0.3)


async def _all_followups(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 100}
    while True:
        response = await client.get("/api/v1/followups", params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        rows += page["data"]
        if not page["next_cursor"]:
            return rows
        params["cursor"] = page["next_cursor"]


async def _pending_followups(client: httpx.AsyncClient) -> int:
    """Whether a follow-up is still pending (0 or 1): one request, however many there are."""
    params = {"status": "PENDING", "limit": 1}
    response = await client.get("/api/v1/followups", params=params)
    assert response.status_code == 200, response.text
    return len(response.json()["data"])


async def _followups_ended(client: httpx.AsyncClient, system: System) -> list[str]:
    """Follow-ups still pending, or sent other than exactly once."""
    sends: Counter[str] = Counter()
    for request in list(system.provider.requests):
        payload = request.json if isinstance(request.json, dict) else {}
        sent = payload.get("text")
        body = sent.get("body") if isinstance(sent, dict) else sent
        if isinstance(body, str) and request.status is not None and request.status < 300:
            sends[body] += 1
    problems = []
    for row in await _all_followups(client):
        text = row["message_text"]
        if row["status"] == "PENDING":
            problems.append(f"follow-up {row['id']} still pending")
        elif row["status"] == "SENT" and sends[text] != 1:
            problems.append(f"follow-up {row['id']} sent {sends[text]} times")
    return problems


def _write_results(soak: Soak, report: dict[str, Any], growth: dict[str, float]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    result = {
        "seconds": SECONDS,
        "warm_up_seconds": WARM_UP_SECONDS,
        "bound_mib": GROWTH_BOUND_MIB,
        "growth_mib": growth,
        "requests_by_status": dict(soak.requests),
        "followups": len(soak.followups),
        "ledger": report,
        "samples": soak.samples,
        "load": os.getloadavg(),
    }
    (RESULTS / "soak.json").write_bytes(
        orjson.dumps(result, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS)
    )
    try:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib import pyplot
    except ImportError:
        return
    figure, axes = pyplot.subplots(figsize=(8, 4))
    times = [s["t"] for s in soak.samples]
    for name in ("api_rss_mib", "worker_rss_mib"):
        axes.plot(times, [s[name] for s in soak.samples], label=name)
    axes.set(xlabel="seconds", ylabel="RSS (MiB)", title="zapflow soak")
    axes.legend()
    figure.savefig(RESULTS / "soak.png")


def _growth(soak: Soak, name: str) -> float:
    after_warm_up = [s[name] for s in soak.samples if s["t"] >= WARM_UP_SECONDS]
    return max(after_warm_up) - after_warm_up[0]


@pytest.mark.timeout(SECONDS + 900)
async def test_soak(system: System) -> None:
    # one company drives the whole soak: the operator's limits are lifted, the load is ours
    with api_subprocess(system.settings, **NEVER_REFUSED) as (url, api):
        tenant = await system.new_tenant("Soak Co")
        headers = {"Authorization": f"Bearer {tenant.api_key}"}
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as client:
            # one key does all the soak's requests: lift its per-minute limit, the load is ours
            limits = {"settings": {"rate_limits": {"default": 1_000_000}}}
            assert (await client.patch("/api/v1/company", json=limits)).status_code == 200
            soak_tenant = Tenant(tenant.id, tenant.api_key, client)
            ledger = await Ledger(soak_tenant, system.provider, system.sessions).open(4)
            listeners = [EventListener(client) for _ in range(STREAMS)]
            for listener in listeners:
                await listener.__aenter__()
            soak = Soak()
            try:
                await asyncio.gather(
                    _sample(soak, api, system),
                    _drive(soak, ledger),
                    *(_read_crm(soak, client, ledger) for _ in range(READERS)),
                    _schedule_followups(soak, client, ledger),
                )
                report = await ledger.check(listener=listeners[0], within=180)
                # one request per poll; then every follow-up read once, page by page
                await eventually(lambda: _pending_followups(client), lambda n: n == 0, within=120)
                followup_problems = await _followups_ended(client, system)
            finally:
                for listener in listeners:
                    await listener.__aexit__()
                await ledger.close()
    growth = {name: _growth(soak, name) for name in ("api_rss_mib", "worker_rss_mib")}
    _write_results(soak, {k: v for k, v in asdict(report).items() if k != "problems"}, growth)
    print(report, growth, dict(soak.requests))
    assert not report.problems, "\n".join(report.problems[:50])
    assert not followup_problems, followup_problems[:50]
    assert set(soak.requests) <= {200, 201, 202}, dict(soak.requests)
    assert all(grew <= GROWTH_BOUND_MIB for grew in growth.values()), growth
