"""``props`` and ``contract`` against a sandbox others share: never reseeded, its clock never moved,
another tenant's holds untouched, unless the run says it is the sandbox's only user (``--exclusive``).
The suite's own identity's other holds (another run of it, a ``load`` alongside) are untouched too:
a give-back releases only what the run itself asked to hold."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.api import HarborClient
from harness.config import ENVIRONMENT, Credentials, load_settings
from harness.redaction import Secret
from harness.sim import DEMO_IDENTITIES, Identity, SimSettings, VirtualSandbox

TOWER = "0100000000000014"
LOCKER_HARNESS = Path(sys.executable).with_name("locker-harness")
THIRD = Identity("third-tenant", "third-tenant-secret")
#: Lockers the third tenant holds while the suites run (not among the first available ones).
THIRDS = (1420, 1421)
#: Lockers the suite's own identity holds for another run while the suites run: on the tower under
#: test and on another tower (as a ``load`` of the same identity alongside would).
OTHER_TOWER = "0100000000000175"
OTHER_RUNS = ((TOWER, 1422), (OTHER_TOWER, 17501), (OTHER_TOWER, 17502))


@pytest.fixture(scope="module")
def sandbox() -> Iterator[VirtualSandbox]:
    with VirtualSandbox(SimSettings(identities=(*DEMO_IDENTITIES, THIRD))) as running:
        yield running


def _third_holds(sandbox: VirtualSandbox) -> None:
    settings = load_settings({"target": sandbox.url, "tower_id": TOWER}, environ={}, cwd=Path("/nonexistent-dir"))
    credentials = Credentials(THIRD.client_id, Secret(THIRD.client_secret))
    with HarborClient(settings, credentials=credentials) as third:
        for locker in THIRDS:
            third.reserve(TOWER, locker, 3600)


def _another_run_holds(sandbox: VirtualSandbox) -> None:
    """The suite's own identity (demo-provider) holds lockers for a run other than the suite's."""
    settings = load_settings({"target": sandbox.url, "tower_id": TOWER}, environ={}, cwd=Path("/nonexistent-dir"))
    main = DEMO_IDENTITIES[0]
    with HarborClient(settings, credentials=Credentials(main.client_id, Secret(main.client_secret))) as other_run:
        for tower, locker in OTHER_RUNS:
            other_run.reserve(tower, locker, 3600)


def _other_runs_lockers(sandbox: VirtualSandbox) -> dict[int, str]:
    wanted = {locker for _, locker in OTHER_RUNS}
    return {
        locker["id"]: f"{locker['status']} by {locker.get('holder')}"
        for locker in sandbox.control.state()["lockers"]
        if locker["id"] in wanted
    }


def _thirds_lockers(sandbox: VirtualSandbox) -> dict[int, str]:
    return {
        locker["id"]: f"{locker['status']} by {locker.get('holder')}"
        for locker in sandbox.control.state()["lockers"]
        if locker["id"] in THIRDS
    }


def _environment(tmp_path: Path) -> dict[str, str]:
    main, second = DEMO_IDENTITIES[0], DEMO_IDENTITIES[1]
    env = {key: value for key, value in os.environ.items() if key not in ENVIRONMENT}
    return env | {
        "HARBOR_CLIENT_ID": main.client_id,
        "HARBOR_CLIENT_SECRET": main.client_secret,
        "HARBOR_SECOND_CLIENT_ID": second.client_id,
        "HARBOR_SECOND_CLIENT_SECRET": second.client_secret,
        "HARBOR_STATE_DIR": str(tmp_path / "state"),
        "HARBOR_REPORTS_DIR": str(tmp_path / "reports"),
    }


def _suite(sandbox: VirtualSandbox, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``props`` or ``contract`` as a user types it. The contract suite runs through pytest and the
    plugin (what ``contract`` runs as its child) with few examples: its clean slates over REST take
    the time a busy machine does not have within the command's smallest budget."""
    if args[0] == "contract":
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "contracts/test_contract.py"]
        command += ["--harbor-target", sandbox.url, "--harbor-tower", TOWER, "--harbor-budget", "2", *args[1:]]
        cwd = Path(__file__).resolve().parents[3]
    else:
        command = [str(LOCKER_HARNESS), *args, "--target", sandbox.url, "--tower", TOWER, "--budget", "30"]
        cwd = tmp_path
    return subprocess.run(
        command, env=_environment(tmp_path), cwd=cwd, capture_output=True, text=True, timeout=240, check=False
    )


@pytest.mark.parametrize("suite", ["props", "contract"])
def test_a_shared_sandbox_is_left_as_found(sandbox: VirtualSandbox, tmp_path: Path, suite: str) -> None:
    """Without --exclusive: the third tenant still holds its lockers, the clock was not moved, and the
    checks that need a reseed or a clock say why they skipped."""
    sandbox.control.reset()
    _third_holds(sandbox)
    _another_run_holds(sandbox)
    before = _thirds_lockers(sandbox)
    done = _suite(sandbox, tmp_path, suite)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert _thirds_lockers(sandbox) == before == dict.fromkeys(THIRDS, "reserved by third-tenant")
    owner = DEMO_IDENTITIES[0].client_id
    assert _other_runs_lockers(sandbox) == {locker: f"reserved by {owner}" for _, locker in OTHER_RUNS}, output
    assert sandbox.control.state()["clock_offset"] == 0, output


def test_exclusive_lets_the_suite_reseed_the_sandbox(sandbox: VirtualSandbox, tmp_path: Path) -> None:
    """With --exclusive the run is the sandbox's only user: it reseeds it (so the test above can fail)."""
    sandbox.control.reset()
    _third_holds(sandbox)
    done = _suite(sandbox, tmp_path, "props", "--exclusive")
    assert done.returncode == 0, done.stdout + done.stderr
    assert _thirds_lockers(sandbox) == dict.fromkeys(THIRDS, "available by None")
