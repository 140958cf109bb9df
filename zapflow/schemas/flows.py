"""Flows' request and response shapes: flows, versions, runs and simulations."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from zapflow.flows import limits
from zapflow.flows.validation import FlowIssue
from zapflow.models import FlowRunStatus, FlowStatus

VersionNumber = Annotated[int, Field(ge=1, le=2**31 - 1)]  # what the integer column holds


class FlowPublic(BaseModel):
    id: uuid.UUID
    name: str
    description: str | None
    status: FlowStatus
    current_version: int | None = Field(description="The version new runs use")
    draft_definition: dict[str, Any]
    triggers: list[dict[str, Any]] = Field(description="The current version's triggers")
    created_at: datetime
    updated_at: datetime


class FlowVersionPublic(BaseModel):
    id: uuid.UUID
    flow_id: uuid.UUID
    version: int
    definition: dict[str, Any]
    published_at: datetime
    published_by_user_id: uuid.UUID | None
    note: str | None


class PublishRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"note": "Asks for the budget in BRL"}]}
    )

    note: str | None = Field(
        None, max_length=1_000, description="What changed, for the versions list"
    )


class FlowVersionSummary(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"version": 2, "published_at": "2026-12-02T15:00:00Z",
                          "published_by_user_id": None, "note": "Asks for the budget in BRL"}]
        }
    )  # fmt: skip

    version: int
    published_at: datetime
    published_by_user_id: uuid.UUID | None
    note: str | None


class FlowCheck(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"issues": [{"node_id": "ask_name", "field": "next", "code": "dead_end",
                                      "message": "a ask node needs next"}]}]
        }
    )  # fmt: skip

    issues: list[FlowIssue] = Field(description="Every rule broken, by node id and field")


class NodeRuns(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"version": 1, "node_id": "ask_budget", "status": "waiting", "runs": 12}]
        }
    )

    version: int
    node_id: str = Field(description="Where active runs are now, or where ended runs ended")
    status: FlowRunStatus
    runs: int


class FlowRunPublic(BaseModel):
    id: uuid.UUID
    flow_id: uuid.UUID
    flow_version: int
    conversation_id: uuid.UUID
    contact_id: uuid.UUID
    status: FlowRunStatus
    current_node_id: str | None
    variables: dict[str, Any]
    workflow_id: str | None
    error: str | None
    started_at: datetime
    ended_at: datetime | None


class FlowRunDetail(FlowRunPublic):
    transcript: list[dict[str, Any]] = Field(description="Step by step: sends, replies, branches")


def _within_bounds(value: Any) -> Any:
    limits.check_value(value)  # its ValueTooLarge, a ValueError: a 422 naming the field
    return value


# a run's or simulation's given values are bounded as the values a flow makes are
Bounded = AfterValidator(_within_bounds)


class RunCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    contact_id: uuid.UUID
    conversation_id: uuid.UUID | None = Field(
        None, description="One of the contact's conversations; their latest if omitted"
    )
    variables: Annotated[dict[str, Any], Bounded] = Field(
        default_factory=dict, description="Starting values"
    )


class SimulateRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"replies": ["Maria", "lots", "12000"]}]},
    )

    replies: Annotated[list[str | None], Bounded] = Field(
        default_factory=list, description="The customer's replies in order; null plays a timeout"
    )
    version: VersionNumber | None = Field(
        None, description="A published version; the draft if omitted"
    )
    contact: Annotated[dict[str, Any], Bounded] = Field(
        default_factory=dict, description="Contact fields to use"
    )
    variables: Annotated[dict[str, Any], Bounded] = Field(default_factory=dict)
    http_responses: Annotated[dict[str, dict[str, Any]], Bounded] = Field(
        default_factory=dict, description="node id → {status, json, text} for http_request nodes"
    )


class SimulationPublic(BaseModel):
    status: str = Field(description="completed, failed, or waiting (it needs more replies)")
    current_node: str | None
    transcript: list[dict[str, Any]]
    variables: dict[str, Any]
    sent: list[dict[str, Any]] = Field(description="What would have been sent, in order")
    error: str | None
