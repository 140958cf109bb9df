"""Reports and CSAT: a closing records the resolution the reports count (first response by a
person, handled by a human or only by bots); the rating request goes out on close as an
interactive list (Cloud API) or numbered text (Evolution), or a template outside the 24-hour
window; the answer by a tapped choice or a typed number is the score, the next text the comment,
and neither reopens the conversation; a team's own settings; the reports' figures, CSV, ranges
and rollups; conversations opened per local day across DST midnights."""

from __future__ import annotations

import csv
import io
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, text

from tests.fixtures.app import Tenant
from tests.fixtures.provider_server import ProviderServer
from tests.fixtures.traffic import (
    cloud_delivery,
    cloud_text,
    create_evolution_instance,
    eventually,
    post_cloud,
    start_conversation,
)
from tests.test_routing import agent
from zapflow.config import Settings
from zapflow.db import SessionFactory, transaction
from zapflow.models import ConversationResolution, CsatStatus
from zapflow.schemas.reports import ReportRange
from zapflow.services import csat, reports
from zapflow.temporal import connect
from zapflow.workflows.inputs import ConversationRef

pytestmark = pytest.mark.usefixtures("worker")
API = "/api/v1"
CSAT_ON = {
    "enabled": True,
    "question": "Como foi?",
    "template": {"name": "csat_pt", "language": "pt_BR"},
}


async def _enable_csat(tenant: Tenant) -> None:
    patched = await tenant.client.patch(f"{API}/company", json={"settings": {"csat": CSAT_ON}})
    assert patched.status_code == 200, patched.text


async def _value(value: Any) -> Any:
    return value


async def _resolution(sessions: SessionFactory, conversation_id: str) -> ConversationResolution:
    async with sessions() as session:
        query = select(ConversationResolution).where(
            ConversationResolution.conversation_id == uuid.UUID(conversation_id)  # type: ignore[arg-type]
        )
        return (await session.execute(query)).scalars().one()


async def _status(tenant: Tenant, conversation_id: str) -> str:
    return str((await tenant.client.get(f"{API}/conversations/{conversation_id}")).json()["status"])


async def test_a_teams_own_csat_settings_override_the_companys(
    tenant: Tenant, sessions: SessionFactory
) -> None:
    """The company asks "Como foi?"; one team asks nothing, another its own question; a
    conversation of no team gets the company's. Decided in the closing's transaction."""
    await _enable_csat(tenant)
    quiet, sales = [
        await tenant.client.post(
            f"{API}/teams", json={"name": f"T {uuid.uuid4().hex[:6]}", "csat": settings}
        )
        for settings in ({"enabled": False}, {"enabled": True, "question": "E as vendas?"})
    ]
    assert sales.status_code == 201 and sales.json()["csat"]["question"] == "E as vendas?"
    ids = [(await start_conversation(tenant, "5511" + str(uuid.uuid4().int)[:9]))[1] for _ in "abc"]
    for conversation_id, team in zip(ids, (quiet, sales), strict=False):
        moved = await tenant.client.post(
            f"{API}/conversations/{conversation_id}/transfer", json={"team_id": team.json()["id"]}
        )
        assert moved.status_code == 200, moved.text
    asked = []
    for conversation_id in ids:
        closed = await tenant.client.post(f"{API}/conversations/{conversation_id}/close")
        assert closed.status_code == 200, closed.text
        resolution = await _resolution(sessions, conversation_id)
        page = await tenant.client.get(f"{API}/conversations/{conversation_id}/messages")
        bodies = [m["body"] for m in page.json()["data"] if m["sent_by"] == "flow"]
        asked.append((resolution.csat_status.value, [b.split("\n")[0] for b in bodies]))
    assert asked == [
        ("none", []),
        ("requested", ["E as vendas?"]),
        ("requested", ["Como foi?"]),  # no team: the company's
    ]
    sales_id = sales.json()["id"]
    cleared = await tenant.client.patch(f"{API}/teams/{sales_id}", json={"csat": None})
    assert cleared.status_code == 200 and cleared.json()["csat"] is None
    bad = await tenant.client.patch(f"{API}/teams/{sales_id}", json={"csat": {"labels": ["a"]}})
    assert bad.status_code == 422 and "csat" in bad.text


def list_reply(wa_id: str, row_id: str, title: str) -> dict[str, Any]:
    message = {
        "from": wa_id,
        "id": f"wamid.{uuid.uuid4().hex}",
        "timestamp": str(int(time.time())),
        "type": "interactive",
        "interactive": {"type": "list_reply", "list_reply": {"id": row_id, "title": title}},
    }
    return {"contacts": [{"profile": {"name": "Maria"}, "wa_id": wa_id}], "messages": [message]}


async def test_rating_by_a_tapped_choice_on_cloud_then_a_comment(
    tenant: Tenant,
    api_url: str,
    sessions: SessionFactory,
    settings: Settings,
    provider_server: ProviderServer,
) -> None:
    await _enable_csat(tenant)
    wa_id = "55119" + str(uuid.uuid4().int)[:8]
    instance, conversation_id = await start_conversation(tenant, wa_id)
    user_id, ana = await agent(tenant, api_url, "Ana")
    async with ana:
        assigned = await ana.post(
            f"{API}/conversations/{conversation_id}/assign", json={"user_id": user_id}
        )
        assert assigned.status_code == 200, assigned.text
        reply = await ana.post(
            f"{API}/conversations/{conversation_id}/messages", json={"text": "Olá, em que ajudo?"}
        )
        assert reply.status_code == 202, reply.text
        assert (await ana.post(f"{API}/conversations/{conversation_id}/close")).status_code == 200

    def asked() -> list[dict[str, Any]]:
        return [
            r.json for r in provider_server.sent_to(wa_id) if r.json.get("type") == "interactive"
        ]

    [question] = await eventually(lambda: _value(asked()), lambda s: len(s) == 1, 30)
    rows = question["interactive"]["action"]["sections"][0]["rows"]
    assert [r["id"] for r in rows] == [f"csat:{n}" for n in range(1, 6)]
    assert question["interactive"]["body"]["text"] == "Como foi?"

    async def tell(change: dict[str, Any]) -> None:
        delivery = cloud_delivery(instance["phone_number_id"], change)
        assert (
            await post_cloud(tenant.client, instance["webhook_url"], delivery)
        ).status_code == 200

    await tell(list_reply(wa_id, "csat:4", "Good"))
    rated = await eventually(
        lambda: _resolution(sessions, conversation_id), lambda r: r.csat_score is not None, 30
    )
    assert (rated.csat_score, rated.csat_status) == (4, CsatStatus.RATED)
    secret = uuid.uuid4().hex[:12]
    await tell(cloud_text(wa_id, f"wamid.{uuid.uuid4().hex}", f"Muito rápido {secret}"))
    done = await eventually(
        lambda: _resolution(sessions, conversation_id), lambda r: r.csat_status == "done", 30
    )
    assert done.csat_comment == f"Muito rápido {secret}"
    assert done.handled_by_human and done.first_response_at is not None
    assert str(done.user_id) == user_id
    assert await _status(tenant, conversation_id) == "closed"  # the answers did not reopen it
    conversation = (await tenant.client.get(f"{API}/conversations/{conversation_id}")).json()
    ref = ConversationRef(tenant.id, conversation["instance_id"], conversation["remote_jid"])
    history = await (await connect(settings)).get_workflow_handle(ref.workflow_id).fetch_history()
    assert len(history.events) > 5 and secret not in history.to_json()  # the comment stays out

    report = (await tenant.client.get(f"{API}/reports/csat")).json()
    assert (report["requested"], report["rated"], report["average"]) == (1, 1, 4.0)
    assert report["distribution"] == [0, 0, 0, 1, 0]
    by_agent = (await tenant.client.get(f"{API}/reports/conversations?group_by=agent")).json()
    [row] = by_agent["rows"]
    assert (row["key"], row["label"], row["closed"], row["handled_by_human"]) == (
        user_id,
        "Ana",
        1,
        1,
    )
    assert 0 <= row["first_response_p50"] <= row["resolution_p50"]


async def test_rating_by_a_typed_number_on_evolution_and_the_next_question_reopens(
    tenant: Tenant, sessions: SessionFactory, provider_server: ProviderServer
) -> None:
    await _enable_csat(tenant)
    instance = await create_evolution_instance(tenant)
    jid = f"5531{str(uuid.uuid4().int)[:9]}@s.whatsapp.net"

    async def say(body: str) -> None:
        data = {
            "key": {"remoteJid": jid, "fromMe": False, "id": f"EVO{uuid.uuid4().hex[:12]}"},
            "pushName": "Rita",
            "message": {"conversation": body},
            "messageTimestamp": int(time.time()),
        }
        event = {"event": "messages.upsert", "instance": instance["evolution_instance"],
                 "apikey": "evo-key", "data": data}  # fmt: skip
        assert (await tenant.client.post(instance["webhook_url"], json=event)).status_code == 200

    await say("oi")

    async def listed() -> list[dict[str, Any]]:
        return list((await tenant.client.get(f"{API}/conversations")).json()["data"])

    [row] = await eventually(listed, lambda found: len(found) == 1)
    conversation_id = row["id"]
    assert (
        await tenant.client.post(f"{API}/conversations/{conversation_id}/close")
    ).status_code == 200
    number = jid.split("@")[0]
    [sent] = await eventually(
        lambda: _value(provider_server.sent_to(number)), lambda s: len(s) == 1, 30
    )
    assert sent.path.startswith("/message/sendText/")
    assert sent.json["text"] == "Como foi?\n1. Very poor\n2. Poor\n3. OK\n4. Good\n5. Excellent"

    await say("5 - excelente")
    await eventually(
        lambda: _resolution(sessions, conversation_id), lambda r: r.csat_score == 5, 30
    )
    await say("valeu!")
    await eventually(
        lambda: _resolution(sessions, conversation_id), lambda r: r.csat_comment == "valeu!", 30
    )
    assert await _status(tenant, conversation_id) == "closed"
    await say("outra dúvida: vocês entregam sábado?")  # past the rating: a new question
    await eventually(lambda: _status(tenant, conversation_id), lambda s: s == "open", 30)
    resolution = await _resolution(sessions, conversation_id)
    assert not resolution.handled_by_human and resolution.first_response_at is None


async def test_outside_the_window_the_template_goes_and_without_one_nothing(
    tenant: Tenant, sessions: SessionFactory
) -> None:
    await _enable_csat(tenant)
    wa_id = "55119" + str(uuid.uuid4().int)[:8]
    _, conversation_id = await start_conversation(tenant, wa_id)
    async with transaction(sessions) as session:  # the customer wrote two days ago
        await session.execute(
            text(
                "UPDATE conversations SET last_inbound_at = now() - interval '2 days'"
                " WHERE id = :id"
            ),
            {"id": conversation_id},
        )
    assert (
        await tenant.client.post(f"{API}/conversations/{conversation_id}/close")
    ).status_code == 200
    page = (await tenant.client.get(f"{API}/conversations/{conversation_id}/messages")).json()
    [question] = [m for m in page["data"] if m["from_me"]]
    assert question["type"] == "template"
    assert question["payload"]["outbound"]["template"]["name"] == "csat_pt"

    no_template = {**CSAT_ON, "template": None}
    patched = await tenant.client.patch(f"{API}/company", json={"settings": {"csat": no_template}})
    assert patched.status_code == 200
    reopened = await tenant.client.post(f"{API}/conversations/{conversation_id}/reopen")
    assert reopened.status_code == 200
    # reopened by hand with no new customer message: closing again records nothing new
    assert (
        await tenant.client.post(f"{API}/conversations/{conversation_id}/close")
    ).status_code == 200
    resolution = await _resolution(sessions, conversation_id)
    assert resolution.csat_status == CsatStatus.REQUESTED


@pytest.mark.parametrize(
    ("body", "score"),
    [("5", 5), ("1.", 1), ("3 - ok", 3), (" 4 ", 4), ("10", None), ("50 reais", None),
     ("nota 5", None), ("", None)],
)  # fmt: skip
def test_typed_scores(body: str, score: int | None) -> None:
    message = type("M", (), {"payload": {}, "type": "text", "body": body})()
    assert csat.score_of(message) == score


async def test_reports_ranges_csv_and_rollups(
    tenant: Tenant, other_tenant: Tenant, sessions: SessionFactory
) -> None:
    wa_id = "55119" + str(uuid.uuid4().int)[:8]
    _, conversation_id = await start_conversation(tenant, wa_id)
    assert (
        await tenant.client.post(f"{API}/conversations/{conversation_id}/close")
    ).status_code == 200

    today = (await tenant.client.get(f"{API}/reports/conversations")).json()
    [day] = [r for r in today["rows"] if r["closed"]]
    assert (day["opened"], day["closed"], day["handled_by_bot"], day["first_response_p50"]) == (
        1,
        1,
        1,
        None,
    )
    messages = (await tenant.client.get(f"{API}/reports/messages")).json()["rows"]
    assert sum(r["inbound"] for r in messages) == 1
    heat = (await tenant.client.get(f"{API}/reports/heatmap")).json()
    page = (await tenant.client.get(f"{API}/conversations/{conversation_id}/messages")).json()
    said = datetime.fromisoformat(page["data"][0]["created_at"]).astimezone(UTC)
    assert heat["cells"][said.weekday()][said.hour] == 1 and heat["max"] == 1  # a UTC company

    exported = await tenant.client.get(f"{API}/reports/conversations", params={"format": "csv"})
    assert exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(exported.text)))
    assert rows[0][:4] == ["key", "label", "opened", "closed"] and len(rows) == 2
    for name in ("messages", "heatmap", "csat"):
        got = await tenant.client.get(f"{API}/reports/{name}", params={"format": "csv"})
        assert got.status_code == 200 and got.text.count("\n") >= 2, (name, got.text)

    backwards = await tenant.client.get(
        f"{API}/reports/messages", params={"from": "2026-02-01", "to": "2026-01-01"}
    )
    assert backwards.status_code == 422 and "query.to" in backwards.text
    too_long = await tenant.client.get(
        f"{API}/reports/csat", params={"from": "2024-01-01", "to": "2026-01-01"}
    )
    assert too_long.status_code == 422 and "query.from" in too_long.text
    theirs = await other_tenant.client.post("/api/v1/teams", json={"name": "Theirs"})
    foreign = await tenant.client.get(
        f"{API}/reports/conversations", params={"team_id": theirs.json()["id"]}
    )
    assert foreign.status_code == 404
    mine = (await other_tenant.client.get(f"{API}/reports/messages")).json()["rows"]
    assert mine == []  # the other company sees none of these

    # the same figures from the rollups once the hours are past the watermark
    now = datetime.now(UTC)
    later = now + timedelta(hours=2)
    company_id = uuid.UUID(tenant.id)
    period = ReportRange(start=now.date(), end=later.date(), timezone="UTC")
    async with transaction(sessions) as session:
        live = await reports.message_figures(session, company_id, period, now)
        assert await reports.roll_up(session, company_id, later) > now
        rolled = await reports.message_figures(session, company_id, period, later)
        await reports.rebuild_rollups(session, company_id, later)
        rebuilt = await reports.message_figures(session, company_id, period, later)
    assert live == rolled == rebuilt and sum(r.inbound for r in live) == 1


# created_at (UTC) around two DST changes on 2018-11-04: São Paulo skipped its midnight
# (00:00 → 01:00), Havana repeated 00:00-01:00; São Paulo repeated 23:00-24:00 on 2019-02-16
CREATED = ["2018-11-04 02:59:59", "2018-11-04 03:00:00", "2018-11-04 03:59:59",
           "2018-11-04 04:00:00", "2018-11-04 05:30:00", "2019-02-17 01:30:00",
           "2019-02-17 02:30:00", "2019-02-17 03:00:00"]  # fmt: skip
OPENED_BY_DAY = {
    "America/Sao_Paulo": {"2018-11-03": 1, "2018-11-04": 4, "2019-02-16": 2, "2019-02-17": 1},
    "America/Havana": {"2018-11-03": 3, "2018-11-04": 2, "2019-02-16": 3},
}
# the report's first form, kept as the reference: each creation converted to its local day
PER_ROW = text(
    "SELECT (created_at AT TIME ZONE :tz)::date::text AS day, count(*) FROM conversations"
    " WHERE company_id = :company_id"
    " AND team_id IS NOT DISTINCT FROM coalesce(CAST(:team_id AS uuid), team_id) GROUP BY 1"
)
CLONE = text(
    "INSERT INTO conversations SELECT (jsonb_populate_record(NULL::conversations, to_jsonb(c)"
    " || jsonb_build_object('id', gen_random_uuid(), 'remote_jid', c.remote_jid || :n,"
    " 'created_at', CAST(:at AS text), 'team_id', CAST(:team_id AS text)))).*"
    " FROM conversations c WHERE id = :id"
)


async def test_opened_per_day_counts_each_conversation_on_its_local_day_across_dst(
    tenant: Tenant, sessions: SessionFactory
) -> None:
    """Conversations created around local midnights on DST days (a skipped midnight, a
    repeated hour before midnight and one after it) are counted per day exactly as converting
    each creation to the company's local day counts them, with and without a team."""
    _, conversation_id = await start_conversation(tenant, "55119" + str(uuid.uuid4().int)[:8])
    team = await tenant.client.post(f"{API}/teams", json={"name": "Night shift"})
    team_id = team.json()["id"]
    async with transaction(sessions) as session:
        for n, at in enumerate(CREATED):
            params = {"id": uuid.UUID(conversation_id), "n": f"-{n}", "at": f"{at}+00"}
            await session.execute(CLONE, {**params, "team_id": team_id if n % 3 else None})
    query = {"group_by": "day", "from": "2018-11-01", "to": "2019-02-28"}
    for zone, expected in OPENED_BY_DAY.items():
        patched = await tenant.client.patch(f"{API}/company", json={"timezone": zone})
        assert patched.status_code == 200, patched.text
        for team_filter in (None, team_id):
            params = (
                {**query, "team_id": team_filter and uuid.UUID(team_filter)}
                if team_filter
                else query
            )
            answer = await tenant.client.get(f"{API}/reports/conversations", params=params)
            assert answer.status_code == 200, answer.text
            got = {row["key"]: row["opened"] for row in answer.json()["rows"]}
            async with sessions() as session:
                reference = await session.execute(
                    PER_ROW,
                    {
                        "tz": zone,
                        "company_id": uuid.UUID(tenant.id),
                        "team_id": team_filter and uuid.UUID(team_filter),
                    },
                )
            assert got == {day: n for day, n in reference if day < "2019-03"}, (zone, team_filter)
            if team_filter is None:
                assert got == expected, zone
