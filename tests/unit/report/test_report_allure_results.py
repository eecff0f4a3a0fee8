"""The run's Allure results as a whole: every stage in them, each case its own test, no nameless or
unfinished teardown, and the totals summary.json gives for the HTML report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.load import LoadRecord, LoadSummary, SloGates, Sweep
from harness.load._slo import Gate
from harness.redaction import Redactor
from harness.report import RunFolder, RunResult, finish_reports
from harness.report._allure_results import allure_totals, tidy_results
from harness.run._load_stage import _stage_result

MS = 1_000_000


def _results(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(path.read_text()) for path in sorted(folder.glob("*-result.json"))]


def _write(folder: Path, name: str, document: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(json.dumps(document))


def _operation(uuid: str, operation: str | None, status: str, start: int) -> dict[str, Any]:
    """A result as allure-pytest writes one of Schemathesis's per-operation tests."""
    result: dict[str, Any] = {
        "uuid": uuid,
        "name": f"test_operation_keeps_the_contract[{operation}]",
        "fullName": "contracts.test_contract#test_operation_keeps_the_contract",
        "testCaseId": "6d493062548c15ee408b348176b6452e",
        "status": status,
        "start": start,
        "stop": start + 5,
    }
    if operation is not None:
        result["parameters"] = [{"name": "operation", "value": repr(operation)}]
    return result


def test_operations_sharing_a_test_id_count_as_one_test_and_a_parameter_parts_them(tmp_path: Path) -> None:
    """Three operations with one fullName and testCaseId are one test with retries for Allure 3, the failed
    one hidden behind a later pass; with the operation as a parameter they are three tests, one failed."""
    shared, parted = tmp_path / "shared", tmp_path / "parted"
    for index, (operation, status) in enumerate([("GET /a", "passed"), ("GET /b", "failed"), ("GET /c", "passed")]):
        _write(shared, f"{index}-result.json", _operation(f"s{index}", None, status, 1000 + index))
        _write(parted, f"{index}-result.json", _operation(f"p{index}", operation, status, 1000 + index))
    merged = allure_totals(shared)
    assert (merged.results, merged.tests, merged.retried, merged.failed, merged.passed) == (3, 1, 1, 0, 1)
    apart = allure_totals(parted)
    assert (apart.results, apart.tests, apart.retried, apart.failed, apart.passed) == (3, 3, 0, 1, 2)


def test_tidy_names_each_teardown_and_drops_pytest_s_unfinished_closing_hook(tmp_path: Path) -> None:
    """allure-pytest's ``fixture::1`` (a generator fixture's teardown) becomes ``fixture (teardown)``; its
    ``fixture::<lambda>`` that never finished (pytest's own closing hook: a "?" in the report) goes; a nameless
    step gets a name. A second pass changes nothing."""
    container = {
        "uuid": "c1",
        "children": ["r1"],
        "befores": [{"name": "contract_target", "status": "passed", "start": 1, "stop": 2}],
        "afters": [
            {"name": "contract_target::1", "status": "passed", "start": 3, "stop": 4},
            {"name": "contract_target::<lambda>", "start": 4},
            {"name": "", "status": "passed", "start": 4, "stop": 5, "steps": [{"status": "passed"}]},
        ],
    }
    _write(tmp_path, "c1-container.json", container)
    _write(tmp_path, "r1-result.json", {"uuid": "r1", "name": "t", "status": "passed", "steps": [{"name": ""}]})

    assert tidy_results(tmp_path) == 2
    tidy = json.loads((tmp_path / "c1-container.json").read_text())
    assert [after["name"] for after in tidy["afters"]] == ["contract_target (teardown)", "teardown"]
    assert all(after.get("status") for after in tidy["afters"])
    assert tidy["afters"][1]["steps"][0]["name"] == "step"
    assert json.loads((tmp_path / "r1-result.json").read_text())["steps"][0]["name"] == "step"
    assert tidy_results(tmp_path) == 0


def _load_stage() -> Any:
    """The load stage's result as the stage builds it, with one breached gate."""
    record = LoadRecord()
    for index in range(300):
        record.request("reserve", (3 + index % 7) * MS)
        record.request("dropoff_token", 4 * MS)
    for _ in range(50):
        record.flow("completed", "delivery", 30 * MS)
    gates = SloGates([Gate(None, "failure_ratio", 0.01), Gate("reserve", "p99", 5.0)])
    summary = LoadSummary.build(record, gates, duration_s=10.0, plan={"mode": "closed"}, sweep=Sweep(checked=True))
    stage = _stage_result("load", summary, [])
    stage.latencies = summary.histograms()
    return stage


def test_a_stage_without_allure_tests_of_its_own_gets_a_test_per_case_and_one_with_its_steps(
    tmp_path: Path, run: RunResult
) -> None:
    """The load stage writes no Allure test itself: the run's reports give each oracle and each gate its
    own test (a stable full name, so a stable test-case id) and the stage one test with a step per timed
    step, its figures as parameters and its plot attached; summary.json's totals count them."""
    folder = RunFolder.create(tmp_path / "reports", "20261128-040512-ab12")
    run.stages = [_load_stage()]
    finish_reports(run, folder, redactor=Redactor())

    results = {result["name"]: result for result in _results(folder.allure_results)}
    assert set(results) == {
        "oracle double_booking",
        "oracle unexpected_status",
        "SLO failure_ratio",
        "SLO reserve p99",
        "load run",
    }
    assert results["SLO reserve p99"]["status"] == "failed"
    assert results["SLO reserve p99"]["fullName"] == "locker-harness.load.SLO reserve p99"
    assert len({result["testCaseId"] for result in results.values()}) == len(results)
    stage = results["load run"]
    assert stage["status"] == "failed"  # a breach fails the stage's test, as the run's verdict says
    steps = {step["name"]: step for step in stage["steps"]}
    assert {"reserve", "dropoff_token", "delivery (end to end)"} <= set(steps)
    figures = {parameter["name"]: parameter["value"] for parameter in steps["reserve"]["parameters"]}
    assert figures["n"] == "300" and float(figures["p99 ms"]) > 5.0
    [plot] = steps["reserve"]["attachments"]
    assert plot["type"] == "image/svg+xml" and (folder.allure_results / plot["source"]).read_text().startswith("<?xml")

    totals = json.loads((folder.root / "summary.json").read_text())["allure"]
    assert totals == {
        "results": 5,
        "tests": 5,
        "passed": 3,
        "failed": 2,
        "broken": 0,
        "skipped": 0,
        "unknown": 0,
        "retried": 0,
    }


def test_a_stage_that_wrote_its_own_allure_test_is_not_written_twice(tmp_path: Path, run: RunResult) -> None:
    """The smoke stage's test, written while it ran, is the only one of that stage in the results."""
    from harness.report import AllureTest, AllureWriter, CaseOutcome

    folder = RunFolder.create(tmp_path / "reports", "20261128-040512-ab12")
    AllureWriter(folder.allure_results, redactor=Redactor()).write(
        AllureTest("delivery", "locker-harness.smoke.delivery", "smoke", CaseOutcome.FAILED, 1, 2)
    )
    run.stages = run.stages[:1]  # the smoke stage, with its cases
    finish_reports(run, folder, redactor=Redactor())
    assert [result["name"] for result in _results(folder.allure_results)] == ["delivery"]
