"""A pytest-based stage (the seam the contract, property and hardware suites plug into), with a fake suite."""

from __future__ import annotations

import dataclasses
import json
import re
import sys
from pathlib import Path

import pytest

from harness.config import Credentials, Secret, Settings, Target
from harness.errors import ExitCode, UsageError
from harness.redaction import Redactor
from harness.report import CATEGORIES, FailureKind, TargetInfo, Verdict
from harness.run import PytestStage, available_stages, execute, new_context

SECRET = "fake-secret-for-the-child-9d1e"

_SUITE = """
import json
import os
import pytest
from harness.errors import ProductDefect, ServerError

def test_times_ble_phases():
    from harness.metrics import Latencies
    latencies = Latencies()
    for ms in range(1, 21):
        latencies.record("ble connect", ms * 1_000_000)
    folder = os.environ["LOCKER_HARNESS_LATENCIES_DIR"]
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, f"{os.getpid()}.json"), "w") as out:
        json.dump(latencies.encode(), out)

def test_sees_the_target():
    print("secret in the log:", os.environ["HARBOR_CLIENT_SECRET"])
    assert os.environ["HARBOR_TARGET"] == "http://127.0.0.1:9"
    assert os.environ["HARBOR_TOWER_ID"] == "0100000000000014"
    assert os.environ["LOCKER_HARNESS_SEED"] == "7"

def test_double_booking():
    raise ProductDefect("locker 1401 reserved twice", check="one_holder")

def test_sandbox_down():
    raise ServerError("503 after 3 attempts", status_code=503)

@pytest.mark.skip(reason="needs a bench tower")
def test_ble():
    pass
"""


def _context(tmp_path: Path):  # type: ignore[no-untyped-def]
    settings = Settings().with_target(Target.local().running_at("http://127.0.0.1:9"))
    settings = settings.with_credentials(Credentials("demo-provider", Secret(SECRET)))
    settings = dataclasses.replace(settings, reports_dir=tmp_path / "reports")
    return new_context(
        settings=settings, target=TargetInfo("local", "http://127.0.0.1:9"), redactor=Redactor([SECRET]), seed=7
    )


def test_a_pytest_stage_runs_the_suite_and_classifies_its_failures(tmp_path: Path) -> None:
    """The child sees the target in HARBOR_*; its JUnit is read back with product and infrastructure apart."""
    (tmp_path / "suite").mkdir()
    (tmp_path / "suite" / "test_fake.py").write_text(_SUITE)
    context = _context(tmp_path)
    stage = PytestStage("contract", ("suite",), root=tmp_path)

    run = execute([stage], context)

    [result] = run.stages
    assert run.exit_code is ExitCode.DEFECT
    assert result.verdict is Verdict.FAILED
    assert result.figures == {"tests": 5, "passed": 2, "failed": 1, "broken": 1, "skipped": 1}
    assert result.latencies.count("ble connect") == 20  # histograms from the child, merged exactly
    assert (context.folder.plots_dir / "contract-ble-connect.svg").is_file()
    kinds = {f.name: (f.kind, f.error_type) for f in result.failures}
    assert kinds == {
        "test_fake::test_double_booking": (FailureKind.PRODUCT, "ProductDefect"),
        "test_fake::test_sandbox_down": (FailureKind.INFRASTRUCTURE, "ServerError"),
    }
    folder = context.folder.root
    assert (folder / "junit" / "contract.xml").is_file()
    log = (folder / "contract" / "pytest.log").read_text()
    assert SECRET not in log and "passed" in log

    results = [json.loads(p.read_text()) for p in (folder / "allure-results").glob("*-result.json")]
    double = next(r for r in results if r["name"] == "test_double_booking")
    message = double["statusDetails"]["message"]
    category = next(
        c["name"]
        for c in CATEGORIES
        if double["status"] in c["matchedStatuses"] and re.search(c.get("messageRegex", ""), message)
    )
    assert category == "Product defects"  # allure-pytest calls it broken; the category still says product


def test_pytest_stages_register_only_when_their_suite_exists(tmp_path: Path) -> None:
    """contract, properties and hw appear once their test files are in the checkout."""
    assert "contract" not in available_stages(tmp_path)
    (tmp_path / "contracts").mkdir()
    (tmp_path / "contracts" / "test_contract.py").write_text("def test_x():\n    pass\n")
    (tmp_path / "hw_tests").mkdir()
    (tmp_path / "hw_tests" / "test_rig.py").write_text("def test_y():\n    pass\n")
    assert [name for name in available_stages(tmp_path) if name != "smoke"] == ["contract", "hw"]


def test_the_load_stage_registers_with_its_locustfile(tmp_path: Path) -> None:
    """load appears last once the checkout has loadtests/locustfile.py, and runs that very file."""
    from harness.run import LoadStage

    assert "load" not in available_stages(tmp_path)
    (tmp_path / "loadtests").mkdir()
    (tmp_path / "loadtests" / "locustfile.py").write_text("")
    stages = available_stages(tmp_path)
    assert list(stages)[-1] == "load"
    stage = stages["load"]()
    assert isinstance(stage, LoadStage) and stage.locustfile == tmp_path / "loadtests" / "locustfile.py"


_ALL_SKIPPED = """
import pytest

@pytest.mark.skip(reason="needs a bench tower")
def test_open_over_ble():
    pass

def test_sandbox_door():
    pytest.skip("the target has no virtual doors")
"""


def test_a_suite_whose_every_test_skipped_is_a_skipped_stage_with_the_reasons(tmp_path: Path) -> None:
    """Nothing passed and nothing failed: the stage is skipped with the suite's reasons, never passed."""
    (tmp_path / "suite").mkdir()
    (tmp_path / "suite" / "test_skips.py").write_text(_ALL_SKIPPED)
    context = _context(tmp_path)

    [result] = execute([PytestStage("hw", ("suite",), root=tmp_path)], context).stages

    assert result.verdict is Verdict.SKIPPED
    assert "needs a bench tower" in result.reason and "the target has no virtual doors" in result.reason
    assert result.figures["skipped"] == 2


_RIG_STOPS = """
import pytest

@pytest.fixture(scope="session", autouse=True)
def rig():
    pytest.exit("hw rig: no Bluetooth adapter (BluetoothUnavailable)", returncode=4)

def test_open():
    pass
"""


def test_a_suite_that_stops_itself_as_could_not_test_is_one_line_of_infrastructure(tmp_path: Path) -> None:
    """``pytest.exit(..., returncode=4)`` (the rig without Bluetooth) is infrastructure with the suite's own line."""
    (tmp_path / "suite").mkdir()
    (tmp_path / "suite" / "test_rig.py").write_text(_RIG_STOPS)
    context = _context(tmp_path)

    run = execute([PytestStage("contract", ("suite",), root=tmp_path)], context)

    [result] = run.stages
    assert (result.verdict, result.reason) == (
        Verdict.INFRASTRUCTURE,
        "hw rig: no Bluetooth adapter (BluetoothUnavailable)",
    )
    assert run.exit_code is ExitCode.INFRASTRUCTURE


class _Ends(PytestStage):
    """A pytest stage whose child prints what pytest prints in a given ending, and exits with its code."""

    def command(self, context):  # type: ignore[no-untyped-def]
        output, code = self.extra_args
        return [sys.executable, "-c", f"import sys; print({output!r}, file=sys.stderr); sys.exit({code})"]


@pytest.mark.parametrize(
    ("output", "code", "expected"),
    [
        ("!!!!!! _pytest.outcomes.Exit: hw rig: a bench run needs HARBOR_BLE=bleak !!!!!!", 2, "UsageError"),
        (
            "ERROR: usage: python -m pytest [options] [file_or_dir]\n"
            "python -m pytest: error: unrecognized arguments: --hw-cycle=3",
            4,
            "UsageError",
        ),
        ("Interrupted: 1 error during collection", 2, "RuntimeError"),  # a broken test module: the harness's
    ],
)
def test_a_childs_usage_error_is_a_usage_error(tmp_path: Path, output: str, code: int, expected: str) -> None:
    """The suite's own stop with exit 2, or pytest refusing its command line (4), stop the run as usage (exit 2)."""
    context = _context(tmp_path)
    stage = _Ends("contract", ("suite",), root=tmp_path, extra_args=(output, str(code)))
    if expected == "UsageError":
        with pytest.raises(UsageError) as stopped:
            execute([stage], context)
        assert "HARBOR_BLE=bleak" in str(stopped.value) or "unrecognized arguments: --hw-cycle=3" in str(stopped.value)
        assert "\n" not in str(stopped.value)
    else:
        [result] = execute([stage], context).stages
        assert result.verdict is Verdict.INFRASTRUCTURE and result.failures[0].kind is FailureKind.TEST
