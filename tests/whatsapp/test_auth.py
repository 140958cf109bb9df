from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any

import jwt
import pytest

from tests.whatsapp.payloads import load, raw
from zapflow.whatsapp import cloud, evolution

APP_SECRET = "6c1f0e3a9b2d4c8e7f5a1b3c9d0e2f4a"
BODY = raw("cloud_text")


def sign(body: bytes, secret: str = APP_SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def test_signature_good() -> None:
    assert cloud.verify_signature(BODY, sign(BODY), APP_SECRET)


def test_signature_hex_case_does_not_matter() -> None:
    assert cloud.verify_signature(BODY, "sha256=" + sign(BODY)[7:].upper(), APP_SECRET)


@pytest.mark.parametrize(
    "header",
    [
        sign(BODY, "another-secret"),
        sign(BODY + b" "),
        None,
        "",
        sign(BODY).replace("sha256=", "sha1="),
        sign(BODY)[7:],
        "sha256=",
        "sha256=zz\u00e9",
    ],
    ids=["wrong-secret", "tampered", "missing", "empty", "sha1", "no-prefix", "empty-hex", "junk"],
)
def test_signature_rejected(header: str | None) -> None:
    assert not cloud.verify_signature(BODY, header, APP_SECRET)


def test_signature_needs_a_secret() -> None:
    assert not cloud.verify_signature(BODY, sign(BODY, ""), "")


HANDSHAKE = {
    "hub.mode": "subscribe",
    "hub.verify_token": "zapflow-verify",
    "hub.challenge": "1158201444",
}


def test_handshake_echoes_the_challenge() -> None:
    assert cloud.verify_handshake(HANDSHAKE, "zapflow-verify") == "1158201444"


@pytest.mark.parametrize(
    "params",
    [
        {"hub.mode": "unsubscribe", "hub.verify_token": "zapflow-verify", "hub.challenge": "1"},
        {"hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "1"},
        {"hub.mode": "subscribe", "hub.challenge": "1"},
        {"hub.mode": "subscribe", "hub.verify_token": "zapflow-verify"},
        {},
    ],
    ids=["mode", "token", "no-token", "no-challenge", "empty"],
)
def test_handshake_refused(params: dict[str, str]) -> None:
    assert cloud.verify_handshake(params, "zapflow-verify") is None


def test_handshake_refused_without_configured_token() -> None:
    params = {"hub.mode": "subscribe", "hub.verify_token": "", "hub.challenge": "1"}
    assert cloud.verify_handshake(params, "") is None


INSTANCE_KEY = "B6D711FCDE4D4FD5936544120E713976"
JWT_KEY = "evolution-webhook-jwt-secret-of-at-least-sixty-four-bytes-for-hs512-too"


def bearer(claims: dict[str, Any], key: str = JWT_KEY, algorithm: str = "HS256") -> dict[str, str]:
    return {"Authorization": f"Bearer {jwt.encode(claims, key, algorithm=algorithm)}"}


def fresh_claims() -> dict[str, Any]:
    now = int(time.time())
    return {"iat": now, "exp": now + 600, "app": "evolution", "action": "webhook"}


def test_evolution_body_apikey() -> None:
    assert evolution.authenticate(load("evolution_conversation"), {}, INSTANCE_KEY, None)


def test_evolution_header_apikey_any_case() -> None:
    body = {"event": "messages.upsert", "data": {}}
    assert evolution.authenticate(body, {"apikey": INSTANCE_KEY}, INSTANCE_KEY, None)
    assert evolution.authenticate(body, {"ApiKey": INSTANCE_KEY}, INSTANCE_KEY, None)


def test_evolution_wrong_apikey() -> None:
    body = {**load("evolution_conversation"), "apikey": "not-the-key"}
    assert not evolution.authenticate(body, {"apikey": "nope"}, INSTANCE_KEY, None)


def test_evolution_empty_apikey_never_matches() -> None:
    body = {"apikey": ""}
    assert not evolution.authenticate(body, {"apikey": ""}, "", None)


def test_evolution_jwt_good() -> None:
    assert evolution.authenticate({}, bearer(fresh_claims()), None, JWT_KEY)


def test_evolution_jwt_header_name_any_case() -> None:
    headers = {"authorization": bearer(fresh_claims())["Authorization"]}
    assert evolution.authenticate({}, headers, None, JWT_KEY)


@pytest.mark.parametrize(
    "headers",
    [
        bearer(fresh_claims(), key=JWT_KEY.upper()),
        bearer({**fresh_claims(), "exp": int(time.time()) - 3600}),
        bearer({"app": "evolution", "action": "webhook"}),
        bearer({**fresh_claims(), "exp": int(time.time()) + 30 * 86400}),
        bearer(fresh_claims(), algorithm="HS512"),
        {"Authorization": "Bearer not.a.jwt"},
        {"Authorization": "Bearer "},
        {"Authorization": "Basic " + bearer(fresh_claims())["Authorization"][7:]},
        {},
    ],
    ids=[
        "bad-signature",
        "expired",
        "without-exp",
        "living-30-days",
        "other-alg",
        "garbage",
        "empty",
        "not-bearer",
        "missing",
    ],
)
def test_evolution_jwt_rejected(headers: dict[str, str]) -> None:
    assert not evolution.authenticate({}, headers, None, JWT_KEY)


def test_evolution_either_method_is_enough() -> None:
    assert evolution.authenticate({"apikey": INSTANCE_KEY}, {}, INSTANCE_KEY, JWT_KEY)
    assert evolution.authenticate({}, bearer(fresh_claims()), INSTANCE_KEY, JWT_KEY)


def test_evolution_nothing_configured_or_presented_is_refused() -> None:
    assert not evolution.authenticate(load("evolution_conversation"), {}, None, None)
    assert not evolution.authenticate({}, {}, INSTANCE_KEY, JWT_KEY)
