"""The hardware rig's stage: its own sandbox's switches on local, and no false verdict without a bench tower."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import pytest

from harness.config import PROJECT_ROOT, BleBackend, Settings, Target, TargetKind
from harness.errors import ExitCode, UsageError
from harness.redaction import Redactor
from harness.report import TargetInfo, Verdict
from harness.run import HardwareStage, RunContext, execute, new_context
from harness.run._pytest_stage import HW_BUGS_ENV, HW_DIALECTS_ENV, HW_FAULTS_ENV

_RIG_WITHOUT_BLUETOOTH = "!!!!! _pytest.outcomes.Exit: hw rig: no Bluetooth adapter (BluetoothUnavailable) !!!!!"


class _Rig(HardwareStage):
    """The hw stage with a stand-in child: it prints its HARBOR_HW_* variables and a line, and exits with a code."""

    def command(self, context: RunContext) -> list[str]:
        line, code = self.extra_args
        script = (
            "import os, sys\n"
            "print('bugs=' + os.environ.get('HARBOR_HW_SIM_BUG', '-'))\n"
            "print('faults=' + os.environ.get('HARBOR_HW_SIM_FAULT', '-'))\n"
            "print('dialects=' + os.environ.get('HARBOR_HW_SIM_DIALECT', '-'))\n"
            "print('ble=' + os.environ.get('HARBOR_BLE', '-'))\n"
            f"print({line!r})\n"
            f"sys.exit({code})\n"
        )
        return [sys.executable, "-c", script]


def _rig(root: Path, line: str = "", code: int = 5) -> _Rig:
    return _Rig("hw", ("hw_tests",), root=root, extra_args=(line, str(code)))


def _context(tmp_path: Path, settings: Settings, **switches: tuple[str, ...]) -> RunContext:
    settings = dataclasses.replace(settings, reports_dir=tmp_path / "reports")
    return new_context(settings=settings, target=TargetInfo(settings.target.name), redactor=Redactor(), **switches)


def _sandbox(*, tower: str | None, ble: BleBackend = BleBackend.BLEAK) -> Settings:
    return Settings(target=Target(TargetKind.SANDBOX, "https://api.sandbox.harborlockers.com"), tower_id=tower, ble=ble)


def test_on_local_the_rig_gets_the_runs_bug_switches_and_fault_profiles(tmp_path: Path) -> None:
    """The rig's own sandbox gets --sim-bug and --sim-dialect comma-separated and --sim-fault ;-separated, as given."""
    context = _context(
        tmp_path,
        Settings(),
        sim_bugs=("double_booking", "stale_status_after_close"),
        sim_faults=("latency:ms=20,paths=/api", "ble_busy:count=1"),
        sim_dialects=("create_200", "no_token_id"),
    )
    execute([_rig(tmp_path)], context)
    log = (context.reports_dir / "hw" / "pytest.log").read_text()
    assert "bugs=double_booking,stale_status_after_close\n" in log
    assert "faults=latency:ms=20,paths=/api;ble_busy:count=1\n" in log
    assert "dialects=create_200,no_token_id\n" in log


def test_the_rig_in_the_checkout_reads_the_variables_the_stage_passes() -> None:
    """hw_tests/ takes its sandbox's switches from HARBOR_HW_SIM_BUG, HARBOR_HW_SIM_FAULT and
    HARBOR_HW_SIM_DIALECT, as the stage sends."""
    rig = (PROJECT_ROOT / "hw_tests" / "conftest.py").read_text()
    assert all(variable in rig for variable in (HW_BUGS_ENV, HW_FAULTS_ENV, HW_DIALECTS_ENV))


@pytest.mark.parametrize(
    ("settings", "reason"),
    [
        (_sandbox(tower=None), "no bench tower named: set HARBOR_TOWER_ID"),
        (_sandbox(tower="0100000000000014", ble=BleBackend.VIRTUAL), "the virtual radio exists on local and on"),
        (
            Settings(target=Target(TargetKind.URL, "http://127.0.0.1:9"), ble=BleBackend.BLEAK, tower_id=None),
            "no bench",
        ),
    ],
    ids=["sandbox-no-tower", "sandbox-virtual", "url-bleak"],
)
def test_without_a_bench_tower_the_rig_is_skipped_with_the_reason(
    tmp_path: Path, settings: Settings, reason: str
) -> None:
    """A target with no tower the rig can reach skips the stage, saying why, and the rig never starts."""
    context = _context(tmp_path, settings)
    run = execute([_rig(tmp_path, "started", 0)], context)
    [result] = run.stages
    assert result.verdict is Verdict.SKIPPED and reason in result.reason
    assert not (context.reports_dir / "hw" / "pytest.log").exists()


def test_a_sandbox_url_without_a_served_radio_skips_the_rig_saying_so(tmp_path: Path) -> None:
    """A virtual sandbox URL whose radio lives only in its own process (``GET /_sim/radio`` 404) has no
    doors the rig can reach: the stage is skipped with the reason, and the rig never starts."""
    from harness.sim import VirtualSandbox

    with VirtualSandbox() as sandbox:
        context = _context(tmp_path, Settings(target=Target(TargetKind.URL, sandbox.url)))
        [result] = execute([_rig(tmp_path, "started", 0)], context).stages
    assert result.verdict is Verdict.SKIPPED and "serves no virtual radio" in result.reason
    assert not (context.reports_dir / "hw" / "pytest.log").exists()


def test_no_adapter_skips_unless_bluetooth_was_asked_for(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On sandbox with a tower: no adapter under the default is a skip; an explicit HARBOR_BLE=bleak
    makes it could-not-test, in the rig's one line."""
    monkeypatch.delenv("HARBOR_BLE", raising=False)
    context = _context(tmp_path, _sandbox(tower="01"))
    [implicit] = execute([_rig(tmp_path, _RIG_WITHOUT_BLUETOOTH, 4)], context).stages
    assert implicit.verdict is Verdict.SKIPPED
    assert implicit.reason == "no bench tower within reach: hw rig: no Bluetooth adapter (BluetoothUnavailable)"
    assert "ble=-\n" in (context.reports_dir / "hw" / "pytest.log").read_text()  # the rig's own default rule

    monkeypatch.setenv("HARBOR_BLE", "bleak")
    context = _context(tmp_path, _sandbox(tower="01"))
    run = execute([_rig(tmp_path, _RIG_WITHOUT_BLUETOOTH, 4)], context)
    assert "ble=bleak\n" in (context.reports_dir / "hw" / "pytest.log").read_text()
    [explicit] = run.stages
    assert (explicit.verdict, explicit.reason) == (
        Verdict.INFRASTRUCTURE,
        "hw rig: no Bluetooth adapter (BluetoothUnavailable)",
    )
    assert run.exit_code is ExitCode.INFRASTRUCTURE


_LOST_LINK = (
    '<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="hw" tests="2" failures="1">'
    '<testcase classname="hw_tests.test_open_latency" name="test_open_latency" time="0.5" />'
    '<testcase classname="hw_tests.test_wrong_tokens" name="test_expired_token_is_refused" time="0.2">'
    '<failure message="harness.ble._errors.BleLinkError: the tower dropped the link [phase=open]">'
    "harness.ble._errors.BleLinkError: the tower dropped the link [phase=open]</failure></testcase>"
    "</testsuite></testsuites>"
)


class _RigThatRan(HardwareStage):
    """The hw stage with a stand-in child that ran its tests, wrote its JUnit file and exits with a code."""

    def command(self, context: RunContext) -> list[str]:
        junit, code = context.folder.junit(self.name), self.extra_args[0]
        script = f"import pathlib, sys\npathlib.Path({str(junit)!r}).write_text({_LOST_LINK!r})\nsys.exit({code})\n"
        return [sys.executable, "-c", script]


def test_a_rig_that_ran_and_could_not_test_is_exit_4_naming_the_phase(tmp_path: Path) -> None:
    """The rig's "could not test" (every failure a lost link) exits 4, the code pytest also gives a
    command line it refuses: after tests ran it is judged from the results, exit 4 naming the phase."""
    context = _context(tmp_path, _sandbox(tower="0100000000000014", ble=BleBackend.BLEAK))
    run = execute([_RigThatRan("hw", ("hw_tests",), root=tmp_path, extra_args=("4",))], context)
    [stage] = run.stages
    assert stage.verdict is Verdict.INFRASTRUCTURE and "phase=open" in stage.reason, stage.reason
    assert run.exit_code is ExitCode.INFRASTRUCTURE


def test_pytest_refusing_the_rig_s_command_line_is_a_usage_error(tmp_path: Path) -> None:
    """pytest's own 4 before any test ran (no JUnit file): the command line was refused, exit 2."""
    context = _context(tmp_path, _sandbox(tower="0100000000000014", ble=BleBackend.BLEAK))
    with pytest.raises(UsageError, match=r"pytest refused the hw stage's command line: .*--nope"):
        execute([_rig(tmp_path, "ERROR: usage: error: unrecognized arguments: --nope", 4)], context)
