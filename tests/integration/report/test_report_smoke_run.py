"""`run`'s smoke stage against the embedded sandbox: evidence on disk, defects classified, regressions found."""

from __future__ import annotations

import dataclasses
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.config import BleBackend, Credentials, Secret, Settings, Target, TargetKind
from harness.errors import BluetoothUnavailable, ExitCode
from harness.history import History, Tolerance, compare
from harness.redaction import Redactor
from harness.report import CATEGORIES, RunResult, TargetInfo, Verdict
from harness.run import RunContext, SmokeStage, execute, new_context
from harness.sim import VirtualSandbox

TOWER = "0100000000000014"
SECRET = "demo-secret"


@pytest.fixture(scope="module")
def sandbox() -> Iterator[VirtualSandbox]:
    with VirtualSandbox() as running:
        yield running


@pytest.fixture
def fresh(sandbox: VirtualSandbox) -> VirtualSandbox:
    sandbox.control.reset(seed=0)
    return sandbox


def _run(
    sandbox: VirtualSandbox,
    tmp_path: Path,
    history: History | None = None,
    *,
    radio: bool = False,
    firmware: str | None = "1.2.3",
) -> RunResult:
    settings = Settings().with_target(Target.local().running_at(sandbox.url))
    settings = settings.with_credentials(Credentials("demo-provider", Secret(SECRET)))
    settings = dataclasses.replace(
        settings, reports_dir=tmp_path / "reports", state_dir=tmp_path / "state", status_timeout=1.0
    )
    context = new_context(
        settings=settings,
        target=TargetInfo("local", sandbox.url, TOWER, firmware),
        redactor=Redactor([SECRET]),
        budget_s=60,
        radio_link=(lambda: sandbox.radio.link) if radio else None,
    )
    return execute([SmokeStage()], context, history=history)


def _everything_written(folder: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in folder.rglob("*") if p.is_file())


def _allure_results(folder: Path) -> list[dict[str, Any]]:
    """The smoke stage's Allure results (refuted assumptions, if any, are a suite of their own)."""
    results = [json.loads(p.read_text()) for p in (folder / "allure-results").glob("*-result.json")]
    return [r for r in results if {"name": "suite", "value": "assumptions"} not in r.get("labels", [])]


def test_a_green_smoke_run_leaves_every_report(fresh: VirtualSandbox, tmp_path: Path) -> None:
    """Exit 0; JUnit with 12 passed steps, an Allure test whose steps carry redacted HTTP evidence, summaries."""
    run = _run(fresh, tmp_path)
    folder = tmp_path / "reports" / run.run_id
    assert run.exit_code is ExitCode.OK, (folder / "summary.md").read_text()

    suite = ET.parse(folder / "junit" / "smoke.xml").getroot().find("testsuite")
    assert suite is not None and (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("12", "0", "0")

    [delivery] = _allure_results(folder)
    assert delivery["status"] == "passed"
    steps = {step["name"]: step for step in delivery["steps"]}
    assert list(steps)[:4] == ["authenticate", "list_lockers", "pick_locker", "reserve"]
    [exchange] = steps["reserve"]["attachments"]
    assert re.fullmatch(r"POST /api/v1/towers/\w+/lockers/\d+/reservations -> 201", exchange["name"])
    evidence = json.loads((folder / "allure-results" / exchange["source"]).read_text())
    assert evidence["request"]["headers"]["authorization"] == "[REDACTED]"
    assert evidence["response"]["status"] == 201

    properties = (folder / "allure-results" / "environment.properties").read_text()
    assert f"tower={TOWER}" in properties and "seed=0" in properties
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["verdict"] == "passed" and summary["stages"][0]["figures"]["steps"] == "12/12"
    assert SECRET not in _everything_written(folder)


def test_a_bug_switch_fails_the_run_as_a_product_defect_everywhere(fresh: VirtualSandbox, tmp_path: Path) -> None:
    """With stale_status_after_close on: exit 1, and summary, JUnit and Allure's category all say product defect."""
    fresh.control.set_bugs(stale_status_after_close=True)
    run = _run(fresh, tmp_path)
    folder = tmp_path / "reports" / run.run_id
    assert run.exit_code is ExitCode.DEFECT

    assert re.search(r"\| smoke \| product \| available \| ProductDefect: ", (folder / "summary.md").read_text())
    failure = ET.parse(folder / "junit" / "smoke.xml").getroot().find(".//testcase[@name='available']/failure")
    assert failure is not None and failure.get("type") == "product:ProductDefect"

    [delivery] = _allure_results(folder)
    assert delivery["status"] == "failed"
    message = delivery["statusDetails"]["message"]
    first = next(
        c
        for c in CATEGORIES
        if delivery["status"] in c["matchedStatuses"] and re.search(c.get("messageRegex", ""), message)
    )
    assert first["name"] == "Product defects"


def test_compare_flags_the_step_a_latency_fault_slowed(
    fresh: VirtualSandbox, sandbox: VirtualSandbox, tmp_path: Path
) -> None:
    """Two runs, the second with the sandbox's latency fault on reservations: compare flags reserve."""
    with History.open(tmp_path / "state") as history:
        _run(fresh, tmp_path, history)
        sandbox.control.reset(seed=0)
        sandbox.control.set_faults("latency", ms=400, paths=[f"/api/v1/towers/{TOWER}/lockers/1401/reservations"])
        try:
            slow = _run(sandbox, tmp_path, history)
        finally:
            sandbox.control.clear_faults()
        assert slow.exit_code is ExitCode.OK
        comparison = compare(*history.pair([]), Tolerance(relative=0.2, floor_ms=200.0))
    flagged = {c.step: c.regressions for c in comparison.regressions}
    # One sample per step: on a loaded 2-core machine another step may pause too; the fault's must show.
    assert flagged["reserve"] == ("p95", "p99")


def test_the_smoke_stage_opens_doors_over_the_radio_as_the_smoke_command_does(
    fresh: VirtualSandbox, tmp_path: Path
) -> None:
    """Given the embedded sandbox's radio, the stage opens over BLE (a tower session per open), not via /_sim,
    and the firmware the tower advertised reaches the reports' environment."""
    run = _run(fresh, tmp_path, radio=True, firmware=None)
    folder = tmp_path / "reports" / run.run_id
    assert run.exit_code is ExitCode.OK, (folder / "summary.md").read_text()
    [delivery] = _allure_results(folder)
    steps = {step["name"]: step for step in delivery["steps"]}
    opened = [a["name"] for a in steps["open_for_dropoff"]["attachments"]]
    assert any("/session-token -> " in name for name in opened), opened
    everything = [a["name"] for step in delivery["steps"] for a in step.get("attachments", [])]
    assert not any("/_sim/" in name for name in everything), everything
    advertised = fresh.world.firmwares[TOWER].firmware_version
    assert run.target.firmware == advertised
    assert f"tower.firmware={advertised}\n" in (folder / "allure-results" / "environment.properties").read_text()


def _harbor_context(tmp_path: Path, tower: str | None) -> RunContext:
    target = Target(TargetKind.SANDBOX, "https://api.sandbox.harborlockers.com")
    settings = Settings(target=target, tower_id=tower, ble=BleBackend.BLEAK, reports_dir=tmp_path / "reports")
    return new_context(settings=settings, target=TargetInfo("sandbox", target.api_url, tower), redactor=Redactor())


def test_on_harbors_sandbox_without_a_bench_tower_the_smoke_stage_is_skipped(tmp_path: Path) -> None:
    """No tower named: skipped with the reason, before any request."""
    [result] = execute([SmokeStage()], _harbor_context(tmp_path, None)).stages
    assert (result.verdict, result.reason) == (
        Verdict.SKIPPED,
        "no bench tower named: set HARBOR_TOWER_ID to a tower within Bluetooth range",
    )


def test_no_adapter_skips_the_smoke_stage_unless_bluetooth_was_asked_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tower named but no adapter: skipped under the target's default radio, could-not-test with HARBOR_BLE=bleak."""

    async def no_adapter(*args: object, **kwargs: object) -> None:
        raise BluetoothUnavailable("no Bluetooth adapter: bluetoothd is not running")

    monkeypatch.setattr("harness.run._smoke.smoke_delivery", no_adapter)
    monkeypatch.delenv("HARBOR_BLE", raising=False)
    [implicit] = execute([SmokeStage()], _harbor_context(tmp_path, TOWER)).stages
    assert (implicit.verdict, implicit.reason) == (
        Verdict.SKIPPED,
        "no bench tower within reach: no Bluetooth adapter: bluetoothd is not running",
    )
    monkeypatch.setenv("HARBOR_BLE", "bleak")
    run = execute([SmokeStage()], _harbor_context(tmp_path, TOWER))
    assert (run.stages[0].verdict, run.exit_code) == (Verdict.INFRASTRUCTURE, ExitCode.INFRASTRUCTURE)
