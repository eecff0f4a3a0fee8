"""``locker-harness cleanup`` gives back what a killed process left held, along the model's paths, and only that."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.config import ENVIRONMENT
from harness.errors import ExitCode
from harness.ledger import Ledger
from harness.sim import VirtualSandbox

TOWER = "0100000000000014"
LOCKER_HARNESS = Path(sys.executable).with_name("locker-harness")
DEMO = {"HARBOR_CLIENT_ID": "demo-provider", "HARBOR_CLIENT_SECRET": "demo-secret"}

#: A delivery client killed with SIGKILL after leaving lockers in every held state the model has.
CRASHING_RUN = textwrap.dedent(
    """
    import os, signal, sys
    import httpx
    from harness.api import Hold, HoldAction, HoldKind, HarborClient
    from harness.config import load_settings
    from harness.ledger import ledger_holds

    url, tower, stay = sys.argv[1], sys.argv[2], sys.argv[3] == "stay"
    settings = load_settings({"target": url, "tower_id": tower})
    holds = ledger_holds(settings, run_id="crashed-run")
    doors = httpx.Client(base_url=f"{url}/_sim/towers/{tower}/lockers")  # a person at the tower
    with HarborClient(settings, holds=holds) as api:
        def rented(locker):
            api.reserve(tower, locker, 300)
            return api.create_dropoff_token(tower, locker, 600)
        def opened(locker, token):
            body = {"payload": token.payload, "payload_auth": token.payload_auth}
            doors.post(f"/{locker}/open", json=body).raise_for_status()
        if stay:
            api.reserve(tower, 1408, 300)
            print("holding", flush=True)
            sys.stdin.read()
            sys.exit(0)
        api.reserve(tower, 1401, 300)                                   # reserved
        rented(1402)                                                    # rented
        rented(1403); api.release_locker(tower, 1403)                   # declined
        opened(1404, rented(1404)); doors.post("/1404/close")       # occupied
        opened(1405, rented(1405))                                      # occupied (the token used), door open
        opened(1406, rented(1406)); doors.post("/1406/close")
        opened(1406, api.create_pickup_token(tower, 1406, 600))         # occupied, door open for the pickup
        holds.before(Hold(HoldAction.CREATE, HoldKind.RESERVATION, tower, 1407, duration=300))  # killed mid-call
    print("crashing", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


@pytest.fixture(scope="module")
def sandbox() -> Iterator[VirtualSandbox]:
    with VirtualSandbox() as running:
        yield running


@pytest.fixture
def workdir(tmp_path: Path, sandbox: VirtualSandbox, monkeypatch: pytest.MonkeyPatch) -> Path:
    sandbox.control.reset()
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ENVIRONMENT}
    return {**env, **DEMO, **extra}


def _crash(sandbox: VirtualSandbox, workdir: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-c", CRASHING_RUN, sandbox.url, TOWER, "crash"],
        cwd=workdir,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == -signal.SIGKILL, run.stderr
    assert run.stdout.strip() == "crashing"


def _cleanup(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LOCKER_HARNESS), "cleanup", *args],
        env=env or _env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _cleanup_here(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    """The same command in this process (no interpreter start-up): its exit code and stdout, one line per row."""
    result = CliRunner().invoke(app, ["cleanup", *args], env={**dict.fromkeys(ENVIRONMENT), **(env or DEMO)})
    return result.exit_code, result.stdout


def _truth(sandbox: VirtualSandbox) -> dict[int, dict[str, Any]]:
    return {locker["id"]: locker for locker in sandbox.control.state()["lockers"] if locker["tower_id"] == TOWER}


def test_cleanup_gives_back_every_held_state_after_sigkill(sandbox: VirtualSandbox, workdir: Path) -> None:
    """After a SIGKILLed run, cleanup walks reserved, rented, declined, occupied and open-door lockers back to
    available, exits 0, and a second cleanup finds nothing."""
    _crash(sandbox, workdir)
    held = _truth(sandbox)
    assert {n: (held[n]["status"], held[n]["door_open"]) for n in range(1401, 1408)} == {
        1401: ("reserved", False),
        1402: ("rented", False),
        1403: ("declined", False),
        1404: ("occupied", False),
        1405: ("occupied", True),  # a drop-off is occupied as its door opens [S]
        1406: ("occupied", True),
        1407: ("available", False),
    }
    with Ledger.open(workdir / ".locker-harness") as ledger:
        open_rows = ledger.entries(open_only=True)
    assert {row.locker_id for row in open_rows} == set(range(1401, 1408))  # the test can fail: rows to clean

    done = _cleanup()
    assert done.returncode == ExitCode.OK, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    truth = _truth(sandbox)
    assert {n: (truth[n]["status"], truth[n]["door_open"]) for n in range(1401, 1408)} == dict.fromkeys(
        range(1401, 1408), ("available", False)
    )
    assert "cleanup: 6 released, 1 not held" in done.stdout
    assert "cleanup [7/7] locker 1407" in done.stderr
    with Ledger.open(workdir / ".locker-harness") as ledger:
        assert ledger.entries(open_only=True) == []

    again = _cleanup()
    assert again.returncode == ExitCode.OK
    assert "nothing left held" in again.stdout


def test_cleanup_leaves_a_live_run_alone(sandbox: VirtualSandbox, workdir: Path) -> None:
    """A run that still runs keeps its locker; once it is killed, cleanup gives the locker back."""
    with subprocess.Popen(
        [sys.executable, "-c", CRASHING_RUN, sandbox.url, TOWER, "stay"],
        cwd=workdir,
        env=_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as live:
        assert live.stdout is not None and live.stdout.readline().strip() == "holding"
        code, stdout = _cleanup_here()
        assert code == ExitCode.OK, stdout
        assert f"in use: its run still runs (pid {live.pid})" in stdout
        assert _truth(sandbox)[1408]["status"] == "reserved"
        live.kill()
    code, stdout = _cleanup_here()
    assert code == ExitCode.OK, stdout
    assert _truth(sandbox)[1408]["status"] == "available"


def test_another_hosts_rows_wait_out_their_grace_or_go_with_force(sandbox: VirtualSandbox, workdir: Path) -> None:
    """Rows written on a host of another name are shown with that host and their age, never called green
    while held, and given back with --force."""
    _crash(sandbox, workdir)
    with sqlite3.connect(workdir / ".locker-harness" / "ledger.sqlite") as db:
        db.execute("UPDATE holds SET host = 'ci-runner-7'")
    code, stdout = _cleanup_here()
    assert code == ExitCode.INFRASTRUCTURE, stdout
    assert "written on host ci-runner-7" in " ".join(stdout.split())
    assert _truth(sandbox)[1401]["status"] == "reserved"
    code, stdout = _cleanup_here("--force")
    assert code == ExitCode.OK, stdout
    assert {_truth(sandbox)[n]["status"] for n in range(1401, 1408)} == {"available"}


def test_without_virtual_doors_an_occupied_locker_needs_the_tower(
    sandbox: VirtualSandbox, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where no control plane opens doors (Harbor's sandbox, no tower), an occupied locker is reported by id with
    what to do, the exit code is 4, and what could be released still is."""
    _crash(sandbox, workdir)

    async def no_doors(url: str, **_: object) -> bool:
        return False

    monkeypatch.setattr("harness.targets._cleanup.serves_control_plane_async", no_doors)
    code, stdout = _cleanup_here()
    assert code == ExitCode.INFRASTRUCTURE, stdout
    assert "locker 1404 (door 4) on tower 0100000000000014 holds the test item: pick it up at the tower" in (
        " ".join(stdout.split())
    )
    truth = _truth(sandbox)
    assert [truth[n]["status"] for n in (1401, 1402, 1403)] == ["available"] * 3
    assert truth[1404]["status"] == "occupied"
    with Ledger.open(workdir / ".locker-harness") as ledger:
        left = {row.locker_id for row in ledger.entries(open_only=True)}
    assert left == {1404, 1405, 1406}  # kept for the next cleanup, once someone went to the tower


def test_dry_run_and_missing_credentials_change_nothing(sandbox: VirtualSandbox, workdir: Path) -> None:
    """--dry-run lists the lockers and changes nothing (exit 4 while the ledger says something is left to give
    back, 0 once nothing is); lockers of an identity the environment has no secret for are named, exit 2, and
    stay recorded for a cleanup with the right credentials."""
    _crash(sandbox, workdir)
    code, stdout = _cleanup_here("--dry-run", "--target", sandbox.url)
    assert code == ExitCode.INFRASTRUCTURE, stdout
    assert "7 locker(s) to look at" in stdout
    assert "0 locker(s) to look at" in _cleanup_here("--target", "sandbox")[1]
    assert _truth(sandbox)[1402]["status"] == "rented"

    code, stdout = _cleanup_here(env={"HARBOR_CLIENT_ID": "someone-else", "HARBOR_CLIENT_SECRET": "whatever"})
    assert code == ExitCode.USAGE, stdout
    assert "needs credentials: held by client 'demo-provider'" in " ".join(stdout.split())
    assert _truth(sandbox)[1401]["status"] == "reserved"
    assert _cleanup_here()[0] == ExitCode.OK
    assert _truth(sandbox)[1401]["status"] == "available"
    code, stdout = _cleanup_here("--dry-run")
    assert code == ExitCode.OK and "0 locker(s) to look at" in stdout, stdout


def test_a_timeout_keeps_what_was_given_back_before_it(sandbox: VirtualSandbox, workdir: Path) -> None:
    """When cleanup's time runs out mid-way, the lockers it gave back before are reported released (their rows
    closed); only the rest ran out, and stay recorded."""
    _crash(sandbox, workdir)
    # Locker 1402 answers only after the cleanup's time is up: 1401 (first) is given back before it.
    sandbox.control.set_faults("latency", ms=3000, paths=[f"/api/v1/towers/{TOWER}/lockers/1402"])
    try:
        code, stdout = _cleanup_here("--timeout", "1")
    finally:
        sandbox.control.clear_faults()
    assert code == ExitCode.INFRASTRUCTURE, stdout
    assert "cleanup: 1 released, 6 failed" in stdout
    assert _truth(sandbox)[1401]["status"] == "available"
    with Ledger.open(workdir / ".locker-harness") as ledger:
        left = {row.locker_id for row in ledger.entries(open_only=True)}
    assert left == set(range(1402, 1408))
