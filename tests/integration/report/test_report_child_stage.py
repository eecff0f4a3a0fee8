"""The load stage's seam: a child process writes a stage summary; breaches, defects and silence are told apart."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import pytest

from harness.config import Settings
from harness.errors import ExitCode
from harness.metrics import Latencies
from harness.redaction import Redactor
from harness.report import TargetInfo, Verdict
from harness.run import ChildStage, RunContext, execute, new_context

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
