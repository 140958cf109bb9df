"""``zapflow bench campaign``: a broadcast of ``--recipients`` (100,000 by default) at the
number's configured throughput (``--rate``, 80 msg/s by default) against the load generator
playing the Cloud API, while customers write in; on a fresh stack with the workers ``zapflow
dev`` runs.

Measured: the achieved send rate (overall, and between the 10th and 90th percentile sends),
recipients sent twice (must be 0), CPU-ms per send by process over the campaign's window (also
less what the customers' messages cost, measured alone before the campaign), and the inbound
pipeline's latency (webhook → SSE) for customers writing in alone and during the campaign.
"""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any

import httpx

from zapflow.bench import floors
from zapflow.bench.markdown import num, table
from zapflow.bench.runner import Context
from zapflow.bench.scenarios import (
    analyse_steps,
    memory,
    running,
    tenant,
    webhook_plan,
)
from zapflow.bench.stack import BenchError, BenchStack, free_port, per_unit_ms
from zapflow.bench.stats import counts_per_window

REPLY_RATE = 5.0  # customers writing in per second, alone and during the campaign
BASELINE_S = 20.0
CUSTOMER_BASE = 5511930000000  # recipients' phones: +55 11 93..., the first ones also write in
TAG = "bench-campaign"
TEMPLATE = {
    "id": "1000000000001",
    "name": "bench_promo",
    "language": "pt_BR",
    "status": "APPROVED",
    "category": "MARKETING",
    "components": [{"type": "BODY", "text": "Oi {{1}}, novidades para você"}],
}
BUDGET_MARGIN_S = 120.0  # stack start, baseline and drain within the run's budget


def campaign(ctx: Context) -> dict[str, Any]:
    o = ctx.options
    throughput = int((o.rates or [80])[0])
    fits = int(throughput * max(30.0, ctx.seconds_left() - BUDGET_MARGIN_S - BASELINE_S))
    recipients = min(o.recipients, fits)
    port = free_port()

    def scenario(bench: BenchStack) -> dict[str, Any]:
        roles = o.worker_roles or floors.dev_worker_roles()
        bench.start_workers(roles)
        bench.start_api()
        to = tenant(bench, "Bench campaign")
        configure(bench, to.api_key, to.instance_id, throughput)
        seed_audience(bench, to.company_id, recipients)
        during = max(10.0, 0.9 * recipients / throughput)
        inbound = webhook_plan(
            bench,
            to,
            [(REPLY_RATE, BASELINE_S), (REPLY_RATE, during)],
            sse=True,
            customer_base=CUSTOMER_BASE,
            customers=min(recipients, 1000),
        )
        inbound["steps"][0]["name"], inbound["steps"][1]["name"] = "replies alone", "campaign"
        plan = {
            "mode": "campaign",
            "api_key": to.api_key,
            "receiver_port": port,
            "template": TEMPLATE,
            "requests": [
                (f"{bench.base_url}/api/v1/templates/sync", {"instance_id": to.instance_id}),
                (f"{bench.base_url}/api/v1/campaigns", campaign_body(to.instance_id, throughput)),
            ],
            "inbound": inbound,
            "recipients": recipients,
            "wait_s": 3 * recipients / throughput + 120,
        }
        raw, usage = ctx.load(bench, plan, "campaign")
        bench.check_processes()
        settings = {
            "recipients": recipients,
            "recipients_asked": o.recipients,
            "throughput": throughput,
            "reply_rate": REPLY_RATE,
            "baseline_s": BASELINE_S,
            "worker_roles": roles,
            "processes": ", ".join(bench.processes()),
            "message": "a MARKETING template with one body parameter from the contact's name",
        }
        return {"settings": settings, **campaign_result(raw, usage, recipients)}

    extra = {"ZAPFLOW_CLOUD_API_BASE_URL": f"http://127.0.0.1:{port}/v21.0"}
    return running(BenchStack(extra), scenario)


def configure(bench: BenchStack, api_key: str, instance_id: str, throughput: int) -> None:
    """The number's account (for its templates) and throughput, as a user sets them."""
    response = httpx.patch(
        f"{bench.base_url}/api/v1/instances/{instance_id}",
        headers={"Authorization": f"Bearer {api_key}"},
        json={"settings": {"waba_id": "1000000000000", "throughput": throughput}},
        timeout=30,
    )
    if response.status_code != 200:
        raise BenchError(f"configuring the number: {response.status_code} {response.text[:300]}")


def seed_audience(bench: BenchStack, company_id: str, recipients: int) -> None:
    bench.psql(
        "INSERT INTO contacts (id, company_id, phone_number, name, tags)"
        f" SELECT gen_random_uuid(), '{company_id}', '+' || ({CUSTOMER_BASE} + n)::text,"
        f" 'Cliente ' || n, ARRAY['{TAG}'] FROM generate_series(0, {recipients - 1}) AS n"
    )


def campaign_body(instance_id: str, throughput: int) -> dict[str, Any]:
    return {
        "name": f"Bench {uuid.uuid4().hex[:6]}",
        "instance_id": instance_id,
        "audience": {"tags": [TAG]},
        "message": {
            "template": {"name": TEMPLATE["name"], "language": TEMPLATE["language"]},
            "parameters": {"body": [{"field": "name", "fallback": "cliente"}]},
        },
        "throughput": throughput,
    }


def campaign_result(raw: dict[str, Any], usage: dict[str, Any], recipients: int) -> dict[str, Any]:
    sends = raw["sends"]
    times = sorted(t for _, t in sends)
    per_recipient = Counter(to for to, _ in sends)
    replies, series = analyse_steps(raw["inbound"], usage, e2e=True)
    window = usage.get("campaign", {})
    alone = usage.get("replies alone", {})
    result: dict[str, Any] = {
        "sent": len(per_recipient),
        "missing": recipients - len(per_recipient),
        "sent_twice": sum(1 for n in per_recipient.values() if n > 1),
        "first_send_after_s": round(times[0] - raw["created_at"], 2) if times else None,
        "achieved_rate": rate(times, 0, len(times) - 1),
        "steady_rate": rate(times, len(times) // 10, 9 * len(times) // 10),
        "cpu_ms_per_send": per_unit_ms(window, len(sends)),
        "cpu_ms_per_send_less_replies": less_replies(window, alone, len(sends)),
        "window_s": window.get("seconds"),
        "cpu_percent": window.get("cpu_percent"),
        "replies": {name: step for name, step in replies.items()},
    }
    first = times[0] if times else 0.0
    # plotted as the campaign step's "sent": the campaign's sends per second (the customers'
    # messages are the step's "done"), on the step's clock
    series.setdefault("campaign", {})["sent"] = counts_per_window(t - first for t in times)
    return {"results": result, "series": series, "memory": memory([window])}


def rate(times: list[float], first: int, last: int) -> float | None:
    span = times[last] - times[first] if 0 <= first < last < len(times) else 0.0
    return round((last - first) / span, 1) if span > 0 else None


def less_replies(window: dict[str, Any], alone: dict[str, Any], sends: int) -> dict[str, float]:
    """CPU-ms per send once the customers' messages' share (their CPU per second alone, times
    the campaign's window) is taken out."""
    if not sends or not alone.get("seconds") or not window.get("seconds"):
        return {}
    scale = window["seconds"] / alone["seconds"]
    spent = window.get("cpu_seconds", {})
    base = alone.get("cpu_seconds", {})
    return {
        g: round(1000 * max(0.0, s - base.get(g, 0.0) * scale) / sends, 2) for g, s in spent.items()
    }


def campaign_section(result: dict[str, Any]) -> list[str]:
    r, s = result["results"], result["settings"]
    scaled = (
        ""
        if s["recipients"] == s["recipients_asked"]
        else (f" (scaled from {s['recipients_asked']:,} to fit the run)")
    )
    rows = [
        [name, num(step["rate"]), str(step["sent"]), *(num(step["e2e_ms"][q]) for q in
         ("p50", "p95", "p99", "max")), str(step["lost"])]
        for name, step in r["replies"].items()
    ]  # fmt: skip
    groups = list(r["cpu_ms_per_send"])
    costs = [
        [label, *(num(values.get(g), 2) for g in groups)]
        for label, values in (
            ("per send", r["cpu_ms_per_send"]),
            ("per send, the replies' share taken out", r["cpu_ms_per_send_less_replies"]),
        )
    ]
    return [
        f"{s['recipients']:,} recipients{scaled} at a configured {s['throughput']} msg/s: "
        f"{r['sent']:,} sent, {r['missing']} missing, {r['sent_twice']} sent twice; achieved "
        f"{num(r['achieved_rate'])} msg/s overall, {num(r['steady_rate'])} msg/s between the "
        f"10th and 90th percentile sends; first send {num(r['first_send_after_s'], 2)} s after "
        f"the campaign was created. Customers writing in at {s['reply_rate']:g}/s, alone and "
        "during the campaign (webhook → SSE `message.created`, ms):",
        "",
        *table(["step", "rate", "sent", "p50", "p95", "p99", "max", "lost"], rows),
        "CPU-ms per send by process group over the campaign's window (`machine`: the whole "
        "machine, `other`: the neighbours' work):",
        "",
        *table(["", *groups], costs),
    ]
