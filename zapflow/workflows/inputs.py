"""Inputs and results of zapflow's workflows and activities: one dataclass each, ids not rows."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from zapflow.whatsapp.types import InboundMessage


@dataclass(frozen=True)
class ConversationRef:
    company_id: str
    instance_id: str
    remote_jid: str

    @property
    def workflow_id(self) -> str:
        return f"conversation/{self.company_id}/{self.instance_id}/{self.remote_jid}"


@dataclass(frozen=True)
class FollowUpTimer:
    """A pending follow-up as the conversation's workflow holds it."""

    followup_id: str
    due: float  # epoch seconds
    cancel_on_reply: bool


@dataclass(frozen=True)
class SlaTimer:
    """A pending SLA target as the conversation's workflow holds it."""

    target_id: str
    due: float  # epoch seconds


@dataclass
class ConversationInput:
    ref: ConversationRef
    # carried over continue-as-new, so no signal is lost across it
    inbound: list[InboundMessage] = field(default_factory=list)
    outbound: list[str] = field(default_factory=list)
    seen_key_ids: list[str] = field(default_factory=list)
    # continue-as-new past this many history events (Temporal's hard limit is 51,200)
    history_limit: int = 5_000
    followups: list[FollowUpTimer] = field(default_factory=list)
    reload_followups: bool = False
    ai_due: float | None = None  # the AI agent's pending answer (epoch seconds)
    embeddings_task_queue: str = "embeddings"  # the worker's setting, set by the relay
    # the model calls' and tenant HTTP requests' queues (worker roles ai, flows); None: this
    # workflow's own queue, as runs started before the roles had
    ai_task_queue: str | None = None
    flows_task_queue: str | None = None
    active_flow: str | None = None  # the workflow id of the conversation's running flow
    flow_starts: list[FlowStart] = field(default_factory=list)  # requested, not handled yet
    inbox_ids: list[int] = field(default_factory=list)  # inbound inbox rows not persisted yet
    seen_inbox_ids: list[int] = field(default_factory=list)
    sla_timers: list[SlaTimer] = field(default_factory=list)
    reload_slas: bool = False
    stored: list[PersistInboundResult] = field(default_factory=list)  # stored by the relay


@dataclass(frozen=True)
class InboundBatch:
    """Customers' messages for a conversation: references to their inbox rows (the persist
    activity reads them), so message bodies and raw payloads stay out of Temporal's history.
    ``messages`` is the older shape, kept for signals sent before references (and by hand).
    ``stored``: the relay stored the rows already (one transaction per pass), this is what
    their persist returned; the workflow acts on it and persists nothing."""

    messages: list[InboundMessage] = field(default_factory=list)
    correlation_ids: list[str] = field(default_factory=list)
    received_at: dict[str, float] = field(default_factory=dict)  # key id → webhook receipt (epoch)
    inbox_ids: list[int] = field(default_factory=list)
    from_customer: bool = False  # one of the rows is the customer's (not sent from the phone)
    stored: PersistInboundResult | None = None


@dataclass(frozen=True)
class OutboundBatch:
    message_ids: list[str]
    correlation_ids: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class PersistInboundInput:
    ref: ConversationRef
    messages: list[InboundMessage] = field(default_factory=list)
    correlation_ids: list[str] = field(default_factory=list)
    received_at: dict[str, float] = field(default_factory=dict)
    inbox_ids: list[int] = field(default_factory=list)  # read from the inbox by the activity
    route_flows: bool = False  # decide the flow routing in the same transaction


@dataclass(frozen=True)
class PersistInboundResult:
    conversation_id: str
    contact_id: str
    new_message_ids: list[str]
    new_inbound: int
    cancelled_followup_ids: list[str] = field(default_factory=list)  # the customer replied
    ai_reply_delay: float | None = None  # seconds before the AI agent answers; None: it won't
    flow: FlowRouteResult | None = None  # with ``route_flows``, when the customer wrote
    # the customer's texts, only when a run is active (it reads them as answers)
    flow_replies: list[str] = field(default_factory=list)
    persisted_inbox_ids: list[int] = field(default_factory=list)

    def needs_workflow(self) -> bool:
        """Whether the conversation's workflow has anything to do with this persist: follow-up
        timers to drop, an AI answer to debounce (or, for a reply sent from the phone, to drop),
        a flow run to start or to answer. Messages that set off none of these are done once
        stored (durable, on the stream): the relay does not signal for them (worker/relay.py)."""
        flow = self.flow
        return bool(
            self.cancelled_followup_ids
            or self.ai_reply_delay is not None
            or (flow is not None and (flow.start is not None or flow.active_workflow_id))
            or len(self.new_message_ids) > self.new_inbound
        )


@dataclass(frozen=True)
class PersistFailedInput:
    ref: ConversationRef
    error: str
    inbox_ids: list[int]
    message_key_ids: list[str]


@dataclass(frozen=True)
class SendMessageInput:
    message_id: str
    correlation_id: str | None = None


@dataclass(frozen=True)
class MarkReadInput:
    """A customer's message (our row id) to mark read at WhatsApp, with the typing indicator."""

    message_id: str


@dataclass(frozen=True)
class SendMessageResult:
    status: str  # sent | already_sent | already_failed
    provider_message_id: str | None = None


@dataclass(frozen=True)
class SendFailedInput:
    message_id: str
    error: dict[str, object]
    attempts: int


@dataclass(frozen=True)
class LoadFollowUpsInput:
    ref: ConversationRef


@dataclass(frozen=True)
class LoadFollowUpsResult:
    timers: list[FollowUpTimer]
    # no conversation has the key any more: merged into another (histories before: False)
    merged_away: bool = False


@dataclass(frozen=True)
class LoadSlaTimersResult:
    timers: list[SlaTimer]


@dataclass(frozen=True)
class BreachSlaInput:
    target_id: str


@dataclass(frozen=True)
class FireFollowUpInput:
    followup_id: str


@dataclass(frozen=True)
class FireFollowUpResult:
    message_id: str | None  # the message queued for sending; None if nothing is to be sent


@dataclass(frozen=True)
class EmbedMessagesInput:
    company_id: str
    message_ids: list[str]


@dataclass(frozen=True)
class EmbedMessagesResult:
    scanned: int
    embedded: int
    skipped: int


@dataclass(frozen=True)
class FlowStart:
    """A flow run to start as a conversation's child; its ``flow_runs`` row exists already."""

    run_id: str
    flow_id: str
    version: int


@dataclass(frozen=True)
class FlowEnded:
    workflow_id: str


@dataclass(frozen=True)
class FlowRunInput:
    run_id: str
    company_id: str
    conversation_workflow_id: str  # the parent, told when the run ends
    ai_task_queue: str | None = None  # ai_reply nodes (None: the run's own queue)
    flows_task_queue: str | None = None  # http_request nodes


@dataclass(frozen=True)
class FlowRunContext:
    definition: dict[str, Any]
    contact: dict[str, Any]
    variables: dict[str, Any]


@dataclass(frozen=True)
class FlowRunRef:
    run_id: str


@dataclass(frozen=True)
class FlowSendInput:
    run_id: str
    seq: int  # the run's n-th send: with the run id, the message's idempotency key
    content: dict[str, Any]


@dataclass(frozen=True)
class FlowActionInput:
    run_id: str
    node_id: str
    action: str
    params: dict[str, Any]


@dataclass(frozen=True)
class FlowMirrorInput:
    run_id: str
    status: str
    current_node: str | None
    variables: dict[str, Any]
    transcript: list[dict[str, Any]]
    error: str | None = None


@dataclass(frozen=True)
class FlowRouteInput:
    company_id: str
    conversation_id: str
    texts: list[str]
    fresh: int  # inbound messages just stored (a new contact has no others)
    key_id: str = ""  # the first of them: a run it triggers is made once, however often asked


@dataclass(frozen=True)
class FlowRouteResult:
    active_workflow_id: str | None = None  # a run already waits in this conversation
    active_run_id: str | None = None
    start: FlowStart | None = None  # or a trigger matched: start this run


@dataclass(frozen=True)
class FlowRefuseInput:
    run_id: str
    active_workflow_id: str


@dataclass(frozen=True)
class AIToolCall:
    id: str
    name: str
    arguments: str  # JSON, as the model wrote it


@dataclass(frozen=True)
class AICompleteInput:
    ref: ConversationRef
    transcript: list[dict[str, Any]] = field(default_factory=list)  # empty: build the context


@dataclass(frozen=True)
class AICompletion:
    skipped: bool  # the agent may not answer now (paused, disabled, closed hours)
    transcript: list[dict[str, Any]] = field(default_factory=list)
    text: str | None = None
    tool_calls: list[AIToolCall] = field(default_factory=list)


@dataclass(frozen=True)
class AIToolInput:
    ref: ConversationRef
    call: AIToolCall


@dataclass(frozen=True)
class AIToolResult:
    content: str  # what the model reads back
    stop: bool = False  # the agent must go quiet (handed off to a human)


@dataclass(frozen=True)
class AISendInput:
    ref: ConversationRef
    text: str
    client_id: str


@dataclass(frozen=True)
class AISendResult:
    message_id: str | None  # None: a human took over meanwhile


@dataclass(frozen=True)
class AIFailureInput:
    ref: ConversationRef
    error: str
    attempts: int


@dataclass(frozen=True)
class FlowTriggerInput:
    """A schedule or deal-stage trigger of a flow's current version, fired by its schedule."""

    company_id: str
    flow_id: str
    trigger: dict[str, Any]
    firing: str = ""  # this firing's id (the key of its runs); set by the workflow


@dataclass(frozen=True)
class FlowTriggerResult:
    started: int


@dataclass(frozen=True)
class RoutingInput:
    """A team's routing workflow: which team (ids as strings, no customer data)."""

    company_id: str
    team_id: str


@dataclass
class CampaignInput:
    """A campaign's workflow: ids and pacing only (no audience, no texts)."""

    campaign_id: str
    scheduled_at: str | None = None  # ISO 8601; None: now
    started: bool = False  # the audience is snapshotted (a run continued as new)
    paused: bool = False
    rate: float = 0.0  # the pace now, in messages per second (0: the campaign's throughput)


@dataclass
class CampaignBatchInput:
    campaign_id: str
    rate: float  # 0: the campaign's throughput


@dataclass
class CampaignBatchResult:
    sent: int = 0
    failed: int = 0
    throughput: int = 0  # the campaign's configured pace
    done: bool = False  # nobody is left to send to
    paused: bool = False  # the row says paused (or the template cannot be sent)
    cancelled: bool = False
    throttled: bool = False  # the provider asked to slow down (429, 130429, 5xx)
    wait_seconds: float = 0.0  # before the next batch (tier window, deferred recipients)


@dataclass
class CampaignFinishInput:
    campaign_id: str
    cancelled: bool
