"""``locker-harness report [RUN]``: a finished run's summary, or (``--html``) its one-file HTML report.

RUN is a run id, a unique prefix of one, its random tail (``3f9a2c``), a run's folder or a file in
it (its ``load/summary.json``, a distributed master's ``load/record.json``); by default
the latest run under the reports directory. The HTML report needs Node.js 20+; Allure 3 is
installed into the project from its own ``package.json`` on first use.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.markdown import Markdown

from harness.cli._common import ConfigOption, Output, ReportsDirOption, VerboseOption, run_command
from harness.cli._target import command_settings
from harness.errors import ExitCode, UsageError
from harness.report import RunFolder, build_html, resolve_run_id, run_id_started

__all__ = ["command", "find_run"]


def _started(folder: Path) -> tuple[float, int]:
    """The order runs started in: ``summary.json``'s ``started_at``, else a drawn id's second, else (a
    ``--run-id`` of the user's, no summary yet) the folder's last change; ties by the last change."""
    changed = folder.stat().st_mtime_ns
    try:
        summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
        return datetime.fromisoformat(summary["started_at"]).timestamp(), changed
    except (OSError, ValueError, KeyError, TypeError):
        pass
    drawn = run_id_started(folder.name)
    return (drawn.timestamp() if drawn is not None else changed / 1e9), changed


def find_run(reports_dir: Path, reference: str | None) -> RunFolder:
    """The run folder named by ``reference`` (id, unique prefix, random tail, a run's folder or a file
    in it, such as its ``load/summary.json``), else the latest one."""
    if reference is not None and Path(reference).exists():
        given = Path(reference).resolve()
        for folder in (given, *given.parents):  # a file of a run (load/record.json) names its run
            if folder.is_dir() and (folder / "allure-results").is_dir():
                return RunFolder(folder)
    if reference is not None and ("/" in reference or Path(reference).exists()):
        raise UsageError(
            f"{reference} is not a run folder, nor a file in one (no allure-results/ above it): give a run id, "
            "or a folder under reports/"
        )
    runs = [p for p in reports_dir.glob("*") if (p / "allure-results").is_dir()] if reports_dir.is_dir() else []
    where = "a run written elsewhere is named by --reports-dir (or HARBOR_REPORTS_DIR), or by its folder"
    if not runs:
        raise UsageError(f"no runs under {reports_dir}: run `locker-harness run` first; {where}")
    runs.sort(key=_started)
    if reference is None:
        return RunFolder(runs[-1])
    try:
        run_id = resolve_run_id(reference, [p.name for p in runs], where=f"under {reports_dir}")
    except UsageError as error:
        if not str(error).startswith("no run"):
            raise
        raise UsageError(f"{error}; {where}") from None
    return RunFolder(reports_dir / run_id)


def _recorded_tests(summary: Path) -> int | None:
    """The tests summary.json says the run's Allure results make, if it says."""
    try:
        tests = json.loads(summary.read_text(encoding="utf-8"))["allure"]["tests"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return tests if isinstance(tests, int) else None


def command(
    context: typer.Context,
    run: Annotated[
        str | None,
        typer.Argument(help="Run id, unique prefix, random tail, run folder or a file in one (default: the latest)."),
    ] = None,
    html: Annotated[bool, typer.Option("--html", help="Write the one-file HTML report (needs Node.js 20+).")] = False,
    reports_dir: ReportsDirOption = None,
    config: ConfigOption = None,
    verbose: VerboseOption = False,
) -> None:
    """Show a run's summary, or turn its Allure results into one offline HTML file."""

    def body(out: Output) -> int:
        settings = command_settings(context)
        folder = find_run(settings.reports_dir, run)
        if not html:
            summary = folder.root / "summary.md"
            if not summary.is_file():
                raise UsageError(f"{folder.root} has no summary.md: the run did not finish")
            out.print(Markdown(out.redactor.text(summary.read_text(encoding="utf-8"))))
            return ExitCode.OK
        report = build_html(
            folder.allure_results,
            folder.html_dir,
            report_name=f"locker-harness {folder.run_id}",
            redactor=out.redactor,
        )
        out.say(f"HTML report: {report.path}")
        out.say(
            f"{report.total} tests: {report.passed} passed, {report.failed} failed, {report.broken} broken, "
            f"{report.skipped} skipped"
        )
        recorded = _recorded_tests(folder.root / "summary.json")
        if recorded is not None and recorded != report.total:
            out.say(f"note: the run recorded {recorded} tests (summary.json) and the report shows {report.total}")
        return ExitCode.OK

    run_command(body, "report", verbose=verbose)
