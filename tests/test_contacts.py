"""Contacts API: CRUD, validation, search, paging, sparse fields, tags, CSV import/export and
tenant isolation on every route."""

from __future__ import annotations

import asyncio
import csv
import io
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.fixtures.app import Tenant, in_process_api, recorded_statements
from zapflow.api.routes.contacts import ContactPublic
from zapflow.config import Settings
from zapflow.db import SessionFactory, transaction
from zapflow.services.auth import create_company
from zapflow.services.contact_csv import EXPORT_BATCH, MAX_IMPORT_BYTES
from zapflow.services.contacts import COUNT_AT_MOST

API = "/api/v1/contacts"
COMPARED = ("phone_number", "name", "email", "tags", "custom_fields")


@pytest.fixture
async def other(api_url: str, sessions: SessionFactory) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a second company."""
    async with transaction(sessions) as session:
        _, key = await create_company(session, "Other Co")
    headers = {"Authorization": f"Bearer {key.plain}"}
    async with httpx.AsyncClient(base_url=api_url, headers=headers, timeout=30) as client:
        yield client


async def _create(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    response = await client.post(API, json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def _list(client: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    response = await client.get(API, params=params)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def _names(client: httpx.AsyncClient, **params: Any) -> list[str]:
    return [c["name"] for c in (await _list(client, limit=100, **params))["data"]]


async def _import(
    client: httpx.AsyncClient, text: str, **params: Any
) -> tuple[int, dict[str, Any]]:
    response = await client.post(
        f"{API}/import", content=text.encode(), headers={"content-type": "text/csv"}, params=params
    )
    return response.status_code, response.json()


def _phone(n: int) -> str:
    return f"+55119{n:08d}"


def _error(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 422, response.text
    return dict(response.json()["error"])


# --- CRUD ------------------------------------------------------------------------------------


async def test_create_normalizes_and_crud_round_trips(tenant: Tenant) -> None:
    created = await _create(
        tenant.client,
        phone_number="+55 (11) 99999-0001",
        name="  Maria Souza ",
        email="Maria@Example.COM",
        tags=[" Lead", "VIP", "lead", ""],
        custom_fields={"plan": "pro", "seats": 5, "trial": False, "score": 9.5, "note": None},
    )
    assert created["phone_number"] == "+5511999990001"
    assert created["wa_id"] == "5511999990001"
    assert created["name"] == "Maria Souza"
    assert created["email"] == "maria@example.com"
    assert created["tags"] == ["lead", "vip"]
    assert created["custom_fields"] == {
        "plan": "pro",
        "seats": 5,
        "trial": False,
        "score": 9.5,
        "note": None,
    }
    url = f"{API}/{created['id']}"
    assert (await tenant.client.get(url)).json() == created

    patched = await tenant.client.patch(url, json={"name": "Maria S.", "email": None})
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert (body["name"], body["email"], body["tags"]) == ("Maria S.", None, ["lead", "vip"])
    assert body["updated_at"] > created["updated_at"]
    assert (await tenant.client.get(url)).json() == body

    moved = await tenant.client.patch(url, json={"phone_number": "5521988887777"})
    assert (moved.json()["phone_number"], moved.json()["wa_id"]) == (
        "+5521988887777",
        "5521988887777",
    )

    assert (await tenant.client.delete(url)).status_code == 204
    assert (await tenant.client.get(url)).status_code == 404
    assert (await tenant.client.delete(url)).status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "No phone"}, "phone_number"),
        ({"phone_number": "call me"}, "phone_number"),
        ({"phone_number": "12345"}, "phone_number"),
        ({"phone_number": "+1234567890123456"}, "phone_number"),
        ({"phone_number": "011 99999 0000"}, "phone_number"),
        ({"phone_number": "+5511999990001", "email": "not-an-email"}, "email"),
        ({"phone_number": "+5511999990001", "tags": [f"t{i}" for i in range(51)]}, "tags"),
        ({"phone_number": "+5511999990001", "tags": ["x" * 51]}, "tags"),
        ({"phone_number": "+5511999990001", "tags": ["a;b"]}, "tags"),
        ({"phone_number": "+5511999990001", "custom_fields": {"a": {"b": 1}}}, "custom_fields"),
        ({"phone_number": "+5511999990001", "custom_fields": {"a": [1]}}, "custom_fields"),
        ({"phone_number": "+5511999990001", "custom_fields": {"": 1}}, "custom_fields"),
        (
            {"phone_number": "+5511999990001", "custom_fields": {"k": "v" * 1001}},
            "custom_fields",
        ),
        (
            {"phone_number": "+5511999990001", "custom_fields": {f"k{i}": i for i in range(51)}},
            "custom_fields",
        ),
        ({"phone_number": "+5511999990001", "name": "x" * 201}, "name"),
        ({"phone_number": "+5511999990001", "lid": "123@lid"}, "lid"),
    ],
)
async def test_invalid_contacts_are_422_naming_the_field(
    tenant: Tenant, body: dict[str, Any], field: str
) -> None:
    error = _error(await tenant.client.post(API, json=body))
    assert error["code"] == "validation_error"
    assert field in error["message"]
    assert (await _list(tenant.client))["total"] == 0


async def test_update_refuses_nulls_and_bad_values_naming_the_field(tenant: Tenant) -> None:
    contact = await _create(tenant.client, phone_number=_phone(1), name="Ana")
    url = f"{API}/{contact['id']}"
    for body, field in [
        ({"name": None}, "name"),
        ({"phone_number": None}, "phone_number"),
        ({"tags": None}, "tags"),
        ({"phone_number": "nope"}, "phone_number"),
        ({"email": "@"}, "email"),
        ({"wa_id": "1"}, "wa_id"),
    ]:
        assert field in _error(await tenant.client.patch(url, json=body))["message"]
    assert (await tenant.client.get(url)).json() == contact


async def test_a_duplicate_phone_is_409_with_the_existing_id(tenant: Tenant) -> None:
    first = await _create(tenant.client, phone_number="+55 11 99999-0001", name="First")
    again = await tenant.client.post(API, json={"phone_number": "5511999990001"})
    assert again.status_code == 409, again.text
    error = again.json()["error"]
    assert error["details"] == {"field": "phone_number", "existing_id": first["id"]}

    second = await _create(tenant.client, phone_number=_phone(2), name="Second")
    moved = await tenant.client.patch(
        f"{API}/{second['id']}", json={"phone_number": "+5511999990001"}
    )
    assert moved.status_code == 409, moved.text
    assert moved.json()["error"]["details"]["existing_id"] == first["id"]
    assert (await tenant.client.get(f"{API}/{second['id']}")).json() == second


async def test_the_same_phone_in_two_companies_is_two_contacts(
    tenant: Tenant, other: httpx.AsyncClient
) -> None:
    mine = await _create(tenant.client, phone_number=_phone(1))
    theirs = await _create(other, phone_number=_phone(1))
    assert mine["id"] != theirs["id"]


# --- search, filters, paging, fields ---------------------------------------------------------


@pytest.fixture
async def people(tenant: Tenant) -> list[dict[str, Any]]:
    """Created oldest first, so the list shows them reversed."""
    rows = [
        ("Maria Souza", "maria.souza@acme.com", ["lead"]),
        ("João Pereira", "joao@example.com", ["vip", "lead"]),
        ("Ana Maria Lima", "ana@example.org", ["vip"]),
        ("Carlos 100% Santos", None, []),
        ("Bia_Costa", "bia@acme.com", ["vip", "lead", "b2b"]),
    ]
    return [
        await _create(tenant.client, phone_number=_phone(1000 + i), name=n, email=e, tags=t)
        for i, (n, e, t) in enumerate(rows)
    ]


async def test_list_and_detail_rows_are_what_the_public_model_writes(
    tenant: Tenant, people: list[dict[str, Any]]
) -> None:
    """Both are written without building ContactPublic (columns; the cached JSON)."""
    await tenant.client.patch(f"{API}/{people[0]['id']}", json={"custom_fields": {"plan": "pro"}})
    rows = (await _list(tenant.client))["data"]
    one = (await tenant.client.get(f"{API}/{people[0]['id']}")).json()
    assert len(rows) == 5 and one["custom_fields"] == {"plan": "pro"}
    for row in [*rows, one]:
        assert ContactPublic.model_validate(row).model_dump(mode="json") == row


async def test_search_by_name_fragment_phone_digits_and_email_prefix(
    tenant: Tenant, people: list[dict[str, Any]]
) -> None:
    assert await _names(tenant.client, q="maria") == ["Ana Maria Lima", "Maria Souza"]
    assert await _names(tenant.client, q="SOUZ") == ["Maria Souza"]
    assert await _names(tenant.client, q="ão per") == ["João Pereira"]
    assert await _names(tenant.client, q="100%") == ["Carlos 100% Santos"]  # not a wildcard
    assert await _names(tenant.client, q="a_c") == ["Bia_Costa"]
    assert await _names(tenant.client, q="nobody") == []
    assert await _names(tenant.client, q="00001002") == ["Ana Maria Lima"]  # digits anywhere
    assert await _names(tenant.client, q="+55 11 9000") == [p["name"] for p in people[::-1]]
    assert await _names(tenant.client, q="JOAO@") == ["João Pereira"]
    assert await _names(tenant.client, q="bia@acme") == ["Bia_Costa"]
    assert await _names(tenant.client, q="@acme") == []  # a prefix, not a domain search


async def test_filter_by_tags_and_creation_time(
    tenant: Tenant, people: list[dict[str, Any]]
) -> None:
    assert await _names(tenant.client, tag="VIP") == ["Bia_Costa", "Ana Maria Lima", "João Pereira"]
    both = await _names(tenant.client, tag=["vip", "lead"])
    assert both == ["Bia_Costa", "João Pereira"]
    assert await _names(tenant.client, tag=["vip", "lead"], q="bia") == ["Bia_Costa"]
    assert await _names(tenant.client, tag="nope") == []
    since = people[3]["created_at"]
    assert await _names(tenant.client, created_since=since) == ["Bia_Costa", "Carlos 100% Santos"]
    for naive in ("2000-01-01T00:00:00", "2000-01-01"):  # read as UTC
        assert len(await _names(tenant.client, created_since=naive)) == 5
    assert await _names(tenant.client, created_since="2999-01-01T00:00:00-03:00") == []
    assert _error(await tenant.client.get(API, params={"tag": "x" * 51}))["message"].startswith(
        "tag"
    )


async def test_pagination_edges(tenant: Tenant) -> None:
    empty = await _list(tenant.client)
    assert empty == {
        "data": [],
        "total": 0,
        "page": 1,
        "pages": 0,
        "limit": 50,
        "total_exact": True,
    }
    made = [await _create(tenant.client, phone_number=_phone(i), name=f"p{i}") for i in range(6)]
    newest_first = [c["id"] for c in made[::-1]]

    first = await _list(tenant.client, limit=3)
    last = await _list(tenant.client, limit=3, page=2)
    assert (first["total"], first["pages"], last["pages"]) == (6, 2, 2)
    assert [c["id"] for c in first["data"] + last["data"]] == newest_first
    beyond = await _list(tenant.client, limit=3, page=3)
    assert (beyond["data"], beyond["total"], beyond["pages"]) == ([], 6, 2)
    uneven = await _list(tenant.client, limit=4, page=2)
    assert ([c["id"] for c in uneven["data"]], uneven["pages"]) == (newest_first[4:], 2)

    for params, field in [
        ({"limit": 101}, "limit"),
        ({"limit": 0}, "limit"),
        ({"page": 0}, "page"),
        ({"page": "x"}, "page"),
    ]:
        assert field in _error(await tenant.client.get(API, params=params))["message"]


async def test_past_the_counted_contacts_the_total_is_a_lower_bound(tenant: Tenant) -> None:
    """Counting stops after COUNT_AT_MOST matches; the pages past it are still served."""
    more = COUNT_AT_MOST + 2
    status, _ = await _import(
        tenant.client, "phone_number,name\n" + "\n".join(f"{_phone(i)},n{i}" for i in range(more))
    )
    assert status == 200
    first = await _list(tenant.client, limit=50)
    assert (first["total"], first["total_exact"], first["pages"]) == (COUNT_AT_MOST, False, 20)
    past = await _list(tenant.client, limit=50, page=COUNT_AT_MOST // 50 + 1)
    assert len(past["data"]) == 2
    searched = await _list(tenant.client, q="n100")  # n100, n1000, n1001
    assert (searched["total"], searched["total_exact"]) == (3, True)


async def test_sparse_fieldsets_on_list_and_detail(
    tenant: Tenant, people: list[dict[str, Any]]
) -> None:
    page = await _list(tenant.client, fields="name,phone_number", limit=2)
    assert page["total"] == 5
    assert [set(c) for c in page["data"]] == [{"id", "name", "phone_number"}] * 2
    one = await tenant.client.get(f"{API}/{people[0]['id']}", params={"fields": "email,tags"})
    assert one.json() == {"id": people[0]["id"], "email": people[0]["email"], "tags": ["lead"]}
    error = _error(await tenant.client.get(API, params={"fields": "name,company_id,secret"}))
    assert error["details"]["unknown"] == ["company_id", "secret"]
    error = _error(
        await tenant.client.get(f"{API}/{people[0]['id']}", params={"fields": "password"})
    )
    assert "password" in error["message"]


async def test_a_list_is_one_statement_whatever_the_page_size_and_filter(
    tenant: Tenant, settings: Settings
) -> None:
    """The count and the page are one statement (on the driver pool), compiled once per shape
    of filter: a search and a tag filter are other shapes, not other statements per request."""
    await _import(
        tenant.client, "phone_number,tags\n" + "\n".join(f"{_phone(i)},vip" for i in range(60))
    )
    async with in_process_api(settings, tenant.api_key) as (app, client):
        await _list(client, limit=1)  # authenticates once; later requests hit the key cache
        with recorded_statements(app) as statements:
            for params in (
                {"limit": 2, "q": "+55"},
                {"limit": 60, "q": "+55"},
                {"limit": 60, "tag": "vip"},
            ):
                statements.clear()
                assert len((await _list(client, **params))["data"]) == params["limit"]
                # the app's background tasks (the backlog gauges) may query meanwhile
                assert len([s for s in statements if "FROM contacts" in s]) == 1, statements


# --- tags ------------------------------------------------------------------------------------


async def test_add_and_remove_tags(tenant: Tenant) -> None:
    contact = await _create(tenant.client, phone_number=_phone(1), tags=["lead"])
    url = f"{API}/{contact['id']}/tags"
    added = await tenant.client.post(url, json={"tag": "  VIP "})
    assert added.status_code == 200, added.text
    assert added.json()["tags"] == ["lead", "vip"]
    assert (await tenant.client.post(url, json={"tag": "vip"})).json()["tags"] == ["lead", "vip"]
    assert (await tenant.client.delete(f"{url}/lead")).status_code == 204
    assert (await tenant.client.delete(f"{url}/absent")).status_code == 204
    assert (await tenant.client.get(f"{API}/{contact['id']}")).json()["tags"] == ["vip"]
    for body in ({"tag": " "}, {"tag": "x" * 51}, {"tags": ["a"]}, {"tag": "a|b"}):
        assert "tag" in _error(await tenant.client.post(url, json=body))["message"]


async def test_concurrent_tag_edits_are_all_kept(tenant: Tenant) -> None:
    contact = await _create(tenant.client, phone_number=_phone(1))
    url = f"{API}/{contact['id']}/tags"
    answers = await asyncio.gather(
        *(tenant.client.post(url, json={"tag": f"t{i}"}) for i in range(12))
    )
    assert {a.status_code for a in answers} == {200}
    tags = (await tenant.client.get(f"{API}/{contact['id']}")).json()["tags"]
    assert sorted(tags) == sorted(f"t{i}" for i in range(12))


async def test_a_contact_holds_at_most_50_tags(tenant: Tenant) -> None:
    tags = [f"t{i}" for i in range(50)]
    contact = await _create(tenant.client, phone_number=_phone(1), tags=tags)
    url = f"{API}/{contact['id']}/tags"
    assert "50" in _error(await tenant.client.post(url, json={"tag": "one-more"}))["message"]
    assert (await tenant.client.post(url, json={"tag": "t7"})).status_code == 200


# --- CSV import ------------------------------------------------------------------------------


async def test_import_stores_good_rows_and_reports_bad_ones(tenant: Tenant) -> None:
    text = (
        "phone_number,name,email,tags,custom.plan,custom_fields\n"
        "+55 11 90000-0001,Ana,ANA@EXAMPLE.COM,Lead;VIP,pro,\n"  # row 2: good
        "not a phone,Bad Phone,,,,\n"  # row 3
        "+5511900000003,Bad Email,nope,,,\n"  # row 4
        ",No Phone,x@example.com,,,\n"  # row 5
        "+5511900000001,Again,,,,\n"  # row 6: same number as row 2
        "+5511900000006,Bad Json,,,,{oops\n"  # row 7
        "+5511900000007,Short row\n"  # row 8
        "\n"  # blank: ignored
        '+5511900000009,"Quoted, name",,a|b,basic,"{""seats"": 3, ""plan"": ""x""}"\n'  # row 10
        "+5511900000010,Two errors,bad,,,[1]\n"  # row 11
    )
    status, report = await _import(tenant.client, text)
    assert status == 200, report
    assert (report["created"], report["updated"], report["skipped"]) == (2, 0, 0)
    assert [(e["row"], e["field"]) for e in report["errors"]] == [
        (3, "phone_number"),
        (4, "email"),
        (5, "phone_number"),
        (6, "phone_number"),
        (7, "custom_fields"),
        (8, None),
        (11, "custom_fields"),
        (11, "email"),
    ]
    assert "row 2" in report["errors"][3]["message"]
    stored = {c["phone_number"]: c for c in (await _list(tenant.client))["data"]}
    assert set(stored) == {"+5511900000001", "+5511900000009"}
    ana = stored["+5511900000001"]
    assert (ana["name"], ana["email"], ana["tags"]) == ("Ana", "ana@example.com", ["lead", "vip"])
    assert ana["custom_fields"] == {"plan": "pro"}
    quoted = stored["+5511900000009"]
    assert (quoted["name"], quoted["tags"]) == ("Quoted, name", ["a", "b"])
    assert quoted["custom_fields"] == {"seats": 3, "plan": "basic"}  # the column wins


async def test_import_update_or_skip_existing_numbers(tenant: Tenant) -> None:
    old = await _create(
        tenant.client,
        phone_number=_phone(1),
        name="Old",
        email="old@example.com",
        tags=["a"],
        custom_fields={"keep": 1, "plan": "free"},
    )
    text = (
        f"phone_number,name,email,tags,custom.plan\n{_phone(1)},New,,,pro\n{_phone(2)},Fresh,,,\n"
    )

    status, skipped = await _import(tenant.client, text, mode="skip")
    assert status == 200
    assert (skipped["created"], skipped["updated"], skipped["skipped"]) == (1, 0, 1)
    assert (await tenant.client.get(f"{API}/{old['id']}")).json() == old

    status, updated = await _import(tenant.client, text, mode="update")
    assert (updated["created"], updated["updated"], updated["skipped"]) == (0, 2, 0)
    now = (await tenant.client.get(f"{API}/{old['id']}")).json()
    assert (now["name"], now["email"], now["tags"]) == ("New", "old@example.com", ["a"])
    assert now["custom_fields"] == {"keep": 1, "plan": "pro"}
    assert now["updated_at"] > old["updated_at"]
    assert _error(await tenant.client.post(f"{API}/import", params={"mode": "merge"}, content=b""))


async def test_import_as_a_multipart_upload_with_semicolons_and_a_bom(tenant: Tenant) -> None:
    data = (
        "\ufeffPhone_Number;Name;Tags;Custom.CRM_Id\r\n"
        "+5511900000001;Zé;a|b;A-1\r\n"
        "+5511900000002;Lu;;\r\n"
    )
    response = await tenant.client.post(
        f"{API}/import", files={"file": ("contatos.csv", data.encode(), "text/csv")}
    )
    assert response.status_code == 200, response.text
    assert response.json()["created"] == 2
    lu, ze = (await _list(tenant.client))["data"]
    assert (lu["name"], lu["tags"], lu["custom_fields"]) == ("Lu", [], {})
    assert (ze["name"], ze["tags"], ze["custom_fields"]) == ("Zé", ["a", "b"], {"CRM_Id": "A-1"})
    no_file = await tenant.client.post(
        f"{API}/import", files={"other": ("x.csv", b"a", "text/csv")}
    )
    assert "file" in _error(no_file)["message"]


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"", "header"),
        (b"\n\n", "header"),
        ("phone_number,nome\n+5511900000001,Zé\n".encode(), "unknown"),
        (b"name,email\nAna,a@b.co\n", "phone_number"),
        (b"phone_number,name,name\n", "repeated"),
        (b"phone_number,custom.\n", "unknown"),
        ("phone_number,name\n+5511900000001,José\n".encode("latin-1"), "UTF-8"),
    ],
)
async def test_an_unreadable_file_is_422_and_imports_nothing(
    tenant: Tenant, content: bytes, words: str
) -> None:
    response = await tenant.client.post(
        f"{API}/import", content=content, headers={"content-type": "text/csv"}
    )
    error = _error(response)
    assert words in error["message"], error
    assert (await _list(tenant.client))["total"] == 0


async def test_a_file_over_10_mb_is_413(tenant: Tenant) -> None:
    big = b"phone_number\n" + b"+5511900000001\n" * (MAX_IMPORT_BYTES // 15 + 1)
    response = await tenant.client.post(
        f"{API}/import", content=big, headers={"content-type": "text/csv"}
    )
    assert response.status_code == 413, response.text

    async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: counted while read
        for start in range(0, len(big), 1 << 20):
            yield big[start : start + (1 << 20)]

    response = await tenant.client.post(
        f"{API}/import", content=chunked(), headers={"content-type": "text/csv"}
    )
    assert response.status_code == 413, response.text
    assert (await _list(tenant.client))["total"] == 0


# --- CSV export ------------------------------------------------------------------------------


async def _export(client: httpx.AsyncClient, **params: Any) -> httpx.Response:
    response = await client.get(f"{API}/export", params=params)
    assert response.status_code == 200, response.text
    return response


def _comparable(contacts: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return sorted(tuple(str(c[k]) for k in COMPARED) for c in contacts)


async def test_export_then_import_elsewhere_gives_the_same_contacts(
    tenant: Tenant, other: httpx.AsyncClient
) -> None:
    await _create(
        tenant.client,
        phone_number=_phone(1),
        name='=HYPERLINK("http://evil")',  # a spreadsheet must not run it
        email="a@example.com",
        tags=["vip", "-x", "lead"],
        custom_fields={"plan": "pro", "seats": 3, "ok": True, "ratio": 0.5, "none": None},
    )
    await _create(tenant.client, phone_number=_phone(2), name='Quote "me", please')
    await _create(tenant.client, phone_number=_phone(3), name="Linha\nquebrada", tags=["b"])
    await _create(tenant.client, phone_number=_phone(4), name="'=not a formula", tags=["'x"])
    await _create(tenant.client, phone_number=_phone(5))
    exported = await _export(tenant.client)
    assert exported.headers["content-type"].startswith("text/csv")
    assert exported.headers["content-disposition"].startswith("attachment; filename=")
    rows = list(csv.reader(io.StringIO(exported.text)))
    assert rows[0] == [
        *("phone_number", "name", "email", "tags", "custom_fields", "created_at"),
        *("bsuid", "username"),
    ]
    assert rows[-1][1] == '\'=HYPERLINK("http://evil")'  # newest last: created first

    status, report = await _import(other, exported.text)
    assert (status, report["created"], report["errors"]) == (200, 5, [])
    mine = (await _list(tenant.client))["data"]
    theirs = (await _list(other))["data"]
    assert _comparable(theirs) == _comparable(mine)


async def test_export_streams_every_matching_row_once(tenant: Tenant) -> None:
    count = EXPORT_BATCH * 2 + 7  # several chunks, all with the same created_at (one import)
    lines = [f"{_phone(i)},n{i},{'vip' if i % 2 else ''}" for i in range(count)]
    status, report = await _import(tenant.client, "phone_number,name,tags\n" + "\n".join(lines))
    assert (status, report["created"]) == (200, count)
    rows = list(csv.DictReader(io.StringIO((await _export(tenant.client)).text)))
    assert sorted(r["phone_number"] for r in rows) == sorted(_phone(i) for i in range(count))
    vip = list(csv.DictReader(io.StringIO((await _export(tenant.client, tag="vip")).text)))
    assert len(vip) == count // 2
    assert {r["tags"] for r in vip} == {"vip"}
    nobody = (await _export(tenant.client, q="nobody")).text
    header = "phone_number,name,email,tags,custom_fields,created_at,bsuid,username"
    assert nobody.splitlines() == [header]


# --- tenant isolation ------------------------------------------------------------------------


async def test_another_companys_contact_is_404_on_every_route(
    tenant: Tenant, other: httpx.AsyncClient
) -> None:
    theirs = await _create(other, phone_number=_phone(1), name="Theirs", tags=["secret"])
    mine = await _create(tenant.client, phone_number=_phone(2), name="Mine", tags=["secret"])
    url = f"{API}/{theirs['id']}"
    attempts = [
        tenant.client.get(url),
        tenant.client.get(url, params={"fields": "name"}),
        tenant.client.patch(url, json={"name": "Hijacked"}),
        tenant.client.post(f"{url}/tags", json={"tag": "hijacked"}),
        tenant.client.delete(f"{url}/tags/secret"),
        tenant.client.delete(url),
        tenant.client.get(f"{API}/{uuid.uuid4()}"),
    ]
    for attempt in attempts:
        response = await attempt
        assert response.status_code == 404, response.text
        assert response.json()["error"]["code"] == "not_found"
    assert (await other.get(url)).json() == theirs

    for params in ({}, {"q": "Theirs"}, {"q": _phone(1)}, {"tag": "secret"}):
        assert [c["id"] for c in (await _list(tenant.client, **params))["data"]] in (
            [mine["id"]],
            [],
        )
    exported = list(csv.DictReader(io.StringIO((await _export(tenant.client)).text)))
    assert [r["name"] for r in exported] == ["Mine"]
    status, report = await _import(tenant.client, f"phone_number,name\n{_phone(1)},Mine too\n")
    assert (status, report["created"]) == (200, 1)  # their number, a new contact of mine
    assert (await other.get(url)).json() == theirs
