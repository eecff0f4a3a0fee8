"""``locker-harness contract`` and ``props`` as a user types them: a child pytest, its JUnit and Allure read back.

These run the suites end to end (embedded sandbox in this process, the suite in a child pytest),
so they are the slowest tests of this folder: each keeps to the smallest budget the commands take.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.config import ENVIRONMENT
from harness.report import CaseOutcome, read_junit

#: Every HARBOR_* variable unset: the commands must find local on their own, whatever the shell has.
NO_HARBOR_ENV: dict[str, str | None] = dict.fromkeys(ENVIRONMENT)
BUDGET = "30"
#: The contract suite's floor (every operation's coverage cases) needs more of a budget than the properties.
CONTRACT_BUDGET = "45"


def _invoke(tmp_path: Path, *args: str) -> tuple[int, str, Path]:
    env = {**NO_HARBOR_ENV, "HARBOR_REPORTS_DIR": str(tmp_path / "reports"), "HARBOR_STATE_DIR": str(tmp_path)}
    result = CliRunner().invoke(app, list(args), env=env)
    runs = sorted((tmp_path / "reports").iterdir())
    assert len(runs) == 1, result.output
    return result.exit_code, result.output, runs[0]


def _allure_texts(run: Path) -> str:
    return "\n".join(path.read_text(encoding="utf-8") for path in (run / "allure-results").glob("*-result.json"))


def test_props_names_the_oracle_a_planted_bug_breaks(tmp_path: Path) -> None:
    """With ignore_token_expiry planted, ``props`` exits 1 and JUnit, Allure and the screen name the oracle."""
    code, output, run = _invoke(tmp_path, "props", "--budget", BUDGET, "--sim-bug", "ignore_token_expiry")
    assert code == 1, output
    failed = [case for case in read_junit(run / "junit" / "properties.xml") if case.outcome is CaseOutcome.FAILED]
    expected = "test_properties::test_token_lifecycle[token_is_refused_after_it_expires]"
    assert [case.name for case in failed] == [expected]
    assert "token_is_refused_after_it_expires" in _allure_texts(run)
    assert "token_is_refused_after_it_expires" in output
    assert (run / "summary.md").is_file() and (run / "summary.json").is_file()


def test_props_without_control_plane_skips_tower_tests_with_reasons(tmp_path: Path) -> None:
    """Treated as a target without /_sim, ``props`` skips door, clock and token tests saying why; the rest pass."""
    code, output, run = _invoke(tmp_path, "props", "--budget", BUDGET, "--no-control-plane")
    assert code == 0, output
    cases = {case.name.split("::", 1)[1]: case for case in read_junit(run / "junit" / "properties.xml")}
    skipped = {name for name, case in cases.items() if case.outcome is CaseOutcome.SKIPPED}
    assert skipped == {
        "test_locker_flow_with_doors_and_clock_keeps_the_model",
        *(f"test_token_lifecycle[{name}]" for name in (
            "dropoff_token_is_refused_after_pickup",
            "token_is_refused_after_it_expires",
            "token_is_refused_at_another_locker",
            "token_is_refused_on_another_tower",
        )),
    }  # fmt: skip
    assert all("control plane" in cases[name].reason for name in skipped)
    passed = {name for name, case in cases.items() if case.outcome is CaseOutcome.PASSED}
    assert passed == {
        "test_locker_flow_over_rest_keeps_the_model",
        "test_race[parallel_dropoff_tokens_from_non_owner_are_refused]",
        "test_race[parallel_reserves_of_one_locker_have_one_winner]",
    }


def test_contract_without_control_plane_names_the_check_a_planted_bug_breaks(tmp_path: Path) -> None:
    """Like Harbor's sandbox (no /_sim), ``contract`` still sees a double booking and names the check."""
    args = ("contract", "--budget", CONTRACT_BUDGET, "--no-control-plane", "--sim-bug", "double_booking")
    code, output, run = _invoke(tmp_path, *args)
    assert code == 1, output
    junit = (run / "junit" / "contract.xml").read_text(encoding="utf-8")
    assert "reserve_on_held_locker_is_refused" in junit
    assert "reserve_on_held_locker_is_refused" in _allure_texts(run)


@pytest.mark.parametrize("command", ["contract", "props"])
def test_suite_commands_refuse_a_bug_switch_off_local(command: str, tmp_path: Path) -> None:
    """``--sim-bug`` plants a defect in the embedded sandbox only: elsewhere it is a usage error (exit 2)."""
    env = {**NO_HARBOR_ENV, "HARBOR_CLIENT_ID": "someone", "HARBOR_CLIENT_SECRET": "something"}
    args = [command, "--target", "http://127.0.0.1:9", "--tower", "0100000000000014", "--sim-bug", "double_booking"]
    result = CliRunner().invoke(app, args, env=env)
    assert result.exit_code == 2
    assert "--sim-bug and --sim-dialect apply to --target local only" in result.output
