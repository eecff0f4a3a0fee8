"""What the rig leaves for others: its holds in the cleanup ledger, its BLE phases for a parent run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hw_rig import LATENCIES_ENV, Rig

from harness.ble import Phase
from harness.ledger import EntryState
from harness.metrics import Latencies

pytestmark = pytest.mark.anyio


async def test_holds_are_in_the_cleanup_ledger_until_given_back(rig: Rig) -> None:
    """The rig's reservation and token are ledger rows before the locker is given back, closed after."""

    first = rig.holds.ledger.last_id() + 1  # rows of earlier tests (the same locker, maybe) are not ours

    def rows(locker_id: int) -> dict[str, EntryState]:
        entries = rig.holds.ledger.entries(run_id=rig.holds.run_id)
        mine = (e for e in entries if e.id >= first and e.owner == rig.holds.owner and e.locker_id == locker_id)
        return {e.kind: e.state for e in mine}

    async with rig.api() as api:
        token = await rig.dropoff_token(api)
        held = rows(token.locker.id)
        assert await rig.release(api, token)
    assert held == {"reservation": EntryState.CREATED, "dropoff_token": EntryState.CREATED}
    assert rows(token.locker.id) == {"reservation": EntryState.RELEASED, "dropoff_token": EntryState.RELEASED}


def test_phases_are_written_where_the_parent_run_reads_them(rig: Rig, tmp_path: Path) -> None:
    """With LOCKER_HARNESS_LATENCIES_DIR set, the kept phases land there as one JSON file of encoded histograms."""
    timed = Latencies()
    timed.record(Phase.OPEN.value, 12_000_000)
    before = rig.latencies.count(Phase.OPEN.value)
    rig.keep(timed)
    path = rig.write_latencies({LATENCIES_ENV: str(tmp_path / "latencies")})
    assert path is not None and path.parent == tmp_path / "latencies" and path.suffix == ".json"
    written = Latencies.decode(json.loads(path.read_text(encoding="utf-8")))
    assert written.count(Phase.OPEN.value) == before + 1
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no partial file left behind
    assert rig.write_latencies({}) is None  # no parent asked: nothing written
