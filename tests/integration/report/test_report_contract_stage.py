"""The contract stage's Schemathesis report: every call and Schemathesis's HTML page, redacted, beside JUnit.

The real contract suite against the embedded sandbox, at the smallest budget its generated tests
take (``HARBOR_BUDGET=2``), with a planted bug that the per-operation phases find at once.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from typer.testing import CliRunner

from harness.cli import app
from harness.config import ENVIRONMENT

SECRET = "contract-report-secret-5be1c07a"
#: The sandbox's debug hook: each secret it hands out, written to a file (harness/sim/_issued.py).
ISSUED_LOG_ENV = "HARBOR_SIM_ISSUED_LOG"
#: Shorter values in that log are a client's own fuzzed input echoed back, not secrets (nor registered).
MIN_SECRET = 6


def test_the_contract_stage_leaves_every_call_and_schemathesis_html_without_secrets(tmp_path: Path) -> None:
    """calls.ndjson has each call (stateful phase included) with its failed checks; index.html shows the failure;
    in Allure each operation is its own test (a history id of its own), so the failed ones are counted."""
    issued_log = tmp_path / "issued.log"
    env = {
        **dict.fromkeys(ENVIRONMENT),
        "HARBOR_REPORTS_DIR": str(tmp_path / "reports"),
        "HARBOR_STATE_DIR": str(tmp_path / "state"),
        "HARBOR_CLIENT_ID": "contract-report-client",
        "HARBOR_CLIENT_SECRET": SECRET,
        "HARBOR_BUDGET": "2",
        ISSUED_LOG_ENV: str(issued_log),
    }
    result = CliRunner().invoke(
        app, ["run", "--only", "contract", "--budget", "60", "--sim-bug", "wrong_field_type"], env=env
    )
    assert result.exit_code == 1, result.output

    [run] = (tmp_path / "reports").iterdir()
    folder = run / "contract" / "schemathesis"
    calls = [json.loads(line) for line in (folder / "calls.ndjson").read_text(encoding="utf-8").splitlines()]
    assert {"operation", "method", "path", "status", "elapsed_ms", "phase", "checks_failed"} <= calls[0].keys()
    phases = Counter(call["phase"] for call in calls)
    assert phases["coverage"] and phases["stateful"], phases  # the stateful phase is heard too
    failed = {check["check"] for call in calls for check in call.get("checks_failed", [])}
    assert "response_schema_conformance" in failed  # "id": "1401" where the document says integer

    page = (folder / "index.html").read_text(encoding="utf-8")
    assert "Schemathesis" in page and "response_schema_conformance" in page

    stage = next(s for s in json.loads((run / "summary.json").read_text())["stages"] if s["name"] == "contract")
    assert {"contract/schemathesis/calls.ndjson", "contract/schemathesis/index.html"} <= set(stage["artefacts"])

    secrets = {SECRET} | {
        value
        for line in issued_log.read_text(encoding="utf-8").splitlines()
        if len(value := line.partition("\t")[2]) >= MIN_SECRET
    }
    assert len(secrets) > 1  # the sandbox issued tokens: the search below can fail
    for path in folder.iterdir():
        text = path.read_text(encoding="utf-8")
        assert not [secret for secret in secrets if secret in text], path.name

    # Allure 3 merges results of one test-case id and parameters into one test with retries: each
    # operation must be a test of its own, or a failed operation hides behind a later passed one.
    contract = [
        result
        for path in (run / "allure-results").glob("*-result.json")
        if (result := json.loads(path.read_text(encoding="utf-8")))["fullName"].endswith(
            "#test_operation_keeps_the_contract"
        )
    ]
    operations = [next(p["value"] for p in result["parameters"] if p["name"] == "operation") for result in contract]
    assert len(contract) > 10 and len(set(operations)) == len(contract), operations
    assert len({result["historyId"] for result in contract}) == len(contract)
    totals = json.loads((run / "summary.json").read_text())["allure"]
    assert totals["tests"] == totals["results"] and totals["retried"] == 0, totals
    failed_operations = sum(result["status"] in ("failed", "broken") for result in contract)
    assert failed_operations >= 1 and totals["failed"] + totals["broken"] >= failed_operations, totals
