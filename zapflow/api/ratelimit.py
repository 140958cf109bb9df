"""Applies the rate limiter to authenticated API requests; ``api/middleware.py`` copies its state
into the response's ``RateLimit-*`` headers.

The group is the first path segment under /api/v1 (``contacts``, ``conversations`` ...). Each
request counts in its API key's bucket and in its company's (all its keys together), so one tenant
cannot take the API from the others by spreading a flood over many keys. A company may set its
keys' limits in ``settings.rate_limits`` (``{"default": 600, "contacts": 120}``), never above the
operator's ``rate_limit_max_per_minute``; the company bucket is the operator's alone.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from zapflow.api.state import AppState
from zapflow.errors import TooManyRequests
from zapflow.services import ratelimit
from zapflow.services.auth import Principal
from zapflow.services.company_settings import company_settings

STATE_KEY = "rate_limit"  # the request state the middleware copies into RateLimit-* headers


def route_group(path: str) -> str:
    parts = path.split("/")
    return parts[3] if len(parts) > 3 and parts[3] else "root"  # "", "api", "v1", group


def limit_for(settings: dict[str, Any], group: str, default: int, maximum: int) -> int:
    limits = settings.get("rate_limits") or {}
    value = limits.get(group, limits.get("default", default))
    # a limit stored before the operator lowered the maximum counts as the maximum
    return min(int(value), maximum) if isinstance(value, int) and value > 0 else default


def refuse(outcome: ratelimit.RateLimitState, group: str) -> TooManyRequests:
    whose = {"key": "this API key", "company": "this company", "instance": "this instance"}
    return TooManyRequests(
        f"rate limit of {outcome.limit} requests per minute reached for {group} "
        f"by {whose.get(outcome.scope, outcome.scope)}",
        details={
            "limit": outcome.limit,
            "group": group,
            "scope": outcome.scope,
            "retry_after": outcome.reset_seconds,
        },
        headers=outcome.headers(),
    )


async def enforce(request: Request, state: AppState, principal: Principal) -> None:
    group = route_group(request.scope["path"])  # not request.url: it parses the Host header
    settings = await company_settings(state.cache, state.sessions, principal.company_id)
    limits = state.settings
    buckets = (
        ratelimit.Bucket(
            "key",
            str(principal.credential_id),
            limit_for(
                settings, group, limits.rate_limit_per_minute, limits.rate_limit_max_per_minute
            ),
        ),
        ratelimit.Bucket(
            "company", f"company:{principal.company_id}", limits.company_rate_limit_per_minute
        ),
    )
    outcome = await ratelimit.hit(state.redis, group, buckets)
    if outcome is None:
        return
    request.state.rate_limit = outcome  # STATE_KEY
    if not outcome.allowed:
        raise refuse(outcome, group)
