"""The redaction canary: a run with a distinctive secret leaves no secret in anything it wrote or printed."""

from __future__ import annotations

import base64
import os
import re
import secrets
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.api import HarborClient, Scope
from harness.config import Settings, Target
from harness.redaction import Secret
from harness.sim import SimSettings, VirtualSandbox
from tests.headless_chromium import browser, dump_dom

TOWER = "0100000000000014"
LOCKER_HARNESS = Path(sys.executable).with_name("locker-harness")
ISSUED_LOG_ENV = "HARBOR_SIM_ISSUED_LOG"  # the sandbox's debug hook (harness/sim/_issued.py)


def read_issued(path: Path) -> dict[str, set[str]]:
    """The sandbox's issued-secrets log as ``{key: values}``."""
    issued: dict[str, set[str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        key, _, value = line.partition("\t")
        issued.setdefault(key, set()).add(value)
    return issued


def test_sandbox_lists_every_secret_it_issues(tmp_path: Path) -> None:
    """With the debug hook on, the sandbox logs each bearer token, payload_auth and session seed it hands out."""
    log = tmp_path / "issued.log"
    with VirtualSandbox(SimSettings(issued_log=str(log))) as sandbox:
        settings = Settings(
            target=Target.local().running_at(sandbox.url),
            client_id="demo-provider",
            client_secret=Secret("demo-secret"),
        )
        with HarborClient(settings) as api:
            api.authenticate()
            api.authenticate(Scope.TOWER_ACCESS)
            api.reserve(TOWER, 1401, 300)
            token = api.create_dropoff_token(TOWER, 1401, 600)
            session = api.create_session_token(TOWER, "1.2.3")
    issued = read_issued(log)
    assert len(issued["access_token"]) == 2
    assert issued["payload_auth"] == {token.payload_auth, session.payload_auth}
    assert issued["session_seed"] == {session.session_seed}


def _search(haystacks: dict[str, bytes], needles: dict[str, str]) -> list[str]:
    """``where: what`` for every needle found in a haystack."""
    found = []
    for where, data in haystacks.items():
        for what, needle in needles.items():
            if needle.encode() in data:
                found.append(f"{where}: {what}")
    return found


#: What the canary in `make test` runs, at once: the run machinery (Allure, JUnit, summaries, history,
#: ledger, the last redaction pass), a delivery over the virtual radio (session seeds), and Locust.
QUICK_COMMANDS = {
    "run": ["run", "--only", "smoke"],
    "smoke": ["smoke"],
    "load": ["load", "--duration", "1", "--users", "2", "--weights", "delivery=1"],
    # the probe's HAR file carries every exchange it made, the token endpoint's and a token's answers too
    "probe": ["probe", "--write"],
}
#: The whole of `run` (every stage: Schemathesis, Hypothesis, the rig) and a load run: -m slow only.
FULL_COMMANDS = {"run": ["run"], "load": ["load", "--duration", "2", "--users", "4"]}


def _canary_env(issued_log: Path) -> tuple[dict[str, str], dict[str, str]]:
    canary = {
        "HARBOR_CLIENT_ID": f"canary-client-{secrets.token_hex(3)}",
        "HARBOR_CLIENT_SECRET": f"canary-secret-{secrets.token_hex(12)}",
        "HARBOR_SECOND_CLIENT_ID": f"canary-second-{secrets.token_hex(3)}",
        "HARBOR_SECOND_CLIENT_SECRET": f"canary-second-secret-{secrets.token_hex(12)}",
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("HARBOR_")}
    return env | canary | {ISSUED_LOG_ENV: str(issued_log), "HARBOR_BUDGET": "2"}, canary


@dataclass
class CanaryRun:
    """What the commands of a canary run left: every file and output, the secrets given and issued."""

    files: dict[str, bytes]
    outputs: dict[str, bytes]
    needles: dict[str, str]

    def leaks(self) -> list[str]:
        return _search(self.files | self.outputs, self.needles)


def _run_commands(tmp_path: Path, commands: dict[str, list[str]]) -> CanaryRun:
    """Run ``commands`` side by side, each in its own folder, with a canary secret; collect all they left."""
    hook = tmp_path / "hook"
    hook.mkdir()
    issued_log = hook / "issued.log"
    env, canary = _canary_env(issued_log)
    children: dict[str, subprocess.Popen[bytes]] = {}
    for name, args in commands.items():
        (tmp_path / name).mkdir()
        children[name] = subprocess.Popen(
            [str(LOCKER_HARNESS), *args], cwd=tmp_path / name, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
    outputs: dict[str, bytes] = {}
    try:
        for name, child in children.items():
            outputs[f"{name} stdout"], outputs[f"{name} stderr"] = child.communicate(timeout=300)
    finally:
        for child in children.values():
            if child.poll() is None:
                child.kill()
                child.communicate()
    for name in commands:
        assert b"Traceback" not in outputs[f"{name} stderr"], outputs[f"{name} stderr"].decode()

    files = {
        str(path.relative_to(tmp_path)): path.read_bytes()
        for name in commands
        for path in (tmp_path / name).rglob("*")
        if path.is_file()
    }
    issued = read_issued(issued_log)
    assert issued["access_token"] and issued["payload_auth"]  # the search can fail
    needles = {"client secret": canary["HARBOR_CLIENT_SECRET"], "second secret": canary["HARBOR_SECOND_CLIENT_SECRET"]}
    for key, values in issued.items():
        needles |= {f"{key} #{n}": value for n, value in enumerate(sorted(values))}
    basic = base64.b64encode(f"{canary['HARBOR_CLIENT_ID']}:{canary['HARBOR_CLIENT_SECRET']}".encode()).decode()
    needles["client secret as HTTP Basic"] = basic
    return CanaryRun(files, outputs, needles)


def _run_canary(tmp_path: Path, commands: dict[str, list[str]]) -> None:
    """Run ``commands`` with a canary secret; no secret in anything they left."""
    run = _run_commands(tmp_path, commands)
    files = run.files
    assert any(name.endswith(".xml") for name in files)  # JUnit
    assert any("allure-results" in name for name in files)
    assert any(name.endswith(".csv") for name in files) and any(name.endswith(".html") for name in files)  # Locust
    assert any(name.endswith("ledger.sqlite") for name in files) and any(
        name.endswith("history.sqlite") for name in files
    )
    assert any(name.startswith("session_seed #") for name in run.needles)  # a delivery over the radio ran
    if "probe" in commands:
        assert any(name.endswith("probe/exchanges.har") for name in files)
    leaks = run.leaks()
    assert leaks == [], "\n".join(leaks[:20])


def test_run_smoke_and_load_leave_no_secret_anywhere(tmp_path: Path) -> None:
    """`run`, `smoke` (BLE) and `load` on local with a distinctive secret: neither it nor any bearer token,
    payload_auth or session seed the sandboxes issued is in a file they wrote or in their output."""
    _run_canary(tmp_path, QUICK_COMMANDS)


@pytest.mark.slow
def test_every_stage_leaves_no_secret_anywhere(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """The whole of `run` (contract, properties, the rig) and a load run leave no secret anywhere (-m slow)."""
    if "slow" not in (request.config.getoption("markexpr") or ""):
        pytest.skip("the full canary runs every stage (a minute or more): select it with -m slow")
    _run_canary(tmp_path, FULL_COMMANDS)


def test_locust_report_of_a_run_keeps_no_secret_and_renders_with_its_charts(tmp_path: Path) -> None:
    """A load run's redacted load/locust.html holds none of the run's secrets, and Locust's page still runs
    in headless Chromium: its charts are drawn and its statistics table lists the load's steps."""
    chromium = browser()  # first: without a browser there is nothing this test can show
    run = _run_commands(tmp_path, {"load": QUICK_COMMANDS["load"]})
    leaks = run.leaks()
    assert leaks == [], "\n".join(leaks[:20])
    pages = sorted((tmp_path / "load").glob("reports/*/load/locust.html"))
    assert len(pages) == 1, pages
    dom = dump_dom(chromium, pages[0])
    # ECharts draws each chart on a canvas it tags; a page whose script stopped has none.
    charts = re.findall(r"<canvas\b[^>]*\bdata-zr-dom-id=", dom)
    assert len(charts) >= 3, "Locust's charts (requests/s, response times, users) were not drawn"
    cells = {" ".join(re.sub(r"<[^>]+>", " ", cell).split()) for cell in re.findall(r"<td\b[^>]*>([\s\S]*?)</td>", dom)}
    assert {"reserve", "dropoff_token", "Aggregated"} <= cells, sorted(cells)[:40]
