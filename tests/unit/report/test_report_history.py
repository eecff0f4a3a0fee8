"""Run history in SQLite and ``compare``: regressions flagged beyond tolerance and floor, noise not."""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from harness.errors import ExitCode, UsageError
from harness.history import History, Tolerance, compare, parse_tolerance
from harness.metrics import Latencies
from harness.redaction import Redactor
from harness.report import RunResult, StageResult, Verdict


def _with_smoke(run: RunResult, run_id: str, minutes: int, latencies: Latencies) -> RunResult:
    stage = StageResult("smoke", Verdict.PASSED, latencies=latencies)
    return dataclasses.replace(
        run, run_id=run_id, started_at=run.started_at + timedelta(minutes=minutes), stages=[stage]
    )


def test_a_recorded_run_comes_back_with_its_figures_and_histograms(tmp_path: Path, run: RunResult) -> None:
    """Verdict, stages, per-step figures, failures and histograms survive the database, in WAL mode."""
    with History.open(tmp_path) as history:
        history.record(run)
        record = history.get(run.run_id)
    assert (record.verdict, record.exit_code, record.target, record.tower) == (
        Verdict.FAILED,
        1,
        "local",
        "0100000000000014",
    )
    stages = [(name, verdict) for name, verdict, _ in record.stages]
    assert stages == [("smoke", Verdict.FAILED), ("load", Verdict.PASSED)]
    steps = {(s.stage, s.step): s for s in record.steps}
    assert steps[("load", "reserve")].count == 100
    assert steps[("load", "reserve")].p99_ms == pytest.approx(99.07, abs=0.1)
    assert steps[("smoke", "open dropoff")].failures == 1  # a failed step that never finished still counts
    assert record.latencies().count("load/reserve") == 100
    mode = sqlite3.connect(tmp_path / "history.sqlite").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_a_secret_in_a_stage_reason_never_reaches_the_history_database(
    tmp_path: Path, run: RunResult, redactor: Redactor, canary: str
) -> None:
    """A stage reason quoting a registered secret or a secret key's value, or a URL carrying one, is stored redacted."""
    smoke, load = run.stages
    leaky = dataclasses.replace(
        run,
        target=dataclasses.replace(run.target, url=f"http://127.0.0.1:8123/?client_secret={canary}"),
        stages=[
            dataclasses.replace(smoke, reason=f"token refused: {canary}"),
            dataclasses.replace(load, reason="client_secret=hunter2-unregistered refused", figures={"note": canary}),
        ],
    )
    with History.open(tmp_path) as history:
        history.record(leaky, redactor_=redactor)
        assert history.get(leaky.run_id).target == "local"  # the rest of the run is kept as it was
    database = sqlite3.connect(tmp_path / "history.sqlite")
    dumped = "\n".join(database.iterdump())
    database.close()
    assert "token refused: [REDACTED]" in dumped
    assert canary not in dumped and "hunter2-unregistered" not in dumped
    stored = [path.read_bytes() for path in tmp_path.iterdir() if path.name.startswith("history.sqlite")]
    assert not any(canary.encode() in content for content in stored)  # nor in the WAL or a freed page


def test_runs_are_listed_newest_first_and_resolved_by_prefix_or_position(
    tmp_path: Path, run: RunResult, make_latencies: Callable[..., Latencies]
) -> None:
    """`history` lists newest first; a run is named by id, unique prefix, random tail, or -1 / -2."""
    with History.open(tmp_path) as history:
        history.record(_with_smoke(run, "20261128-040512-aaaa", 0, make_latencies(a=[1.0])))
        history.record(_with_smoke(run, "20261129-040512-bbbb", 1440, make_latencies(a=[1.0])))
        assert [r.run_id for r in history.runs()] == ["20261129-040512-bbbb", "20261128-040512-aaaa"]
        assert history.resolve("20261128") == "20261128-040512-aaaa"
        assert history.resolve("bbbb") == "20261129-040512-bbbb"  # the random tail
        assert history.resolve("-2") == "20261128-040512-aaaa"
        before, after = history.pair([])
        assert (before.run_id, after.run_id) == ("20261128-040512-aaaa", "20261129-040512-bbbb")
        with pytest.raises(UsageError, match="ambiguous"):
            history.resolve("2026112")
        with pytest.raises(UsageError, match="no run"):
            history.resolve("1999")


def test_compare_flags_an_injected_latency_regression_and_ignores_noise(
    tmp_path: Path, run: RunResult, make_latencies: Callable[..., Latencies]
) -> None:
    """+50 ms on one step is a regression; +1.5 ms on a 1 ms step is noise under the floor."""
    base = {"authenticate": [1.0] * 20, "reserve": [4.0] * 20, "open": [20.0] * 20}
    slower = base | {"reserve": [54.0] * 20, "authenticate": [2.5] * 20}
    with History.open(tmp_path) as history:
        history.record(_with_smoke(run, "20261128-000000-aaaa", 0, make_latencies(**base)))
        history.record(_with_smoke(run, "20261128-000100-bbbb", 1, make_latencies(**slower)))
        comparison = compare(*history.pair([]), Tolerance(relative=0.2, floor_ms=5.0))
    flagged = {change.step: change.regressions for change in comparison.regressions}
    assert flagged == {"reserve": ("p95", "p99")}
    assert comparison.exit_code is ExitCode.SLO_BREACH  # slower, not broken: exit 3


def test_more_failures_on_a_step_is_a_regression(tmp_path: Path, run: RunResult) -> None:
    """A step that fails where it passed before is flagged even when it is faster."""
    with History.open(tmp_path) as history:
        history.record(_with_smoke(run, "20261128-000000-aaaa", -10, Latencies()))
        history.record(run)  # its smoke stage has a failed step
        comparison = compare(*history.pair([]))
    assert [(c.stage, c.step, c.regressions) for c in comparison.regressions] == [
        ("smoke", "open dropoff", ("failures",))
    ]
    assert comparison.exit_code is ExitCode.DEFECT  # a broken promise: exit 1


def test_a_step_or_stage_the_later_run_lacks_is_flagged(
    tmp_path: Path, run: RunResult, make_latencies: Callable[..., Latencies]
) -> None:
    """A timed step or a stage that ran before and is gone from the later run is flagged: nothing shows it works."""
    before = dataclasses.replace(
        run,
        run_id="20261128-000000-aaaa",
        stages=[
            StageResult("smoke", Verdict.PASSED, latencies=make_latencies(reserve=[4.0], open=[20.0])),
            StageResult("contract", Verdict.PASSED, figures={"tests": 25}),
            StageResult("hw", Verdict.SKIPPED, "no bench tower"),
        ],
    )
    after = dataclasses.replace(
        run,
        run_id="20261128-000100-bbbb",
        started_at=run.started_at + timedelta(minutes=1),
        stages=[StageResult("smoke", Verdict.PASSED, latencies=make_latencies(reserve=[4.0]))],
    )
    with History.open(tmp_path) as history:
        history.record(before)
        history.record(after)
        comparison = compare(*history.pair([]))
    assert [(c.stage, c.step, c.regressions) for c in comparison.regressions] == [("smoke", "open", ("missing",))]
    assert comparison.missing_stages == ["contract"]  # hw never ran before: nothing went missing
    assert comparison.exit_code is ExitCode.INFRASTRUCTURE  # no evidence for it now: could not test


def test_two_equal_runs_compare_clean(tmp_path: Path, run: RunResult) -> None:
    """A run compared with itself flags nothing and exits 0."""
    with History.open(tmp_path) as history:
        history.record(run)
        comparison = compare(history.get(run.run_id), history.get(run.run_id))
    assert (comparison.regressions, comparison.missing_stages, comparison.exit_code) == ([], [], ExitCode.OK)


@pytest.mark.parametrize("reference", ["-0", "-00"])
def test_runs_count_back_from_minus_one(tmp_path: Path, run: RunResult, reference: str) -> None:
    """-1 is the latest run; -0 is no run (it once named the oldest), a usage error saying so."""
    with History.open(tmp_path) as history:
        history.record(run)
        assert history.resolve("-1") == run.run_id
        with pytest.raises(UsageError, match=r"-1 is the latest"):
            history.resolve(reference)


@pytest.mark.parametrize(("text", "fraction"), [("20%", 0.2), ("0.2", 0.2), ("5 %", 0.05), ("0", 0.0)])
def test_tolerance_reads_percent_or_fraction(text: str, fraction: float) -> None:
    """--tolerance takes 20% or 0.2."""
    assert parse_tolerance(text) == pytest.approx(fraction)


@pytest.mark.parametrize("text", ["fast", "-5%", ""])
def test_a_bad_tolerance_is_a_usage_error(text: str) -> None:
    """Anything else is one clear usage error."""
    with pytest.raises(UsageError):
        parse_tolerance(text)
