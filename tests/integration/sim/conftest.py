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
    """Every test starts from the seeded world: no bugs, no faults, clock offset 0."""
    sandbox.control.reset()


@pytest.fixture
def control(sandbox: VirtualSandbox) -> SimControl:
    return sandbox.control


@pytest.fixture(scope="session")
def tokens(sandbox: VirtualSandbox) -> dict[str, str]:
    """One bearer token per demo identity, fetched once (they survive resets and outlive the run)."""
    return {client_id: fetch_token(sandbox.url, client_id) for client_id in SECRETS}


@pytest.fixture
def party(sandbox: VirtualSandbox, tokens: dict[str, str]) -> Iterator[Callable[[str], Party]]:
    """``party("demo-provider")``: a client holding that identity's bearer token."""
    opened: list[httpx.Client] = []

    def make(client_id: str) -> Party:
        http = httpx.Client(base_url=sandbox.url, headers={"Authorization": f"Bearer {tokens[client_id]}"}, timeout=10)
        opened.append(http)
        return Party(client_id, http)

    yield make
    for http in opened:
        http.close()


@pytest.fixture
def demo(party: Callable[[str], Party]) -> Party:
    return party("demo-provider")


@pytest.fixture
def second(party: Callable[[str], Party]) -> Party:
    return party("second-provider")
