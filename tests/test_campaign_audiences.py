"""A campaign's audience before sending, on the real stack: the preview (counts, exclusions by
reason, a sample with each one's message, a parameter a contact lacks named), the cost estimate
by Meta's pricing category and the 24-hour window, and the CSV audience (bad rows reported with
their line and column while the good ones are kept, the same file again changes nothing, hostile
files refused with a 4xx naming the field, nothing of another company reachable)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import text

from tests.fixtures.app import Tenant
from tests.fixtures.campaigns import audience, campaign_body, create, number_with_templates
from tests.fixtures.provider_server import ProviderServer
from tests.fixtures.traffic import create_evolution_instance
from zapflow.api.limits import MAX_BODY_BYTES
from zapflow.db import SessionFactory, transaction

PARAMETERS = {"body": [{"field": "name"}, {"field": "custom_fields.cupom"}]}
PROMO = {"template": {"name": "promo", "language": "pt_BR"}, "parameters": PARAMETERS}


async def preview(tenant: Tenant, instance: dict[str, Any], **body: Any) -> dict[str, Any]:
    response = await tenant.client.post(
        "/api/v1/campaigns/preview", json={"instance_id": instance["id"], **body}
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


async def contacts_tagged(tenant: Tenant, tag: str) -> list[dict[str, Any]]:
    response = await tenant.client.get("/api/v1/contacts", params={"tag": tag, "limit": 100})
    assert response.status_code == 200, response.text
    return list(response.json()["data"])


async def open_windows(
    sessions: SessionFactory, instance_id: str, contacts: list[dict[str, Any]], hours_ago: int
) -> None:
    """Conversations on the number whose customer last wrote ``hours_ago``."""
    async with transaction(sessions) as session:
        for contact in contacts:
            await session.execute(
                text(
                    "INSERT INTO conversations (id, company_id, instance_id, contact_id,"
                    " remote_jid, last_inbound_at) SELECT gen_random_uuid(), company_id,"
                    " :instance, id, :jid, now() - make_interval(hours => :hours)"
                    " FROM contacts WHERE id = :id"
                ),
                {"instance": uuid.UUID(instance_id), "id": uuid.UUID(contact["id"]),
                 "jid": f"{uuid.uuid4().int % 10**12}@s.whatsapp.net", "hours": hours_ago},
            )  # fmt: skip


async def test_preview_and_estimate_count_by_reason_category_and_window(
    tenant: Tenant,
    other_tenant: Tenant,
    provider_server: ProviderServer,
    sessions: SessionFactory,
) -> None:
    instance = await number_with_templates(tenant, provider_server)
    await audience(sessions, tenant.id, 6, "lote", coupon_every=2)
    contacts = {c["name"]: c for c in await contacts_tagged(tenant, "lote")}
    opted = await tenant.client.put(
        f"/api/v1/contacts/{contacts['Cliente 1']['id']}/opt-out", json={}
    )
    assert opted.status_code == 204, opted.text
    async with transaction(sessions) as session:  # known by lid only: no phone to send to
        await session.execute(
            text(
                "INSERT INTO contacts (id, company_id, name, lid, tags) VALUES"
                " (gen_random_uuid(), :company, 'Sem Telefone', :lid, ARRAY['lote'])"
            ),
            {"company": uuid.UUID(tenant.id), "lid": f"{uuid.uuid4().int % 10**14}@lid"},
        )
    await open_windows(sessions, instance["id"], [contacts["Cliente 2"], contacts["Cliente 4"]], 1)
    await open_windows(sessions, instance["id"], [contacts["Cliente 6"]], 30)  # closed

    found = await preview(tenant, instance, audience={"tags": ["lote"]}, message=PROMO, sample=10)
    assert (found["contacts"], found["recipients"]) == (7, 5)
    assert found["excluded"] == {"opted_out": 1, "no_phone": 1}
    assert sorted(c["name"] for c in found["sample"]) == [f"Cliente {n}" for n in range(2, 7)]
    for shown in found["sample"]:
        n = int(shown["name"].split()[1])
        if n % 2 == 0:  # those have a coupon
            assert (shown["message"], shown["problem"]) == (f"Oi Cliente {n}, cupom C{n}", None)
        else:
            assert shown["message"] is None
            assert shown["problem"].startswith("message.parameters.body.2: the contact has no")
    assert found["estimate"] == {
        "pricing_category": "marketing", "recipients": 5, "inside_window": 2,
        "outside_window": 3, "billable": 5, "free": 0, "undeliverable": 0,
        "by_category": {"marketing": 5, "utility": 0, "authentication": 0, "service": 0},
        "note": "marketing templates are billed inside the 24-hour window too",
    }  # fmt: skip

    # a scheduled campaign's estimate, before it starts, is its audience's
    made = await create(
        tenant, campaign_body(instance, "lote", scheduled_at="2099-01-01T00:00:00Z")
    )
    async with transaction(sessions) as session:
        await session.execute(
            text("UPDATE message_templates SET category = 'UTILITY' WHERE instance_id = :i"),
            {"i": uuid.UUID(instance["id"])},
        )
    estimate = (await tenant.client.get(f"/api/v1/campaigns/{made['id']}/estimate")).json()
    assert estimate["pricing_category"] == "utility"
    assert estimate["by_category"] == {
        "marketing": 0,
        "utility": 3,
        "authentication": 0,
        "service": 2,
    }
    assert (estimate["billable"], estimate["free"]) == (3, 2)
    assert (
        await other_tenant.client.get(f"/api/v1/campaigns/{made['id']}/estimate")
    ).status_code == 404
    assert (await tenant.client.post(f"/api/v1/campaigns/{made['id']}/cancel")).status_code == 200

    text_only = await preview(
        tenant, instance, audience={"tags": ["lote"]}, message={"text": "Oi {{name}}!"}
    )
    assert text_only["estimate"]["undeliverable"] == 3  # free-form text outside the window
    assert text_only["sample"][0]["message"].startswith("Oi Cliente ")


async def test_preview_refusals_name_the_field(
    tenant: Tenant, other_tenant: Tenant, provider_server: ProviderServer
) -> None:
    instance = await number_with_templates(tenant, provider_server)
    evolution = await create_evolution_instance(tenant)
    url = "/api/v1/campaigns/preview"
    cases = [
        ({"instance_id": instance["id"], "audience": {"tags": ["a;b"]}}, "audience.tags"),
        ({"instance_id": instance["id"], "message": {"template": {"name": "nope"}}},
         "message.template"),
        ({"instance_id": evolution["id"], "message": PROMO}, "message.template"),
        ({"instance_id": instance["id"], "message": {"template": {"name": "promo"},
          "parameters": {"body": [{"field": "age"}, {"value": "x"}]}}},
         "message.parameters.body.1.field"),
    ]  # fmt: skip
    for body, named in cases:
        response = await tenant.client.post(url, json=body)
        assert response.status_code == 422, response.text
        assert named in response.text, response.text
    foreign = await other_tenant.client.post(url, json={"instance_id": instance["id"]})
    assert foreign.status_code == 422 and "instance_id" in foreign.text, foreign.text
    huge = await tenant.client.post(url, json={"instance_id": instance["id"], "sample": 1000})
    assert huge.status_code == 422 and "sample" in huge.text


CSV = (
    "phone_number,name,tags,custom.cupom\n"
    "+55 11 98888-0001,Ana,,A1\n"
    "not a phone,Bia,,B2\n"
    "+5511988880003,Caio,novo,C3\n"
    "+55 11 98888-0001,Ana de novo,,A4\n"
)


async def upload(tenant: Tenant, body: bytes, **params: str) -> Any:
    return await tenant.client.post(
        "/api/v1/campaigns/audiences/csv",
        content=body,
        params=params,
        headers={"content-type": "text/csv"},
    )


async def test_a_csv_audience_keeps_good_rows_reports_bad_ones_and_is_idempotent(
    tenant: Tenant, other_tenant: Tenant, provider_server: ProviderServer
) -> None:
    instance = await number_with_templates(tenant, provider_server)
    known = await tenant.client.post(
        "/api/v1/contacts", json={"phone_number": "+5511988880003", "tags": ["vip"]}
    )
    assert known.status_code == 201, known.text
    first = await upload(tenant, CSV.encode())
    assert first.status_code == 200, first.text
    result = first.json()
    tag = result["tag"]
    assert tag.startswith("csv-") and result["audience"] == {
        "tags": [tag],
        "q": None,
        "created_since": None,
    }
    report = result["report"]
    assert (report["created"], report["updated"]) == (1, 1)
    assert [(e["row"], e["field"]) for e in report["errors"]] == [
        (3, "phone_number"),
        (5, "phone_number"),
    ]
    assert "the same number as row 2" in report["errors"][1]["message"]
    listed = {c["name"]: c for c in await contacts_tagged(tenant, tag)}
    assert set(listed) == {"Ana", "Caio"}
    # a row's tags replace the contact's as the contacts import does; the list's tag is added
    assert sorted(listed["Caio"]["tags"]) == sorted(["novo", tag])
    assert listed["Ana"]["custom_fields"] == {"cupom": "A1"}

    again = (await upload(tenant, CSV.encode())).json()
    assert again["tag"] == tag
    assert (again["report"]["created"], again["report"]["updated"]) == (0, 2)
    after = {c["name"]: c for c in await contacts_tagged(tenant, tag)}
    assert {n: c["tags"] for n, c in after.items()} == {n: c["tags"] for n, c in listed.items()}
    found = await preview(tenant, instance, audience=result["audience"])
    assert (found["recipients"], found["estimate"]) == (2, None)  # no message, no category

    named = (await upload(tenant, CSV.encode(), list="Natal-2026")).json()
    assert named["tag"] == "natal-2026"
    assert len(await contacts_tagged(tenant, "natal-2026")) == 2
    assert await contacts_tagged(other_tenant, tag) == []
    assert (await preview(other_tenant, await create_evolution_instance(other_tenant),
                          audience={"tags": [tag]}))["contacts"] == 0  # fmt: skip


async def test_a_csv_audience_over_the_api_body_limit_is_read_under_the_import_limit(
    tenant: Tenant,
) -> None:
    """The API's 2 MiB body limit is for JSON; a CSV audience is counted by its route (10 MB)."""
    columns = [f"custom.f{n}" for n in range(7)]  # 7 KB per row: under a contact's 8 KB of fields
    cells = ",".join(["n" * 1000] * len(columns))
    row = f"+55119777{{:05d}},{cells}\n"
    count = MAX_BODY_BYTES // len(row) + 1
    rows = "".join(row.format(n) for n in range(count))
    response = await upload(tenant, f"phone_number,{','.join(columns)}\n{rows}".encode())
    assert response.status_code == 200, response.text
    assert response.json()["report"]["created"] == count


async def test_hostile_csv_audiences_are_refused_naming_the_field(tenant: Tenant) -> None:
    lines = "".join(f"+55119{n:08d}\n" for n in range(100_001))
    cases = [
        (b"phone_number,name\n+5511977770001,A\n", {"list": "a;b"}, 422, "list"),
        (b"telefone,name\n+5511977770001,A\n", {}, 422, "unknown column telefone"),
        (b"phone_number\n+5511977770001\x00\n", {}, 422, "NUL"),
        (b"phone_number\n\xff\xfe\n", {}, 422, "UTF-8"),
        (f"phone_number\n{lines}".encode(), {}, 413, "file"),
    ]
    for body, params, status, named in cases:
        response = await upload(tenant, body, **params)
        assert response.status_code == status, response.text
        assert named in response.json()["error"]["message"], response.text
    response = await tenant.client.get("/api/v1/contacts", params={"q": "+5511977770001"})
    assert response.json()["data"] == []  # nothing of a refused file was imported
