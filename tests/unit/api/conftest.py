"""Fixtures of the client's unit tests: settings, a scripted Harbor, a retry policy that never waits."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from harness.api import HarborClient, RetryPolicy
from harness.config import Settings, load_settings

from .harbor_double import BASE, FakeHarbor, Sleeps


@pytest.fixture
def settings() -> Settings:
    return load_settings(
        {"target": BASE},
        environ={"HARBOR_CLIENT_ID": "test-client", "HARBOR_CLIENT_SECRET": "test-client-secret"},
    )


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def policy(sleeps: Sleeps) -> RetryPolicy:
    return RetryPolicy(sleep=sleeps, async_sleep=sleeps.sleep_async)


@pytest.fixture
def harbor() -> FakeHarbor:
    return FakeHarbor()


@pytest.fixture
def client(settings: Settings, harbor: FakeHarbor, policy: RetryPolicy) -> Iterator[HarborClient]:
    with HarborClient(settings, transport=httpx.MockTransport(harbor), retry=policy) as c:
        yield c
