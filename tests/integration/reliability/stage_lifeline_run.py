"""Child process of ``test_stage_lifeline.py``: a run whose one pytest stage hangs in a quiet test.

    python stage_lifeline_run.py FOLDER

The stage's suite (written under FOLDER) holds a fixture whose teardown notes "given back", and a
test that sleeps two minutes writing nothing, so only its lifeline can stop it early.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from harness.config import Settings
from harness.redaction import Redactor
from harness.report import TargetInfo
from harness.run import PytestStage, execute, new_context

SUITE = """
import pathlib, time
import pytest

NOTES = pathlib.Path(__file__).with_name("notes.txt")


@pytest.fixture
def held():
    NOTES.write_text("held\\n")
    yield
    with NOTES.open("a") as notes:
        notes.write("given back\\n")


def test_quietly_for_two_minutes(held):
    time.sleep(120)
"""


def main() -> None:
    folder = Path(sys.argv[1])
    (folder / "suite").mkdir(parents=True, exist_ok=True)
    (folder / "suite" / "test_quiet.py").write_text(SUITE)
    settings = dataclasses.replace(Settings(), reports_dir=folder / "reports")
    context = new_context(settings=settings, target=TargetInfo("local"), redactor=Redactor(), budget_s=600)
    stage = PytestStage("properties", ("suite/test_quiet.py",), root=folder, extra_args=("-p", "no:randomly"))
    execute([stage], context)


if __name__ == "__main__":
    main()
