"""What every command shares: the common options, redacted output, and one error policy.

The error policy: a ``HarnessError`` is one line on stderr (``error: ...``) and its exit code;
Ctrl-C is exit 130 after what was held is released; anything else is a harness bug, reported in
one line too (``--verbose`` adds the traceback, redacted). Nothing reaches the terminal without
passing through the redactor.
"""

from __future__ import annotations

import logging
import os
import platform
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Final, NoReturn

import click
import typer
from rich.console import Console
from rich.table import Table
from typer.core import TyperGroup

from harness._version import __version__
from harness.config import PRODUCTION_WRITES_FLAG
from harness.errors import ExitCode, HarnessError, UsageError
from harness.flow import Released
from harness.redaction import RedactingFilter, Redactor, redactor
from harness.report import RunFolder, RunResult, check_run_id, fit_table, write_run_junit
from harness.stopping import stop_exit_code, terminated

__all__ = [
    "ConfigOption",
    "ExclusiveOption",
    "JunitXmlOption",
    "OneLineErrors",
    "Output",
    "ProductionWritesOption",
    "QuietOption",
    "ReportsDirOption",
    "RunIdOption",
    "SimBugOption",
    "SimDialectOption",
    "SimFaultOption",
    "StatusTimeoutOption",
    "TargetOption",
    "TowerOption",
    "VerboseOption",
    "cleanup_line",
    "fresh_run_id",
    "root",
    "run_command",
    "tell_evidence",
    "tell_junit",
    "tell_verdict",
]

TargetOption = Annotated[
    str | None,
    typer.Option(
        "--target",
        "-t",
        help="local (default: the embedded virtual sandbox), sandbox, production, or an http(s):// URL. "
        "Env: HARBOR_TARGET.",
        show_default=False,
    ),
]
TowerOption = Annotated[
    str | None,
    typer.Option(
        "--tower",
        help="Tower id, 16 hex digits (default on local: 0100000000000014). Env: HARBOR_TOWER_ID.",
        show_default=False,
    ),
]
ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        # "\[" keeps rich from reading the TOML table name as markup.
        help="Configuration file (default: ./locker-harness.toml, else \\[tool.locker-harness] in ./pyproject.toml).",
        show_default=False,
        dir_okay=False,
    ),
]
StatusTimeoutOption = Annotated[
    float | None,
    typer.Option(
        "--status-timeout",
        help="Seconds to wait for the API to show a status (default 15). Env: HARBOR_STATUS_TIMEOUT.",
        show_default=False,
    ),
]
SimBugOption = Annotated[
    list[str] | None,
    typer.Option("--sim-bug", help="local only: switch a sandbox bug on (repeatable), e.g. double_booking."),
]
SimDialectOption = Annotated[
    list[str] | None,
    typer.Option(
        "--sim-dialect",
        help="local only: make the sandbox speak a Harbor dialect (repeatable), e.g. create_200.",
    ),
]
SimFaultOption = Annotated[
    list[str] | None,
    typer.Option("--sim-fault", help="local only: a sandbox fault profile (repeatable), e.g. latency:ms=200."),
]
ProductionWritesOption = Annotated[
    bool,
    typer.Option(PRODUCTION_WRITES_FLAG, help="Allow writes (reservations, tokens) against production."),
]
ExclusiveOption = Annotated[
    bool,
    typer.Option(
        "--exclusive",
        help="A URL target's sandbox is this run's alone: its suites may reseed it and move its clock "
        "(the embedded sandbox always is). Without it, a shared sandbox is left as found and those checks skip.",
    ),
]
VerboseOption = Annotated[
    bool, typer.Option("--verbose", "-v", help="Show settings, each event as it happens, and tracebacks (redacted).")
]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="Print only the verdict line and errors.")]
ReportsDirOption = Annotated[
    Path | None,
    typer.Option(
        "--reports-dir",
        help="Where run folders go (default ./reports). Env: HARBOR_REPORTS_DIR.",
        show_default=False,
        file_okay=False,
    ),
]
RunIdOption = Annotated[
    str | None,
    typer.Option(
        "--run-id",
        help="This run's id and folder name (default: a new id that sorts by time); refused if already taken.",
        show_default=False,
    ),
]


def _writable_file(path: Path | None) -> Path | None:
    """A file the run can write at its end, checked before the run (a path it cannot write would
    lose that evidence after minutes of work): its folder exists or can be made, and is writable."""
    if path is None:
        return None
    try:
        if path.is_dir():
            raise typer.BadParameter(f"{path} is a folder; name a file")
        existing = next(folder for folder in path.absolute().parents if folder.exists())
    except (ValueError, OSError) as error:  # a NUL byte, a name too long
        raise typer.BadParameter(f"{path!s:.200}: {error}") from None
    if not existing.is_dir():
        raise typer.BadParameter(f"{existing} is a file, so {path} cannot be made")
    if not os.access(existing, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise typer.BadParameter(f"{path} is not writable")
    return path


JunitXmlOption = Annotated[
    Path | None,
    typer.Option(
        "--junit-xml",
        help="Also write the run's JUnit (every stage, one file) here, for CI.",
        show_default=False,
        dir_okay=False,
        callback=_writable_file,
    ),
]

#: The verdict each exit code stands for, in the one line ``-q`` prints.
_VERDICTS: Final[dict[int, str]] = {
    ExitCode.OK: "passed",
    ExitCode.DEFECT: "failed (a check found a product defect)",
    ExitCode.USAGE: "usage error",
    ExitCode.SLO_BREACH: "breached (an SLO gate)",
    ExitCode.INFRASTRUCTURE: "could not test",
    ExitCode.ASSUMPTION_REFUTED: "passed, but the target refuted an assumption of ours",
    ExitCode.INTERRUPTED: "interrupted",
    ExitCode.TERMINATED: "terminated",
}


def _print_version(asked: bool) -> None:
    if asked:
        typer.echo(f"locker-harness {__version__} (Python {platform.python_version()})")
        raise typer.Exit()


def root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """Contract, hardware and load testing for Harbor Lockers integrations."""


class Output:
    """The command's voice: stdout through rich, errors as single lines on stderr, all redacted.

    ``quiet`` (``-q``): nothing but errors and the command's verdict line (``verdict``).
    """

    def __init__(self, *, verbose: bool = False, quiet: bool = False, redactor_: Redactor | None = None) -> None:
        self.verbose = verbose
        self.quiet = quiet
        self.redactor = redactor_ if redactor_ is not None else redactor()
        self.console = Console(highlight=False, soft_wrap=True)
        #: The verdict line a command gave (``verdict``); ``run_command`` prints one of its own if none.
        self.verdict_line: str | None = None

    def say(self, text: str) -> None:
        if not self.quiet:
            self.console.print(self.redactor.text(text), markup=False)

    def detail(self, text: str) -> None:
        """A line shown only with ``--verbose``."""
        if self.verbose:
            self.say(text)

    def print(self, renderable: object) -> None:
        """A rich renderable whose text the caller built through ``self.redactor``; a table at its
        natural width off a terminal (a CI log keeps every cell whole)."""
        if not self.quiet:
            self.console.print(fit_table(renderable, self.console) if isinstance(renderable, Table) else renderable)

    def verdict(self, text: str) -> None:
        """The command's verdict in one line: all ``-q`` prints (the full output says it in its tables)."""
        self.verdict_line = text
        if self.quiet:
            self.console.print(self.redactor.text(text), markup=False)

    def error(self, text: str) -> None:
        line = " ".join(self.redactor.text(text).split())  # one line, whatever the message held
        click.echo(f"error: {line}", err=True)

    def traceback(self, exc: BaseException) -> None:
        if self.verbose:
            text = "".join(traceback.format_exception(exc))
            click.echo(self.redactor.text(text), err=True, nl=False)


class OneLineErrors(TyperGroup):
    """The command group, with click's own usage errors (unknown option or command, a value out of
    range) as one line and exit 2, like every other error: a CI log gets one greppable line, not a box."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        try:
            code = super().main(args, prog_name, complete_var, False, windows_expand_args, **extra)
        except typer.TyperException as exc:  # click's errors: usage (unknown option, bad value) and others
            context = getattr(exc, "ctx", None)
            if type(exc).__name__ == "NoArgsIsHelpError":  # no arguments: the help is the answer
                click.echo(exc.format_message(), err=True)
                code = ExitCode.USAGE
            else:
                message = " ".join(redactor().text(exc.format_message()).split())
                where = f" (see {context.command_path} --help)" if context is not None else ""
                click.echo(f"error: {message}{where}", err=True)
                code = ExitCode.USAGE if context is not None else exc.exit_code
        except typer.Abort:
            click.echo("error: terminated" if terminated() else "error: interrupted", err=True)
            code = stop_exit_code()
        if not standalone_mode:
            return code
        sys.exit(code if isinstance(code, int) else 0)


@contextmanager
def _redacted_logging(out: Output) -> Iterator[None]:
    """Log records reach stderr only through the redactor (warnings; info too with ``--verbose``)."""
    handler = logging.StreamHandler()
    handler.addFilter(RedactingFilter(out.redactor))
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO if out.verbose else logging.WARNING)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)


def tell_evidence(out: Output, lost: Sequence[str], *, recorded: bool) -> None:
    """Say where a run's evidence went: the history row, or what of the evidence could not be
    written (a full disk); the table above is then the only record of what was measured."""
    for line in lost:
        if out.quiet:  # -q still says why the exit code is 4
            out.error(f"evidence not written: {line}")
        else:
            out.say(f"EVIDENCE NOT WRITTEN: {line}")
    if recorded:
        written = not any("history row" in line for line in lost)
        out.say("history: the run is recorded (locker-harness history)" if written else "history: NOT recorded")


def fresh_run_id(reports_dir: Path, run_id: str | None) -> str | None:
    """``--run-id`` checked: a folder name, and not a run already under ``reports_dir`` (its evidence
    would be mixed with this run's); ``None`` when not given (a new id is drawn)."""
    if run_id is None:
        return None
    check_run_id(run_id)
    if (reports_dir / run_id).exists():
        raise UsageError(f"--run-id {run_id}: {reports_dir / run_id} already exists; choose another id")
    return run_id


def tell_junit(out: Output, run: RunResult, folder: RunFolder, path: Path | None) -> None:
    """``--junit-xml``: every stage's JUnit in the one file CI asked for (after the run's own reports)."""
    if path is None:
        return
    files = {stage.name: folder.junit(stage.name) for stage in run.stages}
    try:
        write_run_junit(run, files, path, redactor=out.redactor)
    except OSError as error:
        run.evidence_lost.append(f"the JUnit file {path} could not be written ({error.strerror})")
        return
    out.say(f"JUnit: {path}")


def tell_verdict(
    out: Output,
    command: str,
    code: int,
    *,
    run_id: str | None = None,
    where: Path | None = None,
    refuted: int = 0,
) -> None:
    """The one line ``-q`` leaves: ``run: failed (a check found a product defect), exit 1; run <id>, reports <dir>``;
    with ``refuted`` assumptions ``run: passed, exit 0, 1 assumption refuted; ...`` (a quiet CI log keeps it)."""
    verdict = _VERDICTS.get(code, "ended")
    findings = f", {refuted} assumption{'s' if refuted != 1 else ''} refuted" if refuted else ""
    run = f"; run {run_id}" if run_id else ""
    reports = f", reports {where}" if where is not None else ""
    out.verdict(f"{command}: {verdict}, exit {code}{findings}{run}{reports}")


def run_command(body: Callable[[Output], int], command: str, *, verbose: bool, quiet: bool = False) -> NoReturn:
    """Run ``command``'s body under the error policy and exit with its code (``-q``: its one verdict line)."""
    if quiet and verbose:
        Output().error("--quiet and --verbose exclude each other")
        raise typer.Exit(ExitCode.USAGE)
    out = Output(verbose=verbose, quiet=quiet)
    try:
        with _redacted_logging(out):
            code = body(out)
    except typer.Exit:
        raise
    except KeyboardInterrupt:
        stopped = "terminated (SIGTERM)" if terminated() else "interrupted"
        out.error(f"{stopped}; what the run held was given back (see above)")
        raise typer.Exit(stop_exit_code()) from None
    except HarnessError as exc:
        out.traceback(exc)
        out.error(str(exc))
        raise typer.Exit(exc.exit_code) from None
    except Exception as exc:  # a harness bug: say so in one line, never a raw traceback by default
        out.traceback(exc)
        out.error(f"internal error (a harness bug): {type(exc).__name__}: {exc}; rerun with --verbose for details")
        raise typer.Exit(ExitCode.INFRASTRUCTURE) from None
    if code == ExitCode.INTERRUPTED and terminated():
        code = ExitCode.TERMINATED  # a run that stopped on SIGTERM and returned its own verdict
    if out.quiet and out.verdict_line is None:
        tell_verdict(out, command, code)
    raise typer.Exit(code)


def cleanup_line(released: Released) -> str:
    """What a failed delivery gave back, for the console; where it could not, where the hold is kept."""
    if released.ok:
        return f"cleanup: {released.note}"
    return f"cleanup: {released.note} (the cleanup ledger keeps it: `locker-harness cleanup` tries again)"
