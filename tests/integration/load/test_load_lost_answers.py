"""Lost answers under load (dropped connections, 5xx) are errors of their own kind, never false
product defects; the oracles still see a planted defect through them.

Each run is short and against one virtual sandbox in a thread (reset before each test).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.sim import VirtualSandbox

from .test_load_runs import DEMO, TOWER, held, invoke, summary_of

pytestmark = pytest.mark.load

#: Contention and deliveries: the mix where a lost answer used to become a double booking.
MIX = ["-d", "3", "-u", "8", "--weights", "delivery=2,contention=2"]


@pytest.fixture(scope="module")
def sandbox() -> Iterator[VirtualSandbox]:
    with VirtualSandbox() as running:
        yield running


@pytest.fixture(autouse=True)
def _in_empty_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize(
    ("profile", "params", "kind"),
    [
        ("drop_connection", {"fraction": 0.05}, "answers_lost"),
        ("http_5xx", {"fraction": 0.05}, "server_errors"),
    ],
)
def test_lost_answers_on_an_honest_sandbox_are_no_violation(
    sandbox: VirtualSandbox, tmp_path: Path, profile: str, params: dict[str, float], kind: str
) -> None:
    """5 % of answers lost: counted as their kind of error, 0 violations, nothing left held."""
    sandbox.control.reset()
    sandbox.control.set_faults(profile, **params)
    code, stdout, stderr = invoke(["--target", sandbox.url, "--tower", TOWER, *MIX], DEMO)
    summary = summary_of(tmp_path)
    assert summary["totals"]["violations"] == 0, stdout + stderr
    assert summary["totals"][kind] > 0, stdout + stderr
    assert code in (0, 3), stdout + stderr  # a breached failure ratio or 5xx gate, never a defect
    sandbox.control.set_faults("none")
    assert held(sandbox) == []


def test_lost_answers_across_processes_are_no_violation(sandbox: VirtualSandbox, tmp_path: Path) -> None:
    """Two Locust processes of one identity, 5 % of answers lost: no process's cleanup takes a locker
    from under the other's users (each reserves only its own share), so 0 violations, nothing held."""
    sandbox.control.reset()
    sandbox.control.set_faults("drop_connection", fraction=0.05)
    args = ["-d", "3", "-u", "16", "--weights", "delivery=1,contention=3", "--processes", "2"]
    code, stdout, stderr = invoke(["--target", sandbox.url, "--tower", TOWER, *args], DEMO)
    summary = summary_of(tmp_path)
    assert summary["workers"]["reported"] == 2, stdout + stderr
    assert summary["totals"]["violations"] == 0, summary["violation_examples"]
    assert summary["totals"]["answers_lost"] > 0 and code in (0, 3), stdout + stderr
    sandbox.control.set_faults("none")
    assert held(sandbox) == []


def test_a_planted_double_booking_is_still_seen_through_lost_answers(sandbox: VirtualSandbox, tmp_path: Path) -> None:
    """Reconciling lost answers does not blind the oracle: double booking on, drops on, exit 1."""
    sandbox.control.reset()
    sandbox.control.set_bugs(double_booking=True)
    sandbox.control.set_faults("drop_connection", fraction=0.05)
    code, stdout, stderr = invoke(["--target", sandbox.url, "--tower", TOWER, *MIX], DEMO)
    assert code == 1, stdout + stderr
    assert summary_of(tmp_path)["violations"]["double_booking"] > 0


def test_5xx_from_the_token_endpoint_are_server_errors(sandbox: VirtualSandbox, tmp_path: Path) -> None:
    """The token endpoint is a host of the target: its 5xx are server errors, and breach the default gate."""
    sandbox.control.reset()
    sandbox.control.set_faults("http_5xx", paths="/realms", count=2)
    args = ["--target", sandbox.url, "--tower", TOWER, "-d", "2", "-u", "2", "--weights", "delivery=1"]
    code, stdout, stderr = invoke(args, DEMO)
    summary = summary_of(tmp_path)
    assert summary["totals"]["server_errors"] == 2, stdout + stderr
    assert summary["totals"]["violations"] == 0
    assert code == 3 and "server_errors 2 > 0" in summary["reason"], stdout + stderr
