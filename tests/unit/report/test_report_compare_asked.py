"""``compare`` compares only what both runs were asked to do: a load run's end-of-run cleanup and a stage
run in another model are not comparable, never a regression; ``history --json`` and ``compare --json``."""

from __future__ import annotations

import dataclasses
import json
import random
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.errors import ExitCode
from harness.history import History, compare
from harness.load import LoadRecord, LoadSummary, SloGates, Sweep
from harness.metrics import Latencies
from harness.report import RunResult, StageResult, Verdict
from harness.run._load_stage import _stage_result

MS = 1_000_000
#: The steps a closed-model delivery takes on a sandbox with doors, each timed every flow.
FLOW_STEPS = ("list_lockers", "reserve", "dropoff_token", "open_for_dropoff", "close_after_dropoff")
CLEANUP_STEPS = ("cleanup_status", "cleanup_door", "cleanup_close", "cleanup_release")


def _load_run(
    run: RunResult,
    run_id: str,
    minutes: int,
    *,
    mode: str,
    cleanup: tuple[str, ...],
    steps: tuple[str, ...] = FLOW_STEPS,
) -> RunResult:
    """A run whose load stage timed ``steps`` 200 times each, and ``cleanup`` once each (the stop fell mid-delivery)."""
    record = LoadRecord()
    for step in steps:
        for index in range(200):
            record.request(step, (3 + index % 5) * MS)
    for step in cleanup:
        record.request(step, (40 if step == "cleanup_close" else 4) * MS)
    for _ in range(40):
        record.flow("completed", "delivery", 30 * MS)
    summary = LoadSummary.build(record, SloGates(), duration_s=10.0, plan={"mode": mode}, sweep=Sweep(checked=True))
    stage = _stage_result("load", summary, [])
    stage.latencies = summary.histograms()
    return dataclasses.replace(
        run, run_id=run_id, started_at=run.started_at + timedelta(minutes=minutes), stages=[stage]
    )


def test_identical_load_runs_compare_clean_wherever_their_stop_fell(tmp_path: Path, run: RunResult) -> None:
    """Ten pairs of identical 5-user load runs, each stopped at a different point of a delivery (so each
    times a different few cleanup steps, or none): every pair compares clean, exit 0, ten times out of ten;
    the cleanup steps are shown as not comparable."""
    chance = random.Random(14)
    codes = []
    with History.open(tmp_path) as history:
        for pair in range(10):
            cut = [tuple(s for s in CLEANUP_STEPS if chance.random() < 0.5) for _ in range(2)]
            first = _load_run(run, f"20261128-{pair:02d}0000-aaaa", 2 * pair, mode="closed", cleanup=cut[0])
            second = _load_run(run, f"20261128-{pair:02d}0100-bbbb", 2 * pair + 1, mode="closed", cleanup=cut[1])
            history.record(first)
            history.record(second)
            comparison = compare(history.get(first.run_id), history.get(second.run_id))
            codes.append(comparison.exit_code)
            assert comparison.regressions == [], [(c.step, c.regressions) for c in comparison.regressions]
            shown = {c.step for c in comparison.not_comparable}
            assert shown == set(cut[0]) | set(cut[1])
    assert codes == [ExitCode.OK] * 10


def test_the_cleanup_a_run_lacks_is_not_comparable_but_a_flow_step_it_lacks_is_missing(
    tmp_path: Path, run: RunResult
) -> None:
    """The case of the issue (load/cleanup_close only in the earlier run) is not comparable; a delivery step
    the later run lacks is still missing (exit 4): both runs were asked to take it."""
    before = _load_run(run, "20261128-000000-aaaa", 0, mode="closed", cleanup=("cleanup_close",))
    after = _load_run(run, "20261128-000100-bbbb", 1, mode="closed", cleanup=(), steps=FLOW_STEPS[:-1])
    with History.open(tmp_path) as history:
        history.record(before)
        history.record(after)
        comparison = compare(*history.pair([]))
    status = {change.step: change.status for change in comparison.changes}
    assert status["cleanup_close"] == "not comparable"
    assert status["close_after_dropoff"] == "missing"
    assert comparison.exit_code is ExitCode.INFRASTRUCTURE


def test_a_load_stage_run_in_the_other_model_is_not_comparable(tmp_path: Path, run: RunResult) -> None:
    """Closed against open model: the open run's steps count from each arrival's intended start and its
    flow may take other steps; none is compared, none is a regression."""
    closed = _load_run(run, "20261128-000000-aaaa", 0, mode="closed", cleanup=())
    opened = _load_run(run, "20261128-000100-bbbb", 1, mode="open", cleanup=(), steps=FLOW_STEPS[:2])
    with History.open(tmp_path) as history:
        history.record(closed)
        history.record(opened)
        comparison = compare(*history.pair([]))
    assert comparison.exit_code is ExitCode.OK
    assert {change.status for change in comparison.changes} == {"not comparable"}
    assert "closed -> open" in comparison.changes[0].not_comparable


def test_a_history_from_the_earlier_schema_opens_and_compares(tmp_path: Path, run: RunResult) -> None:
    """A database written before stages recorded their mode and incidental steps gains the columns, keeps its
    runs, and a new run compares against an old one."""
    with History.open(tmp_path) as history:
        history.record(_load_run(run, "20261128-000000-aaaa", 0, mode="closed", cleanup=("cleanup_close",)))
    database = sqlite3.connect(tmp_path / "history.sqlite")
    database.execute("ALTER TABLE stages DROP COLUMN mode")
    database.execute("ALTER TABLE stages DROP COLUMN incidental")
    database.execute("PRAGMA user_version=1")
    database.commit()
    database.close()
    with History.open(tmp_path) as history:
        history.record(_load_run(run, "20261128-000100-bbbb", 1, mode="closed", cleanup=()))
        comparison = compare(*history.pair([]))
    assert comparison.exit_code is ExitCode.OK  # the later run names its cleanup steps: enough for both
    assert [change.step for change in comparison.not_comparable] == ["cleanup_close"]


@pytest.fixture
def two_runs(tmp_path: Path, run: RunResult, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    """Two recorded load runs in a history under ``tmp_path`` (the CLI finds it through HARBOR_STATE_DIR)."""
    monkeypatch.setenv("HARBOR_STATE_DIR", str(tmp_path))
    first = _load_run(run, "20261128-000000-aaaa", 0, mode="closed", cleanup=("cleanup_close",))
    second = _load_run(run, "20261128-000100-bbbb", 1, mode="closed", cleanup=())
    with History.open(tmp_path) as history:
        history.record(first)
        history.record(second)
    return first.run_id, second.run_id


def test_history_json_lists_the_runs_for_machines(two_runs: tuple[str, str]) -> None:
    """``history --json``: one document, newest run first, each with its stages, verdicts and exit code."""
    done = CliRunner().invoke(app, ["history", "--json"])
    assert done.exit_code == 0, done.output
    document = json.loads(done.stdout)
    assert document["schema"] == 1
    assert [entry["run_id"] for entry in document["runs"]] == list(reversed(two_runs))
    newest = document["runs"][0]
    assert set(newest) == {"run_id", "started_at", "target", "tower", "verdict", "exit_code", "duration_s", "stages"}
    assert newest["stages"] == [{"name": "load", "verdict": "passed", "failures": 0, "mode": "closed"}]


def test_compare_json_gives_every_step_its_status_and_keeps_the_exit_code(two_runs: tuple[str, str]) -> None:
    """``compare --json``: both runs, the tolerance, each step with its status and figures; exit 0 here."""
    done = CliRunner().invoke(app, ["compare", "--json"])
    assert done.exit_code == 0, done.output
    document = json.loads(done.stdout)
    assert (document["before"]["run_id"], document["after"]["run_id"]) == two_runs
    assert document["exit_code"] == 0 and document["regressions"] == 0 and document["not_comparable"] == 1
    steps = {entry["step"]: entry for entry in document["steps"]}
    assert steps["cleanup_close"]["status"] == "not comparable" and steps["cleanup_close"]["after"] is None
    assert steps["reserve"]["status"] == "ok"
    assert set(steps["reserve"]["before"]) == {"count", "p50_ms", "p95_ms", "p99_ms", "max_ms", "failures"}


def _drawn(seed: int, shift_ms: float = 0.0, count: int = 300) -> Latencies:
    """``count`` reserve latencies drawn from one lognormal distribution (median 10 ms, a long tail)."""
    chance, latencies = random.Random(seed), Latencies()
    for _ in range(count):
        latencies.record("reserve", int((chance.lognormvariate(2.3, 0.6) + shift_ms) * MS))
    return latencies


def _smoke_run(run: RunResult, run_id: str, minutes: int, latencies: Latencies) -> RunResult:
    stage = StageResult("smoke", Verdict.PASSED, latencies=latencies)
    return dataclasses.replace(
        run, run_id=run_id, started_at=run.started_at + timedelta(minutes=minutes), stages=[stage]
    )


def test_a_percentile_is_a_regression_only_beyond_what_sampling_explains(tmp_path: Path, run: RunResult) -> None:
    """Two runs of 300 samples drawn from one distribution whose p99s differ by 24 % and 8.6 ms (the sampling
    error of a p99 from 300 samples) compare clean; the same run 30 ms slower is a p95 and p99 regression."""
    before, same, slower = _drawn(2), _drawn(3), _drawn(3, shift_ms=30.0)
    assert before.percentile_ms("reserve", 99) * 1.2 < same.percentile_ms("reserve", 99)  # the old rule's flag
    with History.open(tmp_path) as history:
        history.record(_smoke_run(run, "20261128-000000-aaaa", 0, before))
        history.record(_smoke_run(run, "20261128-000100-bbbb", 1, same))
        history.record(_smoke_run(run, "20261128-000200-cccc", 2, slower))
        calm = compare(history.get("aaaa"), history.get("bbbb"))
        shifted = compare(history.get("aaaa"), history.get("cccc"))
    assert calm.exit_code is ExitCode.OK, [(c.step, c.regressions) for c in calm.regressions]
    assert [(c.step, c.regressions) for c in shifted.regressions] == [("reserve", ("p95", "p99"))]
