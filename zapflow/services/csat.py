"""CSAT: the rating request a closing sends, and the customer's score and comment.

``services/resolutions.py`` asks for a rating when a conversation closes and the company turned
it on (``settings.csat``): five choices, ``csat:1`` (worst) to ``csat:5``, as an interactive
list on the Cloud API and as numbered text on Evolution (the number typed is the score), inside
WhatsApp's 24-hour window; outside it the company's template, or nothing. The persist
(``services/conversations.persist_inbound``) hands the inbound batches of a closed
conversation to ``capture_replies`` in its own transaction: a choice tapped or a number typed
is the score, the next text message within ``COMMENT_WINDOW`` the comment. Both stay in
Postgres; the workflows see row ids only. Anything else ends the wait, and that message
reopens the conversation as any other would.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from zapflow.models import (
    Company,
    Conversation,
    ConversationResolution,
    CsatStatus,
    MessageDirection,
    MessageType,
    Team,
    utc_now,
)
from zapflow.schemas.csat import CsatSettings
from zapflow.whatsapp.interactive import numbered_text

SCORE_ID = "csat:{}"
SCORES = range(1, 6)
SERVICE_WINDOW = timedelta(hours=24)  # WhatsApp's: free-form messages only this long after
REPLY_WINDOW = timedelta(hours=24)  # a score later than this is a new conversation
COMMENT_WINDOW = timedelta(minutes=30)
COMMENT_MAX = 2000
AWAITING = (CsatStatus.REQUESTED, CsatStatus.RATED)
# "5", "5.", "5 - Excellent": a text starting with one digit 1-5 (not "10", not "50 reais")
_TYPED_SCORE = re.compile(r"([1-5])(?![0-9])")


def csat_settings(company: Company, team: Team | None = None) -> CsatSettings:
    """The rating request of a conversation of ``team``: the team's own settings, else the
    company's."""
    if team is not None and team.csat is not None:
        return CsatSettings.model_validate(team.csat)
    return CsatSettings.model_validate((company.settings or {}).get("csat") or {})


def rating_request(settings: CsatSettings, conversation: Conversation) -> dict[str, Any] | None:
    """What ``services/messages.OutboundContent`` holds for the question: the interactive
    list inside the 24-hour window, else the template; None when neither may go."""
    last = conversation.last_inbound_at
    if last is not None and utc_now() - last < SERVICE_WINDOW:
        rows = [
            {"id": SCORE_ID.format(score), "title": label}
            for score, label in zip(SCORES, settings.labels, strict=True)
        ]
        spec = {"type": "list", "body": settings.question, "button": "Rate", "sections": [
            {"rows": rows}
        ]}  # fmt: skip
        # the numbered text is the message's body, and what Evolution sends
        return {"type": "interactive", "interactive": spec, "text": numbered_text(spec)}
    if settings.template is not None:
        template = {"name": settings.template.name, "language": settings.template.language}
        return {"type": "template", "template": {**template, "params": []}}
    return None


def score_of(message: Any) -> int | None:
    """The score a message gives: a choice tapped (its id), else a number typed."""
    payload = message.payload or {}
    for key in ("id", "payload"):  # interactive reply id, template quick-reply payload
        chosen = payload.get(key)
        if isinstance(chosen, str) and chosen.startswith("csat:") and chosen[5:].isdecimal():
            score = int(chosen[5:])
            return score if score in SCORES else None
    if message.type not in (MessageType.TEXT, MessageType.BUTTON) or not message.body:
        return None
    typed = _TYPED_SCORE.match(message.body.strip())
    return int(typed.group(1)) if typed else None


async def capture_replies(
    session: AsyncSession, conversation_id: uuid.UUID, new: Sequence[Any]
) -> bool:
    """Read a batch's inbound messages as the answers to an awaited rating, in order; True
    when every one of them was an answer (then the conversation stays closed)."""
    inbound = [m for m in new if m.direction == MessageDirection.INBOUND]
    if not inbound:
        return False
    query = (
        select(ConversationResolution)
        .where(
            col(ConversationResolution.conversation_id) == conversation_id,
            col(ConversationResolution.csat_status).in_(AWAITING),
        )
        .order_by(col(ConversationResolution.closed_at).desc())
        .limit(1)
        .with_for_update()
    )
    resolution = (await session.execute(query)).scalar_one_or_none()
    if resolution is None:
        return False
    answered = 0
    for message in inbound:
        if not _answer(resolution, message, utc_now()):
            break
        answered += 1
    await session.flush()
    return answered == len(inbound)


def _answer(resolution: ConversationResolution, message: Any, now: datetime) -> bool:
    """Apply one message to the rating; False when it is not an answer (the wait ends)."""
    if resolution.csat_status == CsatStatus.REQUESTED:
        requested = resolution.csat_requested_at
        score = score_of(message)
        if score is None or requested is None or now - requested > REPLY_WINDOW:
            resolution.csat_status = CsatStatus.IGNORED
            return False
        resolution.csat_score, resolution.csat_rated_at = score, now
        resolution.csat_status = CsatStatus.RATED
        return True
    rated = resolution.csat_rated_at
    resolution.csat_status = CsatStatus.DONE
    if message.type != MessageType.TEXT or not message.body or rated is None:
        return False
    if now - rated > COMMENT_WINDOW:
        return False
    resolution.csat_comment = message.body[:COMMENT_MAX]
    return True
