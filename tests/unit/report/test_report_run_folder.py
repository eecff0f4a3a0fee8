"""The run folder: a new run never shares one, and `report` finds a run by any of its short forms."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

import harness.report._folder
from harness.cli.report import find_run
from harness.errors import UsageError
from harness.report import RunFolder


def test_a_new_run_never_takes_a_folder_another_run_has(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """When the random id drawn is taken (two runs, same second, same tail), the next one is drawn."""
    drawn: Iterator[str] = iter(["20261128-040512-3f9a2c", "20261128-040512-3f9a2c", "20261128-040512-b07e11"])
    monkeypatch.setattr(harness.report._folder, "new_run_id", lambda: next(drawn))
    first = RunFolder.create(tmp_path)
    second = RunFolder.create(tmp_path)
    assert (first.run_id, second.run_id) == ("20261128-040512-3f9a2c", "20261128-040512-b07e11")
    assert second.allure_results.is_dir() and second.junit_dir.is_dir()


def test_an_explicit_run_id_reuses_its_folder(tmp_path: Path) -> None:
    """A caller that names the run (a test, a resumed run) gets that folder, existing or not."""
    assert RunFolder.create(tmp_path, "r1").root == RunFolder.create(tmp_path, "r1").root == (tmp_path / "r1").resolve()


def _runs(reports: Path, *names: str) -> None:
    for index, name in enumerate(names):
        (reports / name / "allure-results").mkdir(parents=True)
        os.utime(reports / name, ns=(index * 10**9, index * 10**9))  # created in this order


def test_report_tells_runs_of_the_same_second_apart(tmp_path: Path) -> None:
    """Same second: the latest is the last to finish; a tail or a longer prefix names one, the second names both."""
    _runs(tmp_path, "20261128-040512-f00d00", "20261128-040512-3f9a2c")
    assert find_run(tmp_path, None).run_id == "20261128-040512-3f9a2c"  # not the one that sorts last by name
    assert find_run(tmp_path, "f00d00").run_id == "20261128-040512-f00d00"
    assert find_run(tmp_path, "20261128-040512-3").run_id == "20261128-040512-3f9a2c"
    with pytest.raises(UsageError, match="'20261128-040512' is ambiguous: it names 2 runs under ") as caught:
        find_run(tmp_path, "20261128-040512")
    assert ": 20261128-040512-f00d00, 20261128-040512-3f9a2c; " in str(caught.value)  # in the order they ran


def test_the_latest_run_is_the_last_started_whatever_its_chosen_id(tmp_path: Path) -> None:
    """A ``--run-id`` of the user's does not sort by time: the latest is the run that started last
    (``summary.json``'s ``started_at``), not the id that sorts last by name."""
    _runs(tmp_path, "nightly-b", "20261128-040512-3f9a2c", "a-first-try")
    for name, started in (("nightly-b", "2026-11-28T03:00:00+00:00"), ("a-first-try", "2026-11-28T05:00:00+00:00")):
        (tmp_path / name / "summary.json").write_text(json.dumps({"started_at": started}))
    assert find_run(tmp_path, None).run_id == "a-first-try"
    (tmp_path / "a-first-try" / "summary.json").write_text(json.dumps({"started_at": "2026-11-28T02:00:00+00:00"}))
    assert find_run(tmp_path, None).run_id == "20261128-040512-3f9a2c"  # its id says 04:05:12 UTC
