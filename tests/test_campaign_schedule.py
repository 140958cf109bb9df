"""Campaign commands and pacing on the real stack with the fake provider: a campaign sending
only inside business hours waits for them after its scheduled time; an edit before the start
is what the workflow follows (brought forward, postponed), refused once it started; one made
while paused applies to every message not sent at the resume, announced again; commands
relayed again change nothing; two campaigns on one number share its throughput, and a reply
on the number goes before the campaign sends queued for it."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from redis.asyncio import Redis
from sqlalchemy import text

from tests.fixtures.app import Tenant
from tests.fixtures.campaigns import (
    audience,
    campaign,
    campaign_body,
    check_campaign,
    create,
    finished,
    number_with_templates,
    provider_successes,
)
from tests.fixtures.provider_server import ProviderServer, RecordedRequest
from tests.fixtures.traffic import cloud_delivery, cloud_text, eventually, post_cloud
from zapflow.config import Settings
from zapflow.db import SessionFactory, transaction
from zapflow.services.business_hours import DAYS
from zapflow.services.events import stream_key
from zapflow.services.number_pace import KEY_PREFIX
from zapflow.temporal import connect

pytestmark = pytest.mark.usefixtures("worker")


async def test_a_campaign_outside_business_hours_waits_for_them(
    tenant: Tenant, provider_server: ProviderServer, sessions: SessionFactory
) -> None:
    tomorrow = DAYS[(datetime.now(UTC).weekday() + 1) % 7]  # open only then: closed now
    hours = {"timezone": "UTC", "business_hours": {tomorrow: [["09:00", "10:00"]]}}
    assert (await tenant.client.patch("/api/v1/company", json=hours)).status_code == 200
    instance = await number_with_templates(tenant, provider_server)
    prefix = await audience(sessions, tenant.id, 3, "horas")
    soon = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
    body = campaign_body(instance, "horas", scheduled_at=soon, business_hours_only=True)
    made = await create(tenant, body)
    assert made["status"] == "scheduled" and made["business_hours_only"] is True
    waiting = await eventually(
        lambda: campaign(tenant, made["id"]),
        lambda c: c["status_reason"] == "outside business hours",
        within=30,
    )
    assert waiting["status"] == "running" and waiting["started_at"] is not None
    assert not provider_successes(provider_server, prefix)
    assert (await tenant.client.post(f"/api/v1/campaigns/{made['id']}/cancel")).status_code == 200
    done = await finished(tenant, made["id"], within=30)  # the cancel cuts the wait short
    assert done["status"] == "cancelled"
    assert await check_campaign(sessions, provider_server, made["id"], prefix) == []


async def test_an_edit_before_the_start_is_followed_and_refused_once_started(
    tenant: Tenant, provider_server: ProviderServer, sessions: SessionFactory
) -> None:
    instance = await number_with_templates(tenant, provider_server)
    old, new = [await audience(sessions, tenant.id, 2, tag) for tag in ("antes", "depois")]
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    made = await create(tenant, campaign_body(instance, "antes", scheduled_at=later))
    shortly = (datetime.now(UTC) + timedelta(seconds=3)).isoformat()
    postponed = await create(tenant, campaign_body(instance, "antes", scheduled_at=shortly))
    url = f"/api/v1/campaigns/{made['id']}"
    bad = await tenant.client.patch(url, json={"message": {"template": {"name": "nope"}}})
    assert bad.status_code == 422 and bad.json()["error"]["details"]["field"] == "message.template"
    soon = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
    edit = {"name": "Depois", "audience": {"tags": ["depois"]}, "scheduled_at": soon}
    edited = await tenant.client.patch(url, json=edit)
    assert edited.status_code == 200, edited.text
    assert edited.json()["name"] == "Depois" and edited.json()["audience"]["tags"] == ["depois"]
    # the first was due in an hour, the second in 3 s: the edits swap them
    moved = {"scheduled_at": later}
    response = await tenant.client.patch(f"/api/v1/campaigns/{postponed['id']}", json=moved)
    assert response.status_code == 200, response.text
    done = await finished(tenant, made["id"], within=30)  # woken by the edit, an hour early
    assert done["status"] == "completed"
    assert sorted(provider_successes(provider_server, new).values()) == [1, 1]
    assert not provider_successes(provider_server, old)
    assert await check_campaign(sessions, provider_server, made["id"], new) == []
    refused = await tenant.client.patch(url, json={"name": "Outra"})
    assert refused.status_code == 409 and "started at" in refused.json()["error"]["message"]
    still = await campaign(tenant, postponed["id"])  # its first timer fired long ago: it waits
    assert still["status"] == "scheduled" and still["started_at"] is None
    for action, status in (("pause", "paused"), ("resume", "scheduled")):  # still not started
        response = await tenant.client.post(f"/api/v1/campaigns/{postponed['id']}/{action}")
        assert response.json()["status"] == status, response.text
    cancel = await tenant.client.post(f"/api/v1/campaigns/{postponed['id']}/cancel")
    assert cancel.status_code == 200


async def test_an_edit_while_paused_applies_to_every_recipient_not_sent_at_the_resume(
    tenant: Tenant, provider_server: ProviderServer, sessions: SessionFactory, settings: Settings
) -> None:
    instance = await number_with_templates(tenant, provider_server)
    prefix = await audience(sessions, tenant.id, 12, "editar")
    made = await create(tenant, campaign_body(instance, "editar", throughput=10))
    url = f"/api/v1/campaigns/{made['id']}"

    async def sent() -> int:
        return sum(provider_successes(provider_server, prefix).values())

    await eventually(sent, lambda n: n >= 3, within=30)
    assert (await tenant.client.patch(url, json={"name": "x"})).status_code == 409  # running
    provider_server.fail_next(1, status=429)  # (#130429): that message goes back to pending
    await eventually(lambda: _refused(provider_server, prefix), lambda n: n == 1, within=30)
    assert (await tenant.client.post(f"{url}/pause")).status_code == 200
    await eventually(lambda: _sending(sessions, made["id"]), lambda n: n == 0, within=30)
    moved = await tenant.client.patch(url, json={"audience": {"tags": ["outra"]}})
    assert moved.status_code == 409 and moved.json()["error"]["details"]["field"] == "audience"
    coupon = {"body": [{"value": "Nova"}, {"field": "custom_fields.cupom"}]}
    message = {"template": {"name": "promo", "language": "pt_BR"}, "parameters": coupon}
    edited = await tenant.client.patch(url, json={"message": message, "throughput": 20})
    assert edited.status_code == 200 and edited.json()["throughput"] == 20, edited.text
    before = {r.json["to"]: _first_parameter(r) for r in _accepted(provider_server, prefix)}
    rewritten = await _pending(sessions, made["id"])  # queued ahead, or released: not sent
    redis = Redis.from_url(settings.redis_url)
    since = [entry for entry, _ in await redis.xrevrange(stream_key(tenant.id), count=1)]
    assert (await tenant.client.post(f"{url}/resume")).status_code == 200

    async def announced() -> dict[str, str]:
        """The first parameter of each message announced since the resume."""
        entries = await redis.xrange(stream_key(tenant.id), min=since[0] if since else "-")
        events = [orjson.loads(fields[b"payload"]) for _, fields in entries]
        return {
            e["data"]["id"]: e["data"]["payload"]["outbound"]["template"]["components"][0][
                "parameters"][0]["text"]
            for e in events
            if e["type"] == "message.created"
        }  # fmt: skip

    # announced again with the new content, so an open conversation shows what will be sent
    again = await eventually(announced, lambda got: rewritten <= set(got), within=30)
    assert rewritten and {again[m] for m in rewritten} == {"Nova"}
    await redis.aclose()
    assert (await finished(tenant, made["id"], within=60))["status"] == "completed"
    after = [r for r in _accepted(provider_server, prefix) if r.json["to"] not in before]
    assert len(before) + len(after) == 12 and set(before.values()) == {"Cliente"}
    assert {_first_parameter(r) for r in after} == {"Nova"}  # the released one's too
    assert await check_campaign(sessions, provider_server, made["id"], prefix) == []


def _accepted(provider: ProviderServer, prefix: str) -> list[RecordedRequest]:
    return [
        r
        for r in list(provider.requests)
        if isinstance(r.json, dict)
        and str(r.json.get("to", "")).startswith(prefix)
        and r.status is not None
        and r.status < 300
    ]


def _first_parameter(request: RecordedRequest) -> str:
    return str(request.json["template"]["components"][0]["parameters"][0]["text"]).split()[0]


async def _refused(provider: ProviderServer, prefix: str) -> int:
    return sum(
        1
        for r in list(provider.requests)
        if isinstance(r.json, dict) and str(r.json.get("to", "")).startswith(prefix)
        and r.status == 429
    )  # fmt: skip


async def _pending(sessions: SessionFactory, campaign_id: str) -> set[str]:
    query = text(
        "SELECT m.id FROM messages m JOIN campaign_recipients r ON r.message_id = m.id"
        " WHERE r.campaign_id = :id AND m.status = 'pending'"
    )
    async with sessions() as session:
        return {str(i) for i in (await session.execute(query, {"id": campaign_id})).scalars()}


async def _sending(sessions: SessionFactory, campaign_id: str) -> int:
    query = text(
        "SELECT count(*) FROM messages m JOIN campaign_recipients r ON r.message_id = m.id"
        " WHERE r.campaign_id = :id AND m.status = 'sending'"
    )
    async with sessions() as session:
        return int((await session.execute(query, {"id": uuid.UUID(campaign_id)})).scalar_one())


async def test_commands_relayed_again_change_nothing(
    tenant: Tenant, provider_server: ProviderServer, sessions: SessionFactory, settings: Settings
) -> None:
    instance = await number_with_templates(tenant, provider_server)
    prefix = await audience(sessions, tenant.id, 4, "again")
    made = await create(tenant, campaign_body(instance, "again", throughput=1))
    await eventually(
        lambda: _sent(provider_server, prefix), lambda n: n >= 1, within=30
    )  # running: its start relayed again meets the open workflow
    handle = (await connect(settings)).get_workflow_handle(made["workflow_id"])
    first_run = (await handle.describe()).run_id
    await _relay_again(sessions, made["id"])
    done = await finished(tenant, made["id"])
    assert done["status"] == "completed"
    await _relay_again(sessions, made["id"])  # finished: left alone
    assert (await handle.describe()).run_id == first_run
    assert await _sent(provider_server, prefix) == 4
    assert await check_campaign(sessions, provider_server, made["id"], prefix) == []


async def _sent(provider: ProviderServer, prefix: str) -> int:
    return sum(provider_successes(provider, prefix).values())


async def _relay_again(sessions: SessionFactory, campaign_id: str) -> None:
    """The campaign's inbox commands pending again, as a relay that died before marking them
    would leave them, then relayed."""
    requeue = text(
        "UPDATE inbox_events SET status = 'pending', claimed_until = NULL"
        " WHERE event_type = 'campaign' AND payload->>'campaign_id' = :id RETURNING id"
    )
    async with transaction(sessions) as session:
        ids = list((await session.execute(requeue, {"id": campaign_id})).scalars())
    assert ids

    async def pending() -> int:
        query = text("SELECT count(*) FROM inbox_events WHERE id = ANY(:ids) AND status='pending'")
        async with sessions() as session:
            return int((await session.execute(query, {"ids": ids})).scalar_one())

    await eventually(pending, lambda n: n == 0, within=20)


async def test_two_campaigns_on_one_number_share_its_throughput(
    tenant: Tenant, provider_server: ProviderServer, sessions: SessionFactory
) -> None:
    rate = 8
    instance = await number_with_templates(tenant, provider_server, throughput=rate)
    prefixes = [await audience(sessions, tenant.id, 12, tag) for tag in ("um", "dois")]
    made = [await create(tenant, campaign_body(instance, tag)) for tag in ("um", "dois")]
    for one in made:
        assert one["throughput"] == rate  # the number's, when the campaign names none
        await finished(tenant, one["id"], within=60)
    times = sorted(
        r.time
        for r in provider_server.requests
        if str((r.json or {}).get("to", "")).startswith(tuple(prefixes))
    )
    assert len(times) == 24
    # each campaign alone would send at the number's rate: side by side, twice that
    busiest = max(sum(1 for t in times if start <= t < start + 1.0) for start in times)
    assert busiest <= rate + 3, f"{busiest} sends in one second on a {rate}/s number"
    assert times[-1] - times[0] >= 0.9 * (len(times) - 1) / rate
    for one, prefix in zip(made, prefixes, strict=True):
        assert await check_campaign(sessions, provider_server, one["id"], prefix) == []


async def test_a_reply_goes_before_the_campaign_sends_queued_on_its_number(
    tenant: Tenant, provider_server: ProviderServer, sessions: SessionFactory, settings: Settings
) -> None:
    instance = await number_with_templates(tenant, provider_server, throughput=1)
    prefix = await audience(sessions, tenant.id, 12, "fila")
    customer = "55118" + str(uuid.uuid4().int)[:8]  # writes in: not in the campaign
    message = cloud_text(customer, f"wamid.{uuid.uuid4().hex}", "oi", int(time.time()))
    delivery = cloud_delivery(instance["phone_number_id"], message)
    assert (await post_cloud(tenant.client, instance["webhook_url"], delivery)).status_code == 200
    query = text("SELECT id FROM conversations WHERE instance_id = :id AND remote_jid LIKE :jid")
    params = {"id": uuid.UUID(instance["id"]), "jid": f"{customer}@%"}

    async def conversation() -> uuid.UUID | None:
        async with sessions() as session:
            return (await session.execute(query, params)).scalar_one_or_none()

    conversation_id = await eventually(conversation, lambda found: found is not None)
    # the campaign may go at 8/s, the number at 1/s: its sends book the number's slots ahead
    made = await create(tenant, campaign_body(instance, "fila", throughput=8))
    redis = Redis.from_url(settings.redis_url)

    async def booked_until() -> float:
        """The number's next free slot (wall clock, from Redis's): the queue's end."""
        value = await redis.get(f"{KEY_PREFIX}{instance['id']}")
        return int(value) / 1_000_000 if value else 0.0

    await eventually(booked_until, lambda end: end > time.time() + 4, within=30)
    queue_end = await booked_until()
    reply = await tenant.client.post(
        f"/api/v1/conversations/{conversation_id}/messages", json={"text": "Já respondo"}
    )
    assert reply.status_code == 202, reply.text
    [answered] = await eventually(
        lambda: _texts_to(provider_server, customer), lambda sent: len(sent) == 1, within=30
    )
    # waiting its turn it would have gone at the queue's end or later: it went before it, and
    # campaign sends booked earlier went after it
    assert answered.time < queue_end

    async def after_reply() -> int:
        return sum(
            1
            for r in list(provider_server.requests)
            if str((r.json or {}).get("to", "")).startswith(prefix) and r.time > answered.time
        )

    await eventually(after_reply, lambda n: n >= 1, within=30)
    assert (await tenant.client.post(f"/api/v1/campaigns/{made['id']}/cancel")).status_code == 200
    await finished(tenant, made["id"], within=30)
    assert await check_campaign(sessions, provider_server, made["id"], prefix) == []
    await redis.aclose()


async def _texts_to(provider: ProviderServer, phone: str) -> list[RecordedRequest]:
    return [r for r in provider.sent_to(phone) if r.json.get("type") == "text"]
