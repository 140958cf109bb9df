"""The AI agent's activities: ask the model (with the conversation's context), run the tools it
calls, queue its answer on the idempotent send path, and record a failure as a dead letter."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import openai
import orjson
from openai.types.chat import ChatCompletionMessage
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio import activity
from temporalio.exceptions import ApplicationError

from zapflow.config import Settings
from zapflow.db import SessionFactory, transaction
from zapflow.embeddings import Embedders
from zapflow.models import Company, Conversation
from zapflow.services import ai_agent
from zapflow.services.queries import conversation_of_chat
from zapflow.workflows.inputs import (
    AICompleteInput,
    AICompletion,
    AIFailureInput,
    AISendInput,
    AISendResult,
    AIToolCall,
    AIToolInput,
    AIToolResult,
    ConversationRef,
)

log = logging.getLogger(__name__)


class ChatModel:
    """The configured OpenAI-compatible chat API (none without ZAPFLOW_AI_BASE_URL). Its own
    retries are off: a 429, a 5xx or no answer raise a retryable ``AIUnavailable`` and Temporal
    retries the activity; any other refusal is a final ``AIRejected``."""

    def __init__(self, settings: Settings) -> None:
        self._default_model = settings.ai_model
        self._client = None
        if settings.ai_base_url is not None:
            self._client = openai.AsyncOpenAI(
                base_url=settings.ai_base_url,
                api_key=settings.ai_api_key or "not-needed",  # local servers take none
                max_retries=0,
                timeout=settings.ai_timeout_seconds,
            )

    @property
    def available(self) -> bool:
        return self._client is not None

    async def chat(
        self,
        config: ai_agent.AISettings,
        transcript: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None = None,
    ) -> ChatCompletionMessage:
        assert self._client is not None
        try:
            response = await self._client.chat.completions.create(
                model=config.model or self._default_model,
                messages=transcript,  # type: ignore[arg-type]
                tools=tools or openai.omit,  # type: ignore[arg-type]
                temperature=config.temperature,
                max_tokens=config.max_tokens,
            )
        except openai.APIStatusError as exc:
            raise _provider_error(exc) from None
        except openai.APIError as exc:  # no answer: connection refused, timeout
            raise ApplicationError(
                f"model provider unreachable: {exc}", type="AIUnavailable"
            ) from None
        return response.choices[0].message


class AIActivities:
    def __init__(
        self,
        sessions: SessionFactory,
        settings: Settings,
        embedders: Embedders | None = None,
    ) -> None:
        self._sessions = sessions
        self._embedders = embedders
        self._model = ChatModel(settings)

    @activity.defn
    async def complete(self, input: AICompleteInput) -> AICompletion:
        async with transaction(self._sessions) as session:
            found = await _conversation(session, input.ref)
            if found is None or not self._model.available or not ai_agent.may_answer_now(*found):
                return AICompletion(skipped=True)
            conversation, company = found
            transcript = input.transcript or await ai_agent.build_context(
                session, self._embedders, conversation, company
            )
        reply = await self._model.chat(ai_agent.ai_settings(company), transcript, ai_agent.TOOLS)
        calls = [
            AIToolCall(c.id, c.function.name, c.function.arguments)
            for c in reply.tool_calls or []
            if c.type == "function"
        ]
        assistant = reply.model_dump(mode="json", exclude_none=True, exclude_unset=True)
        return AICompletion(False, [*transcript, assistant], reply.content, calls)

    @activity.defn
    async def run_tool(self, input: AIToolInput) -> AIToolResult:
        call = input.call
        async with transaction(self._sessions) as session:
            found = await _conversation(session, input.ref)
            if found is None:
                return AIToolResult("the conversation no longer exists", stop=True)
            try:
                arguments = orjson.loads(call.arguments or "{}")
                content, stop = await ai_agent.run_tool(session, found[0], call.name, arguments)
            except (
                orjson.JSONDecodeError,
                ai_agent.ToolFailed,
                KeyError,
                TypeError,
                ValueError,
            ) as exc:
                log.warning("AI tool call refused", extra={"tool": call.name, "error": str(exc)})
                return AIToolResult(f"error: {exc}")
        return AIToolResult(content, stop)

    @activity.defn
    async def send_reply(self, input: AISendInput) -> AISendResult:
        async with transaction(self._sessions) as session:
            found = await _conversation(session, input.ref)
            message = None
            if found is not None:
                message = await ai_agent.send_reply(session, found[0], input.text, input.client_id)
        return AISendResult(str(message.id) if message else None)

    @activity.defn
    async def record_failure(self, input: AIFailureInput) -> None:
        async with transaction(self._sessions) as session:
            found = await _conversation(session, input.ref)
            if found is not None:
                ai_agent.record_failure(session, found[0], input.error, input.attempts)


async def _conversation(
    session: AsyncSession, ref: ConversationRef
) -> tuple[Conversation, Company] | None:
    conversation = await conversation_of_chat(session, uuid.UUID(ref.instance_id), ref.remote_jid)
    if conversation is None:
        return None
    company = await session.get(Company, conversation.company_id)
    assert company is not None
    return conversation, company


def _provider_error(exc: openai.APIStatusError) -> ApplicationError:
    message = f"model provider answered {exc.status_code}: {exc.message}"
    if exc.status_code == 429 or exc.status_code >= 500:
        return ApplicationError(message, type="AIUnavailable")  # retried
    return ApplicationError(message, type="AIRejected", non_retryable=True)
