"""schemathesis against zapflow's own OpenAPI document: every operation, called with a valid API
key and generated parameters and bodies (valid and invalid), never answers 5xx and answers in
the documented shape. Streams are left out (they never end): tests/test_live_events.py and the
tenancy matrix cover them. ``ZAPFLOW_FUZZ_SCALE`` multiplies the examples per operation."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import response_schema_conformance

from tests.fixtures.system import api_in_thread
from tests.fuzz import DERANDOMIZE, SCALE
from zapflow.api.app import create_app
from zapflow.config import Settings, load_settings
from zapflow.db import SessionFactory, transaction
from zapflow.devstack import free_port
from zapflow.services.auth import create_company

# make test: examples and random fuzzing; make test-faults (SCALE > 1) adds the coverage
# phase (boundary values, missing auth, every undocumented method: ~4,000 calls)
CONFIG = SchemathesisConfig.from_dict({"phases": {"coverage": {"enabled": SCALE > 1}}})
SCHEMA = schemathesis.openapi.from_dict(
    create_app(load_settings()).openapi(), config=CONFIG
).exclude(path_regex=r"/stream$")
SEEN: Counter[int] = Counter()


@pytest.fixture(scope="module")
async def api_key(sessions: SessionFactory) -> str:
    async with transaction(sessions) as session:
        _, key = await create_company(session, "Schemathesis Co")
    return key.plain


@pytest.fixture(scope="module")
def base_url(settings: Settings) -> Iterator[str]:
    with api_in_thread(settings.model_copy(update={"api_port": free_port()})) as url:
        yield url
    print("schemathesis answers by status:", dict(sorted(SEEN.items())))


@SCHEMA.parametrize()
@settings(
    max_examples=3 * SCALE,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=DERANDOMIZE,
)
def test_no_route_fails_or_breaks_its_schema(case, base_url: str, api_key: str) -> None:  # type: ignore[no-untyped-def]
    response = case.call(
        base_url=base_url, headers={"Authorization": f"Bearer {api_key}"}, timeout=30
    )
    SEEN[response.status_code] += 1
    case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])
