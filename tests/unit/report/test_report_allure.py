"""Allure results written by the harness: test cases with steps and attachments, environment, categories."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from harness.errors import BluetoothUnavailable, ProductDefect, ServerError, TargetUnreachable
from harness.redaction import Redactor
from harness.report import (
    CATEGORIES,
    AllureAttachment,
    AllureStep,
    AllureTest,
    AllureWriter,
    CaseOutcome,
    Failure,
    environment_properties,
    write_categories,
    write_environment,
)
from harness.report._allure import failure_message


def _results(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in folder.glob("*-result.json")]


def test_a_test_case_keeps_its_steps_and_redacted_attachments(
    tmp_path: Path, redactor: Redactor, product_failure: Failure, canary: str
) -> None:
    """Each step is an Allure step; its request and response are attachments, with secrets masked."""
    request = AllureAttachment.json("request", {"method": "POST", "headers": {"Authorization": "Bearer abcdef123"}})
    response = AllureAttachment.json("response", {"status": 200, "payload_auth": "00ff" * 8, "note": canary})
    test = AllureTest(
        name="delivery flow",
        full_name="locker-harness.smoke.delivery",
        stage="smoke",
        outcome=CaseOutcome.FAILED,
        start_ms=1000,
        stop_ms=1050,
        failure=product_failure,
        steps=[
            AllureStep("reserve", CaseOutcome.PASSED, 1000, 1010, attachments=[request, response]),
            AllureStep("open dropoff", CaseOutcome.FAILED, 1010, 1050, failure=product_failure),
        ],
    )
    AllureWriter(tmp_path, redactor=redactor).write(test)
    [result] = _results(tmp_path)
    assert result["status"] == "failed"
    assert result["statusDetails"]["message"].startswith("ProductDefect: ")
    assert [step["name"] for step in result["steps"]] == ["reserve", "open dropoff"]
    attachments = result["steps"][0]["attachments"]
    assert [a["name"] for a in attachments] == ["request", "response"]
    written = "".join(p.read_text() for p in tmp_path.iterdir())
    for secret in (canary, "abcdef123", "00ff" * 8):
        assert secret not in written
    assert {label["value"] for label in result["labels"] if label["name"] == "suite"} == {"smoke"}


def test_environment_properties_name_target_tower_seed_and_versions(tmp_path: Path, redactor: Redactor) -> None:
    """The harness writes what ran against what, with the engines' versions, escaped for .properties."""
    properties = environment_properties(
        run_id="20261128-040512-ab12",
        target="local",
        url="http://127.0.0.1:8123",
        tower="0100000000000014",
        firmware="1.2.3",
        seed=7,
        extra={"fault profile": "latency=50ms"},
    )
    text = write_environment(tmp_path, properties, redactor=redactor).read_text()
    assert "target=local\n" in text
    assert "target.host=127.0.0.1:8123\n" in text
    assert "seed=7\n" in text
    assert "fault\\ profile=latency=50ms\n" in text
    for engine in ("python", "httpx", "schemathesis", "hypothesis", "locust", "bleak", "bumble", "locker-harness"):
        assert re.search(rf"^(version\.)?{re.escape(engine)}=\S+$", text, re.M), engine


def _category(status: str, message: str, *, whole_match: bool) -> str | None:
    """The first category matching, as Allure 2 (whole message) or Allure 3 (search) decides."""
    for category in CATEGORIES:
        if status not in category["matchedStatuses"]:
            continue
        regex = category.get("messageRegex")
        if regex is None:
            return str(category["name"])
        matcher = re.fullmatch if whole_match else re.search
        if matcher(regex, message):
            return str(category["name"])
    return None


def _failure(error: Exception) -> Failure:
    return Failure.from_exception(error, "step")


@pytest.mark.parametrize("whole_match", [True, False], ids=["allure2", "allure3"])
@pytest.mark.parametrize(
    ("status", "message", "expected"),
    [
        ("failed", failure_message(_failure(ProductDefect("double booking", check="c"))), "Product defects"),
        ("failed", "AssertionError: assert 'occupied' == 'available'", "Product defects"),
        ("broken", "harness.errors.ProductDefect: stale status\nafter close", "Product defects"),
        ("broken", "harness.ble.TowerRefused: AUTH_SIGNATURE (207)", "Product defects"),
        ("broken", failure_message(_failure(ServerError("503 after retries", status_code=503))), "5xx"),
        ("broken", "harness.errors.ServerError: 502\nline two", "5xx"),
        ("broken", failure_message(_failure(TargetUnreachable("connect refused"))), "unreachable"),
        ("broken", "httpx.ReadTimeout: timed out", "unreachable"),
        ("broken", failure_message(_failure(BluetoothUnavailable("no adapter"))), "Bluetooth"),
        ("broken", "harness.ble.BleLinkError: link lost mid-command", "Bluetooth"),
        ("broken", "TypeError: unsupported operand", "Test defects"),
        # pytest.raises that saw nothing names the error it expected: the check failed, nothing was unreachable.
        ("failed", "Failed: DID NOT RAISE <class 'harness.errors.ServerError'>", "Product defects"),
        ("failed", "Failed: locker 1401 still reads occupied", "Product defects"),
    ],
)
def test_categories_separate_product_infrastructure_and_test_defects(
    status: str, message: str, expected: str, whole_match: bool
) -> None:
    """Each harness exception lands in its category under both Allure 2 and Allure 3 regex rules."""
    name = _category(status, message, whole_match=whole_match)
    assert name is not None and expected in name


def test_categories_json_is_written_into_the_results(tmp_path: Path) -> None:
    """categories.json holds the same categories, in order."""
    written = json.loads(write_categories(tmp_path).read_text())
    assert [c["name"] for c in written] == [c["name"] for c in CATEGORIES]


def test_json_attachments_stay_valid_json_after_redaction(tmp_path: Path, redactor: Redactor) -> None:
    """A token response is masked by key and still parses (text masking would break ``null``)."""
    body = {"access_token": "eyJhbGciOi.abc.def", "refresh_token": None, "expires_in": 300}
    test = AllureTest(
        "t", "t", "smoke", CaseOutcome.PASSED, 0, 1, attachments=[AllureAttachment.json("response", body)]
    )
    AllureWriter(tmp_path, redactor=redactor).write(test)
    [attachment] = tmp_path.glob("*-attachment.json")
    assert json.loads(attachment.read_text()) == {
        "access_token": "[REDACTED]",
        "refresh_token": None,
        "expires_in": 300,
    }
