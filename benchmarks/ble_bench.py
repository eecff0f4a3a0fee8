"""BLE benchmark: the harness's own CPU per open, and the whole virtual open cycle.

    .venv/bin/python benchmarks/ble_bench.py [--opens 2000] [--cycles 50] [--json FILE] [--in-process-only]

1. **CPU per open** (target: median <= 1 ms): the phone's side of one door opening in the
   codec: REQUEST_SESSION built and cut into MTU writes; GRANT_SESSION reassembled, verified,
   decrypted, session keys derived; OPEN_LOCKER_WITH_TOKEN sealed and cut; LOCKER_OPENED
   reassembled, verified, decrypted. The tower's half runs between the timed parts, untimed.
2. **Virtual open cycle** (target from a cached scan: median <= 50 ms; with a fresh scan it is
   measured with no target, since the scan waits for a tower's next advertisement and scan
   response, 20 ms apart: the air's time, not the harness's): scan -> connect (GATT discovery) -> UART
   setup and device info -> session token from the API (HTTP to the in-process sandbox) ->
   REQUEST/GRANT_SESSION -> OPEN_LOCKER_WITH_TOKEN -> LOCKER_OPENED, through bleak, the virtual
   backend and bumble, with the latency model off (LocalLink has no air time, so this is the
   harness's and bumble's own cost) and then on (7.5 ms connection interval) for the shape.
3. **The same cycles out of process** (``*_oop``, measured, no target): the sandbox in a child
   process serving its radio as HCI over TCP (``python -m harness.sim``), this process reaching it
   through the announced ``tcp-client`` address, as another tool would; then the ratio of each to
   its in-process twin (p50, p95, p99).

Medians, p95 and p99 come from HdrHistograms of one run. Numbers are wall time on this machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.ble import protocol as blink
from harness.ble.protocol import Field, PacketType
from harness.config import DEFAULT_LOCAL_TOWER
from harness.metrics import Latencies

TOWER = DEFAULT_LOCAL_TOWER  # the embedded sandbox's seeded tower
MTU = 247


def cpu_per_open(opens: int) -> Latencies:
    """Time the phone's codec work for ``opens`` door openings (the tower's work is not counted)."""
    latencies = Latencies()
    seed = os.urandom(32)
    payload, payload_auth = os.urandom(180), os.urandom(32)  # a session token's size on the wire
    token, token_auth = os.urandom(160), os.urandom(32)  # a locker token's
    for _ in range(opens):
        # phone: REQUEST_SESSION
        t0 = time.perf_counter_ns()
        nonce = blink.new_nonce()
        request = blink.encode_packet(blink.request_session(payload, payload_auth, nonce=nonce, timestamp=1))
        writes = list(blink.chunks(request, MTU))
        t1 = time.perf_counter_ns()
        # tower (untimed): read the request, grant a session
        got = blink.SessionRequest.from_packet(blink.decode_packet(b"".join(writes)))
        grant_nonce, session_key = blink.new_nonce(), os.urandom(16)
        grant = blink.grant_session(
            seed, got.nonce, session_id=7, session_key=session_key, grant_nonce=grant_nonce, timestamp=1
        )
        notifications = list(blink.chunks(blink.encode_packet(grant), MTU))
        tower = blink.SessionChannel(7, session_key, got.nonce, grant_nonce)
        # phone: GRANT_SESSION -> session keys -> OPEN_LOCKER_WITH_TOKEN
        t2 = time.perf_counter_ns()
        reassembler = blink.Reassembler()
        packets = [p for n in notifications for p in reassembler.feed(n)]
        opened = blink.open_grant(seed, nonce, blink.decode_packet(packets[0]))
        phone = blink.SessionChannel(opened.session_id, opened.session_key, nonce, opened.grant_nonce)
        command = {
            Field.PACKET_TYPE: PacketType.OPEN_LOCKER_WITH_TOKEN,
            Field.PAYLOAD: token,
            Field.PAYLOAD_AUTH: token_auth,
        }
        writes = list(blink.chunks(blink.encode_packet(phone.wrap(command)), MTU))
        t3 = time.perf_counter_ns()
        # tower (untimed): open, answer LOCKER_OPENED
        tower.unwrap(blink.decode_packet(b"".join(writes)))
        reply = tower.wrap({Field.PACKET_TYPE: PacketType.LOCKER_OPENED, Field.LOCKER_ID: 1401})
        notifications = list(blink.chunks(blink.encode_packet(reply), MTU))
        # phone: LOCKER_OPENED
        t4 = time.perf_counter_ns()
        packets = [p for n in notifications for p in reassembler.feed(n)]
        answer = phone.unwrap(blink.decode_packet(packets[0]))
        blink.raise_for_error(answer)
        assert answer[Field.LOCKER_ID] == 1401
        t5 = time.perf_counter_ns()
        latencies.record("cpu_per_open", (t1 - t0) + (t3 - t2) + (t5 - t4))
    return latencies


async def _cycles(
    url: str,
    link: object,
    door_open: Callable[[int], bool],
    cycles: int,
    latencies: Latencies,
    name: str,
    *,
    rescan: bool,
) -> None:
    """``cycles`` open cycles on the sandbox at ``url`` over the virtual radio ``link`` (its in-process
    link, or the transport address it serves); ``door_open`` says when the person closed the door."""
    from harness.api import AsyncHarborClient
    from harness.ble import PhaseTimer, TowerClient, choose_backend, find_tower
    from harness.config import Settings, Target
    from harness.redaction import Secret

    settings = Settings(
        target=Target.local().running_at(url),
        client_id="demo-provider",
        client_secret=Secret("demo-secret"),
        tower_id=TOWER,
    )
    backend = choose_backend("virtual", link=link)
    async with AsyncHarborClient(settings) as api:
        await api.authenticate()
        lockers = [x for x in await api.list_lockers(TOWER) if x.status.wire_name == "available"]
        locker = lockers[0]
        await api.reserve(TOWER, locker.id, 300)
        token = await api.create_dropoff_token(TOWER, locker.id, 86_400, "")
        phases = Latencies()
        found = None
        # Warm up once: the first token call authenticates for the SDK scope, the first scan powers the central.
        for round_ in range(cycles + 1):
            timer = PhaseTimer(phases if round_ else Latencies())
            start = time.perf_counter_ns()
            if rescan or found is None:
                found = await find_tower(backend, TOWER, timeout=5.0, timer=timer)
            client = TowerClient.over(backend, found.device, tower_id=TOWER, response_timeout=5.0, timer=timer)
            await client.connect()
            await client.start_session(api.create_session_token)
            # A drop-off token opens its locker again while it is occupied (a second drop-off).
            await client.open_with_token(token.payload, token.payload_auth)
            took = time.perf_counter_ns() - start
            if round_:
                latencies.record(name, took)
            await client.terminate()
            await client.disconnect()
            deadline = time.monotonic() + 5
            while door_open(locker.id) and time.monotonic() < deadline:  # the person closes it
                await asyncio.sleep(0.001)
        for phase in phases.names():
            if phase != "ble.terminate":  # after the open: not part of the cycle
                latencies.histogram(f"  {name}:{phase.removeprefix('ble.')}").add(phases.histogram(phase))


#: The cycles measured, each in process and out of process: (name, connection interval s, rescan).
_CYCLES = (
    ("open_cycle", 0.0, True),
    ("open_cycle_cached_scan", 0.0, False),
    ("open_cycle_latency_model", 0.0075, True),
)
#: What an out-of-process twin's name ends with.
OOP = "_oop"


def open_cycles(cycles: int) -> Latencies:
    """The cycles with the sandbox and its radio in this process."""
    from harness.sim import SimSettings, VirtualSandbox
    from harness.sim.radio import LatencyModel

    latencies = Latencies()
    with VirtualSandbox(SimSettings()) as sandbox:
        sandbox.radio.person.dwell = 0.001
        firmware = sandbox.world.firmwares[TOWER]
        for name, interval, rescan in _CYCLES:
            sandbox.world.reset()
            sandbox.radio.set_latency(LatencyModel(connection_interval=interval) if interval else LatencyModel.off())
            link = sandbox.radio.link
            asyncio.run(_cycles(sandbox.url, link, firmware.door_open, cycles, latencies, name, rescan=rescan))
    return latencies


def open_cycles_out_of_process(cycles: int) -> Latencies:
    """The same cycles with the sandbox in a child process serving its radio as HCI over TCP."""
    from harness.sim import SimSettings, VirtualSandbox

    latencies = Latencies()
    sandbox = VirtualSandbox(SimSettings()).start_subprocess(radio=True)
    try:
        control = sandbox.control
        transport = control.radio()["transport"]

        def door_open(locker_id: int) -> bool:
            return control.door_state(TOWER, locker_id)

        for name, interval, rescan in _CYCLES:
            control.reset()
            control.configure_radio(connection_interval=interval, jitter=0.001 if interval else 0.0)
            asyncio.run(_cycles(sandbox.url, transport, door_open, cycles, latencies, name + OOP, rescan=rescan))
    finally:
        sandbox.stop()
    return latencies


def ratios(latencies: Latencies) -> list[dict[str, Any]]:
    """Each out-of-process cycle over its in-process twin, at p50, p95 and p99 (one run)."""
    rows = []
    for name, _, _ in _CYCLES:
        if name not in latencies.names() or name + OOP not in latencies.names():
            continue
        row: dict[str, Any] = {"measure": name}
        for quantile in (50, 95, 99):
            inside, outside = latencies.percentile_ms(name, quantile), latencies.percentile_ms(name + OOP, quantile)
            row[f"p{quantile}_in_ms"], row[f"p{quantile}_oop_ms"] = inside, outside
            row[f"p{quantile}_ratio"] = outside / inside if inside else float("nan")
        rows.append(row)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--opens", type=int, default=2000, help="codec opens to time (default 2000)")
    parser.add_argument("--cycles", type=int, default=50, help="virtual open cycles per latency model (default 50)")
    parser.add_argument("--json", type=Path, help="also write the summaries (and the ratios) here")
    parser.add_argument(
        "--in-process-only", action="store_true", help="skip the out-of-process cycles (sandbox in a child process)"
    )
    args = parser.parse_args()

    latencies = cpu_per_open(args.opens)
    latencies.merge(open_cycles(args.cycles))
    if not args.in_process_only:
        latencies.merge(open_cycles_out_of_process(args.cycles))
    targets = {"cpu_per_open": 1.0, "open_cycle_cached_scan": 50.0}
    print(f"{'measure':<34}{'n':>6}{'p50 ms':>10}{'p95 ms':>10}{'p99 ms':>10}{'max ms':>10}  target")
    ok = True
    for summary in latencies.summaries():
        target = targets.get(summary.name)
        verdict = "" if target is None else (f"<= {target:g} ms " + ("ok" if summary.p50_ms <= target else "MISSED"))
        ok = ok and (target is None or summary.p50_ms <= target)
        print(
            f"{summary.name:<34}{summary.count:>6}{summary.p50_ms:>10.3f}{summary.p95_ms:>10.3f}"
            f"{summary.p99_ms:>10.3f}{summary.max_ms:>10.3f}  {verdict}"
        )
    compared = ratios(latencies)
    if compared:
        print(f"\n{'out of process / in process':<34}{'p50':>16}{'p95':>16}{'p99':>16}")
        for row in compared:
            cells = "".join(
                f"{row[f'p{q}_oop_ms']:>7.2f}/{row[f'p{q}_in_ms']:<5.2f}{row[f'p{q}_ratio']:>4.1f}x"
                for q in (50, 95, 99)
            )
            print(f"{row['measure']:<34}{cells}")
    if args.json is not None:
        document = {"summaries": [s.as_dict() for s in latencies.summaries()], "out_of_process_ratios": compared}
        args.json.write_text(json.dumps(document, indent=2))
    return 0 if ok else 3


if __name__ == "__main__":
    raise SystemExit(main())
