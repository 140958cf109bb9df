"""The AI agent's rules and data: its per-company settings, whether it may answer a conversation
now, the context it answers from, its tools, and the human takeover it yields to.

A conversation is paused (``is_paused``) when a human takes over: an agent replies through the API
(``services/conversations.bump_conversation``), a message is typed on the business phone itself,
a flow's ``handoff`` node runs, or the model calls its ``handoff`` tool. While paused the agent
never answers; ``resume`` (API) or ``resume_after_minutes`` of human silence lift the pause.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import orjson
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from zapflow.config import Settings
from zapflow.embeddings import Embedders
from zapflow.models import (
    Company,
    Contact,
    Conversation,
    DeadLetter,
    DeadLetterKind,
    Message,
    MessageDirection,
    MessageSender,
    utc_now,
)
from zapflow.schemas.companies import AISettings
from zapflow.schemas.followups import Step
from zapflow.services import business_hours, followups
from zapflow.services.conversations import HUMAN_SENDERS, conversation_updated
from zapflow.services.deals import DealFilters, page_deals
from zapflow.services.events import Event, stage
from zapflow.services.messages import OutboundContent, queue_outbound
from zapflow.services.search import related_messages, search_embedder

ROLES = {MessageSender.CUSTOMER: "user"}  # every other sender speaks for the business


def ai_settings(company: Company | dict[str, Any]) -> AISettings:
    raw = company.ai_settings if isinstance(company, Company) else company.get("ai_settings")
    return AISettings.model_validate(raw or {})


def availability(settings: Settings, company: Company | dict[str, Any]) -> dict[str, Any]:
    """What the company settings response and /readyz say about the agent."""
    enabled = ai_settings(company).enabled
    if settings.ai_base_url is None:
        reason = "no model provider configured (ZAPFLOW_AI_BASE_URL)"
        return {"available": False, "enabled": enabled, "reason": reason}
    return {"available": True, "enabled": enabled, "reason": None if enabled else "disabled"}


async def reply_delay(session: AsyncSession, conversation_id: uuid.UUID) -> float | None:
    """Seconds to wait before answering the customer's new message; None to stay silent."""
    conversation = await session.get(Conversation, conversation_id)
    assert conversation is not None
    company = await session.get(Company, conversation.company_id)
    assert company is not None
    config = ai_settings(company)
    if not config.enabled:
        return None
    if conversation.is_paused and not await _resume_after_silence(session, conversation, config):
        return None
    return config.reply_delay_seconds


async def _resume_after_silence(
    session: AsyncSession, conversation: Conversation, config: AISettings
) -> bool:
    if config.resume_after_minutes is None:
        return False
    last_human = (
        await session.execute(
            select(func.max(Message.created_at)).where(
                col(Message.conversation_id) == conversation.id,
                col(Message.sent_by).in_(HUMAN_SENDERS),
            )
        )
    ).scalar_one_or_none()
    silence = timedelta(minutes=config.resume_after_minutes)
    if last_human is not None and utc_now() - last_human < silence:
        return False
    conversation.is_paused = False
    await session.flush()
    await stage(session, [conversation_updated(conversation)])
    return True


def may_answer_now(conversation: Conversation, company: Company) -> bool:
    config = ai_settings(company)
    if not config.enabled or conversation.is_paused:
        return False
    if not config.only_in_business_hours:
        return True
    return business_hours.is_open(utc_now(), company.timezone, company.business_hours)


async def build_context(
    session: AsyncSession,
    embedders: Embedders | None,
    conversation: Conversation,
    company: Company,
) -> list[dict[str, Any]]:
    """The chat messages the model answers from: the company's prompt with the contact's fields
    and related earlier messages, then the conversation's recent messages, oldest first. The
    related messages are found as the company's search finds them: after a model change, with
    the previous model's vectors until the new model's are complete (``search_embedder``)."""
    config = ai_settings(company)
    contact = await session.get(Contact, conversation.contact_id)
    assert contact is not None
    recent = list(
        (
            await session.execute(
                select(Message)
                .where(col(Message.conversation_id) == conversation.id)
                # stored order: the workflow persists a chat's messages one batch at a time,
                # each sorted; WhatsApp's timestamps alone tie within a second
                .order_by(
                    col(Message.created_at).desc(),
                    col(Message.provider_timestamp).desc(),
                    col(Message.id).desc(),
                )
                .limit(config.history_messages)
            )
        ).scalars()
    )[::-1]
    system = [company.ai_prompt or f"You are the WhatsApp assistant of {company.name}.", ""]
    system.append("About the customer: " + _contact_card(contact))
    last_customer = next(
        (m.body for m in reversed(recent) if m.body and m.direction == MessageDirection.INBOUND),
        None,
    )
    if embedders is not None and last_customer and config.related_messages:
        related = await related_messages(
            session,
            await search_embedder(session, embedders, company.id),
            company.id,
            contact.id,
            last_customer,
            k=config.related_messages,
            exclude_ids=[m.id for m in recent],
        )
        if related:
            system.append("Earlier messages with this customer that may be relevant:")
            system.extend(f"- {r.created_at:%Y-%m-%d}: {r.body}" for r in related)
    return [{"role": "system", "content": "\n".join(system)}, *map(_chat_message, recent)]


def _contact_card(contact: Contact) -> str:
    fields = {"name": contact.name, "phone": contact.phone_number, "email": contact.email}
    fields |= {"tags": ", ".join(contact.tags)} if contact.tags else {}
    fields |= {str(k): v for k, v in contact.custom_fields.items()}
    return "; ".join(f"{k}: {v}" for k, v in fields.items() if v not in (None, ""))


def _chat_message(message: Message) -> dict[str, Any]:
    text = message.body or f"[{message.type.value}]"
    return {"role": ROLES.get(message.sent_by, "assistant"), "content": text}


async def send_reply(
    session: AsyncSession, conversation: Conversation, text: str, client_id: str
) -> Message | None:
    """Queue the model's answer, unless a human took over while it was thinking."""
    await session.refresh(conversation, with_for_update=True)
    if conversation.is_paused:
        return None
    message, _ = await queue_outbound(
        session,
        conversation,
        OutboundContent(type="text", text=text),
        sent_by=MessageSender.AI,
        client_id=client_id,
        via_relay=False,
    )
    return message


async def handoff(session: AsyncSession, conversation: Conversation, reason: str) -> None:
    """Pause the conversation for a human, and say so on the live stream."""
    conversation.is_paused = True
    await session.flush()
    await stage(
        session,
        [
            conversation_updated(conversation),
            Event("ai.handoff", conversation.company_id, {"reason": reason}, conversation.id),
        ],
    )


def record_failure(
    session: AsyncSession, conversation: Conversation, error: str, attempts: int
) -> None:
    session.add(
        DeadLetter(
            company_id=conversation.company_id,
            kind=DeadLetterKind.AI,
            reference={"conversation_id": str(conversation.id)},
            error=error,
            attempts=attempts,
            payload={"remote_jid": conversation.remote_jid},
        )
    )


# ---- tools the model may call (OpenAI function-calling format) ----

TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "lookup_deals",
            "description": "The customer's deals (opportunities): title, value, stage, status.",
            "parameters": {"type": "object", "properties": {}},
        },
    },
    {
        "type": "function",
        "function": {
            "name": "schedule_followup",
            "description": "Send the customer a message later, unless they write first.",
            "parameters": {
                "type": "object",
                "properties": {
                    "after_hours": {"type": "number", "minimum": 0.01, "maximum": 720},
                    "text": {"type": "string", "minLength": 1, "maxLength": 1000},
                },
                "required": ["after_hours", "text"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "handoff",
            "description": "Pass the conversation to a human agent (the assistant goes quiet).",
            "parameters": {
                "type": "object",
                "properties": {"reason": {"type": "string", "maxLength": 500}},
                "required": ["reason"],
            },
        },
    },
]


class ToolFailed(Exception):
    """The model called a tool wrongly; the message goes back to it as the tool's result."""


async def run_tool(
    session: AsyncSession, conversation: Conversation, name: str, arguments: dict[str, Any]
) -> tuple[str, bool]:
    """Run one tool call; returns (the result for the model, whether the agent must stop)."""
    if name == "lookup_deals":
        deals, _ = await page_deals(
            session,
            conversation.company_id,
            DealFilters(contact_id=conversation.contact_id),
            20,
            None,
        )
        found = [
            {"title": d.title, "value": str(d.value), "currency": d.currency,
             "stage": d.stage.name, "status": d.status.value}
            for d in deals
        ]  # fmt: skip
        return _json(found), False
    if name == "schedule_followup":
        step = Step(timedelta(hours=float(arguments["after_hours"])), str(arguments["text"]))
        [row] = await followups.schedule(session, conversation, [step], followups.Options())
        return _json({"scheduled_for": row.scheduled_for.isoformat()}), False
    if name == "handoff":
        await handoff(session, conversation, str(arguments.get("reason") or "asked by the model"))
        return _json({"handed_off": True}), True
    raise ToolFailed(f"unknown tool {name!r}")


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()
