"""What every stage gets (``RunContext``: target, folder, budget, seed), and what a stage is."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Final, Protocol, runtime_checkable

from harness.config import Settings, TargetKind
from harness.errors import UsageError
from harness.redaction import Redactor
from harness.report import AllureWriter, RunFolder, StageResult, TargetInfo

__all__ = [
    "DEFAULT_BUDGET_S",
    "REPORT_RESERVE_S",
    "STAGE_ORDER",
    "Budget",
    "RunContext",
    "RunObserver",
    "Stage",
    "StageInterrupted",
    "new_context",
]

#: The order stages run in; a stage's name is one of these.
STAGE_ORDER: Final = ("smoke", "contract", "properties", "hw", "load")
#: Seconds a whole run may take unless told otherwise.
DEFAULT_BUDGET_S: Final = 600.0
#: Seconds kept back from the stages for writing reports and the history.
REPORT_RESERVE_S: Final = 5.0


@dataclass(frozen=True, slots=True)
class Budget:
    """A run's time budget: one deadline on the monotonic clock that every stage respects."""

    total_s: float
    deadline: float  # time.monotonic() value

    @classmethod
    def start(cls, total_s: float, *, reserve_s: float = REPORT_RESERVE_S) -> Budget:
        if total_s <= 0:
            raise UsageError(f"the time budget must be more than 0 seconds, not {total_s:g}")
        return cls(total_s, time.monotonic() + max(total_s - reserve_s, total_s / 2))

    def remaining(self) -> float:
        """Seconds left for stages (never negative)."""
        return max(self.deadline - time.monotonic(), 0.0)

    @property
    def expired(self) -> bool:
        return self.remaining() <= 0.0

    def clamp(self, seconds: float) -> float:
        """``seconds``, or less if the budget ends sooner: what a stage may spend on one thing."""
        return min(seconds, self.remaining())


class RunObserver(Protocol):
    """Listens to a run as it goes (the rich progress display, a test's recorder)."""

    def stage_started(self, name: str) -> None: ...

    def stage_progress(self, name: str, message: str) -> None: ...

    def stage_finished(self, result: StageResult) -> None: ...


@dataclass
class RunContext:
    """What every stage gets: where to point, where to write, how long it has, which seed."""

    run_id: str
    target: TargetInfo
    folder: RunFolder
    budget: Budget
    seed: int
    redactor: Redactor
    #: The resolved configuration, bound to the running target (the embedded sandbox's URL).
    settings: Settings = field(default_factory=Settings)
    #: Extra facts for ``environment.properties`` (fault profile, BLE backend, ...); stages may add.
    environment: dict[str, str] = field(default_factory=dict)
    observer: RunObserver | None = None
    #: The embedded sandbox's bug switches and fault profiles (``--sim-bug``, ``--sim-fault``), as
    #: given: a stage that starts a sandbox of its own (the hardware rig) passes them on.
    #: The target's sandbox is this run's alone (the embedded one always is; a URL only with
    #: ``--exclusive``): its suites may reseed it and move its clock.
    exclusive: bool = False
    sim_bugs: tuple[str, ...] = ()
    sim_faults: tuple[str, ...] = ()
    #: The embedded sandbox's dialects (``--sim-dialect``), passed on like the switches.
    sim_dialects: tuple[str, ...] = ()
    #: The embedded sandbox's virtual radio (its link, put on the air on first call) when it runs in
    #: this process: the smoke stage opens doors over it, as ``locker-harness smoke`` does.
    radio_link: Callable[[], object] | None = None
    #: ``--strict-assumptions``: a green run that refuted an assumption exits 5.
    strict_assumptions: bool = False

    @property
    def reports_dir(self) -> Path:
        """``reports/<run-id>/``."""
        return self.folder.root

    @cached_property
    def allure(self) -> AllureWriter:
        """The Allure writer of this run's results folder, for stages that are not pytest runs."""
        return AllureWriter(self.folder.allure_results, redactor=self.redactor)

    def progress(self, stage: str, message: str) -> None:
        """Tell whoever watches (the progress display) what a stage is doing now."""
        if self.observer is not None:
            self.observer.stage_progress(stage, message)


@runtime_checkable
class Stage(Protocol):
    """One stage of a run.

    A stage may also say whether the sandbox's BLE fault profiles reach it (a ``ble_faults``
    attribute, false when absent): ``locker-harness run --sim-fault ble_*`` is refused when no
    chosen stage opens doors over the radio those faults live in.
    """

    name: str

    def run(self, context: RunContext) -> StageResult:
        """Run within ``context.budget``; report what was found, never raise for a failed check."""
        ...


class StageInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM ended a stage that had measured something first: the run stops, and keeps
    ``result`` (a defect found before the stop is still a defect) instead of a bare "interrupted"."""

    def __init__(self, result: StageResult) -> None:
        super().__init__(f"{result.name} interrupted")
        self.result = result


def new_context(
    *,
    settings: Settings,
    target: TargetInfo,
    redactor: Redactor,
    budget_s: float = DEFAULT_BUDGET_S,
    seed: int = 0,
    run_id: str | None = None,
    observer: RunObserver | None = None,
    sim_bugs: Sequence[str] = (),
    sim_faults: Sequence[str] = (),
    sim_dialects: Sequence[str] = (),
    radio_link: Callable[[], object] | None = None,
    exclusive: bool = False,
    strict_assumptions: bool = False,
) -> RunContext:
    """A context with a fresh run id and its report folder created under ``settings.reports_dir``."""
    folder = RunFolder.create(settings.reports_dir, run_id)  # a new id unless one was given
    return RunContext(
        run_id=folder.run_id,
        target=target,
        folder=folder,
        budget=Budget.start(budget_s),
        seed=seed,
        redactor=redactor,
        settings=settings,
        observer=observer,
        sim_bugs=tuple(sim_bugs),
        sim_faults=tuple(sim_faults),
        sim_dialects=tuple(sim_dialects),
        radio_link=radio_link,
        exclusive=exclusive or settings.target.kind is TargetKind.LOCAL,
        strict_assumptions=strict_assumptions,
    )
