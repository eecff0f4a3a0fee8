"""Every fault profile of the sandbox against the delivery flow: retried as Harbor's SDK does, what remains
classified (infrastructure, never a product defect), never a green flow that did not complete, and red with
the retry off.

The retry's waits are recorded, never slept (``RetryPolicy(async_sleep=...)``); BLE pauses are shortened.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from harness.api import AsyncHarborClient, RetryPolicy
from harness.ble import BleLinkError, PhaseTimer, choose_backend
from harness.config import Settings, Target
from harness.errors import ExitCode, RateLimited, ServerError, TargetUnreachable
from harness.flow import ControlPlaneOpener, DoorOpener, FlowEvent, Step, StepFinished, run_delivery
from harness.ledger import EntryState, LedgerHolds, Outcome, give_back, plan, shared_ledger
from harness.model import LockerStatus
from harness.redaction import Secret
from harness.report import FailureKind, classify
from harness.sim import SimSettings, VirtualSandbox
from harness.sim.radio import LatencyModel
from harness.targets import ble_door_opener

pytestmark = pytest.mark.anyio

TOWER = "0100000000000014"
FIRST = 1401  # the locker the flow picks in the seeded world
RESERVE_PATH = f"/api/v1/towers/{TOWER}/lockers/{FIRST}/reservations"


@dataclass
class Waits:
    """A retry policy's sleeps, recorded instead of slept."""

    seconds: list[float] = field(default_factory=list)

    async def __call__(self, seconds: float) -> None:
        self.seconds.append(seconds)

    def sync(self, seconds: float) -> None:
        self.seconds.append(seconds)


@pytest.fixture(scope="module")
def sandbox() -> Iterator[VirtualSandbox]:
    with VirtualSandbox(SimSettings()) as running:
        running.radio.start()
        yield running


@pytest.fixture(autouse=True)
def fresh(sandbox: VirtualSandbox) -> Iterator[None]:
    sandbox.world.reset()
    sandbox.radio.person.dwell = 0.02
    sandbox.radio.set_latency(LatencyModel.off())
    yield
    sandbox.world.reset()


@pytest.fixture
def waits() -> Waits:
    return Waits()


def sdk_retry(waits: Waits) -> RetryPolicy:
    """Harbor's SDK policy (3 attempts, 1 s doubling) with the waits recorded."""
    return RetryPolicy(sleep=waits.sync, async_sleep=waits)


def no_retry(waits: Waits) -> RetryPolicy:
    return RetryPolicy(attempts=1, sleep=waits.sync, async_sleep=waits)


def settings_for(sandbox: VirtualSandbox, tmp_path: Any, *, timeout: float = 10.0) -> Settings:
    return Settings(
        target=Target.local().running_at(sandbox.url),
        client_id="demo-provider",
        client_secret=Secret("demo-secret"),
        tower_id=TOWER,
        timeout=timeout,
        connect_timeout=timeout,
        status_timeout=2.0,
        state_dir=tmp_path / "state",
    )


@dataclass
class Delivered:
    """What one delivery ended with: the error if any, every event, the ledger hook it wrote through."""

    error: BaseException | None
    events: list[FlowEvent]
    holds: LedgerHolds

    def finished(self, step: Step) -> StepFinished:
        return next(e for e in self.events if isinstance(e, StepFinished) and e.step is step)

    @property
    def green(self) -> bool:
        return self.error is None

    def assert_red(self, step: Step, kind: FailureKind = FailureKind.INFRASTRUCTURE) -> None:
        """Not green: an error classified as ``kind``, the step that failed named, no final step passed."""
        assert self.error is not None, "the flow reported green"
        assert classify(self.error) is kind, repr(self.error)
        failed = [e.step for e in self.events if isinstance(e, StepFinished) and not e.ok]
        assert failed == [step], failed
        assert not any(isinstance(e, StepFinished) and e.step is Step.AVAILABLE and e.ok for e in self.events)


async def deliver(settings: Settings, retry: RetryPolicy, opener: DoorOpener | None = None) -> Delivered:
    holds = LedgerHolds(shared_ledger(settings.state_dir), settings, run_id="faults")
    events: list[FlowEvent] = []
    error: BaseException | None = None
    async with AsyncHarborClient(settings, retry=retry, holds=holds) as client:
        assert settings.target.api_url is not None
        async with ControlPlaneOpener(settings.target.api_url) as doors:
            try:
                await run_delivery(client, opener or doors, tower_id=TOWER, listeners=[events.append, holds.listener])
            except Exception as exc:  # the test says which kind it wanted
                error = exc
    return Delivered(error, events, holds)


def held(sandbox: VirtualSandbox) -> dict[int, str]:
    """Lockers that are neither available nor out of service."""
    return {
        locker["id"]: locker["status"]
        for locker in sandbox.control.state()["lockers"]
        if locker["status"] not in ("available", "out_of_service")
    }


# -- HTTP faults --------------------------------------------------------------------------------------------


async def test_http_5xx_is_retried_like_the_sdk(sandbox: VirtualSandbox, tmp_path: Any, waits: Waits) -> None:
    """Two 503s on the reserve are retried after 1 s and 2 s (recorded, not slept) and the delivery completes."""
    sandbox.control.set_faults("http_5xx", count=2, paths=[RESERVE_PATH])
    done = await deliver(settings_for(sandbox, tmp_path), sdk_retry(waits))
    assert done.green, done.error
    assert waits.seconds == [1.0, 2.0]
    assert held(sandbox) == {}


async def test_http_5xx_that_outlives_the_retries_is_infrastructure(
    sandbox: VirtualSandbox, tmp_path: Any, waits: Waits
) -> None:
    """A 503 on all three attempts fails the reserve step as infrastructure (exit 4), leaving nothing held."""
    sandbox.control.set_faults("http_5xx", count=3, paths=[RESERVE_PATH])
    done = await deliver(settings_for(sandbox, tmp_path), sdk_retry(waits))
    done.assert_red(Step.RESERVE)
    assert isinstance(done.error, ServerError) and done.error.exit_code is ExitCode.INFRASTRUCTURE
    assert waits.seconds == [1.0, 2.0]
    assert held(sandbox) == {}


async def test_http_5xx_without_retry_goes_red(sandbox: VirtualSandbox, tmp_path: Any, waits: Waits) -> None:
    """With the retry off, one 503 fails the reserve step."""
    sandbox.control.set_faults("http_5xx", count=1, paths=[RESERVE_PATH])
    done = await deliver(settings_for(sandbox, tmp_path), no_retry(waits))
    done.assert_red(Step.RESERVE)
    assert waits.seconds == []


async def test_rate_limit_waits_for_retry_after(sandbox: VirtualSandbox, tmp_path: Any, waits: Waits) -> None:
    """A 429 is retried after its Retry-After (not the backoff) and the delivery completes."""
    sandbox.control.set_faults("rate_limit", count=1, retry_after=3, paths=[RESERVE_PATH])
    done = await deliver(settings_for(sandbox, tmp_path), sdk_retry(waits))
    assert done.green, done.error
    assert waits.seconds == [3.0]


async def test_rate_limit_that_persists_is_infrastructure(sandbox: VirtualSandbox, tmp_path: Any, waits: Waits) -> None:
    """A 429 on every attempt, or on the only one with the retry off, is 'could not test' (exit 4), not a defect."""
    sandbox.control.set_faults("rate_limit", count=3, retry_after=1, paths=[RESERVE_PATH])
    done = await deliver(settings_for(sandbox, tmp_path), sdk_retry(waits))
    done.assert_red(Step.RESERVE)
    assert isinstance(done.error, RateLimited) and done.error.exit_code is ExitCode.INFRASTRUCTURE
    sandbox.control.set_faults("rate_limit", count=1, paths=[RESERVE_PATH])
    (await deliver(settings_for(sandbox, tmp_path), no_retry(waits))).assert_red(Step.RESERVE)
    assert held(sandbox) == {}


async def test_dropped_connection_is_retried(sandbox: VirtualSandbox, tmp_path: Any, waits: Waits) -> None:
    """Two connections closed without an answer are retried and the delivery completes; with the retry off, red."""
    sandbox.control.set_faults("drop_connection", count=2, paths=[RESERVE_PATH])
    done = await deliver(settings_for(sandbox, tmp_path), sdk_retry(waits))
    assert done.green, done.error
    assert waits.seconds == [1.0, 2.0]
    sandbox.control.set_faults("drop_connection", count=1, paths=[RESERVE_PATH])
    done = await deliver(settings_for(sandbox, tmp_path), no_retry(waits))
    done.assert_red(Step.RESERVE)
    assert isinstance(done.error, TargetUnreachable)


async def test_latency_shows_in_the_timing_and_past_the_timeout_is_red(
    sandbox: VirtualSandbox, tmp_path: Any, waits: Waits
) -> None:
    """Latency below the timeout keeps the flow green with the delay in the reserve step's timing; past the
    timeout the step is infrastructure, and the reserve whose answer never came stays in the ledger as unknown
    until cleanup has looked at the locker."""
    sandbox.control.set_faults("latency", ms=120, paths=[RESERVE_PATH])
    done = await deliver(settings_for(sandbox, tmp_path), sdk_retry(waits))
    assert done.green, done.error
    assert done.finished(Step.RESERVE).duration_ns >= 120e6

    sandbox.control.set_faults("latency", ms=300, paths=[RESERVE_PATH])
    done = await deliver(settings_for(sandbox, tmp_path, timeout=0.1), no_retry(waits))
    done.assert_red(Step.RESERVE)
    assert isinstance(done.error, TargetUnreachable)
    sandbox.control.clear_faults()
    [claim] = plan(done.holds.ledger.entries(open_only=True, run_id="faults"), alive=lambda _: False).claims
    assert claim.locker_id == FIRST and claim.entries[0].state is EntryState.UNKNOWN
    async with AsyncHarborClient(settings_for(sandbox, tmp_path)) as client:
        settled = await give_back(client, None, claim)
    # This sandbox drops a request whose client left; a server that finished it would show it reserved here.
    assert (settled.outcome, settled.before) == (Outcome.NOT_HELD, LockerStatus.AVAILABLE)
    assert held(sandbox) == {}


async def test_slow_token_endpoint(sandbox: VirtualSandbox, tmp_path: Any, waits: Waits) -> None:
    """A slow token endpoint shows in the authenticate step; slower than the timeout, authenticate is red."""
    sandbox.control.set_faults("slow_token", ms=120)
    done = await deliver(settings_for(sandbox, tmp_path), sdk_retry(waits))
    assert done.green, done.error
    assert done.finished(Step.AUTHENTICATE).duration_ns >= 120e6
    sandbox.control.set_faults("slow_token", ms=400)
    done = await deliver(settings_for(sandbox, tmp_path, timeout=0.1), no_retry(waits))
    done.assert_red(Step.AUTHENTICATE)
    assert isinstance(done.error, TargetUnreachable)


async def test_stall_is_waited_out_or_red_past_the_timeout(
    sandbox: VirtualSandbox, tmp_path: Any, waits: Waits
) -> None:
    """Requests held by a stall are waited for (the stall shows in a step's timing); with a timeout shorter than
    the stall and no retry, the step it hits is red. A stall serves normally for ``every - seconds`` first:
    1 ms here, less than any delivery takes, so every run meets the stall however fast the machine."""
    sandbox.control.set_faults("stall", seconds=0.399, every=0.4)
    done = await deliver(settings_for(sandbox, tmp_path), sdk_retry(waits))
    assert done.green, done.error
    assert max(e.duration_ns for e in done.events if isinstance(e, StepFinished)) >= 0.1e9
    sandbox.world.reset()
    sandbox.control.set_faults("stall", seconds=0.399, every=0.4)
    done = await deliver(settings_for(sandbox, tmp_path, timeout=0.05), no_retry(waits))
    assert done.error is not None and classify(done.error) is FailureKind.INFRASTRUCTURE
    assert not any(isinstance(e, StepFinished) and e.step is Step.AVAILABLE and e.ok for e in done.events)


# -- BLE faults ---------------------------------------------------------------------------------------------


def _ble(client: AsyncHarborClient, sandbox: VirtualSandbox, retries: int) -> Any:
    opener = ble_door_opener(
        client, choose_backend("virtual", link=sandbox.radio.link), timer=PhaseTimer(), response_timeout=0.3,
        retries=retries,
    )  # fmt: skip
    opener.busy_delay = 0.01  # the SDK's 2 s pause between busy answers, shortened
    return opener


async def deliver_ble(sandbox: VirtualSandbox, tmp_path: Any, waits: Waits, *, retries: int) -> tuple[Delivered, Any]:
    settings = settings_for(sandbox, tmp_path)
    holds = LedgerHolds(shared_ledger(settings.state_dir), settings, run_id="faults")
    events: list[FlowEvent] = []
    error: BaseException | None = None
    async with (
        AsyncHarborClient(settings, retry=sdk_retry(waits), holds=holds) as client,
        _ble(client, sandbox, retries) as opener,
    ):
        try:
            await run_delivery(client, opener, tower_id=TOWER, listeners=[events.append, holds.listener])
        except Exception as exc:  # the test says which kind it wanted
            error = exc
    return Delivered(error, events, holds), opener


async def test_ble_disconnect_mid_command(sandbox: VirtualSandbox, tmp_path: Any, waits: Waits) -> None:
    """A link dropped before the open reached the tower is infrastructure; the flow gives the rented locker
    back; one retry (a new scan, connection and session) completes the delivery."""
    sandbox.control.set_faults("ble_disconnect", count=1)
    done, _ = await deliver_ble(sandbox, tmp_path, waits, retries=0)
    done.assert_red(Step.OPEN_FOR_DROPOFF)
    assert isinstance(done.error, BleLinkError)
    assert held(sandbox) == {}  # rented -> released -> declined -> released -> available
    sandbox.control.set_faults("ble_disconnect", count=1)
    done, opener = await deliver_ble(sandbox, tmp_path, waits, retries=1)
    assert done.green, done.error
    assert len(opener.link_failures) == 1


async def test_ble_lost_notification(sandbox: VirtualSandbox, tmp_path: Any, waits: Waits) -> None:
    """A lost reply is infrastructure even though the door opened; the item is in, so the locker stays held
    and the ledger keeps it for cleanup, which picks it up through the sandbox's doors; a retry completes."""
    sandbox.control.set_faults("ble_lost_notification", count=1)
    done, _ = await deliver_ble(sandbox, tmp_path, waits, retries=0)
    done.assert_red(Step.OPEN_FOR_DROPOFF)
    assert isinstance(done.error, BleLinkError)
    assert await _poll(lambda: held(sandbox) == {FIRST: "occupied"})
    [claim] = plan(done.holds.ledger.entries(open_only=True, run_id="faults"), alive=lambda _: False).claims
    async with (
        AsyncHarborClient(settings_for(sandbox, tmp_path)) as client,
        ControlPlaneOpener(sandbox.url) as doors,
    ):
        settled = await give_back(client, doors, claim)
    assert settled.outcome is Outcome.RELEASED, settled.note
    assert held(sandbox) == {}

    sandbox.control.set_faults("ble_lost_notification", count=1)
    done, opener = await deliver_ble(sandbox, tmp_path, waits, retries=1)
    # The retry presents the same drop-off token: it may open an occupied locker again (a second drop-off).
    assert done.green, done.error
    assert len(opener.link_failures) == 1


async def test_ble_busy_tower(sandbox: VirtualSandbox, tmp_path: Any, waits: Waits) -> None:
    """A tower busy for a few syncs is asked again and the delivery completes; busy past the SDK's ten asks,
    the close step is red and classified as infrastructure."""
    sandbox.control.set_faults("ble_busy", count=3)
    done, _ = await deliver_ble(sandbox, tmp_path, waits, retries=0)
    assert done.green, done.error
    sandbox.world.reset()
    sandbox.control.set_faults("ble_busy", count=50)
    done, _ = await deliver_ble(sandbox, tmp_path, waits, retries=0)
    done.assert_red(Step.CLOSE_AFTER_DROPOFF)


async def _poll(condition: Any, timeout: float = 3.0) -> bool:
    """Wait, bounded, until the sandbox shows something (a late answer, a person closing a door)."""
    import anyio

    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        await anyio.sleep(0.01)  # the pace of a bounded poll
    return True
