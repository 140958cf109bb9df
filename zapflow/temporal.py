"""Temporal client factory, data converter, and the search attributes zapflow registers."""

from __future__ import annotations

import asyncio
import functools
import uuid
from datetime import timedelta
from typing import Any

from pydantic import TypeAdapter
from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client
from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes
from temporalio.contrib.pydantic import PydanticJSONPlainPayloadConverter
from temporalio.converter import (
    CompositePayloadConverter,
    DataConverter,
    DefaultPayloadConverter,
    JSONPlainPayloadConverter,
)
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.service import RPCError, RPCStatusCode

from zapflow.config import Settings
from zapflow.whatsapp import jid as jids
from zapflow.workflows.inputs import ConversationInput, ConversationRef

# name -> type as `temporal server start-dev --search-attribute` and the operator API spell it
SEARCH_ATTRIBUTES: dict[str, str] = {
    "CompanyId": "Keyword",
    "InstanceId": "Keyword",
    "ContactPhone": "Keyword",
    "FlowId": "Keyword",
    "FlowVersion": "Int",
}

LATENCY_BUCKETS_SECONDS = [0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]

COMPANY_ID = SearchAttributeKey.for_keyword("CompanyId")
INSTANCE_ID = SearchAttributeKey.for_keyword("InstanceId")
CONTACT_PHONE = SearchAttributeKey.for_keyword("ContactPhone")
FLOW_ID = SearchAttributeKey.for_keyword("FlowId")
FLOW_VERSION = SearchAttributeKey.for_int("FlowVersion")


def workflow_gone(exc: RPCError) -> bool:
    """A workflow signalled or queried was never started or has closed: Temporal answers both
    with NOT_FOUND (anything else is Temporal being unavailable or refusing)."""
    return exc.status == RPCStatusCode.NOT_FOUND


def run_workflow_id(run_id: uuid.UUID | str) -> str:
    """A flow run's workflow id (a conversation's is ``ConversationRef.workflow_id``)."""
    return f"flow-run/{run_id}"


# One cache of pydantic type adapters for the process. The SDK builds a new payload converter for
# every workflow run, and pydantic's caches its adapters per converter: with a run per
# conversation, every run built its adapters again (~20 ms each; 11 % of the worker's samples).
_type_adapter = functools.lru_cache(maxsize=1024)(TypeAdapter)


class _JSONConverter(PydanticJSONPlainPayloadConverter):
    def from_payload(self, payload: Payload, type_hint: type | None = None) -> Any:
        hint = type_hint if type_hint is not None else Any
        try:
            adapter = _type_adapter(hint)
        except TypeError:  # an unhashable hint: no cache
            adapter = TypeAdapter(hint)
        return adapter.validate_json(payload.data)


class PayloadConverter(CompositePayloadConverter):
    """temporalio.contrib.pydantic's payload converter, with the process-wide adapter cache."""

    def __init__(self) -> None:
        json = _JSONConverter()
        super().__init__(
            *(
                json if isinstance(c, JSONPlainPayloadConverter) else c
                for c in DefaultPayloadConverter.default_encoding_payload_converters
            )
        )


DATA_CONVERTER = DataConverter(payload_converter_class=PayloadConverter)


def conversation_input(settings: Settings, ref: ConversationRef) -> ConversationInput:
    """A new ConversationWorkflow's input: the task queues of the worker roles it calls."""
    return ConversationInput(
        ref=ref,
        embeddings_task_queue=settings.embeddings_task_queue,
        ai_task_queue=settings.ai_task_queue,
        flows_task_queue=settings.flows_task_queue,
    )


def conversation_search_attributes(ref: ConversationRef) -> TypedSearchAttributes:
    """What a ConversationWorkflow is found by in the Web UI and the visibility API."""
    pairs = [
        SearchAttributePair(COMPANY_ID, ref.company_id),
        SearchAttributePair(INSTANCE_ID, ref.instance_id),
    ]
    phone = jids.phone_from_jid(ref.remote_jid)
    if phone:
        pairs.append(SearchAttributePair(CONTACT_PHONE, phone))
    return TypedSearchAttributes(pairs)


def runtime_with_metrics(port: int) -> Runtime:
    """A Temporal runtime exporting the SDK's worker metrics in Prometheus format on ``port``."""
    prometheus = PrometheusConfig(
        bind_address=f"0.0.0.0:{port}",
        # the SDK's default buckets start at 50 (made for milliseconds); ours are seconds
        histogram_bucket_overrides={"zapflow_message_event_latency": LATENCY_BUCKETS_SECONDS},
    )
    telemetry = TelemetryConfig(metrics=prometheus)
    return Runtime(telemetry=telemetry)


async def connect(settings: Settings, runtime: Runtime | None = None) -> Client:
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=DATA_CONVERTER,
        runtime=runtime,
    )


class TemporalConnection:
    """Connects on first use, so a process that only sometimes needs Temporal starts without it."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._client: Client | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> Client:
        if self._client is None:
            async with self._lock:
                if self._client is None:
                    self._client = await asyncio.wait_for(connect(self._settings), timeout=5)
        return self._client

    async def check_health(self) -> None:
        client = await self.get()
        await client.service_client.check_health(timeout=timedelta(seconds=2))


async def register_search_attributes(settings: Settings) -> list[str]:
    """Add zapflow's search attributes to the namespace; returns the names that were missing."""
    client = await connect(settings)
    existing = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=settings.temporal_namespace)
    )
    missing = {
        name: kind for name, kind in SEARCH_ATTRIBUTES.items()
        if name not in existing.custom_attributes
    }  # fmt: skip
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(
                namespace=settings.temporal_namespace,
                search_attributes={
                    name: IndexedValueType.Value(f"INDEXED_VALUE_TYPE_{kind.upper()}")
                    for name, kind in missing.items()
                },
            )
        )
    return sorted(missing)
