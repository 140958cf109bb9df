"""A conversation's closing, recorded as the fact reports count (``conversation_resolutions``),
and the rating request it may send (``services/csat.py``).

The stretch a closing ends began with the customer's first message since the previous closing
(or ever); its first response is a person's first message after that (an agent's, or one typed
on the business phone); bots' messages count as handling, not as a response. A closing with no
customer message since the previous one (closed, reopened by hand, closed again) records
nothing. The messages are read through their (conversation, time) index, a few rows each.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from zapflow.models import (
    Company,
    Conversation,
    ConversationResolution,
    CsatStatus,
    MessageSender,
    Team,
    utc_now,
)
from zapflow.services import csat
from zapflow.services.messages import OutboundContent, queue_outbound

# a person's message: the same senders that pause automation (services/conversations.py)
HUMAN = f"'{MessageSender.AGENT.value}', '{MessageSender.PHONE.value}'"
STRETCH = text(
    f"""
    WITH since AS (
        SELECT coalesce(max(closed_at), '-infinity') AS at
          FROM conversation_resolutions WHERE conversation_id = :conversation_id
    ), opened AS (
        SELECT min(m.created_at) AS at FROM messages m, since
         WHERE m.conversation_id = :conversation_id AND m.created_at > since.at
           AND m.direction = 'inbound'
    )
    SELECT opened.at AS opened_at,
           (SELECT min(m.created_at) FROM messages m
             WHERE m.conversation_id = :conversation_id AND m.created_at >= opened.at
               AND m.sent_by IN ({HUMAN})) AS first_response_at,
           EXISTS (SELECT 1 FROM messages m, since
                    WHERE m.conversation_id = :conversation_id AND m.created_at > since.at
                      AND m.sent_by IN ({HUMAN})) AS handled_by_human
      FROM opened
    """
)


async def record_close(
    session: AsyncSession, conversation: Conversation
) -> ConversationResolution | None:
    """The conversation was just closed: its resolution, and a rating request if asked for."""
    stretch = (await session.execute(STRETCH, {"conversation_id": conversation.id})).one()
    if stretch.opened_at is None:
        return None
    resolution = ConversationResolution(
        company_id=conversation.company_id,
        conversation_id=conversation.id,
        team_id=conversation.team_id,
        user_id=conversation.assigned_user_id,
        opened_at=stretch.opened_at,
        first_response_at=stretch.first_response_at,
        closed_at=utc_now(),
        handled_by_human=stretch.handled_by_human,
    )
    session.add(resolution)
    await session.flush()
    await _request_rating(session, conversation, resolution)
    return resolution


async def _request_rating(
    session: AsyncSession, conversation: Conversation, resolution: ConversationResolution
) -> None:
    company = await session.get(Company, conversation.company_id)
    assert company is not None
    team = await session.get(Team, conversation.team_id) if conversation.team_id else None
    settings = csat.csat_settings(company, team)
    request = csat.rating_request(settings, conversation) if settings.enabled else None
    if request is None:
        return
    # the question is automation's, like a flow's message; one per resolution however retried
    await queue_outbound(
        session, conversation, OutboundContent(**request), sent_by=MessageSender.FLOW,
        client_id=csat.SCORE_ID.format(resolution.id),
    )  # fmt: skip
    resolution.csat_status, resolution.csat_requested_at = CsatStatus.REQUESTED, utc_now()
    await session.flush()
