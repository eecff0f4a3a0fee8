"""The wrong-token tests can fail: with the tower accepting any token, every one of them goes red."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from hw_rig import Rig

HERE = Path(__file__).resolve().parent
WRONG_TOKEN_TESTS = (
    "test_token_for_another_locker_is_refused",
    "test_expired_token_is_refused",
    "test_token_of_another_tower_is_refused",
)


def test_each_wrong_token_test_fails_when_any_token_opens(rig: Rig, tmp_path: Path) -> None:
    """Run test_wrong_tokens.py with the sandbox's accept_any_token bug on: all three tests must fail."""
    if not rig.virtual:
        pytest.skip("the bug switch exists only in the virtual sandbox (local target)")
    report = tmp_path / "wrong-tokens.xml"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HARBOR_")}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(HERE / "test_wrong_tokens.py"),
            "-p",
            "no:cacheprovider",
            "-q",
            "--hw-sim-bug",
            "accept_any_token",
            f"--junitxml={report}",
        ],
        cwd=HERE.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-2000:]
    outcomes: dict[str, str] = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        name = str(case.get("name")).split("[")[0]
        failure = case.find("failure")
        if failure is not None:
            # Red for the right reason: the tower opened instead of refusing, not a broken rig.
            outcomes[name] = "opened" if "DID NOT RAISE" in (failure.get("message") or "") else "failed otherwise"
        else:
            outcomes[name] = "errored" if case.find("error") is not None else "skipped or passed"
    assert outcomes == dict.fromkeys(WRONG_TOKEN_TESTS, "opened"), outcomes
