"""The flow interpreter: steps a flow's nodes over a run's state, doing every side effect
through an ``Effects`` object.

The engine itself is pure and deterministic (no clock, no randomness, no I/O): the Temporal
``FlowWorkflow`` runs it with effects that are activities, timers and signals, and the simulator
runs the very same code with effects that only record. That is why a simulation's transcript is
the transcript of a real run given the same replies.

A flow is tenant input, so a run is bounded (``zapflow.flows.limits``): ``StepLimits`` caps the
steps between two rests and over the run's life, the variables stay within the value bounds, the
transcript keeps its latest entries with long values cut, and an expression or template that
cannot be evaluated fails its node (its ``on_failure`` branch, else the run) like a failed side
effect. Nothing a flow does escapes ``run`` as an exception other than the effects' own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Protocol

from zapflow.flows import expressions, limits, templates
from zapflow.flows.language import (
    AiReply,
    Ask,
    Condition,
    CreateDeal,
    End,
    FlowDefinition,
    Goto,
    Handoff,
    HttpRequest,
    MoveDeal,
    Node,
    SendButtons,
    SendList,
    SendMedia,
    SendTemplate,
    SendText,
    SetVariable,
    Tag,
    Untag,
    UpdateContact,
    Wait,
    seconds,
)
from zapflow.whatsapp import interactive

RUNNING, WAITING, COMPLETED, FAILED, CANCELLED = (
    "running", "waiting", "completed", "failed", "cancelled",
)  # fmt: skip
FINISHED = {COMPLETED, FAILED, CANCELLED}
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
DATE_FORMATS = ("%Y-%m-%d", "%d/%m/%Y", "%d/%m/%y", "%d-%m-%Y", "%d.%m.%Y")


class StepFailed(Exception):
    """A side effect failed for good (after its retries)."""


@dataclass(frozen=True)
class StepLimits:
    """The most steps a run takes between two rests (a wait or an ask) and in all."""

    per_activation: int
    total: int


RUN_LIMITS = StepLimits(limits.MAX_STEPS_PER_ACTIVATION, limits.MAX_RUN_STEPS)
SIMULATION_LIMITS = StepLimits(limits.MAX_SIMULATION_STEPS, limits.MAX_SIMULATION_STEPS)


class RunCancelled(Exception):
    """The run was cancelled while it waited."""


@dataclass
class Outgoing:
    """One message the flow sends; ``seq`` numbers the run's sends (their idempotency key)."""

    seq: int
    type: str  # text | media | template | interactive (its numbered text in ``text``)
    text: str | None = None
    media: dict[str, Any] | None = None
    template: dict[str, Any] | None = None
    interactive: dict[str, Any] | None = None

    def public(self) -> dict[str, Any]:
        shown = {
            "type": self.type,
            "text": self.text,
            "media": self.media,
            "template": self.template,
            "interactive": self.interactive,
        }
        return {k: v for k, v in shown.items() if v is not None}


@dataclass
class RunState:
    current: str | None
    variables: dict[str, Any]
    contact: dict[str, Any]
    transcript: list[dict[str, Any]] = field(default_factory=list)
    status: str = RUNNING
    sends: int = 0
    error: str | None = None
    offered: dict[str, str] = field(default_factory=dict)  # id → title of the last choices sent

    @classmethod
    def begin(
        cls, flow: FlowDefinition, contact: dict[str, Any], variables: dict[str, Any] | None = None
    ) -> RunState:
        return cls(flow.start, {**flow.variables, **(variables or {})}, dict(contact))

    def scope(self) -> dict[str, Any]:
        return {**self.variables, "contact": self.contact}


class Effects(Protocol):
    """What the engine asks of the world. Each method may raise ``StepFailed``; ``sleep`` and
    ``receive`` may raise ``RunCancelled``."""

    async def send(self, node_id: str, message: Outgoing) -> None: ...

    async def sleep(self, node_id: str, seconds: float) -> None: ...

    async def receive(self, node_id: str, within: float | None) -> str | None:
        """The customer's next message, or None when ``within`` seconds passed first."""

    async def act(self, node_id: str, action: str, params: dict[str, Any]) -> dict[str, Any]:
        """A CRM change: tag, untag, update_contact, create_deal, move_deal, handoff."""

    async def http(self, node_id: str, request: dict[str, Any]) -> dict[str, Any]:
        """{"status", "json", "text"} of the response (a non-2xx status is a failure)."""

    async def ai_reply(self, node_id: str, instructions: str | None) -> str: ...

    async def checkpoint(self, state: RunState) -> None:
        """The state is worth mirroring (the run waits, or it ended)."""


class FlowEngine:
    def __init__(
        self,
        flow: FlowDefinition,
        effects: Effects,
        step_limits: StepLimits | None,
        interactive: bool = False,
        numbered: bool = False,
    ) -> None:
        """``step_limits`` None: unbounded, as runs were before the bounds (their histories
        replay the same); it then does not check the variables' size either. ``interactive``:
        buttons and lists go as interactive messages (their numbered text beside them) and an
        ``ask`` takes a tapped choice's id; runs from before replay as numbered text.
        ``numbered``: a number typed in answer to choices sent (the numbered text an Evolution
        number gets) is the choice at that place in the list sent, not in the ask's own."""
        self._interactive = interactive
        self._numbered = numbered
        self._flow = flow
        self._nodes = flow.node_map()
        self._effects = effects
        self._limits = step_limits
        self._steps = 0
        self._since_rest = 0

    async def run(self, state: RunState) -> RunState:
        """Step nodes from ``state.current`` until the run ends."""
        while state.current is not None and state.status not in FINISHED:
            node = self._nodes[state.current]
            if exceeded := self._count_step():
                self._finish(state, node.id, FAILED, f"{node.id}: {exceeded}")
                break
            try:
                state.current = await self._step(node, state)
            except (StepFailed, expressions.ExpressionError) as exc:
                state.current = self._fail(node, state, str(exc))
            except RunCancelled:
                self._finish(state, node.id, CANCELLED)
            if state.current is None and state.status not in FINISHED:
                self._finish(state, node.id, COMPLETED)
        await self._effects.checkpoint(state)
        return state

    def _count_step(self) -> str | None:
        """Why the run must stop before this step (a step limit), or None."""
        self._steps += 1
        self._since_rest += 1
        if self._limits is None:
            return None
        if self._steps > self._limits.total:
            return f"stopped after {self._limits.total} steps, the most a run takes"
        if self._since_rest > self._limits.per_activation:
            limit = self._limits.per_activation
            return f"the run stopped after {limit} steps without a wait or an ask"
        return None

    def _store(self, state: RunState, values: dict[str, Any]) -> None:
        """Set variables, unless they would make the run's variables larger than a value may be
        (``ExpressionError``: the node fails)."""
        if self._limits is not None:
            try:
                limits.check_value({**state.variables, **values})
            except limits.ValueTooLarge as exc:
                raise expressions.ExpressionError(f"the run's variables: {exc}") from None
        state.variables.update(values)

    def _finish(self, state: RunState, node_id: str, status: str, error: str | None = None) -> None:
        state.status = status
        state.current = None
        state.error = error
        self._log(state, node_id, "end", status=status, **({"error": error} if error else {}))

    def _fail(self, node: Node, state: RunState, error: str) -> str | None:
        target = getattr(node, "on_failure", None)
        self._log(state, node.id, "failed", error=error, **({"to": target} if target else {}))
        if target is None:
            self._finish(state, node.id, FAILED, f"{node.id}: {error}")
        return target

    @staticmethod
    def _log(state: RunState, node_id: str, event: str, **data: Any) -> None:
        """A transcript entry; the transcript keeps the latest ``MAX_TRANSCRIPT``, and a long
        value is shown cut (the variables hold it whole)."""
        shown = {key: _preview(value) for key, value in data.items()}
        state.transcript.append({"node": node_id, "event": event, **shown})
        del state.transcript[: -limits.MAX_TRANSCRIPT]

    async def _step(self, node: Node, state: RunState) -> str | None:
        """Run one node; the id of the next one (None: the flow ends)."""
        if isinstance(node, End):
            return None
        if isinstance(node, Goto):
            return node.target
        if isinstance(node, SendButtons | SendList) and self._interactive:
            await self._send(node.id, state, _choices_message(node, state))
            return node.next
        if isinstance(node, SendText | SendMedia | SendTemplate | SendButtons | SendList):
            await self._send(node.id, state, _message(node, state.scope()))
            return node.next
        if isinstance(node, Ask):
            return await self._ask(node, state)
        if isinstance(node, Wait):
            await self._wait(node, state)
            return node.next
        if isinstance(node, Condition):
            return self._branch(node, state)
        if isinstance(node, SetVariable):
            value = _evaluate(node.value, state)
            self._store(state, {node.variable: value})
            self._log(state, node.id, "set", variable=node.variable, value=value)
            return node.next
        if isinstance(node, HttpRequest):
            await self._http(node, state)
            return node.next
        if isinstance(node, AiReply):
            reply = await self._effects.ai_reply(node.id, node.instructions)
            if node.variable:
                self._store(state, {node.variable: reply})
            await self._send(node.id, state, {"type": "text", "text": reply})
            return node.next
        return await self._crm(node, state)

    async def _send(self, node_id: str, state: RunState, content: dict[str, Any]) -> None:
        state.sends += 1
        message = Outgoing(seq=state.sends, **content)
        self._log(state, node_id, "send", message=message.public())
        await self._effects.send(node_id, message)

    async def _wait(self, node: Wait, state: RunState) -> None:
        duration = seconds(node.duration)
        self._log(state, node.id, "wait", seconds=duration)
        await self._rest(state)
        await self._effects.sleep(node.id, duration)
        state.status = RUNNING

    async def _rest(self, state: RunState) -> None:
        self._since_rest = 0
        state.status = WAITING
        await self._effects.checkpoint(state)

    async def _ask(self, node: Ask, state: RunState) -> str | None:
        if node.prompt:
            await self._send(node.id, state, _text(node.prompt, state))
        timeout = seconds(node.timeout) if node.timeout else None
        invalid = 0
        while True:
            await self._rest(state)
            reply = await self._effects.receive(node.id, timeout)
            state.status = RUNNING
            if reply is None:
                self._log(state, node.id, "timeout")
                return node.on_timeout
            ok, value = check_answer(node, reply, state.offered, self._numbered)
            if ok:
                self._store(state, {node.variable: value})
                self._log(state, node.id, "reply", text=reply, variable=node.variable, value=value)
                return node.next
            invalid += 1
            self._log(state, node.id, "invalid", text=reply, validation=node.validation)
            if invalid > node.max_retries:
                if node.on_invalid is None:
                    raise StepFailed(f"no valid {node.validation} after {invalid} answers")
                return node.on_invalid
            if node.retry_prompt:
                await self._send(node.id, state, _text(node.retry_prompt, state))

    def _branch(self, node: Condition, state: RunState) -> str | None:
        for branch in node.branches:
            if _evaluate(branch.when, state):
                self._log(state, node.id, "branch", when=branch.when, to=branch.next)
                return branch.next
        self._log(state, node.id, "branch", when="default", to=node.default)
        return node.default

    async def _http(self, node: HttpRequest, state: RunState) -> None:
        scope = state.scope()
        request = {
            "method": node.method,
            "url": templates.render(node.url, scope),
            "headers": {k: templates.render(v, scope) for k, v in node.headers.items()},
            "body": templates.render(node.body, scope) if node.body is not None else None,
            "timeout": seconds(node.timeout),
            "retries": node.retries,
        }
        response = await self._effects.http(node.id, request)
        saved = {name: expressions.lookup(response, path) for name, path in node.save.items()}
        self._store(state, saved)
        self._log(state, node.id, "http", status=response.get("status"), saved=saved)

    async def _crm(self, node: Node, state: RunState) -> str | None:
        action, params = _crm_action(node, state)
        self._log(state, node.id, action, **params)
        result = await self._effects.act(node.id, action, params)
        if isinstance(node, CreateDeal):
            state.variables[node.variable] = result.get("deal_id")
        if isinstance(node, UpdateContact):
            state.contact.update(result.get("contact", {}))
        return getattr(node, "next", None)


def _evaluate(source: str, state: RunState) -> Any:
    try:
        return expressions.evaluate_text(source, state.scope())
    except expressions.ExpressionError as exc:
        raise StepFailed(f"expression {_preview(source, 80)!r}: {exc}") from None


def _preview(value: Any, length: int = limits.TRANSCRIPT_TEXT) -> Any:
    """``value`` with its long texts cut to ``length`` characters, and those of a mapping's values
    (a message, the saved values)."""
    if isinstance(value, dict):
        return {key: _cut(item, length) for key, item in value.items()}
    return _cut(value, length)


def _cut(value: Any, length: int) -> Any:
    if isinstance(value, str) and len(value) > length:
        return value[: length - 1] + "…"
    return value


def _text(template: str, state: RunState) -> dict[str, Any]:
    return {"type": "text", "text": templates.render(template, state.scope())}


def _numbered(text: str, titles: list[str]) -> str:
    return text + "\n" + "\n".join(f"{i}. {title}" for i, title in enumerate(titles, 1))


def _message(node: Node, scope: dict[str, Any]) -> dict[str, Any]:
    if isinstance(node, SendText):
        return {"type": "text", "text": templates.render(node.text, scope)}
    if isinstance(node, SendMedia):
        media = {"url": templates.render(node.url, scope), "kind": node.kind}
        if node.caption:
            media["caption"] = templates.render(node.caption, scope)
        if node.filename:
            media["filename"] = node.filename
        return {"type": "media", "media": media}
    if isinstance(node, SendTemplate):
        params = [templates.render(p, scope) for p in node.params]
        return {
            "type": "template",
            "template": {"name": node.name, "language": node.language, "params": params},
        }
    assert isinstance(node, SendButtons | SendList)
    choices = node.buttons if isinstance(node, SendButtons) else node.items
    return {
        "type": "text",
        "text": _numbered(templates.render(node.text, scope), [c.title for c in choices]),
    }


def _choices_message(node: SendButtons | SendList, state: RunState) -> dict[str, Any]:
    """Reply buttons or a list, when its titles are within Meta's limits (a node saved before
    may hold longer ones: those go as numbered text); the choices are remembered for the
    ``ask`` that reads the answer by id."""
    choices = node.buttons if isinstance(node, SendButtons) else node.items
    state.offered = {c.id: c.title for c in choices}
    body = templates.render(node.text, state.scope())
    if isinstance(node, SendButtons):
        buttons = [{"id": c.id, "title": c.title} for c in choices]
        spec: dict[str, Any] = {"type": "button", "body": body, "buttons": buttons}
    else:
        rows = [{"id": c.id, "title": c.title} for c in choices]
        spec = {"type": "list", "body": body, "button": node.button, "sections": [{"rows": rows}]}
    if not interactive.fits(spec):
        return {"type": "text", "text": _numbered(body, [c.title for c in choices])}
    return {"type": "interactive", "text": interactive.numbered_text(spec), "interactive": spec}


def _crm_action(node: Node, state: RunState) -> tuple[str, dict[str, Any]]:
    scope = state.scope()
    if isinstance(node, Tag | Untag):
        return node.type, {"tag": templates.render(node.tag, scope)}
    if isinstance(node, UpdateContact):
        fields: dict[str, Any] = {
            name: templates.render(value, scope)
            for name, value in (("name", node.name), ("email", node.email))
            if value is not None
        }
        if node.custom_fields:
            fields["custom_fields"] = {
                k: templates.render(v, scope) for k, v in node.custom_fields.items()
            }
        return "update_contact", fields
    if isinstance(node, CreateDeal):
        value = _evaluate(node.value, state) if node.value else None
        return "create_deal", {
            "title": templates.render(node.title, scope),
            "value": expressions.as_number(value) if value is not None else None,
            "funnel": node.funnel,
            "stage": node.stage,
        }
    if isinstance(node, MoveDeal):
        return "move_deal", {
            "deal_id": state.variables.get(node.deal_variable),
            "stage": node.stage,
        }
    assert isinstance(node, Handoff), node
    note = templates.render(node.note, scope) if node.note else None
    return "handoff", {"assign_user_id": node.assign_user_id, "team": node.team, "note": note}


def check_answer(
    node: Ask, reply: str, offered: dict[str, str] | None = None, numbered: bool = False
) -> tuple[bool, Any]:
    """Whether ``reply`` passes the ask's validation, and the value to store. ``offered``: the
    choices last sent (id → title, in the order sent); a tapped one's id answers a ``choice``
    ask listing either its id or its title, and with ``numbered`` so does its number in the
    list sent (what a customer types under numbered text)."""
    text = reply.strip()
    choice = node.validation == "choice"
    if choice and numbered and offered:
        text = interactive.typed_choice(text, list(offered)) or text
    if choice and offered and text in offered:
        ok, value = _choice(node.choices, text)
        return (ok, value) if ok else _choice(node.choices, offered[text])
    if not text:
        return False, None
    kind = node.validation
    if kind == "number":
        number = expressions.as_number(text) if re.search(r"\d", text) else None
        return number is not None, number
    if kind == "email":
        return bool(EMAIL.match(text)), text.lower()
    if kind == "phone":
        digits = re.sub(r"\D", "", text)
        return 8 <= len(digits) <= 15, "+" + digits
    if kind == "date":
        parsed = _date(text)
        return parsed is not None, parsed.isoformat() if parsed else None
    if kind == "choice":
        return _choice(node.choices, text)
    return True, text


def _date(text: str) -> date | None:
    for fmt in DATE_FORMATS:
        try:
            return datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    return None


def _choice(choices: list[str], text: str) -> tuple[bool, Any]:
    if text.isdecimal() and 1 <= int(text) <= len(choices):
        return True, choices[int(text) - 1]
    for choice in choices:
        if choice.lower() == text.lower():
            return True, choice
    return False, None
