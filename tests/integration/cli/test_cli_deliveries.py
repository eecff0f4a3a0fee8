"""The deliveries the CLI makes: ``hw`` records its holds, and ``smoke_delivery`` is the one smoke path."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.config import ENVIRONMENT, Settings
from harness.flow import FlowEvent, StepFinished
from harness.ledger import LEDGER_FILE, EntryState, Ledger
from harness.model import LockerStatus
from harness.targets import DeliveryChoice, embedded_sandbox, smoke_delivery

NO_HARBOR_ENV: dict[str, str | None] = dict.fromkeys(ENVIRONMENT)


def ledger_rows(state_dir: Path) -> list[tuple[str, int | None, EntryState]]:
    path = state_dir / LEDGER_FILE
    if not path.is_file():
        return []
    with Ledger(path) as ledger:
        return [(row.kind, row.locker_id, row.state) for row in ledger.entries()]


def test_hw_writes_its_holds_to_the_cleanup_ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every reservation and token ``hw`` makes is in the ledger, closed once the locker is available again."""
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["hw", "--cycles", "1"], env=NO_HARBOR_ENV)
    assert result.exit_code == 0, result.stderr
    rows = ledger_rows(tmp_path / ".locker-harness")
    assert [(kind, locker) for kind, locker, _ in rows] == [
        ("reservation", 1401),
        ("dropoff_token", 1401),
        ("pickup_token", 1401),
    ]
    assert {state for _, _, state in rows} == {EntryState.RELEASED}


@pytest.fixture
def local(tmp_path: Path) -> Iterator[Any]:
    with embedded_sandbox(Settings(state_dir=tmp_path / "state")) as sandbox:
        yield sandbox


class Counting(httpx.AsyncBaseTransport):
    """Counts the requests a delivery sends through the caller's transport (a run's evidence capture)."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.paths: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(request.url.path)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.mark.anyio
async def test_smoke_delivery_on_local_opens_doors_over_the_virtual_radio(local: Any, tmp_path: Path) -> None:
    """With the sandbox's radio link, doors open over BLE: session tokens are fetched, /_sim is never called."""
    capture = Counting()
    events: list[FlowEvent] = []
    delivery = await smoke_delivery(
        local.settings,
        radio_link=local.radio_link,
        listeners=[events.append],
        choice=DeliveryChoice(locker_type=2),
        transport=capture,
        run_id="run-under-test",
    )
    assert delivery.locker.status is LockerStatus.AVAILABLE
    assert 1409 <= delivery.locker.id <= 1416  # a medium one
    assert any(path.endswith("/session-token") for path in capture.paths)
    assert not any(path.startswith("/_sim") for path in capture.paths)
    assert all(event.ok for event in events if isinstance(event, StepFinished))
    with Ledger(tmp_path / "state" / LEDGER_FILE) as ledger:
        assert {row.run_id for row in ledger.entries()} == {"run-under-test"}
        assert ledger.entries(open_only=True) == []


@pytest.mark.anyio
async def test_smoke_delivery_without_a_radio_uses_the_control_plane(local: Any) -> None:
    """Without a radio link (a sandbox in another process), the same function opens doors through /_sim."""
    capture = Counting()
    delivery = await smoke_delivery(local.settings, transport=capture)
    assert delivery.locker.status is LockerStatus.AVAILABLE
    assert any(path.endswith("/open") and path.startswith("/_sim") for path in capture.paths)
