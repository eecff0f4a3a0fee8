"""The cleanup ledger across processes: live runs left alone, concurrent writers, forked workers."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.api import Hold, HoldAction, HoldKind
from harness.config import Settings, Target
from harness.ledger import EntryState, Ledger, LedgerHolds, plan
from harness.redaction import Secret

TOWER = "0100000000000014"
URL = "http://127.0.0.1:9"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        target=Target.local().running_at(URL),
        client_id="demo-provider",
        client_secret=Secret("demo-secret"),
        state_dir=tmp_path / "state",
    )


@pytest.fixture
def ledger(settings: Settings) -> Iterator[Ledger]:
    with Ledger.open(settings.state_dir) as opened:
        yield opened


def _write_and_exit(state_dir: Path, locker_id: int, *, stay: bool = False) -> subprocess.Popen[str]:
    """A child process that writes one reservation intent, then exits (or waits for its stdin to close)."""
    code = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from harness.api import Hold, HoldAction, HoldKind
        from harness.config import Settings, Target
        from harness.ledger import ledger_holds
        settings = Settings(target=Target.local().running_at({URL!r}), client_id="demo-provider",
                            state_dir=Path({str(state_dir)!r}))
        ledger_holds(settings, run_id="crashed").before(
            Hold(HoldAction.CREATE, HoldKind.RESERVATION, {TOWER!r}, {locker_id}, duration=300))
        print("written", flush=True)
        if {stay!r}:
            sys.stdin.read()
        """
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stdout.readline().strip() == "written"
    return child


def test_plan_leaves_live_runs_alone_and_groups_dead_rows_by_locker(ledger: Ledger, settings: Settings) -> None:
    """Rows of a process that still runs are set aside; a dead process's rows become one claim per locker."""
    with _write_and_exit(settings.state_dir, 1403) as dead:
        dead.wait(timeout=30)
    live = _write_and_exit(settings.state_dir, 1404, stay=True)
    try:
        work = plan(ledger.entries(open_only=True))
        assert [(claim.locker_id, claim.client_id, len(claim.entries)) for claim in work.claims] == [
            (1403, "demo-provider", 1)
        ]
        assert [entry.locker_id for entry in work.live] == [1404]
    finally:
        with live:  # closes its stdin (so it leaves) and its stdout, then waits
            pass
    assert sorted(claim.locker_id for claim in plan(ledger.entries(open_only=True)).claims) == [1403, 1404]


def test_processes_write_at_once_without_losing_a_row(settings: Settings) -> None:
    """Three processes writing and settling 150 rows each at the same time lose nothing and never see 'locked'."""
    code = textwrap.dedent(
        f"""
        from pathlib import Path
        from harness.api import Hold, HoldAction, HoldKind
        from harness.config import Settings, Target
        from harness.ledger import ledger_holds
        settings = Settings(target=Target.local().running_at({URL!r}), client_id="demo-provider",
                            state_dir=Path({str(settings.state_dir)!r}))
        holds = ledger_holds(settings, run_id="load")
        for n in range(150):
            hold = Hold(HoldAction.CREATE, HoldKind.RESERVATION, {TOWER!r}, 1401 + n % 20, duration=300)
            holds.before(hold)
            holds.after(hold, None, RuntimeError("no answer"))
        assert holds.failed_writes == 0, holds.failed_writes
        """
    )
    Ledger.open(settings.state_dir).close()  # the file exists before the race starts, as in a run
    children = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(3)]
    assert [child.wait(timeout=60) for child in children] == [0, 0, 0]
    with Ledger.open(settings.state_dir) as ledger:
        rows = ledger.entries(run_id="load")
    assert len(rows) == 450
    assert {row.state for row in rows} == {EntryState.UNKNOWN}
    assert len({row.owner for row in rows}) == 3


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork (Locust's --processes)")
def test_forked_child_writes_with_its_own_pid(ledger: Ledger, settings: Settings) -> None:
    """A ledger opened before a fork reconnects in the child and stamps the child's pid."""
    holds = LedgerHolds(ledger, settings, run_id="fork")
    pid = os.fork()
    if pid == 0:  # the child: write one row and leave at once, without pytest's teardown
        try:
            holds.before(Hold(HoldAction.CREATE, HoldKind.RESERVATION, TOWER, 1405, duration=300))
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    (row,) = ledger.entries(run_id="fork")
    assert row.process.pid == pid
    assert not row.process.alive()
