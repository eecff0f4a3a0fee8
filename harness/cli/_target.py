"""The target a command's options name: its settings, and the target running.

Every command resolves its options the same way (``command_settings``: the options given, then
``HARBOR_*``, then the configuration file) and gets its target the same way (``running_target``:
``harness.targets.open_target``, with the command's own ``--sim-bug``/``--sim-fault``/``--sim-dialect``
refused in their own words off local).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import typer

from harness.config import Settings, TargetKind, load_settings
from harness.errors import UsageError
from harness.targets import RunningTarget, open_target

__all__ = ["command_settings", "running_target"]


def command_settings(context: typer.Context) -> Settings:
    """The settings a command's options name, resolved as every command resolves them: the options
    given (``--target``, ``--tower``, ``--status-timeout``, ``--config``, ``--reports-dir``, the production opt-in;
    those the command has), then ``HARBOR_*``, then the configuration file."""
    given = context.params
    config = given.get("config")
    reports_dir = given.get("reports_dir")
    return load_settings(
        {
            "target": given.get("target"),
            "tower_id": given.get("tower"),
            "reports_dir": str(reports_dir) if reports_dir is not None else None,
            "status_timeout": given.get("status_timeout"),
            "config": str(config) if config is not None else None,
            "allow_production_writes": given.get("allow_production_writes"),
        }
    )


@contextmanager
def running_target(
    settings: Settings,
    *,
    sim_bug: Sequence[str] | None = None,
    sim_fault: Sequence[str] | None = None,
    sim_dialect: Sequence[str] | None = None,
    subprocess: bool = False,
    mtu: int | None = None,
) -> Iterator[RunningTarget]:
    """The target running (``harness.targets.open_target``), with the command's ``--sim-bug``,
    ``--sim-fault`` and ``--sim-dialect`` (``None``: the command has no such option) refused in
    their own words off local."""
    if settings.target.kind is not TargetKind.LOCAL and (sim_bug or sim_fault or sim_dialect):
        options = (("--sim-bug", sim_bug), ("--sim-fault", sim_fault), ("--sim-dialect", sim_dialect))
        given = [option for option, value in options if value is not None]  # the command's own
        names = given[0] if len(given) == 1 else f"{', '.join(given[:-1])} and {given[-1]}"
        raise UsageError(f"{names} {'applies' if len(given) == 1 else 'apply'} to --target local only")
    with open_target(
        settings,
        bugs=sim_bug or (),
        faults=sim_fault or (),
        dialects=sim_dialect or (),
        subprocess=subprocess,
        mtu=mtu,
    ) as running:
        yield running
