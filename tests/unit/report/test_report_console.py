"""The run's final table: readable in a 100-column terminal, whole in a log."""

from __future__ import annotations

import dataclasses

from rich.console import Console

from harness.redaction import Redactor
from harness.report import RunResult, StageResult, Verdict, fit_table, run_table, table_figures

#: What the load stage reports today: the longest row of a green run.
LOAD_FIGURES = {
    "requests": "18,463",
    "req/s": "1,839",
    "deliveries/min": "9,578",
    "failures": "0",
    "conflicts": 388,
    "oracle violations": 0,
    "p99 ms": 13.3,
}
PYTEST_FIGURES = {"tests": 25, "passed": 23, "failed": 1, "broken": 0, "skipped": 1}
REASON = (
    "schemathesis.core.failures.FailureGroup: Schemathesis found 2 distinct failures (token canary-secret-7f3a9c) "
    "in POST /api/v1/towers/0100000000000014/lockers/1401/reservations, reserve_on_held_locker_is_refused and "
    "locker_matches_model_after_step\nTraceback (most recent call last): ..."
)


def _render(run: RunResult, redactor: Redactor, *, width: int, terminal: bool = True) -> str:
    # As the CLI's own console (harness.cli._common.Output): soft wrap, so a log keeps long lines.
    console = Console(width=width, force_terminal=terminal, color_system=None, record=True, soft_wrap=True)
    console.print(fit_table(run_table(run, redactor=redactor), console))
    return console.export_text()


def _run(run: RunResult) -> RunResult:
    stages = [
        StageResult("contract", Verdict.FAILED, reason=REASON, figures=PYTEST_FIGURES, duration_ns=22_400_000_000),
        StageResult("infra", Verdict.INFRASTRUCTURE, reason="the sandbox did not answer", duration_ns=10**8),
        StageResult("load", Verdict.PASSED, figures=LOAD_FIGURES, duration_ns=11_200_000_000),
    ]
    return dataclasses.replace(run, stages=stages)


def test_the_table_fits_100_columns_and_wraps_between_figures(run: RunResult, redactor: Redactor, canary: str) -> None:
    """At 100 columns no line is longer; a figure never breaks from its value; zero counts and module paths go."""
    text = _render(_run(run), redactor, width=100)
    lines = text.splitlines()
    assert max(len(line.rstrip()) for line in lines) <= 100
    assert any("p99 ms 13.3" in line for line in lines)  # whole, wherever the line breaks
    assert "tests 25, passed 23, failed 1, skipped 1" in text and "broken" not in text
    assert "failures 0" not in text and "oracle violations" not in text and "conflicts 388" in text
    assert "FailureGroup: Schemathesis found 2 distinct failures" in text and "schemathesis.core" not in text
    assert "Traceback" not in text and canary not in text and "[REDACTED]" in text
    assert "infrastructure" in text and "22.4 s" in text


def test_a_long_reason_is_never_cut_and_its_secret_is_masked(run: RunResult, redactor: Redactor, canary: str) -> None:
    """A reason longer than any terminal is shown whole (it wraps, no "…"), so what to do about it stays
    readable; a secret inside it is masked whole."""
    why = (
        "the flow's properties need a second identity: target http://127.0.0.1:8765 needs credentials: "
        f"set HARBOR_SECOND_CLIENT_ID and HARBOR_SECOND_CLIENT_SECRET (token {canary}) "
        "(or leave the stage out: --skip properties)"
    )
    stage = StageResult("properties", Verdict.INFRASTRUCTURE, reason=why)
    reason, _ = table_figures(stage, redactor=redactor)
    assert canary not in reason and "[REDACTED]" in reason
    assert reason.endswith("(or leave the stage out: --skip properties)")
    text = _render(dataclasses.replace(run, stages=[stage]), redactor, width=100)
    assert "…" not in text
    words = " ".join(text.split())  # the reason wraps inside its column: read it as words
    assert "set HARBOR_SECOND_CLIENT_ID and HARBOR_SECOND_CLIENT_SECRET" in words
    assert "(or leave the stage out: --skip properties)" in words


def test_a_log_gets_every_row_on_one_line(run: RunResult, redactor: Redactor) -> None:
    """Written to a file or CI log (not a terminal), each stage stays on one line, however long."""
    text = _render(_run(run), redactor, width=80, terminal=False)
    load = next(line for line in text.splitlines() if line.lstrip().startswith("load"))
    assert "requests 18,463, req/s 1,839, deliveries/min 9,578, conflicts 388, p99 ms 13.3" in load
