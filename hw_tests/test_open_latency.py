"""Open latency: N deliveries over BLE, every phase in an HdrHistogram, held to configured bounds."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hw_rig import Rig

from harness.ble import Phase, PhaseTimer
from harness.flow import FlowEvent, Step, StepFinished, run_delivery
from harness.metrics import Latencies

pytestmark = pytest.mark.anyio


def latency_table(latencies: Latencies) -> str:
    """Per-phase count and p50/p95/p99/max in ms, one line per phase."""
    lines = [f"{'phase':<18}{'n':>5}{'p50 ms':>10}{'p95 ms':>10}{'p99 ms':>10}{'max ms':>10}"]
    for summary in latencies.summaries():
        name = summary.name.removeprefix("ble.")
        lines.append(
            f"{name:<18}{summary.count:>5}{summary.p50_ms:>10.2f}{summary.p95_ms:>10.2f}"
            f"{summary.p99_ms:>10.2f}{summary.max_ms:>10.2f}"
        )
    return "\n".join(lines)


def _attach(name: str, text: str) -> None:
    try:
        import allure
    except ImportError:  # the rig runs without allure too
        return
    allure.attach(text, name=name, attachment_type=allure.attachment_type.TEXT)


async def test_open_latency(rig: Rig, record_property: Callable[[str, object], None]) -> None:
    """N deliveries open 2N doors over BLE; p95 of open -> LOCKER_OPENED stays within the configured bound."""
    timer = PhaseTimer()
    async with rig.api() as api, rig.opener(api, timer) as opener:

        def status_seen(event: FlowEvent) -> None:
            if isinstance(event, StepFinished) and event.ok and event.step in (Step.OCCUPIED, Step.AVAILABLE):
                assert event.locker_id is not None
                opener.status_visible(event.locker_id)

        for _ in range(rig.config.cycles):
            delivery = await run_delivery(
                api,
                opener,
                tower_id=rig.tower_id,
                listeners=[status_seen, rig.holds.listener],  # a delivery that ends available closes its rows
                status_timeout=rig.config.available_within,
            )
            assert delivery.locker.status.wire_name == "available"
    latencies = timer.latencies
    rig.keep(latencies)
    table = latency_table(latencies)
    where = f"virtual radio, MTU {rig.config.mtu}" if rig.virtual else "bench tower"
    print(f"\nBLE phases over {rig.config.cycles} deliveries ({where}):")
    print(table)
    _attach("ble phase latencies", table)
    for name, blob in latencies.encode().items():
        record_property(f"hdr.{name}", blob)
    if rig.config.mtu is not None:  # the link really ran at the MTU the rig asked the towers for
        assert {seen.mtu for seen in opener.towers.values()} == {rig.config.mtu}
    opens, resumed = 2 * rig.config.cycles, len(opener.link_failures)  # each survived failure took a new link
    for phase in (Phase.OPEN, Phase.DOOR, Phase.API_STATUS):
        assert latencies.count(phase.value) == opens, phase
    for phase in (Phase.SCAN, Phase.CONNECT, Phase.DISCOVERY, Phase.SESSION):
        assert opens <= latencies.count(phase.value) <= opens + resumed, phase
    open_p95 = latencies.percentile_ms(Phase.OPEN.value, 95)
    assert open_p95 <= rig.config.open_p95_ms, f"open p95 {open_p95} ms > {rig.config.open_p95_ms} ms"
    if rig.config.door_p95_ms is not None:
        door_p95 = latencies.percentile_ms(Phase.DOOR.value, 95)
        assert door_p95 <= rig.config.door_p95_ms, f"door p95 {door_p95} ms > {rig.config.door_p95_ms} ms"
