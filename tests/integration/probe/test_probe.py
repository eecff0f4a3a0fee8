"""The drift probe against the embedded sandbox, as it is and as each Harbor dialect would answer.

As it is, the sandbox confirms every assumption the probe can see. Answered in a dialect (in
process, the sandbox's answers rewritten in flight by ``DialectDouble``; through the command, the
sandbox's own ``--sim-dialect``), the probe refutes exactly that dialect's assumption and suggests
the line that adopts it; with the line adopted it refutes nothing. Its folder holds the table, the
block and a HAR file that a HAR library opens and that carries no secret.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from haralyzer import HarParser

from harness.assumptions import Assumed, Outcome
from harness.config import PRODUCTION_WRITES_FLAG, Settings
from harness.probe import DELIVERY, READS, Asked, ProbeResult, probe, read_operations, write_folder
from harness.redaction import redactor
from harness.targets import LocalTarget, watched_delivery
from harness.testing import local_target

from .dialect_double import DIALECTS, DialectDouble

LOCKER_HARNESS = Path(sys.executable).with_name("locker-harness")


@pytest.fixture(scope="module")
def local() -> Iterator[LocalTarget]:
    with local_target() as target:
        yield target


def _probe(settings: Settings, dialect: str | None = None, *, write: bool = True) -> ProbeResult:
    transport = DialectDouble(dialect) if dialect is not None else None
    return probe(settings, write=write, transport=transport)


def test_every_read_of_the_document_is_asked() -> None:
    """The probe knows how to ask each read the API document lists (a new read fails this test)."""
    assert set(read_operations()) <= set(READS)
    assert {"listTowerLockers", "getLocker", "listLocations", "testToken", "authorizeSdkUser"} <= set(READS)


def test_against_local_every_assumption_seen_is_confirmed(local: LocalTarget, tmp_path: Path) -> None:
    """The sandbox as it is: nothing refuted, no fact broken, and the guesses a write can show are seen."""
    result = _probe(local.settings)
    outcomes = {row.assumption.id: row.outcome for row in result.rows}
    assert not result.refuted and not result.broken
    seen_by_writes = ("create_status", "token_id_field", "request_type_field", "expires_offset")
    for seen in ("status_ids", "status_names", "token_type_field", *seen_by_writes):
        assert outcomes[seen] is Outcome.CONFIRMED, seen
    assert all(op.asked.value != "differs from the document" for op in result.operations), result.operations
    writes = [op for op in result.operations if op.operation.startswith(("reserveLocker", "createDropoffLocker"))]
    assert len(writes) == 2 and all("given back" in op.note for op in writes), result.operations
    # The read the writes asked is not also a "not asked (--write asks it)" row.
    assert not [op for op in result.operations if op.operation == "getLockerOpenRequest"], result.operations


def test_without_virtual_doors_the_delivery_row_says_why_it_was_not_made(local: LocalTarget) -> None:
    """No ``deliver`` (Harbor's targets: a person closes a tower's door): the row says so, nothing is opened."""
    result = _probe(local.settings)
    [row] = [op for op in result.operations if op.operation == DELIVERY]
    assert row.asked is Asked.SKIPPED and "no virtual doors" in row.note
    outcomes = {row.assumption.id: row.outcome for row in result.rows}
    assert outcomes["occupied_on"] is Outcome.NOT_SEEN and outcomes["webhook_signature_header"] is Outcome.NOT_SEEN


def test_a_delivery_on_virtual_doors_shows_when_lockers_turn_occupied_and_how_webhooks_are_signed(
    local: LocalTarget,
) -> None:
    """``deliver`` given: one whole delivery through the control plane, its webhooks received, every HTTP
    exchange recorded: ``occupied_on``, the webhook envelope and its signature header are confirmed."""

    def deliver(transport: httpx.AsyncBaseTransport) -> str:
        return asyncio.run(watched_delivery(local.settings, transport=transport))

    result = probe(local.settings, write=True, deliver=deliver)
    outcomes = {row.assumption.id: row.outcome for row in result.rows}
    for seen in ("occupied_on", "webhook_signature_header", "webhook_envelope"):
        assert outcomes[seen] is Outcome.CONFIRMED, (seen, [r.as_dict() for r in result.rows])
    [row] = [op for op in result.operations if op.operation == DELIVERY]
    assert row.asked is Asked.ANSWERED and "LOCKER_TOKEN_USED arrived, signed" in row.note, row
    opened = [x for x in result.transport.exchanges if x.request.url.path.endswith("/open")]
    assert len(opened) == 2, "the drop-off and the pickup door, through the recording transport"


@pytest.mark.parametrize("dialect", sorted(DIALECTS))
def test_each_dialect_refutes_its_assumption_alone(local: LocalTarget, dialect: str) -> None:
    """Answered in a dialect, exactly that assumption is refuted, with the line that adopts it; adopted, none."""
    assumption, line = DIALECTS[dialect]
    result = _probe(local.settings, dialect)
    assert [row.assumption.id for row in result.refuted] == [assumption], [r.as_dict() for r in result.refuted]
    assert not result.broken
    adopt = result.refuted[0].adopt
    if line is not None:
        assert adopt == line
    else:  # every shifted id the answers showed, each ten above ours
        assert adopt.startswith("status_ids = { ") and "rented = 13" in adopt and "reserved = 12" in adopt
    adopted = dataclasses.replace(local.settings, assume=Assumed.of(_toml_table(adopt), "[assume] of test", {}))
    again = _probe(adopted, dialect)
    assert again.refuted == [], [r.as_dict() for r in again.refuted]


def _toml_table(line: str) -> dict[str, object]:
    import tomllib

    return tomllib.loads(line)


def test_the_folder_has_the_table_the_block_and_a_har_without_secrets(local: LocalTarget, tmp_path: Path) -> None:
    """assumptions.json, assume.toml and exchanges.har: the HAR opens in haralyzer, every exchange is in
    it, and no bearer token, client secret or payload_auth the probe met is."""
    result = _probe(local.settings, "create_200")
    written = write_folder(result, tmp_path / "probe", redactor(), when="now")
    assert [path.name for path in written] == ["assumptions.json", "assume.toml", "exchanges.har"]
    table = json.loads(written[0].read_text())
    assert table["refuted"] == 1 and {row["assumption"] for row in table["assumptions"]} >= {"create_status"}
    block = written[1].read_text()
    assert "[assume]\ncreate_status = 200\n" in block

    har = json.loads(written[2].read_text())
    parser = HarParser(har)
    entries = [entry for page in parser.pages for entry in page.entries]
    assert len(entries) == len(result.transport.exchanges) >= 14
    assert {entry.request.method for entry in entries} == {"GET", "POST"}
    text = written[2].read_text()
    secret = local.settings.client_secret
    assert secret is not None and secret.reveal() not in text
    for exchange in result.transport.exchanges:
        authorization = exchange.request.headers.get("authorization", "")
        if authorization:
            assert authorization.split()[-1] not in text
        if exchange.response is not None and b"payload_auth" in exchange.response.content:
            assert json.loads(exchange.response.content)["payload_auth"] not in text
    assert "[REDACTED]" in text


def test_write_to_production_without_the_opt_in_is_one_line_and_exit_2(tmp_path: Path) -> None:
    """``probe --write`` on production refuses before anything is sent: one line, exit 2."""
    done = subprocess.run(
        [str(LOCKER_HARNESS), "probe", "--target", "production", "--write"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "HARBOR_CLIENT_ID": "someone", "HARBOR_CLIENT_SECRET": "not-a-real-one"},
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: refusing to probe --write")
    assert PRODUCTION_WRITES_FLAG in lines[0]
    assert done.stdout == ""


def test_the_probe_command_writes_its_folder_and_exits_0(tmp_path: Path) -> None:
    """``locker-harness probe`` on local: its table on stdout, probe/ under a run folder, exit 0."""
    done = subprocess.run([str(LOCKER_HARNESS), "probe"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "create_status [I]" in done.stdout and "listTowerLockers" in done.stdout
    [folder] = list((tmp_path / "reports").glob("*/probe"))
    assert sorted(p.name for p in folder.iterdir()) == ["assume.toml", "assumptions.json", "exchanges.har"]


def test_the_probe_command_in_a_sandbox_dialect_refutes_that_assumption_alone(tmp_path: Path) -> None:
    """``probe --sim-dialect no_token_type``, read-only, as a user runs it: the sandbox itself speaks the
    dialect, and the probe refutes ``token_type_field`` alone, prints the line that adopts it and exits 0.
    (Every dialect, ``--write``'s delivery included: ``tests/integration/assumptions``.)"""
    done = subprocess.run(
        [str(LOCKER_HARNESS), "probe", "--sim-dialect", "no_token_type"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    [table] = list((tmp_path / "reports").glob("*/probe/assumptions.json"))
    rows = json.loads(table.read_text())["assumptions"]
    changed = {row["assumption"]: row["outcome"] for row in rows if row["outcome"] in ("refuted", "broken")}
    assert changed == {"token_type_field": "refuted"}
    assert "token_type_field = false" in done.stdout.replace("\n", " ")
    assert "dialect(s) no_token_type" in done.stdout + done.stderr
