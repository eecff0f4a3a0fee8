"""What every command shares: the common options, redacted output, and one error policy.

The error policy: a ``HarnessError`` is one line on stderr (``error: ...``) and its exit code;
Ctrl-C is exit 130 after what was held is released; anything else is a harness bug, reported in
one line too (``--verbose`` adds the traceback, redacted). Nothing reaches the terminal without
passing through the redactor.
"""

from __future__ import annotations

import logging
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn

import click
import typer
from rich.console import Console
from typer.core import TyperGroup

from harness.config import PRODUCTION_WRITES_FLAG
from harness.errors import ExitCode, HarnessError
from harness.redaction import RedactingFilter, Redactor, redactor
from harness.stopping import stop_exit_code, terminated

__all__ = [
    "ConfigOption",
    "ExclusiveOption",
    "OneLineErrors",
    "Output",
    "ProductionWritesOption",
    "SimBugOption",
    "SimDialectOption",
    "SimFaultOption",
    "StatusTimeoutOption",
    "TargetOption",
    "TowerOption",
    "VerboseOption",
    "run_command",
    "tell_evidence",
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


class Output:
    """The command's voice: stdout through rich, errors as single lines on stderr, all redacted."""

    def __init__(self, *, verbose: bool = False, redactor_: Redactor | None = None) -> None:
        self.verbose = verbose
        self.redactor = redactor_ if redactor_ is not None else redactor()
        self.console = Console(highlight=False, soft_wrap=True)

    def say(self, text: str) -> None:
        self.console.print(self.redactor.text(text), markup=False)

    def detail(self, text: str) -> None:
        """A line shown only with ``--verbose``."""
        if self.verbose:
            self.say(text)

    def print(self, renderable: object) -> None:
        """A rich renderable whose text the caller built through ``self.redactor``."""
        self.console.print(renderable)

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
        out.say(f"EVIDENCE NOT WRITTEN: {line}")
    if recorded:
        written = not any("history row" in line for line in lost)
        out.say("history: the run is recorded (locker-harness history)" if written else "history: NOT recorded")


def run_command(body: Callable[[Output], int], *, verbose: bool) -> NoReturn:
    """Run a command's body under the error policy and exit with its code."""
    out = Output(verbose=verbose)
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
    raise typer.Exit(code)
