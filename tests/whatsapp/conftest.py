"""The provider clients' and the fake provider's own tests read every request the fake
received: they get a fake of their own, since the session's also receives other tests' late
sends (their workflows' retries and timers)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fixtures.provider_server import ProviderServer, start_provider_server


@pytest.fixture(scope="package")
def own_provider() -> Iterator[ProviderServer]:
    with start_provider_server() as server:
        yield server


@pytest.fixture
def provider_server(own_provider: ProviderServer) -> Iterator[ProviderServer]:
    own_provider.reset()
    yield own_provider
    own_provider.reset()
