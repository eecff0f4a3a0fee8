"""End to end against the sandbox's Harbor dialects: each flips one guess of ours, and the harness
reads on, names exactly that assumption, forgets it once adopted, and exits 5 only when strict.

The dialects are the sandbox's (``--sim-dialect NAME``, ``/_sim/dialects``); these tests skip,
saying so, until this installation's sandbox and commands have them. The client side is tested
against the same dialects without the sandbox's help in ``tests/integration/probe`` (answers
rewritten in flight).

A dialect is not a bug: with one on, every run is green and only the assumption is reported.
"""

from __future__ import annotations

import json
import os
from contextlib import chdir
from functools import cache
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.sim import DIALECT_ASSUMPTIONS

#: dialect -> (the assumption it refutes, the HARBOR_ASSUME_* line that adopts what it answers).
DIALECTS = {
    "create_200": ("create_status", "HARBOR_ASSUME_CREATE_STATUS=200"),
    "status_ids_shifted": (
        "status_ids",
        "HARBOR_ASSUME_STATUS_IDS=reserved=12,rented=13,occupied=14,declined=15,out_of_service=16",
    ),
    "out_of_service_spaced": ("status_names", "HARBOR_ASSUME_STATUS_NAMES=out_of_service=out of service"),
    "no_token_id": ("token_id_field", "HARBOR_ASSUME_TOKEN_ID_FIELD=false"),
    "expires_naive": ("expires_offset", "HARBOR_ASSUME_EXPIRES_OFFSET=false"),
    "occupied_on_close": ("occupied_on", "HARBOR_ASSUME_OCCUPIED_ON=close"),
    "no_request_type": ("request_type_field", "HARBOR_ASSUME_REQUEST_TYPE_FIELD=false"),
    "no_token_type": ("token_type_field", "HARBOR_ASSUME_TOKEN_TYPE_FIELD=false"),
    # The run's smoke stage receives the embedded sandbox's webhooks, signed, as smoke --webhooks does.
    "webhook_signature_header": ("webhook_signature_header", "HARBOR_ASSUME_WEBHOOK_SIGNATURE_HEADER=X-Signature"),
}
#: Dialects whose answers Harbor's material allows either way [S]: a run with one on names nothing.
REFUTES_NOTHING = {"keycloak_unauthorized_client"}
#: The dialect whose assumption only a receiver of webhooks sees (the run's smoke stage, smoke --webhooks).
WEBHOOKS_ONLY = "webhook_signature_header"
#: The dialect whose whole run (every stage) is in `make test`; the others are -m slow.
QUICK = "create_200"


@cache
def _missing(command: str) -> str | None:
    """Why ``command`` cannot switch dialects in this installation, or ``None`` if it can."""
    help_text = CliRunner().invoke(app, [command, "--help"], terminal_width=400).stdout
    if "--sim-dialect" not in help_text:
        return f"waiting for the sandbox's dialects: `locker-harness {command}` has no --sim-dialect yet"
    return None


def _needs(command: str) -> None:
    reason = _missing(command)
    if reason is not None:
        pytest.skip(reason)


def _run(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, dict[str, object], str]:
    """``locker-harness ARGS`` in a folder of its own; its exit code, summary.json (if any) and output.

    The command runs in this process (its stages still run as the child processes a user's would):
    a fresh interpreter per run would only pay the imports again."""
    folder = tmp_path / f"r{len(list(tmp_path.iterdir()))}"
    folder.mkdir()
    # A short load stage: the dialect shows in its first deliveries; ten seconds would only repeat them.
    (folder / "locker-harness.toml").write_text("[load]\nduration = 3\n")
    clean = {key: None for key in os.environ if key.startswith("HARBOR_")}
    with chdir(folder):  # where the command finds its configuration
        done = CliRunner().invoke(app, list(args), env=clean | {"HARBOR_BUDGET": "2"} | (env or {}))
    summaries = list((folder / "reports").glob("*/summary.json"))
    summary = json.loads(summaries[0].read_text()) if summaries else {}
    return done.exit_code, summary, done.stdout + done.stderr


def _refuted(summary: dict[str, object]) -> list[str]:
    return [str(item["assumption"]) for item in summary.get("assumptions_refuted", [])]  # type: ignore[attr-defined, index]


def _check_run(tmp_path: Path, dialect: str, stages: str, *, verdict_stages: str | None = None) -> None:
    """Every stage in ``stages`` reads on and names the assumption; adopted and strict are checked
    over ``verdict_stages`` (default: the same stages): the verdict is the run's, whatever the stage."""
    assumption, adopt = DIALECTS[dialect]
    run = ["run", "--only", stages, "--sim-dialect", dialect, "--budget", "300"]
    code, summary, output = _run(tmp_path, *run)
    assert code == 0, output[-3000:]
    assert _refuted(summary) == [assumption], summary.get("assumptions_refuted")
    variable, _, value = adopt.partition("=")
    run[2] = verdict_stages or stages
    code, summary, output = _run(tmp_path, *run, env={variable: value})
    assert code == 0 and _refuted(summary) == [], output[-3000:]
    code, summary, output = _run(tmp_path, *run, "--strict-assumptions")
    assert code == 5 and _refuted(summary) == [assumption], output[-3000:]


def test_every_dialect_of_the_sandbox_is_run_here() -> None:
    """A dialect added to the sandbox needs its end-to-end run here (or a reason it refutes nothing)."""
    assert set(DIALECT_ASSUMPTIONS) == set(DIALECTS) | REFUTES_NOTHING
    assert all(DIALECT_ASSUMPTIONS[name] == assumption for name, (assumption, _) in DIALECTS.items())
    assert all(DIALECT_ASSUMPTIONS[name] is None for name in REFUTES_NOTHING)


@pytest.mark.parametrize("dialect", sorted(REFUTES_NOTHING))
def test_a_dialect_harbor_s_material_allows_names_nothing(tmp_path: Path, dialect: str) -> None:
    """A dialect of [S] answers (Keycloak's older error) is neither a defect nor a finding."""
    _needs("run")
    code, summary, output = _run(tmp_path, "run", "--only", "smoke", "--sim-dialect", dialect, "--strict-assumptions")
    assert code == 0 and _refuted(summary) == [], output[-3000:]


def test_a_dialect_run_is_green_names_its_assumption_and_forgets_it_once_adopted(tmp_path: Path) -> None:
    """With one dialect on, every stage: exit 0 naming exactly its assumption; adopted, nothing; strict, exit 5."""
    _needs("run")
    _check_run(tmp_path, QUICK, "smoke,contract,properties,load", verdict_stages="smoke")


@pytest.mark.slow
@pytest.mark.parametrize("dialect", sorted(set(DIALECTS) - {QUICK}))
def test_every_dialect_run_names_exactly_its_assumption(
    tmp_path: Path, dialect: str, request: pytest.FixtureRequest
) -> None:
    """The same for every dialect (-m slow: about a minute a run, three runs a dialect)."""
    if "slow" not in (request.config.getoption("markexpr") or ""):
        pytest.skip("every dialect's three runs take minutes: select them with -m slow")
    _needs("run")
    _check_run(tmp_path, dialect, "smoke,contract,properties,load")


@pytest.mark.parametrize("dialect", sorted(DIALECTS))
def test_the_probe_refutes_each_dialect_s_assumption_alone(tmp_path: Path, dialect: str) -> None:
    """``probe --write`` against a dialect refutes that assumption alone and prints the line that adopts it
    (when a locker turns occupied and how webhooks are signed: in its delivery on the sandbox's doors)."""
    _needs("probe")
    assumption, _ = DIALECTS[dialect]
    code, _, output = _run(tmp_path, "probe", "--write", "--sim-dialect", dialect)
    assert code == 0, output[-3000:]
    [table] = list(tmp_path.glob("r*/reports/*/probe/assumptions.json"))
    rows = json.loads(table.read_text())["assumptions"]
    assert [row["assumption"] for row in rows if row["outcome"] == "refuted"] == [assumption]
    [row] = [row for row in rows if row["assumption"] == assumption]
    assert row["adopt"] in output.replace("\n", " ") or row["adopt"].removeprefix("[assume] ") in output


def test_the_webhook_signature_dialect_is_named_by_smoke_webhooks(tmp_path: Path) -> None:
    """A signature under another header is checked all the same, and smoke --webhooks names the assumption."""
    _needs("smoke")
    code, _, output = _run(tmp_path, "smoke", "--webhooks", "--sim-dialect", WEBHOOKS_ONLY)
    assert code == 0, output[-3000:]
    assert "webhook_signature_header [G]" in output and 'webhook_signature_header = "X-Signature"' in output


def test_smoke_webhooks_reads_a_late_occupied_as_the_occupied_on_guess(tmp_path: Path) -> None:
    """``LOCKER_TOKEN_USED`` saying rented, from a sandbox that turns lockers occupied on the close: the
    ``occupied_on`` [I] reading refuted (exit 0, the line named), not a product defect (it was exit 1)."""
    _needs("smoke")
    code, _, output = _run(tmp_path, "smoke", "--webhooks", "--sim-dialect", "occupied_on_close")
    assert code == 0, output[-3000:]
    assert "occupied_on [I]" in output and 'occupied_on = "close"' in output


def test_smoke_alone_names_what_its_answers_refuted(tmp_path: Path) -> None:
    """``smoke`` without ``--webhooks`` says which guess its delivery's answers refuted, as the run does."""
    _needs("smoke")
    code, _, output = _run(tmp_path, "smoke", "--sim-dialect", QUICK)
    assert code == 0, output[-3000:]
    assert "create_status [I]" in output and "create_status = 200" in output


def test_the_run_s_smoke_stage_receives_the_webhooks_and_names_their_guess(tmp_path: Path) -> None:
    """On local the run's smoke stage receives the delivery's webhooks, signed: the signature-header dialect
    is named by ``run --only smoke`` (exit 0), as by ``smoke --webhooks`` (every stage's run is -m slow)."""
    _needs("run")
    code, summary, output = _run(tmp_path, "run", "--only", "smoke", "--sim-dialect", WEBHOOKS_ONLY)
    assert code == 0 and _refuted(summary) == ["webhook_signature_header"], output[-3000:]
