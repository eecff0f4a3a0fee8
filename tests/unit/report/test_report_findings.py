"""Refuted assumptions through a run: from a stage (in process or a child's file) to every report and the exit code.

Fake stages stand in for the target: one records what an answer showed in this process, one
leaves a child's observations file where a pytest stage's child would. The run must stay green,
list each refuted assumption in the console's category, summary.md/.json, JUnit and Allure
(with its own category), exit 5 only with --strict-assumptions, and show nothing once the value
seen is adopted.
"""

from __future__ import annotations

import dataclasses
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from rich.console import Console

from harness.assumptions import Assumed, Observation, ObservationLog, record, write_log
from harness.config import Settings
from harness.errors import ExitCode
from harness.redaction import Redactor
from harness.report import CATEGORIES, CaseOutcome, CaseResult, StageResult, TargetInfo, Verdict, findings_table
from harness.run import RunContext, execute, new_context
from harness.run._execute import findings_dir

CREATE = "POST /api/v1/towers/0100000000000014/lockers/1401/reservations answered 200"


class ShowingStage:
    """A green stage whose answers showed a create answered 200 (in this process)."""

    name = "smoke"

    def run(self, context: RunContext) -> StageResult:
        record("create_status", 200, CREATE)
        record("create_status", 200, CREATE)
        record("token_id_field", True, "POST .../dropoff-locker-tokens")  # confirmed: no finding
        return StageResult(self.name, Verdict.PASSED, cases=[CaseResult("delivery", CaseOutcome.PASSED)])


class ChildShowingStage:
    """A green stage whose child process left its observations file (as the pytest plugin writes it)."""

    name = "contract"

    def run(self, context: RunContext) -> StageResult:
        log = ObservationLog()
        log.record(Observation("status_ids", {"rented": 13}, "GET /api/v1/towers/0100000000000014/lockers"))
        log.record(Observation("create_status", 200, "POST .../dropoff-locker-tokens answered 200"))
        write_log(log, environ={"LOCKER_HARNESS_FINDINGS_DIR": str(findings_dir(context, self.name))})
        return StageResult(self.name, Verdict.PASSED, cases=[CaseResult("contract", CaseOutcome.PASSED)])


def _context(tmp_path: Path, *, strict: bool = False, assume: Assumed | None = None) -> RunContext:
    settings = dataclasses.replace(
        Settings(), reports_dir=tmp_path / "reports", state_dir=tmp_path / "state", assume=assume or Assumed()
    )
    return new_context(
        settings=settings,
        target=TargetInfo("local", "http://127.0.0.1:9", "0100000000000014"),
        redactor=Redactor(),
        budget_s=60,
        strict_assumptions=strict,
    )


def test_a_refuted_assumption_leaves_the_run_green_and_is_in_every_report(tmp_path: Path) -> None:
    """Exit 0; one finding per assumption across stages (counts added, stages named) in each report."""
    context = _context(tmp_path)
    run = execute([ShowingStage(), ChildShowingStage()], context)
    assert run.verdict is Verdict.PASSED and run.exit_code is ExitCode.OK
    refuted = {finding.assumption: finding for finding in run.findings()}
    assert list(refuted) == ["create_status", "status_ids"]
    create = refuted["create_status"]
    assert (create.count, create.stages, create.where) == (3, ("smoke", "contract"), CREATE)
    assert create.adopt == "create_status = 200"
    assert refuted["status_ids"].adopt == "status_ids = { rented = 13 }"

    folder = context.folder.root
    markdown = (folder / "summary.md").read_text()
    assert "passed, 2 assumptions refuted" in markdown and "### Assumptions refuted" in markdown
    assert "`[assume] create_status = 200`" in markdown and CREATE in markdown
    document = json.loads((folder / "summary.json").read_text())
    assert document["exit_code"] == 0 and document["verdict"] == "passed"
    assert [f["adopt"] for f in document["assumptions_refuted"]] == [
        "[assume] create_status = 200",
        "[assume] status_ids = { rented = 13 }",
    ]
    assert [s["assumptions_refuted"] for s in document["stages"]] == [
        ["create_status"],
        ["create_status", "status_ids"],
    ]

    suite = ET.parse(folder / "junit" / "assumptions.xml").getroot().find("testsuite")
    assert suite is not None and suite.get("skipped") == "2" and suite.get("failures") == "0"
    skipped = [case.find("skipped") for case in suite.iter("testcase")]
    assert all(s is not None and "adopt with [assume]" in (s.get("message") or "") for s in skipped)

    results = [json.loads(p.read_text()) for p in (folder / "allure-results").glob("*-result.json")]
    tests = [r for r in results if {"name": "suite", "value": "assumptions"} in r["labels"]]
    assert sorted(t["status"] for t in tests) == ["skipped", "skipped"]
    assert all(t["statusDetails"]["message"].startswith("AssumptionRefuted: assumption refuted") for t in tests)
    categories = json.loads((folder / "allure-results" / "categories.json").read_text())
    assert categories[0]["name"] == "Assumptions refuted" == CATEGORIES[0]["name"]


def test_strict_assumptions_exit_5_and_fail_the_cases(tmp_path: Path) -> None:
    """With --strict-assumptions the same run exits 5; JUnit and Allure show the cases failed."""
    context = _context(tmp_path, strict=True)
    run = execute([ShowingStage()], context)
    assert run.verdict is Verdict.PASSED and run.exit_code is ExitCode.ASSUMPTION_REFUTED == 5
    suite = ET.parse(context.folder.root / "junit" / "assumptions.xml").getroot().find("testsuite")
    assert suite is not None and suite.get("failures") == "1"
    failure = next(suite.iter("failure"))
    assert failure.get("type") == "assumption:AssumptionRefuted"
    assert json.loads((context.folder.root / "summary.json").read_text())["exit_code"] == 5


def test_a_defect_still_wins_over_strict_assumptions(tmp_path: Path) -> None:
    """A failed run exits 1 whatever else it refuted: a broken promise is the news."""

    class Broken(ShowingStage):
        def run(self, context: RunContext) -> StageResult:
            super().run(context)
            return StageResult(self.name, Verdict.FAILED, reason="double booking")

    run = execute([Broken()], _context(tmp_path, strict=True))
    assert run.exit_code is ExitCode.DEFECT and run.findings()


def test_adopting_the_values_seen_leaves_no_finding(tmp_path: Path) -> None:
    """With the lines the first run suggested in [assume], the same run has nothing to say, strict or not."""
    assume = Assumed.of({"create_status": 200, "status_ids": {"rented": 13}}, "[assume] of test", {})
    context = _context(tmp_path, strict=True, assume=assume)
    run = execute([ShowingStage(), ChildShowingStage()], context)
    assert run.findings() == [] and run.exit_code is ExitCode.OK
    assert not (context.folder.root / "junit" / "assumptions.xml").exists()
    assert "Assumptions refuted" not in (context.folder.root / "summary.md").read_text()


def test_an_unreadable_child_file_is_a_harness_defect_not_lost(tmp_path: Path) -> None:
    """A child's observations file that cannot be read makes the stage could-not-test, named."""

    class Garbled(ChildShowingStage):
        def run(self, context: RunContext) -> StageResult:
            folder = findings_dir(context, self.name)
            folder.mkdir(parents=True)
            (folder / "observations-1.json").write_text("{not json")
            return super().run(context)

    run = execute([Garbled()], _context(tmp_path))
    [stage] = run.stages
    assert any("unreadable observations observations-1.json" in f.message for f in stage.failures)
    assert [f.assumption for f in stage.findings] == ["create_status", "status_ids"]


def test_the_console_table_names_the_line_to_adopt(tmp_path: Path) -> None:
    """The console's table has the assumption, the values and the [assume] line, each on its row."""
    run = execute([ShowingStage()], _context(tmp_path))
    console = Console(width=200, record=True)
    console.print(findings_table(run.findings(), redactor=Redactor()))
    text = console.export_text()
    assert "create_status [I]" in text and "create_status = 200" in text and CREATE in text


@pytest.mark.parametrize("seen", [True, False])
def test_facts_are_never_findings(tmp_path: Path, seen: bool) -> None:
    """An observation of an [S] fact is never listed as a refuted assumption (a broken fact is a defect)."""

    class Facts(ShowingStage):
        def run(self, context: RunContext) -> StageResult:
            record("locker_fields", seen, "GET ...")
            return StageResult(self.name, Verdict.PASSED)

    assert execute([Facts()], _context(tmp_path)).findings() == []
