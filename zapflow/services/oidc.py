"""Signing in with an OpenID Connect provider: the authorization-code flow with PKCE (S256),
``state`` and ``nonce``, the ID token verified here (signature by the provider's JWKS, ``iss``,
``aud``/``azp``, ``exp``/``iat``, ``nonce``), and the existing user of that verified e-mail.

Optional: the operator's ``ZAPFLOW_OIDC_*`` settings, one provider per deployment. It never
creates a user: an e-mail with no active user (or outside ``oidc_allowed_domains``) is refused.

The provider's HTTP calls go through ``zapflow/egress.py`` like a tenant's, with one exception
the operator made by configuring it: the issuer's own host (a name, or a literal address such as
a loopback IdP in the tests) is added to ``ZAPFLOW_EGRESS_ALLOW`` for these calls only. The
endpoints the discovery document names are held to that policy, so a document pointing its JWKS
or token endpoint at a private or metadata address elsewhere is refused before a socket opens;
plain http is accepted only on the issuer's own (loopback) host.

The flow's secrets (``nonce``, the PKCE verifier) wait in Redis under the ``state``'s sha256 for
10 minutes and are taken once (GETDEL); the browser that started the flow holds ``state`` in a
cookie too, and the callback must bring both (no login CSRF: another browser's callback fails).
PyJWT verifies the token (its ``crypto`` extra): no new library for what it already does.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
import jwt
import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession

from zapflow.config import Settings
from zapflow.egress import Egress, EgressPolicy, EgressRefused
from zapflow.models import User
from zapflow.services.user_sessions import active_users

FLOW_SECONDS = 600  # from the redirect to the provider until its callback
DISCOVERY_SECONDS = 3600  # the discovery document and the JWKS are re-read this often
JWKS_REFRESH_SECONDS = 60  # an unknown key id re-reads the JWKS at most this often
MAX_DOCUMENT_BYTES = 256 * 1024
DEADLINE_SECONDS = 10.0
LEEWAY_SECONDS = 60  # clock skew allowed on exp/iat
# asymmetric only: "none" and HS* (keyed by the client secret) are never accepted
ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512")


class OidcError(Exception):
    """The sign-in fails; ``code`` names why for the sign-in page (``sso_error``)."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass(frozen=True)
class Provider:
    """What the discovery document says (the endpoints checked against the policy)."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str


@dataclass(frozen=True)
class Identity:
    """Who the verified ID token says signed in."""

    subject: str
    email: str
    company_id: uuid.UUID | None  # the company the sign-in page named, if any


def oidc_policy(settings: Settings) -> EgressPolicy:
    """The operator's egress allow-list plus the issuer's host (see the module's docstring)."""
    assert settings.oidc_issuer is not None
    host = urlsplit(settings.oidc_issuer).hostname or ""
    return EgressPolicy.parse((*settings.egress_allowed, host))


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _state_key(state: str) -> str:
    return "oidc:state:" + hashlib.sha256(state.encode()).hexdigest()


class OidcClient:
    """One per API process: the provider's documents (cached), its calls, the flow's two ends."""

    def __init__(self, settings: Settings, redis: Redis, policy: EgressPolicy | None = None):
        assert settings.oidc_issuer and settings.oidc_client_id
        self.issuer = settings.oidc_issuer
        self.client_id = settings.oidc_client_id
        self.name = settings.oidc_provider_name
        self._secret = settings.oidc_client_secret
        self._domains = settings.oidc_domains
        self._redis = redis
        self._egress = Egress(policy or oidc_policy(settings))
        self._provider: tuple[float, Provider] | None = None
        self._keys: tuple[float, jwt.PyJWKSet] | None = None

    async def aclose(self) -> None:
        await self._egress.aclose()

    async def _get_json(self, url: str, what: str, **request: Any) -> dict[str, Any]:
        method = "POST" if "content" in request else "GET"
        try:
            answer = await self._egress.request(
                method, url, deadline=DEADLINE_SECONDS, max_bytes=MAX_DOCUMENT_BYTES, **request
            )
            document = orjson.loads(answer.content)
        except EgressRefused as exc:
            raise OidcError(
                "unavailable", f"the provider's {what} is refused: {exc.reason}"
            ) from None
        except (httpx.HTTPError, orjson.JSONDecodeError) as exc:
            raise OidcError("unavailable", f"the provider's {what} failed: {exc}") from None
        if answer.status >= 400 or not isinstance(document, dict):
            raise OidcError("unavailable", f"the provider's {what} answered {answer.status}")
        return document

    def _endpoint(self, document: dict[str, Any], name: str) -> str:
        url = document.get(name)
        if not isinstance(url, str):
            raise OidcError("unavailable", f"the discovery document has no {name}")
        parts, issuer = urlsplit(url), urlsplit(self.issuer)
        if parts.scheme != "https" and not (
            parts.scheme == "http" and issuer.scheme == "http" and parts.netloc == issuer.netloc
        ):
            raise OidcError("unavailable", f"{name} must be https (http only on the issuer's host)")
        try:
            self._egress.policy.check_url(url)
        except EgressRefused as exc:
            raise OidcError("unavailable", f"{name} is refused: {exc.reason}") from None
        return url

    async def provider(self) -> Provider:
        """The discovery document's endpoints (re-read hourly)."""
        if self._provider and time.monotonic() - self._provider[0] < DISCOVERY_SECONDS:
            return self._provider[1]
        document = await self._get_json(
            f"{self.issuer}/.well-known/openid-configuration", "discovery document"
        )
        if document.get("issuer") != self.issuer:
            raise OidcError("unavailable", "the discovery document names another issuer")
        found = Provider(
            issuer=self.issuer,
            authorization_endpoint=self._endpoint(document, "authorization_endpoint"),
            token_endpoint=self._endpoint(document, "token_endpoint"),
            jwks_uri=self._endpoint(document, "jwks_uri"),
        )
        self._provider = (time.monotonic(), found)
        return found

    async def begin(self, redirect_uri: str, company_id: uuid.UUID | None) -> tuple[str, str]:
        """Where to send the browser, and the ``state`` it must bring back (in its cookie)."""
        provider = await self.provider()
        state, nonce, verifier = (secrets.token_urlsafe(32) for _ in range(3))
        kept = {"nonce": nonce, "verifier": verifier, "redirect_uri": redirect_uri}
        if company_id is not None:
            kept["company_id"] = str(company_id)
        try:
            await self._redis.set(_state_key(state), orjson.dumps(kept), ex=FLOW_SECONDS)
        except (RedisError, OSError) as exc:
            raise OidcError("unavailable", f"the sign-in cannot be kept: {exc}") from None
        query = urlencode(
            {
                "response_type": "code",
                "client_id": self.client_id,
                "redirect_uri": redirect_uri,
                "scope": "openid email profile",
                "state": state,
                "nonce": nonce,
                "code_challenge": _b64(hashlib.sha256(verifier.encode()).digest()),
                "code_challenge_method": "S256",
            }
        )
        return f"{provider.authorization_endpoint}?{query}", state

    async def finish(self, state: str, browser_state: str | None, code: str) -> Identity:
        """The verified identity of the callback ``code``; the flow's secrets are spent."""
        try:
            kept_raw = await self._redis.getdel(_state_key(state))
        except (RedisError, OSError) as exc:
            raise OidcError("unavailable", f"the sign-in cannot be read: {exc}") from None
        if (
            kept_raw is None
            or browser_state is None
            or not secrets.compare_digest(state.encode(), browser_state.encode())
        ):
            raise OidcError("invalid", "this sign-in was not started here, or it expired")
        kept = orjson.loads(kept_raw)
        provider = await self.provider()
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": kept["redirect_uri"],
            "client_id": self.client_id,
            "code_verifier": kept["verifier"],
        }
        if self._secret:
            form["client_secret"] = self._secret  # client_secret_post
        tokens = await self._get_json(
            provider.token_endpoint,
            "token endpoint",
            content=urlencode(form).encode(),
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        id_token = tokens.get("id_token")
        if not isinstance(id_token, str):
            raise OidcError("invalid", "the token endpoint sent no ID token")
        claims = await self._verify(id_token, kept["nonce"])
        company = kept.get("company_id")
        return Identity(
            subject=str(claims["sub"]),
            email=self._email(claims),
            company_id=uuid.UUID(company) if company else None,
        )

    async def _key(self, kid: str | None) -> jwt.PyJWK:
        for refresh in (False, True):  # the provider may have rotated its keys since we read
            for key in (await self._jwks(refresh)).keys:
                if kid is None or key.key_id == kid:
                    return key
        raise OidcError("invalid", "the ID token is signed by a key the provider does not list")

    async def _jwks(self, refresh: bool) -> jwt.PyJWKSet:
        if self._keys is not None:
            age = time.monotonic() - self._keys[0]
            if age < DISCOVERY_SECONDS and not (refresh and age > JWKS_REFRESH_SECONDS):
                return self._keys[1]
        document = await self._get_json((await self.provider()).jwks_uri, "JWKS")
        try:
            self._keys = (time.monotonic(), jwt.PyJWKSet.from_dict(document))
        except jwt.PyJWTError as exc:
            raise OidcError("unavailable", f"the provider's JWKS is unusable: {exc}") from None
        return self._keys[1]

    async def _verify(self, id_token: str, nonce: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(id_token)
        except jwt.PyJWTError as exc:
            raise OidcError("invalid", f"the ID token is malformed: {exc}") from None
        if header.get("alg") not in ALGORITHMS:
            raise OidcError("invalid", f"the ID token's algorithm {header.get('alg')!r} is refused")
        key = await self._key(header.get("kid"))
        try:
            claims: dict[str, Any] = jwt.decode(
                id_token,
                key,
                algorithms=[header["alg"]],
                audience=self.client_id,
                issuer=self.issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["iss", "sub", "aud", "exp", "iat"]},
            )
        except jwt.PyJWTError as exc:
            raise OidcError("invalid", f"the ID token is not valid: {exc}") from None
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        if len(audiences) > 1 and claims.get("azp") != self.client_id:
            raise OidcError("invalid", "the ID token is for several clients and names another")
        if not secrets.compare_digest(str(claims.get("nonce", "")).encode(), nonce.encode()):
            raise OidcError("invalid", "the ID token's nonce is not this sign-in's")
        return claims

    def _email(self, claims: dict[str, Any]) -> str:
        email = claims.get("email")
        verified = claims.get("email_verified") is True
        if not isinstance(email, str) or "@" not in email or not verified:
            raise OidcError("no_account", "the provider gave no verified e-mail")
        email = email.strip().lower()
        if self._domains and email.rsplit("@", 1)[1] not in self._domains:
            raise OidcError("domain", "this e-mail's domain may not sign in here")
        return email


async def user_of(session: AsyncSession, identity: Identity) -> User:
    """The active user of the verified e-mail (in the company the page named, if it did)."""
    users = await active_users(session, identity.email, identity.company_id)
    if not users:
        raise OidcError("no_account", "no zapflow user has this e-mail: ask an admin to invite you")
    if len(users) > 1:
        raise OidcError("several_companies", "this e-mail signs in to several companies")
    return users[0]
