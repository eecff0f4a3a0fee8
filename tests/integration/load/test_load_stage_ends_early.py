"""A load stage that ends badly still sweeps and writes its summary before the error goes on.

Locust is replaced by a stand-in that leaves a locker held (a user killed mid-flow) and then ends
as Locust can end badly: killed past its deadline, gone without its record, or refusing the
configuration. Each time the sweep gives the locker back and ``load/summary.json`` says what
is known, and only then the stage raises.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.api import HarborClient
from harness.errors import ExitCode, HarnessError, InfrastructureError, UsageError
from harness.load import LoadPlan, LoadRecord, SloGates
from harness.load._locust import LocustFiles, LocustOutcome
from harness.redaction import redactor
from harness.report import TargetInfo
from harness.run import LoadStage, RunContext, new_context
from harness.run import _load_stage as stage_module
from harness.testing import LOCAL_TOWER, LocalTarget, local_target

pytestmark = pytest.mark.load

LEFT_HELD = 1407


@pytest.fixture(scope="module")
def target() -> Iterator[LocalTarget]:
    with local_target() as running:
        yield running


def _context(target: LocalTarget, tmp_path: Path) -> RunContext:
    settings = dataclasses.replace(target.settings, reports_dir=tmp_path / "reports", state_dir=tmp_path / "state")
    info = TargetInfo("local", settings.target.api_url, LOCAL_TOWER)
    return new_context(settings=settings, target=info, redactor=redactor(), budget_s=600)


def _status(target: LocalTarget, locker_id: int) -> str:
    return next(str(locker["status"]) for locker in target.control.state()["lockers"] if locker["id"] == locker_id)


def _fake_locust(target: LocalTarget, end: Callable[[LocustFiles], LocustOutcome]) -> Callable[..., LocustOutcome]:
    def run_locust(command: list[str], *, files: LocustFiles, **_: Any) -> LocustOutcome:
        files.folder.mkdir(parents=True, exist_ok=True)
        files.log.write_text("locust output\n", encoding="utf-8")
        with HarborClient(target.settings) as api:
            api.reserve(LOCAL_TOWER, LEFT_HELD)  # a user stopped mid-flow, its hold never given back
        return end(files)

    return run_locust


def _killed(files: LocustFiles) -> LocustOutcome:
    raise InfrastructureError(f"Locust did not finish within 75 s; see {files.log}")


def _no_record(files: LocustFiles) -> LocustOutcome:
    return LocustOutcome(returncode=1, interrupted=False, elapsed_s=2.0)


def _refused(files: LocustFiles) -> LocustOutcome:
    document = {"run": {"fatal": "no tower T-9 on this target"}, "record": LoadRecord.merged(()).to_json()}
    files.record.write_text(json.dumps(document), encoding="utf-8")
    return LocustOutcome(returncode=2, interrupted=False, elapsed_s=1.0)


@pytest.mark.parametrize(
    ("end", "raised", "code", "says"),
    [
        (_killed, InfrastructureError, ExitCode.INFRASTRUCTURE, "did not finish within 75 s"),
        (_no_record, InfrastructureError, ExitCode.INFRASTRUCTURE, "Locust exited 1 without its record"),
        (_refused, UsageError, ExitCode.USAGE, "no tower T-9"),
    ],
    ids=["killed past its deadline", "no record", "fatal in the record"],
)
def test_a_run_that_ends_badly_is_swept_and_summarised_before_it_raises(
    target: LocalTarget,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    end: Callable[[LocustFiles], LocustOutcome],
    raised: type[HarnessError],
    code: ExitCode,
    says: str,
) -> None:
    """The locker the run left is given back, and summary.json records the sweep and the error."""
    target.control.reset()
    monkeypatch.setattr(stage_module, "run_locust", _fake_locust(target, end))
    locustfile = tmp_path / "locustfile.py"
    locustfile.write_text("# never run: Locust is replaced\n", encoding="utf-8")
    context = _context(target, tmp_path)
    stage = LoadStage(LoadPlan(duration_s=5), SloGates(), locustfile=locustfile)

    with pytest.raises(raised, match=says):
        stage.run(context)

    assert _status(target, LEFT_HELD) == "available"
    assert stage.files is not None
    summary = json.loads((stage.files.folder / "summary.json").read_text(encoding="utf-8"))
    assert summary["exit_code"] == int(code)
    assert says in summary["error"] and says in summary["reason"]
    sweep = summary["cleanup"]["sweep"]
    assert (sweep["checked"], sweep["found"], sweep["released"]) == (True, 1, 1)
