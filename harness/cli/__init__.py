"""``locker-harness``: the command line.

One module per command, each registered here in one line; a command module exposes
``command`` (a typer command function). Modules import heavy parts (the sandbox, bleak) only
when their command runs, so ``locker-harness --help`` stays fast. ``--version`` prints the
version; ``--install-completion`` / ``--show-completion`` are Typer's shell completion.
"""

from __future__ import annotations

import typer

from harness import stopping
from harness.cli import (
    _common,
    bench,
    cleanup,
    contract,
    history,
    hw,
    load,
    probe,
    props,
    report,
    run,
    sim,
    smoke,
    soak,
)

__all__ = ["app", "main"]

app = typer.Typer(
    name="locker-harness",
    cls=_common.OneLineErrors,  # click's usage errors as one line and exit 2, like every other error
    help="Contract, hardware and load testing for Harbor Lockers integrations.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,  # errors are one line and an exit code (harness.cli._common)
)
app.callback()(_common.root)  # --version

app.command("smoke")(smoke.command)
app.command("hw")(hw.command)
app.command("contract")(contract.command)
app.command("props")(props.command)
app.command("sim")(sim.command)
app.command("run")(run.command)
app.command("report")(report.command)
app.command("history")(history.command)
app.command("compare")(history.compare_command)
app.command("load")(load.command)
app.command("bench")(bench.command)
app.command("cleanup")(cleanup.command)
app.command("soak")(soak.command)
app.command("probe")(probe.command)


def main() -> None:
    """Console script entry point (``locker-harness``): SIGTERM stops a command as Ctrl-C does."""
    stopping.stop_on_sigterm()
    app()
