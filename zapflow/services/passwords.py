"""People's passwords: argon2id with OWASP's minimum profile (19 MiB, 2 passes, 1 lane), hashed
and verified on a worker thread so a sign-in never stalls the event loop. argon2-cffi's default
(64 MiB, 3 passes, 4 lanes) cost 236 CPU-ms per verification here against 28 for this one
(bench/results/argon2_profile.json), a lot for 2 shared cores; the profile is in each hash, so
raising it later re-hashes nothing old."""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from zapflow.errors import Unprocessable

MIN_LENGTH = 10
MAX_LENGTH = 256  # argon2 takes any length; a bound keeps a request's cost bounded

_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)  # argon2id
# verified when the e-mail is unknown, so the answer takes as long as for a known one
_UNKNOWN = _hasher.hash("zapflow: no such user")


def check_strength(password: str, field: str = "password") -> None:
    if not MIN_LENGTH <= len(password) <= MAX_LENGTH:
        raise Unprocessable(
            f"{field}: use {MIN_LENGTH} to {MAX_LENGTH} characters",
            details={"field": field},
        )


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_hasher.hash, password)


def _verify(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _UNKNOWN, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


async def verify_password(password_hash: str | None, password: str) -> bool:
    """Whether ``password`` matches; a user without a password (``None``) matches nothing, after
    the same work."""
    return await asyncio.to_thread(_verify, password_hash, password)
