"""A smoke step that passed after retried attempts says so, in its row and in a line per attempt."""

from __future__ import annotations

import pytest

from harness.cli._common import Output
from harness.cli.smoke import _Progress
from harness.flow import Step, StepFinished
from harness.model import LockerStatus


def test_a_step_that_passed_after_retries_says_what_was_retried(capsys: pytest.CaptureFixture[str]) -> None:
    progress = _Progress(Output())
    attempt = "POST http://127.0.0.1:1/realms/harbor/protocol/openid-connect/token answered 503 Service Unavailable"
    progress(StepFinished(Step.AUTHENTICATE, 3_000_000_000, None, True, retried=(f"{attempt} (attempt 1 of 3)",)))
    progress(StepFinished(Step.LIST_LOCKERS, 8_000_000, LockerStatus.AVAILABLE, True))
    progress.show()
    shown = capsys.readouterr().out
    assert "ok, 1 retried" in shown and shown.count("retried") == 2
    assert f"retried: authenticate: {attempt} (attempt 1 of 3)" in shown
