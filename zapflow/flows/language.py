"""The flow language: a flow document's Pydantic models, with one node type per ``type``.

A flow is a JSON (or YAML) document: metadata, triggers, declared variables with their
defaults, a start node and a list of nodes with ids. Nodes point at the next one by id; the
graph rules (unknown ids, unreachable nodes, dead ends, loops without a wait, undefined
variables, bad expressions) are checked by ``zapflow.flows.validation``.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

import orjson
import re2
import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from zapflow.flows import limits

DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
MAX_WAIT_SECONDS = 26 * UNIT_SECONDS["w"]
Duration = Annotated[
    str,
    Field(
        pattern=DURATION.pattern,
        description="A number and a unit: s, m, h, d or w (`30s`, `10m`, `2d`, `1w`)",
        examples=["10m", "1d", "2w"],
    ),
]
NodeId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_\-]{1,64}$")]
VariableName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")]


def seconds(duration: str) -> float:
    match = DURATION.match(duration)
    if match is None:
        raise ValueError(f"not a duration: {duration!r}")
    return float(match.group(1)) * UNIT_SECONDS[match.group(2)]


class _Node(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: NodeId
    label: str | None = Field(None, description="Shown in the diagram instead of the type")


class _Linear(_Node):
    next: str | None = Field(None, description="The node that follows")


class _Fallible(_Linear):
    on_failure: str | None = Field(
        None, description="Taken when the step fails after its retries; else the run fails"
    )


class SendText(_Linear):
    type: Literal["send_text"]
    text: str = Field(min_length=1, description="`{{variable}}` / `{{contact.name}}` interpolated")


class SendMedia(_Linear):
    type: Literal["send_media"]
    url: str = Field(min_length=1)
    kind: Literal["image", "video", "audio", "document"] = "image"
    caption: str | None = None
    filename: str | None = None


class SendTemplate(_Linear):
    type: Literal["send_template"]
    name: str = Field(min_length=1)
    language: str = "en_US"
    params: list[str] = Field(default_factory=list, description="Body parameters, interpolated")


class Choice(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=64)
    title: str = Field(min_length=1, max_length=64)


class SendButtons(_Linear):
    """Reply buttons on Cloud API numbers (numbered text on Evolution, or when a title exceeds
    Meta's 20 characters); follow it with an ``ask`` with ``choice`` validation, listing the
    buttons' ids or titles, to read the answer (a tap, a number or the title typed)."""

    type: Literal["send_buttons"]
    text: str = Field(min_length=1)
    buttons: list[Choice] = Field(min_length=1, max_length=3)


class SendList(_Linear):
    type: Literal["send_list"]
    text: str = Field(min_length=1)
    button: str = "Options"
    items: list[Choice] = Field(min_length=1, max_length=10)


class Ask(_Linear):
    type: Literal["ask"]
    prompt: str | None = Field(None, description="Sent before waiting; none to just wait")
    variable: VariableName = Field(description="Where the valid answer is stored")
    validation: Literal["text", "number", "email", "phone", "date", "choice"] = "text"
    choices: list[str] = Field(default_factory=list, description="For `choice` validation")
    retry_prompt: str | None = Field(None, description="Sent after an invalid answer")
    max_retries: int = Field(2, ge=0, le=10)
    timeout: Duration | None = Field(None, description="How long to wait for an answer")
    on_timeout: str | None = Field(None, description="Taken when no answer came in time")
    on_invalid: str | None = Field(None, description="Taken after max_retries invalid answers")


class Wait(_Linear):
    type: Literal["wait"]
    duration: Duration

    @field_validator("duration")
    @classmethod
    def _within_limits(cls, value: str) -> str:
        if not 0 < seconds(value) <= MAX_WAIT_SECONDS:
            raise ValueError("a wait lasts more than 0 s and at most 26 weeks")
        return value


class Branch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    when: str = Field(min_length=1, description="An expression, e.g. `budget >= 5000`")
    next: str


class Condition(_Node):
    type: Literal["condition"]
    branches: list[Branch] = Field(min_length=1, description="The first that holds is taken")
    default: str | None = Field(None, description="Taken when no branch holds")


class SetVariable(_Linear):
    type: Literal["set_variable"]
    variable: VariableName
    value: str = Field(description="An expression; quote text: `'hot'`")


class Tag(_Fallible):
    type: Literal["tag"]
    tag: str = Field(min_length=1, max_length=64)


class Untag(_Fallible):
    type: Literal["untag"]
    tag: str = Field(min_length=1, max_length=64)


class UpdateContact(_Fallible):
    type: Literal["update_contact"]
    name: str | None = None
    email: str | None = None
    custom_fields: dict[str, str] = Field(default_factory=dict, description="Values interpolated")


class CreateDeal(_Fallible):
    type: Literal["create_deal"]
    title: str = Field(min_length=1, description="Interpolated")
    value: str | None = Field(None, description="An expression giving the amount, e.g. `budget`")
    funnel: str = Field(min_length=1, description="The funnel's id or name")
    stage: str | None = Field(None, description="A stage's id or name; the first if omitted")
    variable: VariableName = Field("deal_id", description="Where the new deal's id is stored")


class MoveDeal(_Fallible):
    type: Literal["move_deal"]
    stage: str = Field(min_length=1, description="A stage of the deal's funnel: id or name")
    deal_variable: VariableName = Field("deal_id", description="The variable holding the deal id")


class HttpRequest(_Fallible):
    type: Literal["http_request"]
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    url: str = Field(min_length=1, description="Interpolated")
    headers: dict[str, str] = Field(default_factory=dict, description="Values interpolated")
    body: str | None = Field(None, description="A body template (JSON text), interpolated")
    timeout: Duration = "10s"
    retries: int = Field(2, ge=0, le=10)
    save: dict[VariableName, str] = Field(
        default_factory=dict,
        description="variable → path in the response (`status`, `json.data.id`, `text`)",
    )


class AiReply(_Fallible):
    type: Literal["ai_reply"]
    instructions: str | None = Field(None, description="Added to the company's AI prompt")
    variable: VariableName | None = Field(None, description="Also store the reply here")


class Handoff(_Linear):
    type: Literal["handoff"]
    assign_user_id: str | None = Field(None, description="An agent of the company")
    team: str | None = Field(None, description="Recorded on the handoff event")
    note: str | None = Field(None, description="Interpolated; recorded on the handoff event")


class Goto(_Node):
    type: Literal["goto"]
    target: str


class End(_Node):
    type: Literal["end"]


Node = Annotated[
    SendText | SendMedia | SendTemplate | SendButtons | SendList | Ask | Wait | Condition
    | SetVariable | Tag | Untag | UpdateContact | CreateDeal | MoveDeal | HttpRequest | AiReply
    | Handoff | Goto | End,
    Field(discriminator="type"),
]  # fmt: skip


class _Trigger(BaseModel):
    model_config = ConfigDict(extra="forbid")


class KeywordTrigger(_Trigger):
    type: Literal["keyword"]
    keywords: list[str] = Field(min_length=1, description="Matched as whole words, any case")


def compile_pattern(pattern: str) -> Any:
    """A tenant's regular expression compiled by RE2, whose matching takes time linear in the
    text (no backtracking: ``(a+)+$`` is as fast as ``a``); ``ValueError`` for a pattern RE2
    refuses (backreferences, lookaround) or one too long or too large."""
    if len(pattern) > limits.MAX_PATTERN_LENGTH:
        raise ValueError(f"a pattern has at most {limits.MAX_PATTERN_LENGTH} characters")
    return _re2(pattern)


# a keyword stands alone: no letter, digit or underscore touches it (Python's \w, in Unicode)
_ALONE_BEFORE, _ALONE_AFTER = r"(?:^|[^\p{L}\p{N}_])", r"(?:$|[^\p{L}\p{N}_])"


def compile_keywords(keywords: list[str]) -> Any | None:
    """A keyword trigger's matcher (whole words, any case) in RE2, or None when no keyword is
    left once blanks are dropped; ``ValueError`` beyond the bounds."""
    words = [k.strip() for k in keywords if k.strip()]
    if len(words) > limits.MAX_KEYWORDS or any(len(w) > limits.MAX_KEYWORD_LENGTH for w in words):
        raise ValueError(
            f"at most {limits.MAX_KEYWORDS} keywords of {limits.MAX_KEYWORD_LENGTH} characters"
        )
    if not words:
        return None
    alternatives = "|".join(re2.escape(w) for w in words)
    return _re2(f"(?i){_ALONE_BEFORE}(?:{alternatives}){_ALONE_AFTER}")


def _re2(pattern: str) -> Any:
    options = re2.Options()
    options.log_errors = False
    options.max_mem = limits.MAX_PATTERN_PROGRAM_BYTES
    try:
        return re2.compile(pattern, options)
    except re2.error as exc:
        reason = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else exc
        raise ValueError(
            f"not a regular expression zapflow runs (RE2 syntax: no backreferences or "
            f"lookaround): {reason}"
        ) from None


class RegexTrigger(_Trigger):
    """Its pattern is checked with the graph rules (``compile_pattern``), not here: a version
    stored before RE2 still loads, and its trigger simply never matches."""

    type: Literal["regex"]
    pattern: str = Field(
        min_length=1,
        description="RE2 syntax (Python's without backreferences and lookaround), matched "
        "anywhere in the message",
    )


class FirstMessageTrigger(_Trigger):
    type: Literal["first_message"]


class DealStageTrigger(_Trigger):
    type: Literal["deal_stage"]
    stage_id: str


class ApiTrigger(_Trigger):
    type: Literal["api"]


class ScheduleTrigger(_Trigger):
    type: Literal["schedule"]
    cron: str = Field(
        pattern=r"^\s*\S+(\s+\S+){4}\s*$",
        description="Five-field cron in UTC, e.g. `0 9 * * 1` (Mondays 9:00)",
    )
    tag: str = Field(min_length=1, description="Runs for every contact carrying this tag")


Trigger = Annotated[
    KeywordTrigger | RegexTrigger | FirstMessageTrigger | DealStageTrigger | ApiTrigger
    | ScheduleTrigger,
    Field(discriminator="type"),
]  # fmt: skip


COORDINATE = 1_000_000  # the editor's canvas is far smaller; this only bounds what is stored


class Position(BaseModel):
    """Where the editor draws a node: presentational, never read by the engine."""

    model_config = ConfigDict(extra="forbid")

    x: float = Field(ge=-COORDINATE, le=COORDINATE)
    y: float = Field(ge=-COORDINATE, le=COORDINATE)


class FlowDefinition(BaseModel):
    """A flow document."""

    model_config = ConfigDict(extra="forbid", title="zapflow flow")

    name: str = Field(min_length=1, max_length=200)
    description: str | None = None
    triggers: list[Trigger] = Field(default_factory=list)
    variables: dict[VariableName, Any] = Field(
        default_factory=dict, description="Declared variables and their starting values"
    )
    start: str = Field(description="The id of the first node")
    nodes: list[Node] = Field(min_length=1)
    layout: dict[NodeId, Position] = Field(
        default_factory=dict,
        description="Presentational: node id → its position in the visual editor; the engine "
        "ignores it, and a document without it is laid out automatically",
        examples=[{"greeting": {"x": 0, "y": 0}, "ask_name": {"x": 0, "y": 120}}],
    )

    def node_map(self) -> dict[str, Node]:
        return {node.id: node for node in self.nodes}


class DocumentRefused(ValueError):
    """A document zapflow does not read: anchors or aliases, or nesting too deep."""


_STARTS = (yaml.SequenceStartEvent, yaml.MappingStartEvent)
_ENDS = (yaml.SequenceEndEvent, yaml.MappingEndEvent)


def _check_events(text: str) -> None:
    """Read the YAML's events (libyaml, streamed: nothing is built) and refuse anchors and
    aliases, which make a few bytes expand to gigabytes or refer to themselves, and nesting
    deeper than ``MAX_DOCUMENT_DEPTH``, before anything is composed."""
    depth = 0
    for event in yaml.parse(text, Loader=yaml.CSafeLoader):
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            raise DocumentRefused("YAML anchors and aliases (& and *) are not accepted")
        if isinstance(event, _STARTS):
            depth += 1
            if depth > limits.MAX_DOCUMENT_DEPTH:
                raise DocumentRefused(f"nested more than {limits.MAX_DOCUMENT_DEPTH} levels deep")
        elif isinstance(event, _ENDS):
            depth -= 1


def _check_depth(value: Any) -> None:
    todo = [(value, 1)]
    while todo:
        item, depth = todo.pop()
        if isinstance(item, dict | list):
            if depth > limits.MAX_DOCUMENT_DEPTH:
                raise DocumentRefused(f"nested more than {limits.MAX_DOCUMENT_DEPTH} levels deep")
            children = item.values() if isinstance(item, dict) else item
            todo.extend((child, depth + 1) for child in children)


def load_document(text: str) -> dict[str, Any]:
    """A flow document's raw mapping from JSON or YAML text (JSON is YAML), as JSON values;
    ``DocumentRefused`` for anchors, aliases or deep nesting, else ``ValueError`` for what is
    not a mapping. CPU time is linear in the text (libyaml, no alias expansion)."""
    try:
        _check_events(text)
        loaded = yaml.load(text, Loader=yaml.CSafeLoader)
        # as the JSON body would be: text keys, dates as ISO text
        loaded = orjson.loads(orjson.dumps(loaded, option=orjson.OPT_NON_STR_KEYS))
    except yaml.YAMLError as exc:
        raise ValueError(f"not valid YAML or JSON: {exc}") from None
    except TypeError as exc:  # orjson: a value JSON has no form for (a 65-bit integer...)
        raise ValueError(f"not a JSON value: {exc}") from None
    return _mapping(loaded)


def load_json_document(body: bytes) -> dict[str, Any]:
    """A flow document's raw mapping from a JSON body; errors as ``load_document``'s."""
    try:
        loaded = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON: {exc}") from None
    _check_depth(loaded)
    return _mapping(loaded)


def _mapping(loaded: Any) -> dict[str, Any]:
    if not isinstance(loaded, dict):
        raise ValueError("a flow document is a mapping (an object)")
    return loaded
