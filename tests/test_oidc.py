"""Signing in with an OpenID Connect provider: a real one on loopback (discovery, JWKS, PKCE
checked at its token endpoint). The happy path; forged, expired, other-nonce and other-audience
ID tokens, an unknown or unverified e-mail, a domain not allowed, another browser's callback;
and the provider's endpoints held to the egress policy."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from playwright.async_api import Browser, expect
from redis.asyncio import Redis

from tests.fixtures.app import Tenant, in_process_api, served_api
from tests.fixtures.browser import open_page, screenshot
from tests.fixtures.oidc_server import OidcServer
from tests.test_user_sessions import invite
from zapflow.config import Settings
from zapflow.devstack import free_port
from zapflow.services.oidc import OidcClient, OidcError, oidc_policy

SECRET = "client-secret-for-the-tests"
FLOW_COOKIE = "zapflow_oidc"
SESSION_COOKIE = "zapflow_session"


@pytest.fixture(scope="module")
def idp() -> Iterator[OidcServer]:
    with OidcServer(client_id="zapflow-app", client_secret=SECRET) as server:
        yield server


def oidc_settings(settings: Settings, idp: OidcServer, **more: Any) -> Settings:
    return settings.model_copy(
        update={
            "oidc_issuer": idp.issuer,
            "oidc_client_id": "zapflow-app",
            "oidc_client_secret": SECRET,
            "oidc_provider_name": "Acme SSO",
            "oidc_allowed_domains": "acme.com, example.org",
            "public_url": "http://zapflow",
            **more,
        }
    )


@pytest.fixture(scope="module")
async def app_client(settings: Settings, idp: OidcServer) -> AsyncIterator[httpx.AsyncClient]:
    async with in_process_api(oidc_settings(settings, idp)) as (_, client):
        yield client


@pytest.fixture(autouse=True)
def fresh_idp(idp: OidcServer) -> None:
    idp.token_claims, idp.discovery, idp.forge = {}, {}, False


async def through_provider(client: httpx.AsyncClient) -> tuple[httpx.Response, str]:
    """The browser's round trip: start, the provider's approval, the callback (its URL too)."""
    client.cookies.clear()
    start = await client.get("/auth/oidc/start")
    assert start.status_code == 302, start.text
    async with httpx.AsyncClient() as browser:
        approved = await browser.get(start.headers["location"])
    assert approved.status_code == 302, approved.text
    callback = approved.headers["location"]
    return await client.get(callback), callback


def sso_error(response: httpx.Response) -> str | None:
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    return parse_qs(urlsplit(location).query).get("sso_error", [None])[0]


async def test_a_person_signs_in_with_the_provider(
    tenant: Tenant, app_client: httpx.AsyncClient, idp: OidcServer
) -> None:
    options = (await app_client.get("/auth/options")).json()
    assert options == {"oidc": {"name": "Acme SSO", "start": "/auth/oidc/start"}}
    link = await invite(tenant, "supervisor", email=f"p{uuid.uuid4().hex[:8]}@Acme.com")
    idp.email = link["user"]["email"].upper()  # the provider's spelling of it
    app_client.cookies.clear()
    start = await app_client.get("/auth/oidc/start")
    asked = parse_qs(urlsplit(start.headers["location"]).query)
    assert asked["code_challenge_method"] == ["S256"] and asked["scope"] == ["openid email profile"]
    assert asked["redirect_uri"] == ["http://zapflow/auth/oidc/callback"] and asked["nonce"]
    assert start.cookies[FLOW_COOKIE] == asked["state"][0]

    signed_in, callback = await through_provider(app_client)
    assert sso_error(signed_in) is None and signed_in.headers["location"] == "/app/"
    assert "HttpOnly" in signed_in.headers["set-cookie"]
    me = await app_client.get("/api/v1/me")
    assert me.status_code == 200 and me.json()["user"]["email"] == link["user"]["email"]
    assert me.json()["role"] == "supervisor"
    # the callback works once: its state is spent (and the code too, at the provider)
    assert sso_error(await app_client.get(callback)) == "invalid"


async def test_the_provider_s_bad_answers_sign_nobody_in(
    tenant: Tenant, app_client: httpx.AsyncClient, idp: OidcServer
) -> None:
    link = await invite(tenant, email=f"p{uuid.uuid4().hex[:8]}@example.org")
    now = int(time.time())
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("forged", {}, "invalid"),
        ("expired", {"exp": now - 3600, "iat": now - 3900}, "invalid"),
        ("another nonce", {"nonce": "not-this-sign-in"}, "invalid"),
        ("another audience", {"aud": "another-app"}, "invalid"),
        ("another issuer", {"iss": "https://idp.example"}, "invalid"),
        ("unverified e-mail", {"email_verified": False}, "no_account"),
        ("unknown e-mail", {"email": "nobody@acme.com"}, "no_account"),
        ("domain not allowed", {"email": "someone@elsewhere.net"}, "domain"),
    ]
    for name, claims, expected in cases:
        idp.email, idp.token_claims, idp.forge = link["user"]["email"], claims, name == "forged"
        answer, _ = await through_provider(app_client)
        assert sso_error(answer) == expected, name
        assert SESSION_COOKIE not in answer.cookies, name
        assert (await app_client.get("/api/v1/me")).status_code == 401, name
    # another browser brings the callback (login CSRF): it holds no state cookie
    idp.token_claims, idp.forge = {}, False
    start = await app_client.get("/auth/oidc/start")
    async with httpx.AsyncClient() as browser:
        callback = (await browser.get(start.headers["location"])).headers["location"]
    app_client.cookies.clear()
    assert sso_error(await app_client.get(callback)) == "invalid"
    # the provider refused the person
    denied = await app_client.get("/auth/oidc/callback", params={"error": "access_denied"})
    assert sso_error(denied) == "refused"


async def test_an_e_mail_of_two_companies_signs_in_to_the_one_named(
    tenant: Tenant, other_tenant: Tenant, app_client: httpx.AsyncClient, idp: OidcServer
) -> None:
    idp.email = f"p{uuid.uuid4().hex[:8]}@acme.com"
    for company in (tenant, other_tenant):
        await invite(company, email=idp.email)
    answer, _ = await through_provider(app_client)
    assert sso_error(answer) == "several_companies"
    app_client.cookies.clear()
    start = await app_client.get("/auth/oidc/start", params={"company_id": other_tenant.id})
    async with httpx.AsyncClient() as browser:
        callback = (await browser.get(start.headers["location"])).headers["location"]
    assert sso_error(await app_client.get(callback)) is None
    me = (await app_client.get("/api/v1/me")).json()
    assert me["company_id"] == other_tenant.id and me["user"]["email"] == idp.email


async def test_the_provider_s_endpoints_are_held_to_the_egress_policy(
    settings: Settings, idp: OidcServer
) -> None:
    own = oidc_settings(settings, idp, egress_allow="")
    policy = oidc_policy(own)  # the operator's list (empty) plus the issuer's host
    policy.check_url(f"{idp.issuer}/jwks")
    redis = Redis.from_url(settings.redis_url)
    try:
        for url, refused in (
            ("https://169.254.169.254/keys", "metadata"),
            ("https://10.0.0.7/keys", "private"),
            ("https://127.0.0.2/keys", "loopback"),
            ("http://idp.example/keys", "must be https"),
        ):
            idp.discovery = {"jwks_uri": url}
            client = OidcClient(own, redis, policy)
            with pytest.raises(OidcError, match=refused) as caught:
                await client.provider()  # refused statically: no socket opens to these
            assert caught.value.code == "unavailable"
            await client.aclose()
    finally:
        await redis.aclose()


async def test_without_a_provider_the_routes_say_so(api_url: str) -> None:
    async with httpx.AsyncClient(base_url=api_url) as client:
        assert (await client.get("/auth/options")).json() == {"oidc": None}
        assert (await client.get("/auth/oidc/start")).status_code == 404


async def test_the_sign_in_page_offers_the_provider_and_signs_in_through_it(
    browser: Browser, tenant: Tenant, settings: Settings, idp: OidcServer
) -> None:
    port = free_port()
    own = oidc_settings(settings, idp, api_port=port, public_url=f"http://127.0.0.1:{port}")
    link = await invite(tenant, email=f"p{uuid.uuid4().hex[:8]}@acme.com")
    async with served_api(own) as url, open_page(browser, url) as page:
        idp.email = "nobody@acme.com"
        await page.goto("/app/")
        await page.get_by_role("button", name="Sign in with Acme SSO").click()
        await expect(page.get_by_role("alert")).to_have_text(
            "There is no zapflow account for that e-mail: ask an admin to invite you."
        )
        assert "sso_error" not in page.url  # said once, not again on a reload
        await screenshot(page, "signin-sso")
        idp.email = link["user"]["email"]
        await page.get_by_role("button", name="Sign in with Acme SSO").click()
        await expect(page.locator("header .who")).to_have_text("Pat · Agent")
        await expect(page.locator(".live-status")).to_have_attribute("data-state", "live")
