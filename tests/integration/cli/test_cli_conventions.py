"""The conventions people expect from a CLI, end to end: the run id and reports folder chosen on the
command line, one JUnit file for CI, ``-q``, evidence from the quick commands, and one verdict for
one situation whichever command meets it."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from .invoking import DEMO, invoke

TOWER = "0100000000000014"


def _suites(path: Path) -> dict[str, ET.Element]:
    return {str(suite.get("name")): suite for suite in ET.parse(path).getroot().iter("testsuite")}


def test_props_and_run_agree_when_the_second_identity_is_missing(demo_sandbox: Any, tmp_path: Path) -> None:
    """Against a URL without a second identity, ``props`` and ``run`` both say could not test (exit 4),
    with the variables to set and how to leave the stage out, whole, never "skipped" with exit 4 in one
    and a green run in the other."""
    env = {**DEMO, "HARBOR_TOWER_ID": TOWER}
    code, stdout, stderr = invoke(["props", "--target", demo_sandbox.url, "--budget", "30"], env)
    assert code == 4, stdout + stderr
    assert "infrastructure" in stdout and "skipped" not in stdout
    words = " ".join(stdout.split())
    assert (
        "set HARBOR_SECOND_CLIENT_ID and HARBOR_SECOND_CLIENT_SECRET (or leave the stage out: --skip properties)"
        in words
    )
    assert "…" not in stdout

    code, stdout, stderr = invoke(["run", "--target", demo_sandbox.url, "--only", "smoke,properties"], env)
    assert code == 4, stdout + stderr
    (run_dir,) = sorted(path for path in (tmp_path / "reports").iterdir() if (path / "summary.json").is_file())[-1:]
    stages = {stage["name"]: stage for stage in json.loads((run_dir / "summary.json").read_text())["stages"]}
    assert stages["smoke"]["verdict"] == "passed"
    assert stages["properties"]["verdict"] == "infrastructure"
    assert "HARBOR_SECOND_CLIENT_ID" in stages["properties"]["reason"]
    assert "…" not in stdout


def test_a_suite_without_a_tower_is_a_usage_error_in_props_and_in_run(demo_sandbox: Any) -> None:
    """No tower named for a URL: exit 2 naming --tower in both, never a suite whose every test skipped."""
    for args in (
        ["props", "--target", demo_sandbox.url],
        ["run", "--target", demo_sandbox.url, "--only", "properties"],
    ):
        code, stdout, stderr = invoke(args, DEMO)
        assert code == 2, stdout + stderr
        assert "no tower for target" in stderr and "--tower" in stderr


def test_run_id_reports_dir_junit_xml_and_quiet(tmp_path: Path) -> None:
    """``run --run-id --reports-dir --junit-xml -q``: the folder is named as asked, the JUnit file holds
    every stage (a skipped one too), stdout is the verdict line only; a taken id is refused (exit 2)."""
    args = ["run", "--only", "smoke,load", "--skip", "load", "--reports-dir", "evidence", "--run-id", "ci-42",
            "--junit-xml", "out/junit.xml", "-q"]  # fmt: skip
    code, stdout, stderr = invoke(args)
    assert code == 0, stdout + stderr
    run_dir = tmp_path / "evidence" / "ci-42"
    assert stdout.splitlines() == [f"run: passed, exit 0; run ci-42, reports {run_dir}"]
    assert json.loads((run_dir / "summary.json").read_text())["run_id"] == "ci-42"
    suites = _suites(tmp_path / "out" / "junit.xml")
    assert set(suites) == {"smoke", "load"}
    assert suites["load"].find("testcase/skipped") is not None  # left out with --skip, and says so
    assert int(suites["smoke"].get("tests") or 0) > 5

    code, stdout, stderr = invoke(args)
    assert code == 2 and "--run-id ci-42" in stderr and "already exists" in stderr


def test_smoke_and_hw_write_evidence_when_asked(tmp_path: Path) -> None:
    """The quick commands write nothing by default; with --junit-xml (or --run-id, --reports-dir) their
    steps become a run folder, a history row and the JUnit file asked for."""
    code, stdout, stderr = invoke(["smoke"])
    assert code == 0, stdout + stderr
    assert not (tmp_path / "reports").exists()

    code, stdout, stderr = invoke(["smoke", "--run-id", "smoke-1", "--junit-xml", "smoke.xml"])
    assert code == 0, stdout + stderr
    cases = [case.get("name") for case in ET.parse(tmp_path / "smoke.xml").getroot().iter("testcase")]
    assert "reserve" in cases and len(cases) > 5
    assert (tmp_path / "reports" / "smoke-1" / "summary.md").is_file()

    code, stdout, stderr = invoke(["hw", "-n", "1", "--open-p95-ms", "10000", "--junit-xml", "hw.xml", "-q"])
    assert code == 0, stdout + stderr
    assert len(stdout.splitlines()) == 1 and stdout.startswith("hw: passed, exit 0; run ")
    hw = _suites(tmp_path / "hw.xml")["hw"]
    assert {case.get("name") for case in hw.iter("testcase")} == {"deliveries over BLE", "SLO open p95"}

    code, stdout, stderr = invoke(["history", "--json"])
    assert code == 0
    assert {"smoke-1"} <= {row["run_id"] for row in json.loads(stdout)["runs"]}


def test_probe_takes_the_run_id_a_junit_file_and_quiet(tmp_path: Path) -> None:
    """``probe --run-id --junit-xml -q``: its folder named as asked, a case per assumption, one line."""
    code, stdout, stderr = invoke(["probe", "--run-id", "probe-7", "--junit-xml", "probe.xml", "-q"])
    assert code == 0, stdout + stderr
    assert stdout.splitlines() == [f"probe: passed, exit 0; run probe-7, reports {tmp_path / 'reports' / 'probe-7'}"]
    assert (tmp_path / "reports" / "probe-7" / "probe" / "assumptions.json").is_file()
    suite = _suites(tmp_path / "probe.xml")["probe"]
    assert int(suite.get("tests") or 0) >= 10 and suite.get("failures") == "0"


def test_quiet_names_the_command_and_counts_the_refuted_assumptions() -> None:
    """``-q`` without reports asked for: one line naming the command (not the program), and a guess the
    target refuted is counted in it, so a quiet CI log keeps the finding."""
    code, stdout, stderr = invoke(["smoke", "-q"])
    assert code == 0, stdout + stderr
    assert stdout.splitlines() == ["smoke: passed, exit 0"]
    code, stdout, stderr = invoke(["smoke", "-q", "--sim-dialect", "create_200"])
    assert code == 0, stdout + stderr
    assert stdout.splitlines() == ["smoke: passed, exit 0, 1 assumption refuted"]
    code, stdout, stderr = invoke(["cleanup", "-q"])
    assert code == 0 and stdout.splitlines() == ["cleanup: passed, exit 0"], stdout + stderr
