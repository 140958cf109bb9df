"""Activities of flow runs: load a run, queue its messages, make its CRM changes, call HTTP
endpoints and the AI agent, mirror its state to ``flow_runs``, and route a conversation's
inbound messages to a run (or start one when a trigger matches).

Messages are queued through the outbox path every agent reply takes (``queue_outbound`` with
the client id ``flow:<run>:<n>``): a retried or replayed send activity finds its first message
instead of queueing another, and the conversation's workflow sends it once.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import httpx
import orjson
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio import activity
from temporalio.exceptions import ApplicationError

from zapflow.activities.ai import ChatModel
from zapflow.cache import Cache
from zapflow.db import SessionFactory, transaction
from zapflow.egress import Egress, EgressRefused
from zapflow.embeddings import Embedders
from zapflow.errors import ZapflowError
from zapflow.models import Company, Conversation, MessageSender
from zapflow.services import ai_agent, flow_actions, flow_runs, flow_triggers
from zapflow.services.contacts import add_tag, remove_tag
from zapflow.services.messages import OutboundContent, queue_outbound
from zapflow.workflows.inputs import (
    ConversationRef,
    FlowActionInput,
    FlowMirrorInput,
    FlowRefuseInput,
    FlowRouteInput,
    FlowRouteResult,
    FlowRunContext,
    FlowRunRef,
    FlowSendInput,
    FlowStart,
)

STEP_FAILED = "FlowStepFailed"
RESPONSE_TEXT_LIMIT = 10_000
RESPONSE_MAX_BYTES = 1024 * 1024  # read from the stream; a longer answer fails the step


def _permanent(message: str) -> ApplicationError:
    return ApplicationError(message, type=STEP_FAILED, non_retryable=True)


class FlowActivities:
    def __init__(
        self,
        sessions: SessionFactory,
        cache: Cache,
        egress: Egress,
        model: ChatModel,
        embedders: Embedders | None = None,
    ) -> None:
        self._sessions = sessions
        self._cache = cache  # published flows' triggers
        self._egress = egress
        self._model = model  # the AI agent's, for ai_reply
        self._embedders = embedders

    @activity.defn
    async def begin_run(self, input: FlowRunRef) -> FlowRunContext:
        async with transaction(self._sessions) as session:
            context = await flow_runs.begin_run(session, uuid.UUID(input.run_id))
        return FlowRunContext(context.definition, context.contact, context.variables)

    @activity.defn
    async def send(self, input: FlowSendInput) -> None:
        content = OutboundContent(**input.content)
        try:
            async with transaction(self._sessions) as session:
                run = await flow_runs.load_run(session, uuid.UUID(input.run_id))
                conversation = await session.get(Conversation, run.conversation_id)
                assert conversation is not None
                await queue_outbound(
                    session,
                    conversation,
                    content,
                    sent_by=MessageSender.FLOW,
                    client_id=f"flow:{input.run_id}:{input.seq}",
                )
        except ZapflowError as exc:
            raise _permanent(exc.message) from None

    @activity.defn
    async def act(self, input: FlowActionInput) -> dict[str, Any]:
        """A CRM change; a refused one (unknown funnel, stage, user...) fails the step."""
        try:
            async with transaction(self._sessions) as session:
                run = await flow_runs.load_run(session, uuid.UUID(input.run_id))
                return await self._apply(session, run, input.action, input.params)
        except ZapflowError as exc:
            raise _permanent(exc.message) from None

    async def _apply(
        self, session: Any, run: Any, action: str, params: dict[str, Any]
    ) -> dict[str, Any]:
        """The change through its service, which stages its events and invalidates what it
        changed after the commit."""
        if action == "tag":
            await add_tag(session, run.company_id, run.contact_id, params["tag"])
            return {}
        if action == "untag":
            await remove_tag(session, run.company_id, run.contact_id, params["tag"])
            return {}
        if action == "update_contact":
            contact = await flow_actions.update_contact(session, run, params)
            return {"contact": flow_runs.contact_fields(contact)}
        if action == "create_deal":
            deal = await flow_actions.create_deal(session, run, params)
            return {"deal_id": str(deal.id)}
        if action == "move_deal":
            await flow_actions.move_deal(session, run, params)
            return {}
        if action == "handoff":
            await flow_actions.handoff(session, run, params)
            return {}
        raise _permanent(f"unknown action {action!r}")

    @activity.defn
    async def http_request(self, input: FlowActionInput) -> dict[str, Any]:
        """The response as {"status", "json", "text"}, through the egress policy (a refused
        destination, header or oversized answer fails the step at once, with the reason); 5xx
        and network errors are retried by the activity's policy, a 4xx fails the step at once."""
        request = input.params
        try:
            response = await self._egress.request(
                request["method"],
                request["url"],
                headers=request["headers"],
                content=request["body"].encode() if request["body"] is not None else None,
                deadline=request["timeout"],
                max_bytes=RESPONSE_MAX_BYTES,
            )
        except EgressRefused as exc:
            raise _permanent(f"refused: {exc.reason}") from None
        except (httpx.InvalidURL, httpx.UnsupportedProtocol, httpx.LocalProtocolError) as exc:
            raise _permanent(f"{type(exc).__name__}: {exc}") from None
        except httpx.HTTPError as exc:
            raise ApplicationError(f"{type(exc).__name__}: {exc}", type="FlowHttpError") from None
        if response.status >= 500:
            raise ApplicationError(f"HTTP {response.status}", type="FlowHttpError")
        if response.status >= 400:
            raise _permanent(f"HTTP {response.status}")
        try:
            body = orjson.loads(response.content) if response.content else None
        except orjson.JSONDecodeError:
            body = None
        return {
            "status": response.status,
            "json": body,
            "text": response.text[:RESPONSE_TEXT_LIMIT],
        }

    @activity.defn
    async def ai_reply(self, input: FlowActionInput) -> str:
        """The AI agent's answer in the conversation (the company's prompt and the node's
        instructions, the same context as the agent's own turns). Without a model provider, or
        with the company's AI off, the step fails and the node takes its failure branch."""
        async with transaction(self._sessions) as session:
            run = await flow_runs.load_run(session, uuid.UUID(input.run_id))
            company = await session.get(Company, run.company_id)
            conversation = await session.get(Conversation, run.conversation_id)
            assert company is not None and conversation is not None
            config = ai_agent.ai_settings(company)
            if not self._model.available:
                raise _permanent("no AI model provider is configured (ZAPFLOW_AI_BASE_URL)")
            if not config.enabled:
                raise _permanent("AI is not enabled for this company")
            transcript = await ai_agent.build_context(
                session, self._embedders, conversation, company
            )
        if instructions := input.params.get("instructions"):
            transcript.insert(1, {"role": "system", "content": str(instructions)})
        reply = await self._model.chat(config, transcript)
        if not reply.content:
            raise _permanent("the model answered nothing")
        return reply.content

    @activity.defn
    async def mirror(self, input: FlowMirrorInput) -> str | None:
        """Copy the run's state to its row; once it has ended, the workflow id of the
        conversation it belongs to now (merged into another since it started, that one's), which
        the run tells of its end."""
        mirror = flow_runs.Mirror(
            input.status, input.current_node, input.variables, input.transcript, input.error
        )
        async with transaction(self._sessions) as session:
            run = await flow_runs.mirror_run(session, uuid.UUID(input.run_id), mirror)
            if run.status not in flow_runs.FINISHED:
                return None
            conversation = await session.get(Conversation, run.conversation_id)
        assert conversation is not None  # the run's row references it
        ref = ConversationRef(
            str(conversation.company_id), str(conversation.instance_id), conversation.remote_jid
        )
        return ref.workflow_id

    @activity.defn
    async def route_inbound(self, input: FlowRouteInput) -> FlowRouteResult:
        """The run these messages answer, or the one they start (a matched trigger), or none."""
        async with transaction(self._sessions) as session:
            return await route_inbound(session, self._cache, input)

    @activity.defn
    async def abandon_run(self, input: FlowRunRef) -> None:
        async with transaction(self._sessions) as session:
            await flow_runs.abandon_run(session, uuid.UUID(input.run_id))

    @activity.defn
    async def refuse_run(self, input: FlowRefuseInput) -> bool:
        """Whether the start was refused (else the active run has just ended)."""
        async with transaction(self._sessions) as session:
            return await flow_runs.refuse_run(
                session, uuid.UUID(input.run_id), input.active_workflow_id
            )


async def route_inbound(
    session: AsyncSession, cache: Cache, input: FlowRouteInput
) -> FlowRouteResult:
    """The run a conversation's new messages answer, or the one they start, or none; in the
    caller's transaction (the route_inbound activity's)."""
    return (await route_all(session, cache, [input]))[0]


async def route_all(
    session: AsyncSession, cache: Cache, inputs: Sequence[FlowRouteInput]
) -> list[FlowRouteResult]:
    """``route_inbound`` for several conversations (the inbound persist's, in its transaction):
    one read of their runs in progress, then the triggers of those without one, in order."""
    conversation_ids = [uuid.UUID(input.conversation_id) for input in inputs]
    active = await flow_runs.active_runs(session, conversation_ids)
    routes = []
    for input, conversation_id in zip(inputs, conversation_ids, strict=True):
        if (run := active.get(conversation_id)) is not None:
            routes.append(FlowRouteResult(run.workflow_id, str(run.id)))
            continue
        started = await flow_triggers.match_trigger(
            session, cache, uuid.UUID(input.company_id), conversation_id, input.texts,
            input.fresh, input.key_id,
        )  # fmt: skip
        if started is None:
            routes.append(FlowRouteResult())
            continue
        start = FlowStart(str(started.id), str(started.flow_id), started.flow_version)
        routes.append(FlowRouteResult(start=start))
    return routes
