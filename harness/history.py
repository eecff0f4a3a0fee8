"""Run history: every run's key figures in SQLite, so this release can be compared with the last.

One file under the state directory (``.locker-harness/history.sqlite`` by default), WAL mode so
a reader (``locker-harness history``) never blocks a run that is writing. Per step it keeps the
count, p50/p95/p99/max, the failures, and the encoded HdrHistogram itself: figures can be
recomputed exactly later, and merged across runs, without re-running anything.

``compare`` is pure: two runs' step figures in, regressions out. A regression is a step whose
p95 or p99 grew beyond a relative tolerance *and* an absolute floor (so noise on a 1 ms step is
not a regression), whose failures grew, or that was timed in the earlier run and is gone from the
later one (as is a stage that ran before and not now). A percentile "grew" when the later run's
lies above the earlier run's beyond what sampling explains: the lower bound of the later one's
95 % confidence interval (from its histogram, distribution-free) against the upper bound of the
earlier one's. A p99 from 600 samples is only known to within its 2nd to 12th largest value; a
smoke step timed once is that one value. Its exit code follows the harness's table:
1 when failures grew (a broken promise), else 3 when only latency grew (an SLO matter), else 4
when only evidence went missing (the later run could not show it).

Only steps both runs were asked to perform are compared. A stage's incidental steps (a load run's
set-up, once per process, and its cleanup of a delivery its stop interrupted: there or not as the
stop falls) and every step of a
stage the two runs ran in different modes (a load run's closed and open models measure latency
differently, and take different steps) are "not comparable": shown, never a regression.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from harness.errors import ExitCode, UsageError
from harness.metrics import Latencies
from harness.redaction import Redactor, redactor
from harness.report import RunResult, Verdict, resolve_run_id

__all__ = [
    "DEFAULT_FLOOR_MS",
    "DEFAULT_TOLERANCE",
    "HISTORY_FILE",
    "JSON_SCHEMA",
    "Comparison",
    "History",
    "RunRecord",
    "StageAsked",
    "StepChange",
    "StepFigures",
    "Tolerance",
    "compare",
    "parse_tolerance",
]

HISTORY_FILE: Final = "history.sqlite"
DEFAULT_TOLERANCE: Final = 0.20
DEFAULT_FLOOR_MS: Final = 5.0
_SCHEMA_VERSION: Final = 2
#: The version of ``history --json`` and ``compare --json``; bumped when a field changes meaning.
JSON_SCHEMA: Final = 1

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS runs (
    run_id      TEXT PRIMARY KEY,
    started_at  TEXT NOT NULL,
    target      TEXT NOT NULL,
    target_url  TEXT,
    tower       TEXT,
    firmware    TEXT,
    seed        INTEGER NOT NULL,
    verdict     TEXT NOT NULL,
    exit_code   INTEGER NOT NULL,
    duration_ms REAL NOT NULL,
    interrupted INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS stages (
    run_id      TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
    position    INTEGER NOT NULL,
    stage       TEXT NOT NULL,
    verdict     TEXT NOT NULL,
    reason      TEXT NOT NULL,
    duration_ms REAL NOT NULL,
    failures    INTEGER NOT NULL,
    figures     TEXT NOT NULL,
    mode        TEXT NOT NULL DEFAULT '',
    incidental  TEXT NOT NULL DEFAULT '[]',
    PRIMARY KEY (run_id, stage)
);
CREATE TABLE IF NOT EXISTS steps (
    run_id    TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
    stage     TEXT NOT NULL,
    step      TEXT NOT NULL,
    count     INTEGER NOT NULL,
    p50_ms    REAL NOT NULL,
    p95_ms    REAL NOT NULL,
    p99_ms    REAL NOT NULL,
    max_ms    REAL NOT NULL,
    failures  INTEGER NOT NULL,
    histogram TEXT NOT NULL,
    PRIMARY KEY (run_id, stage, step)
);
CREATE INDEX IF NOT EXISTS runs_by_time ON runs (started_at);
"""
#: Columns later schema versions added to a table, for a database an earlier version created.
_ADDED_COLUMNS: Final = {
    "stages": (("mode", "TEXT NOT NULL DEFAULT ''"), ("incidental", "TEXT NOT NULL DEFAULT '[]'")),
}


@dataclass(frozen=True, slots=True)
class StepFigures:
    """One step's figures in one run."""

    stage: str
    step: str
    count: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    failures: int
    histogram: str = ""  # HdrHistogram's compressed base64; empty for a step that only failed

    @property
    def key(self) -> tuple[str, str]:
        return (self.stage, self.step)

    def as_json(self) -> dict[str, Any]:
        """The figures ``compare --json`` shows for one side of a step (no histogram)."""
        return {
            "count": self.count,
            "p50_ms": self.p50_ms,
            "p95_ms": self.p95_ms,
            "p99_ms": self.p99_ms,
            "max_ms": self.max_ms,
            "failures": self.failures,
        }


@dataclass(frozen=True, slots=True)
class StageAsked:
    """What a stage was asked to do, as far as a comparison needs it (``StageResult.mode`` and
    ``StageResult.incidental_steps``)."""

    mode: str = ""
    incidental: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class RunRecord:
    """A run as the history keeps it."""

    run_id: str
    started_at: datetime
    target: str
    verdict: Verdict
    exit_code: int
    duration_ms: float
    tower: str | None = None
    stages: tuple[tuple[str, Verdict, int], ...] = ()  # (stage, verdict, failures) in run order
    steps: tuple[StepFigures, ...] = ()
    asked: Mapping[str, StageAsked] = field(default_factory=dict)

    def latencies(self) -> Latencies:
        """The stored histograms back as ``Latencies``, keyed ``stage/step``."""
        return Latencies.decode({f"{s.stage}/{s.step}": s.histogram for s in self.steps if s.histogram})

    def _mode(self, stage: str) -> str:
        asked = self.asked.get(stage)
        return asked.mode if asked is not None else ""

    def as_json(self) -> dict[str, Any]:
        """The run as ``history --json`` lists it."""
        return {
            "run_id": self.run_id,
            "started_at": self.started_at.isoformat(),
            "target": self.target,
            "tower": self.tower,
            "verdict": self.verdict.value,
            "exit_code": self.exit_code,
            "duration_s": round(self.duration_ms / 1000, 3),
            "stages": [
                {
                    "name": name,
                    "verdict": verdict.value,
                    "failures": failures,
                    "mode": self._mode(name),
                }
                for name, verdict, failures in self.stages
            ],
        }


def _step_figures(run: RunResult) -> list[StepFigures]:
    figures: list[StepFigures] = []
    for stage in run.stages:
        failures_by_step: dict[str, int] = {}
        for failure in stage.failures:
            step = failure.step or failure.name
            failures_by_step[step] = failures_by_step.get(step, 0) + 1
        encoded = stage.latencies.encode()
        for summary in stage.summaries():
            figures.append(
                StepFigures(
                    stage=stage.name,
                    step=summary.name,
                    count=summary.count,
                    p50_ms=summary.p50_ms,
                    p95_ms=summary.p95_ms,
                    p99_ms=summary.p99_ms,
                    max_ms=summary.max_ms,
                    failures=failures_by_step.pop(summary.name, 0),
                    histogram=encoded[summary.name],
                )
            )
        # A failure on a step that never finished has no timing, but still counts.
        figures += [StepFigures(stage.name, step, 0, 0.0, 0.0, 0.0, 0.0, n) for step, n in failures_by_step.items()]
    return figures


_STEP_COLUMNS: Final = ("stage", "step", "count", "p50_ms", "p95_ms", "p99_ms", "max_ms", "failures", "histogram")


class History:
    """The run history database; open with ``History.open(state_dir)``, use as a context manager."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, timeout=10.0, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
        except (OSError, sqlite3.Error) as exc:
            raise UsageError(f"cannot open the run history {path}: {exc}") from None
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.execute("PRAGMA synchronous=NORMAL")
        # executescript commits on its own; the statements are idempotent (IF NOT EXISTS).
        self._db.executescript(_SCHEMA)
        self._add_missing_columns()
        self._db.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")

    def _add_missing_columns(self) -> None:
        """Bring a database an earlier version wrote up to date: its runs keep their defaults."""
        for table, columns in _ADDED_COLUMNS.items():
            present = {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}
            for name, declaration in columns:
                if name not in present:
                    self._db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {declaration}")

    @classmethod
    def open(cls, state_dir: Path) -> History:
        return cls(state_dir / HISTORY_FILE)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> History:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def record(self, run: RunResult, *, redactor_: Redactor | None = None) -> None:
        """Store a run's key figures; recording the same run id again replaces it.

        Stage reasons (first lines of exception messages), figures and the target URL pass through
        ``redactor_`` (the process-wide redactor, the CLI's, unless given): the database outlives
        the run and is read back by ``history`` and ``compare``.
        """
        masking = redactor_ if redactor_ is not None else redactor()
        with self._transaction():
            self._db.execute("DELETE FROM runs WHERE run_id = ?", (run.run_id,))
            self._db.execute(
                "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run.run_id,
                    run.started_at.isoformat(),
                    run.target.name,
                    masking.text(run.target.url) if run.target.url is not None else None,
                    run.target.tower,
                    run.target.firmware,
                    run.seed,
                    run.verdict.value,
                    int(run.exit_code),
                    run.duration_ns / 1e6,
                    int(run.interrupted),
                ),
            )
            self._db.executemany(
                "INSERT INTO stages (run_id, position, stage, verdict, reason, duration_ms, failures, figures, "
                "mode, incidental) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        run.run_id,
                        position,
                        stage.name,
                        stage.verdict.value,
                        masking.text(stage.reason),
                        stage.duration_ns / 1e6,
                        len(stage.failures),
                        json.dumps(masking.value(stage.figures)),
                        stage.mode,
                        json.dumps(sorted(stage.incidental_steps)),
                    )
                    for position, stage in enumerate(run.stages)
                ],
            )
            self._db.executemany(
                "INSERT INTO steps VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(run.run_id, *(getattr(s, column) for column in _STEP_COLUMNS)) for s in _step_figures(run)],
            )

    def run_ids(self, limit: int | None = None) -> list[str]:
        """Run ids, newest first."""
        query = "SELECT run_id FROM runs ORDER BY started_at DESC, run_id DESC"
        rows = self._db.execute(query + (" LIMIT ?" if limit else ""), (limit,) if limit else ())
        return [row[0] for row in rows]

    def runs(self, limit: int | None = 20) -> list[RunRecord]:
        """The latest runs, newest first, with their stages (steps are loaded by ``get``)."""
        return [self.get(run_id, with_steps=False) for run_id in self.run_ids(limit)]

    def resolve(self, reference: str) -> str:
        """A run id from a full id, a unique prefix, its random tail, or ``-1``/``-2`` (latest, the one before)."""
        if re.fullmatch(r"-\d+", reference):
            if int(reference) == 0:
                raise UsageError(f"no run {reference}: -1 is the latest run, -2 the one before")
            index = -int(reference) - 1
            ids = self.run_ids(index + 1)
            if len(ids) <= index:
                raise UsageError(f"the history holds {len(ids)} run(s): there is no run {reference}")
            return ids[index]
        like = reference.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        candidates = [
            row[0]
            for row in self._db.execute(
                "SELECT run_id FROM runs WHERE run_id LIKE ? ESCAPE '\\' OR run_id LIKE ? ESCAPE '\\' "
                "ORDER BY started_at, run_id",
                (like + "%", "%-" + like),
            )
        ]
        return resolve_run_id(reference, candidates, where=f"in the history {self.path}")

    def get(self, reference: str, *, with_steps: bool = True) -> RunRecord:
        run_id = self.resolve(reference)
        row = self._db.execute(
            "SELECT started_at, target, verdict, exit_code, duration_ms, tower FROM runs WHERE run_id = ?", (run_id,)
        ).fetchone()
        rows = self._db.execute(
            "SELECT stage, verdict, failures, mode, incidental FROM stages WHERE run_id = ? ORDER BY position",
            (run_id,),
        ).fetchall()
        stages = tuple((name, Verdict(verdict), failures) for name, verdict, failures, _, _ in rows)
        asked = {name: StageAsked(mode, frozenset(json.loads(incidental))) for name, _, _, mode, incidental in rows}
        steps: tuple[StepFigures, ...] = ()
        if with_steps:
            steps = tuple(
                StepFigures(*r)
                for r in self._db.execute(
                    f"SELECT {', '.join(_STEP_COLUMNS)} FROM steps WHERE run_id = ? ORDER BY rowid",
                    (run_id,),
                )
            )
        return RunRecord(
            run_id=run_id,
            started_at=datetime.fromisoformat(row[0]),
            target=row[1],
            verdict=Verdict(row[2]),
            exit_code=row[3],
            duration_ms=row[4],
            tower=row[5],
            stages=stages,
            steps=steps,
            asked=asked,
        )

    def pair(self, references: Sequence[str]) -> tuple[RunRecord, RunRecord]:
        """The two runs ``compare`` means: the two given, or (one given) it and the latest, or the last two."""
        if len(references) > 2:
            raise UsageError("compare takes at most two runs")
        if len(references) == 2:
            return self.get(references[0]), self.get(references[1])
        latest = self.run_ids(2)
        if len(references) == 1:
            if not latest:
                raise UsageError(f"the history {self.path} is empty: run `locker-harness run` first")
            return self.get(references[0]), self.get(latest[0])
        if len(latest) < 2:
            raise UsageError(f"compare needs two runs and the history {self.path} holds {len(latest)}")
        return self.get(latest[1]), self.get(latest[0])


# -- comparing two runs --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Tolerance:
    """How much worse a step may get before it is a regression: relative and an absolute floor."""

    relative: float = DEFAULT_TOLERANCE
    floor_ms: float = DEFAULT_FLOOR_MS

    def exceeded(self, before_ms: float, after_ms: float) -> bool:
        grown = after_ms - before_ms
        return grown > self.floor_ms and after_ms > before_ms * (1.0 + self.relative)


def parse_tolerance(text: str) -> float:
    """``20%`` or ``0.2`` as the fraction 0.2; a ``UsageError`` for anything else."""
    value = text.strip()
    try:
        fraction = float(value[:-1]) / 100.0 if value.endswith("%") else float(value)
    except ValueError:
        raise UsageError(f"tolerance {text!r} is not a number: use e.g. 20% or 0.2") from None
    if not 0.0 <= fraction <= 100.0:
        raise UsageError(f"tolerance {text!r} must be between 0% and 10000%")
    return fraction


@dataclass(frozen=True, slots=True)
class StepChange:
    """One step side by side in two runs, and what got worse; or why the two cannot be compared."""

    stage: str
    step: str
    before: StepFigures | None
    after: StepFigures | None
    regressions: tuple[str, ...] = ()  # "p95", "p99", "failures", "missing"
    #: Why the step is not compared (an incidental step, a stage run in another mode); "" if it is.
    not_comparable: str = ""

    @property
    def regressed(self) -> bool:
        return bool(self.regressions)

    @property
    def status(self) -> str:
        """``regressed``, ``missing``, ``not comparable``, ``new`` (only in the later run) or ``ok``."""
        if self.not_comparable:
            return "not comparable"
        if "missing" in self.regressions:
            return "missing"
        if self.regressions:
            return "regressed"
        return "new" if self.before is None else "ok"

    def as_json(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "step": self.step,
            "status": self.status,
            "regressions": list(self.regressions),
            "reason": self.not_comparable or None,
            "before": self.before.as_json() if self.before is not None else None,
            "after": self.after.as_json() if self.after is not None else None,
        }


@dataclass(frozen=True, slots=True)
class Comparison:
    """Two runs step by step, and what got worse from ``before`` to ``after``."""

    before: RunRecord
    after: RunRecord
    tolerance: Tolerance
    changes: list[StepChange] = field(default_factory=list)
    #: Stages that ran in ``before`` and did not run (or are absent) in ``after``.
    missing_stages: list[str] = field(default_factory=list)

    @property
    def regressions(self) -> list[StepChange]:
        return [change for change in self.changes if change.regressed]

    @property
    def not_comparable(self) -> list[StepChange]:
        return [change for change in self.changes if change.not_comparable]

    @property
    def exit_code(self) -> ExitCode:
        """1 more failures, else 3 slower p95/p99, else 4 steps or stages gone, else 0."""
        flagged = {kind for change in self.regressions for kind in change.regressions}
        if "failures" in flagged:
            return ExitCode.DEFECT
        if flagged & {"p95", "p99"}:
            return ExitCode.SLO_BREACH
        if "missing" in flagged or self.missing_stages:
            return ExitCode.INFRASTRUCTURE
        return ExitCode.OK

    def as_json(self) -> dict[str, Any]:
        """What ``compare --json`` prints: both runs, the tolerance, every step, the exit code."""

        def side(record: RunRecord) -> dict[str, Any]:
            return {
                "run_id": record.run_id,
                "started_at": record.started_at.isoformat(),
                "verdict": record.verdict.value,
                "exit_code": record.exit_code,
            }

        return {
            "schema": JSON_SCHEMA,
            "before": side(self.before),
            "after": side(self.after),
            "tolerance": {"relative": self.tolerance.relative, "floor_ms": self.tolerance.floor_ms},
            "exit_code": int(self.exit_code),
            "regressions": len(self.regressions),
            "not_comparable": len(self.not_comparable),
            "missing_stages": list(self.missing_stages),
            "steps": [change.as_json() for change in self.changes],
        }


def _not_comparable(stage: str, step: str, before: RunRecord, after: RunRecord) -> str:
    """Why a stage's step cannot be compared between the two runs; "" when it can."""
    old, new = before.asked.get(stage, StageAsked()), after.asked.get(stage, StageAsked())
    if step in old.incidental or step in new.incidental:
        return "incidental (at the run's start or its stop)"
    if old.mode and new.mode and old.mode != new.mode:
        return f"another mode ({old.mode} -> {new.mode})"
    return ""


def _bounds(figures: StepFigures, percentile: float) -> tuple[float, float]:
    """The 95 % confidence interval of a step's percentile from its histogram (the stored figure
    twice for a step recorded without one)."""
    point = figures.p95_ms if percentile == 95.0 else figures.p99_ms
    if not figures.histogram:
        return (point, point)
    return Latencies.decode({figures.step: figures.histogram}).percentile_bounds_ms(figures.step, percentile)


def compare(before: RunRecord, after: RunRecord, tolerance: Tolerance | None = None) -> Comparison:
    """Every step of either run side by side, with the regressions of ``after`` against ``before``
    among the steps both runs were asked to perform."""
    tolerance = tolerance or Tolerance()
    old = {s.key: s for s in before.steps}
    new = {s.key: s for s in after.steps}
    keys = list(old) + [key for key in new if key not in old]
    changes: list[StepChange] = []
    for key in keys:
        a, b = old.get(key), new.get(key)
        why = _not_comparable(key[0], key[1], before, after)
        if why:
            changes.append(StepChange(key[0], key[1], a, b, (), why))
            continue
        regressions: list[str] = []
        if a is not None and b is not None and a.count and b.count:
            for name, percentile in (("p95", 95.0), ("p99", 99.0)):
                # Beyond what sampling explains: the later run's lower bound against the earlier's upper.
                if tolerance.exceeded(_bounds(a, percentile)[1], _bounds(b, percentile)[0]):
                    regressions.append(name)
        if b is not None and b.failures > (a.failures if a is not None else 0):
            regressions.append("failures")
        if a is not None and a.count and b is None:
            regressions.append("missing")  # timed before, not even attempted now
        changes.append(StepChange(key[0], key[1], a, b, tuple(regressions)))
    ran_after = {name for name, verdict, _ in after.stages if verdict is not Verdict.SKIPPED}
    missing = [name for name, verdict, _ in before.stages if verdict is not Verdict.SKIPPED and name not in ran_after]
    return Comparison(before, after, tolerance, changes, missing)
