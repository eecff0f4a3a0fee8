"""The load stage's seam: a child process writes a stage summary; breaches, defects and silence are told apart."""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path

import pytest

from harness.config import Settings
from harness.errors import ExitCode
from harness.metrics import Latencies
from harness.redaction import Redactor
from harness.report import TargetInfo, Verdict
from harness.run import Budget, ChildStage, PytestStage, RunContext, execute, new_context

_CHILD = """
import json, os, sys
summary = json.loads(sys.argv[1])
if summary is not None:
    with open(os.environ["LOCKER_HARNESS_STAGE_SUMMARY"], "w") as out:
        json.dump(summary, out)
print("target", os.environ["HARBOR_TARGET"])
"""


def _histograms() -> dict[str, str]:
    latencies = Latencies()
    for ms in range(1, 101):
        latencies.record("reserve", ms * 1_000_000)
    return latencies.encode()


def _stage(summary: object) -> ChildStage:
    return ChildStage("load", lambda context, path: [sys.executable, "-c", _CHILD, json.dumps(summary)])


@pytest.fixture
def context(tmp_path: Path) -> RunContext:
    settings = dataclasses.replace(Settings(), reports_dir=tmp_path / "reports")
    return new_context(settings=settings, target=TargetInfo("local"), redactor=Redactor())


@pytest.mark.parametrize(
    ("summary", "verdict", "code"),
    [
        ({"figures": {"requests": 100}, "histograms": "H"}, Verdict.PASSED, ExitCode.OK),
        ({"breaches": ["reserve p95 95 ms > 50 ms"], "histograms": "H"}, Verdict.BREACHED, ExitCode.SLO_BREACH),
        (
            {
                "breaches": ["reserve p95 95 ms > 50 ms"],
                "failures": [{"kind": "product", "name": "reserve", "message": "double booking of 1401"}],
            },
            Verdict.FAILED,
            ExitCode.DEFECT,
        ),
        ({"failures": [{"kind": "infrastructure", "name": "reserve", "message": "503"}]}, Verdict.INFRASTRUCTURE, 4),
        (None, Verdict.INFRASTRUCTURE, ExitCode.INFRASTRUCTURE),  # the child wrote nothing: could not judge
    ],
)
def test_a_child_stage_reads_its_summary(context: RunContext, summary: object, verdict: Verdict, code: int) -> None:
    """A breach is exit 3, a product failure beats it (exit 1), no summary at all is infrastructure."""
    if isinstance(summary, dict) and summary.get("histograms") == "H":
        summary["histograms"] = _histograms()
    run = execute([_stage(summary)], context)
    [result] = run.stages
    assert (result.verdict, int(run.exit_code)) == (verdict, code)
    if verdict is Verdict.PASSED:
        assert result.figures == {"requests": 100}
        assert result.latencies.count("reserve") == 100
        assert (context.folder.plots_dir / "load-reserve.svg").is_file()
        assert "target local" in (context.folder.root / "load" / "load.log").read_text()


_HANG = "import sys, time\nprint('started with', sys.argv[-1], flush=True)\ntime.sleep(30)  # a child that hangs\n"


class _HangingSuite(PytestStage):
    """A pytest stage whose child hangs at once (pytest itself takes seconds to start on a busy machine)."""

    def command(self, context: RunContext) -> list[str]:
        return [sys.executable, "-c", _HANG, *self.extra_args]


@pytest.mark.parametrize("kind", ["pytest", "child"])
def test_every_child_stage_ends_at_the_budget_the_same_way(tmp_path: Path, kind: str) -> None:
    """A pytest stage and a summary-writing child that outlive the budget are both ended as could-not-test,
    their output kept redacted in the stage's log, and the reason names that log within the run folder."""
    secret = "child-secret-3b7e"
    settings = dataclasses.replace(Settings(), reports_dir=tmp_path / "reports")
    context = new_context(settings=settings, target=TargetInfo("local"), redactor=Redactor([secret]), budget_s=60)
    context.budget = Budget(total_s=60, deadline=time.monotonic() + 0.2)  # the child gets the 1 s floor
    stage: PytestStage | ChildStage
    if kind == "pytest":
        stage, log = _HangingSuite("contract", ("suite",), extra_args=(secret,)), "contract/pytest.log"
    else:
        stage = ChildStage("load", lambda context, path: [sys.executable, "-c", _HANG, secret])
        log = "load/load.log"

    [result] = execute([stage], context).stages

    assert result.verdict is Verdict.INFRASTRUCTURE
    assert result.failures[0].error_type == "TimeoutError"
    assert result.reason.endswith(f"ran past the run's time budget; its output: {log}")
    kept = (context.folder.root / log).read_text()
    assert "started with" in kept and secret not in kept


_FAILS_THEN_HANGS = """
def test_found_a_defect():
    assert False, "no_party_acts_on_what_another_holds: the API granted it"

def test_outlives_the_budget():
    import time
    time.sleep(60)
"""


def test_a_failure_found_before_the_budget_ran_out_is_still_a_failure(tmp_path: Path) -> None:
    """A suite stopped at the budget after a named check FAILED is exit 1 with the budget noted,
    not 'could not test' (exit 4)."""
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "test_found.py").write_text(_FAILS_THEN_HANGS)
    settings = dataclasses.replace(Settings(), reports_dir=tmp_path / "reports")
    context = new_context(settings=settings, target=TargetInfo("local"), redactor=Redactor(), budget_s=60)
    context.budget = Budget(total_s=60, deadline=time.monotonic() + 8)  # pytest starts, fails one, then hangs
    stage = PytestStage("properties", ("suite/test_found.py",), root=tmp_path, extra_args=("-p", "no:randomly"))

    run = execute([stage], context)
    [result] = run.stages

    assert (result.verdict, int(run.exit_code)) == (Verdict.FAILED, ExitCode.DEFECT), result.reason
    assert "no_party_acts_on_what_another_holds" in result.reason
    assert "ran past the run's time budget" in result.reason
