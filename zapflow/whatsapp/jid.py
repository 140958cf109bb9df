"""WhatsApp addresses: JIDs (user, ``@lid``, group), E.164 phones and Cloud API BSUIDs.

A chat is keyed by its JID. A user JID is ``<digits>@s.whatsapp.net`` (a device suffix such as
``:12`` is dropped); ``<id>@lid`` is WhatsApp's privacy alias of a user; ``<id>@g.us`` is a group.
A Cloud API user known only by its business-scoped user id is keyed ``<bsuid>@bsuid``, a suffix
of ours so such chats cannot collide with phone-keyed ones.
"""

from __future__ import annotations

import re

USER_SERVER = "s.whatsapp.net"
LID_SERVER = "lid"
GROUP_SERVER = "g.us"
BSUID_SERVER = "bsuid"

_LEGACY_USER_SERVER = "c.us"
_BSUID = re.compile(r"^[A-Z]{2}\.(?:ENT\.)?[A-Za-z0-9]{1,128}$")


def digits(value: str) -> str:
    return "".join(ch for ch in value if ch.isdigit())


def split_jid(jid: str) -> tuple[str, str]:
    """``user@server`` → (user without device suffix, server); a bare value has server ``""``."""
    user, _, server = jid.strip().partition("@")
    return user.split(":", 1)[0], server.lower()


def normalize_jid(jid: str) -> str:
    """Drop the device suffix; bare digits and ``@c.us`` become a user JID."""
    user, server = split_jid(jid)
    if not server:
        return f"{digits(user)}@{USER_SERVER}" if digits(user) else user
    if server == _LEGACY_USER_SERVER:
        server = USER_SERVER
    return f"{user}@{server}"


def is_user_jid(jid: str) -> bool:
    return split_jid(jid)[1] in (USER_SERVER, _LEGACY_USER_SERVER)


def is_lid(jid: str) -> bool:
    return split_jid(jid)[1] == LID_SERVER


def is_group(jid: str) -> bool:
    return split_jid(jid)[1] == GROUP_SERVER


def is_bsuid(value: str) -> bool:
    user, server = split_jid(value)
    return server == BSUID_SERVER or (not server and _BSUID.match(user) is not None)


def e164(value: object) -> str | None:
    """``5511999999999`` / ``+55 11 99999-9999`` → ``+5511999999999``; no digits (or not a
    string) → None."""
    if not value or not isinstance(value, str):
        return None
    found = digits(value)
    return f"+{found}" if found else None


def phone_from_jid(jid: str | None) -> str | None:
    if not jid:
        return None
    user, server = split_jid(jid)
    if server not in ("", USER_SERVER, _LEGACY_USER_SERVER) or not user.isdigit():
        return None
    return e164(user)


def jid_from_phone(phone: str) -> str:
    return f"{digits(phone)}@{USER_SERVER}"


def jid_from_bsuid(bsuid: str) -> str:
    return f"{split_jid(bsuid)[0]}@{BSUID_SERVER}"
