"""What the crm-read scenario asks for: targets picked from a seeded company (as an agent would
find them, through the API, plus SQL for an unbiased sample of conversations), and the request
mix the load generator draws from them."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import httpx

from zapflow.bench.stack import BenchError, BenchStack

PAGE = 50
CONTACT_PAGE = 20
INBOX_PAGES = 20
CONTACT_SAMPLE = 1000
RANDOM_CONVERSATIONS = 100
SEARCH_FRAGMENTS = ("silva", "maria", "santos")
ACCEPT_ENCODING = "gzip, deflate, br"  # what a browser sends; zapflow compresses with gzip
MIX = (  # (weight %, route)
    (30, "conversation list"),
    (30, "message page"),
    (10, "contact search"),
    (20, "contact detail"),
    (10, "deal board"),
)

Call = tuple[str, str, dict[str, Any]]  # (route, path, query parameters)


@dataclass(frozen=True)
class Targets:
    inbox_cursors: list[str]  # next_cursor of pages 1..19: they fetch pages 2..20
    conversations: list[str]  # random sample with messages
    contacts: list[str]
    funnel_id: str

    def public(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "inbox_cursors": len(self.inbox_cursors),
            "conversations": len(self.conversations),
            "contacts": len(self.contacts),
        }


def _get(client: httpx.Client, path: str, **params: Any) -> Any:
    response = client.get(path, params=params)
    if response.status_code != 200:
        raise BenchError(f"GET {path} {params}: {response.status_code} {response.text[:300]}")
    return response.json()


def pick_targets(bench: BenchStack, api_key: str, company_id: str, seed: int) -> Targets:
    rng = random.Random(seed)
    auth = {"Authorization": f"Bearer {api_key}"}
    with httpx.Client(base_url=bench.base_url, headers=auth, timeout=60) as client:
        cursors: list[str] = []
        page = _get(client, "/api/v1/conversations", limit=PAGE)
        while page["next_cursor"] and len(cursors) < INBOX_PAGES - 1:
            cursors.append(page["next_cursor"])
            page = _get(client, "/api/v1/conversations", limit=PAGE, cursor=cursors[-1])
        first = _get(client, "/api/v1/contacts", limit=100)
        contacts = [row["id"] for row in first["data"]]
        pages = max(1, -(-int(first["total"]) // 100))
        for number in rng.sample(range(2, pages + 1), min(pages - 1, CONTACT_SAMPLE // 100 - 1)):
            rows = _get(client, "/api/v1/contacts", limit=100, page=number)["data"]
            contacts += [row["id"] for row in rows]
        funnels = [
            (
                sum(
                    s["deal_count"]
                    for s in _get(client, f"/api/v1/funnels/{f['id']}/board")["stages"]
                ),
                f["id"],
            )
            for f in _get(client, "/api/v1/funnels")
        ]
    sample = bench.psql(  # a fixed pseudo-random order: the same sample for the same data
        f"SELECT id FROM conversations WHERE company_id = '{company_id}' AND message_count > 0 "
        f"ORDER BY md5(id::text || '{seed}') LIMIT {RANDOM_CONVERSATIONS}"
    ).split()
    if not (funnels and contacts and sample):
        raise BenchError("the seeded company lacks funnels, contacts or conversations")
    return Targets(cursors, sample, contacts[:CONTACT_SAMPLE], max(funnels)[1])


def mix_picker(t: Targets, only: str | None = None) -> Callable[[random.Random], Call]:
    """Draws the next request of the mix (or of its route ``only``); the conversation list goes
    to pages 1-20."""
    pages: list[str | None] = [None, *t.inbox_cursors]

    def conversation_list(rng: random.Random) -> Call:
        cursor = rng.choice(pages)
        params: dict[str, Any] = {"limit": PAGE, **({"cursor": cursor} if cursor else {})}
        return "conversation list", "/api/v1/conversations", params

    def message_page(rng: random.Random) -> Call:
        path = f"/api/v1/conversations/{rng.choice(t.conversations)}/messages"
        return "message page", path, {"limit": PAGE}

    def contact_search(rng: random.Random) -> Call:
        params = {"q": rng.choice(SEARCH_FRAGMENTS), "limit": CONTACT_PAGE}
        return "contact search", "/api/v1/contacts", params

    def contact_detail(rng: random.Random) -> Call:
        return "contact detail", f"/api/v1/contacts/{rng.choice(t.contacts)}", {}

    def deal_board(_: random.Random) -> Call:
        return "deal board", f"/api/v1/funnels/{t.funnel_id}/board", {}

    by_route = {
        "conversation list": conversation_list,
        "message page": message_page,
        "contact search": contact_search,
        "contact detail": contact_detail,
        "deal board": deal_board,
    }
    mix = [(weight, route) for weight, route in MIX if only in (None, route)]
    weights = [weight for weight, _ in mix]
    picks = [by_route[route] for _, route in mix]

    def pick(rng: random.Random) -> Call:
        return rng.choices(picks, weights)[0](rng)

    return pick
