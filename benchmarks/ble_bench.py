"""BLE benchmark: the harness's own CPU per open, and the whole virtual open cycle.

    .venv/bin/python benchmarks/ble_bench.py [--opens 2000] [--cycles 50] [--json FILE]

1. **CPU per open** (target: median <= 1 ms): the phone's side of one door opening in the
   codec: REQUEST_SESSION built and cut into MTU writes; GRANT_SESSION reassembled, verified,
   decrypted, session keys derived; OPEN_LOCKER_WITH_TOKEN sealed and cut; LOCKER_OPENED
   reassembled, verified, decrypted. The tower's half runs between the timed parts, untimed.
2. **Virtual open cycle** (target: median <= 50 ms): scan -> connect (GATT discovery) -> UART
   setup and device info -> session token from the API (HTTP to the in-process sandbox) ->
   REQUEST/GRANT_SESSION -> OPEN_LOCKER_WITH_TOKEN -> LOCKER_OPENED, through bleak, the virtual
   backend and bumble, with the latency model off (LocalLink has no air time, so this is the
   harness's and bumble's own cost) and then on (7.5 ms connection interval) for the shape.

Medians, p95 and p99 come from HdrHistograms of one run. Numbers are wall time on this machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
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


async def _cycles(sandbox: Any, cycles: int, latencies: Latencies, name: str, *, rescan: bool) -> None:
    from harness.api import AsyncHarborClient
    from harness.ble import PhaseTimer, TowerClient, choose_backend, find_tower
    from harness.config import Settings, Target
    from harness.redaction import Secret

    settings = Settings(
        target=Target.local().running_at(sandbox.url),
        client_id="demo-provider",
        client_secret=Secret("demo-secret"),
        tower_id=TOWER,
    )
    backend = choose_backend("virtual", link=sandbox.radio.link)
    firmware = sandbox.world.firmwares[TOWER]
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
            while firmware.door_open(locker.id) and time.monotonic() < deadline:  # the person closes it
                await asyncio.sleep(0.001)
        for phase in phases.names():
            if phase != "ble.terminate":  # after the open: not part of the cycle
                latencies.histogram(f"  {name}:{phase.removeprefix('ble.')}").add(phases.histogram(phase))


def open_cycles(cycles: int) -> Latencies:
    from harness.sim import SimSettings, VirtualSandbox
    from harness.sim.radio import LatencyModel

    latencies = Latencies()
    with VirtualSandbox(SimSettings()) as sandbox:
        sandbox.radio.person.dwell = 0.001
        for name, model, rescan in (
            ("open_cycle", LatencyModel.off(), True),
            ("open_cycle_cached_scan", LatencyModel.off(), False),
            ("open_cycle_latency_model", LatencyModel(), True),
        ):
            sandbox.world.reset()
            sandbox.radio.set_latency(model)
            asyncio.run(_cycles(sandbox, cycles, latencies, name, rescan=rescan))
    return latencies


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--opens", type=int, default=2000, help="codec opens to time (default 2000)")
    parser.add_argument("--cycles", type=int, default=50, help="virtual open cycles per latency model (default 50)")
    parser.add_argument("--json", type=Path, help="also write the summaries here")
    args = parser.parse_args()

    latencies = cpu_per_open(args.opens)
    latencies.merge(open_cycles(args.cycles))
    targets = {"cpu_per_open": 1.0, "open_cycle": 50.0, "open_cycle_cached_scan": 50.0}
    print(f"{'measure':<26}{'n':>6}{'p50 ms':>10}{'p95 ms':>10}{'p99 ms':>10}{'max ms':>10}  target")
    ok = True
    for summary in latencies.summaries():
        target = targets.get(summary.name)
        verdict = "" if target is None else (f"<= {target:g} ms " + ("ok" if summary.p50_ms <= target else "MISSED"))
        ok = ok and (target is None or summary.p50_ms <= target)
        print(
            f"{summary.name:<26}{summary.count:>6}{summary.p50_ms:>10.3f}{summary.p95_ms:>10.3f}"
            f"{summary.p99_ms:>10.3f}{summary.max_ms:>10.3f}  {verdict}"
        )
    if args.json is not None:
        args.json.write_text(json.dumps([s.as_dict() for s in latencies.summaries()], indent=2))
    return 0 if ok else 3


if __name__ == "__main__":
    raise SystemExit(main())
