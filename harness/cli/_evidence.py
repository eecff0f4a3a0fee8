"""Evidence for the quick commands (``smoke``, ``hw``) when asked for it.

They print their table and write nothing by default; given ``--reports-dir``, ``--run-id`` or
``--junit-xml`` they write what they measured as a run of one stage, as ``locker-harness run``
writes a stage: ``reports/<run-id>/`` (summaries, JUnit, Allure results, plots), the history row,
and the JUnit file asked for.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from harness.cli._common import Output, fresh_run_id, tell_evidence, tell_junit, tell_verdict
from harness.config import Settings
from harness.errors import ExitCode
from harness.history import History
from harness.report import StageResult, TargetInfo
from harness.run import RunContext, execute, new_context

__all__ = ["EvidenceRequest"]

#: Seconds the reports of a finished measurement may take (plots, summaries, the history row).
_REPORTS_BUDGET_S = 120.0


class _Measured:
    """A stage whose work is already done: its result is built from what the command measured."""

    def __init__(self, name: str, result: Callable[[RunContext], StageResult]) -> None:
        self.name = name
        self._result = result

    def run(self, context: RunContext) -> StageResult:
        return self._result(context)


class EvidenceRequest:
    """What a quick command was asked to keep (``--reports-dir`` went into the settings already)."""

    def __init__(self, *, asked: bool, run_id: str | None, junit_xml: Path | None, settings: Settings) -> None:
        self.asked = asked or run_id is not None or junit_xml is not None
        self.junit_xml = junit_xml
        #: Checked before anything runs: a taken or malformed id is a usage error, not a lost run.
        self.run_id = fresh_run_id(settings.reports_dir, run_id) if self.asked else None

    def write(
        self,
        out: Output,
        settings: Settings,
        name: str,
        result: Callable[[RunContext], StageResult],
        *,
        code: int,
        environment: Mapping[str, str],
    ) -> int:
        """Write the stage ``result`` builds as a run's evidence, and the verdict line; returns the
        command's exit code: ``code``, or 4 for a green one whose evidence could not be written (as
        the run's history row says)."""
        if not self.asked:
            return code
        target = TargetInfo(settings.target.name, settings.target.api_url, settings.tower_id)
        with History.open(settings.state_dir) as history:
            context = new_context(
                settings=settings,
                target=target,
                redactor=out.redactor,
                budget_s=_REPORTS_BUDGET_S,
                run_id=self.run_id,
            )
            context.environment.update({"stages": name, **environment})
            run = execute([_Measured(name, result)], context, history=history)
        out.say(f"reports: {context.reports_dir}")
        tell_junit(out, run, context.folder, self.junit_xml)
        tell_evidence(out, run.evidence_lost, recorded=True)
        if run.evidence_lost and code == ExitCode.OK:
            code = ExitCode.INFRASTRUCTURE
        tell_verdict(out, name, code, run_id=run.run_id, where=context.reports_dir, refuted=len(run.findings()))
        return code
