"""``locker-harness report [RUN]``: a finished run's summary, or (``--html``) its one-file HTML report.

RUN is a run id, a unique prefix of one, or a folder; by default the latest run under the
reports directory. The HTML report needs Node.js 20+; Allure 3 is installed into the project
from its own ``package.json`` on first use.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markdown import Markdown

from harness.cli._common import ConfigOption, Output, VerboseOption, run_command
from harness.config import load_settings
from harness.errors import ExitCode, UsageError
from harness.report import RunFolder, build_html

__all__ = ["command", "find_run"]


def find_run(reports_dir: Path, reference: str | None) -> RunFolder:
    """The run folder named by ``reference`` (id, unique prefix, or path), else the latest one."""
    if reference is not None and Path(reference).is_dir() and (Path(reference) / "allure-results").is_dir():
        return RunFolder(Path(reference))
    runs = sorted(p for p in reports_dir.glob("*") if (p / "allure-results").is_dir()) if reports_dir.is_dir() else []
    if not runs:
        raise UsageError(f"no runs under {reports_dir}: run `locker-harness run` first")
    if reference is None:
        return RunFolder(runs[-1])
    matches = [p for p in runs if p.name == reference] or [p for p in runs if p.name.startswith(reference)]
    if not matches:
        raise UsageError(f"no run {reference!r} under {reports_dir}")
    if len(matches) > 1:
        raise UsageError(f"run {reference!r} is ambiguous: {', '.join(p.name for p in matches[:5])}")
    return RunFolder(matches[0])


def command(
    run: Annotated[str | None, typer.Argument(help="Run id, unique prefix or folder (default: the latest).")] = None,
    html: Annotated[bool, typer.Option("--html", help="Write the one-file HTML report (needs Node.js 20+).")] = False,
    config: ConfigOption = None,
    verbose: VerboseOption = False,
) -> None:
    """Show a run's summary, or turn its Allure results into one offline HTML file."""

    def body(out: Output) -> int:
        settings = load_settings({"config": str(config) if config is not None else None})
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
        return ExitCode.OK

    run_command(body, verbose=verbose)
