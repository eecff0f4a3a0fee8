"""Fixtures for the sandbox's integration tests: one sandbox in a uvicorn thread for the session,
reset to the seeded world before each test, and small bearer-token clients for its parties."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest

from harness.sim import SimControl, VirtualSandbox

from .sandbox_parties import SECRETS, Party, fetch_token


@pytest.fixture(scope="session")
def sandbox() -> Iterator[VirtualSandbox]:
    with VirtualSandbox() as running:
        yield running


@pytest.fixture(autouse=True)
def fresh(sandbox: VirtualSandbox) -> None:
    """Every test starts from the seeded world: no bugs, no dialects, no faults, clock offset 0, and
    no webhook receiver (a reset keeps receivers: who listens is not the world's state)."""
    sandbox.control.reset()
    sandbox.control.remove_webhooks()


@pytest.fixture
def control(sandbox: VirtualSandbox) -> SimControl:
    return sandbox.control


@pytest.fixture(scope="session")
def tokens(sandbox: VirtualSandbox) -> dict[str, str]:
    """One bearer token per demo identity, fetched once (they survive resets and outlive the run)."""
    return {client_id: fetch_token(sandbox.url, client_id) for client_id in SECRETS}


@pytest.fixture(scope="session")
def party(sandbox: VirtualSandbox, tokens: dict[str, str]) -> Iterator[Callable[[str], Party]]:
    """``party("demo-provider")``: a client holding that identity's bearer token. One client per
    identity for the session: they keep no state but their connections, and making an httpx client
    (its TLS context) costs tens of milliseconds, which every test would pay twice."""
    opened: dict[str, Party] = {}

    def make(client_id: str) -> Party:
        if client_id not in opened:
            headers = {"Authorization": f"Bearer {tokens[client_id]}"}
            opened[client_id] = Party(client_id, httpx.Client(base_url=sandbox.url, headers=headers, timeout=10))
        return opened[client_id]

    yield make
    for known in opened.values():
        known.http.close()


@pytest.fixture
def demo(party: Callable[[str], Party]) -> Party:
    return party("demo-provider")


@pytest.fixture
def second(party: Callable[[str], Party]) -> Party:
    return party("second-provider")
