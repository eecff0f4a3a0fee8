"""What every command shares: the common options, redacted output, and one error policy.

The error policy: a ``HarnessError`` is one line on stderr (``error: ...``) and its exit code;
Ctrl-C is exit 130 after what was held is released; anything else is a harness bug, reported in
one line too (``--verbose`` adds the traceback, redacted). Nothing reaches the terminal without
passing through the redactor.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, NoReturn

import click
import typer
from rich.console import Console

from harness.config import PRODUCTION_WRITES_FLAG
from harness.errors import ExitCode, HarnessError
from harness.redaction import RedactingFilter, Redactor, redactor

__all__ = [
    "ConfigOption",
    "Output",
    "ProductionWritesOption",
    "SimBugOption",
    "SimFaultOption",
    "StatusTimeoutOption",
    "TargetOption",
    "TowerOption",
    "VerboseOption",
    "run_command",
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
SimFaultOption = Annotated[
    list[str] | None,
    typer.Option("--sim-fault", help="local only: a sandbox fault profile (repeatable), e.g. latency:ms=200."),
]
ProductionWritesOption = Annotated[
    bool,
    typer.Option(PRODUCTION_WRITES_FLAG, help="Allow writes (reservations, tokens) against production."),
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


def run_command(body: Callable[[Output], int], *, verbose: bool) -> NoReturn:
    """Run a command's body under the error policy and exit with its code."""
    out = Output(verbose=verbose)
    try:
        with _redacted_logging(out):
            code = body(out)
    except typer.Exit:
        raise
    except KeyboardInterrupt:
        out.error("interrupted; what the run held was given back (see above)")
        raise typer.Exit(ExitCode.INTERRUPTED) from None
    except HarnessError as exc:
        out.traceback(exc)
        out.error(str(exc))
        raise typer.Exit(exc.exit_code) from None
    except Exception as exc:  # a harness bug: say so in one line, never a raw traceback by default
        out.traceback(exc)
        out.error(f"internal error (a harness bug): {type(exc).__name__}: {exc}; rerun with --verbose for details")
        raise typer.Exit(ExitCode.INFRASTRUCTURE) from None
    raise typer.Exit(code)
