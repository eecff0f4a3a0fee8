"""Refuted assumptions as each report shows them: their own category, apart from every failure.

A target that answers differently from a guess of ours ([I] inferred, [G] guessed) has taught us
something; it has not broken a promise. Each report names the assumption, what we assumed, what
was seen, the request that showed it and the ``[assume]`` line that adopts it:

- the console: a table after the run's (``findings_table``);
- ``summary.md`` / ``summary.json``: a section and an ``assumptions_refuted`` list (``_summary``);
- JUnit: a suite ``assumptions``, one case each, *skipped* with the finding as its message, or
  with ``--strict-assumptions`` a *failure* of type ``assumption``;
- Allure: a test each in the suite ``assumptions`` (skipped, or failed when strict), whose message
  leads with ``AssumptionRefuted`` so that ``categories.json`` files it under its own category.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Final

from rich import box
from rich.table import Table
from rich.text import Text

from harness.assumptions import Finding
from harness.redaction import Redactor
from harness.report._allure import AllureTest
from harness.report._results import REFUTED_ERROR, CaseOutcome, CaseResult, Failure, FailureKind

__all__ = [
    "ASSUMPTIONS_SUITE",
    "REFUTED_ERROR",
    "finding_cases",
    "finding_tests",
    "findings_markdown",
    "findings_table",
]

#: The JUnit suite and Allure suite of refuted assumptions.
ASSUMPTIONS_SUITE: Final = "assumptions"
_ADVICE: Final = (
    "Harbor answered differently from a guess of ours ([I] inferred, [G] guessed): not a product defect. "
    "Adopt the value seen with the line shown, in `[assume]` of `locker-harness.toml` "
    "(`[tool.locker-harness.assume]` in `pyproject.toml`), and the finding goes away; "
    "`--strict-assumptions` makes a run that refutes one exit 5."
)


def _failure(finding: Finding) -> Failure:
    return Failure(FailureKind.ASSUMPTION, finding.assumption, finding.message, REFUTED_ERROR)


def finding_cases(findings: Sequence[Finding], *, strict: bool) -> list[CaseResult]:
    """One JUnit case per refuted assumption: skipped with the finding, or failed when ``strict``."""
    cases = []
    for finding in findings:
        name = f"{finding.assumption} {finding.mark}"
        if strict:
            cases.append(CaseResult.failed(name, _failure(finding)))
        else:
            cases.append(CaseResult(name, CaseOutcome.SKIPPED, reason=finding.message))
    return cases


def finding_tests(findings: Sequence[Finding], *, strict: bool) -> list[AllureTest]:
    """One Allure test per refuted assumption, in the suite ``assumptions``."""
    now_ms = int(time.time() * 1000)
    return [
        AllureTest(
            name=f"assumption {finding.assumption} {finding.mark} refuted",
            full_name=f"locker-harness.assumptions.{finding.assumption}",
            stage=ASSUMPTIONS_SUITE,
            outcome=CaseOutcome.FAILED if strict else CaseOutcome.SKIPPED,
            start_ms=now_ms,
            stop_ms=now_ms,
            failure=_failure(finding),
            parameters={
                "assumed": finding.assumed,
                "seen": finding.seen,
                "first seen at": finding.where,
                "adopt with": f"[assume] {finding.adopt}",
                "stages": ", ".join(finding.stages) or "-",
            },
            description=_ADVICE,
        )
        for finding in findings
    ]


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def findings_markdown(findings: Sequence[Finding]) -> list[str]:
    """The ``summary.md`` section, or nothing when no assumption was refuted."""
    if not findings:
        return []
    lines = [
        "",
        "### Assumptions refuted",
        "",
        _ADVICE,
        "",
        "| assumption | assumed | seen | first seen at | stages | adopt with |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| `{f.assumption}` {f.mark} | `{_cell(f.assumed)}` | `{_cell(f.seen)}` | {_cell(f.where)} | "
        f"{', '.join(f.stages) or '-'} | `[assume] {_cell(f.adopt)}` |"
        for f in findings
    ]
    return lines


def findings_table(findings: Sequence[Finding], *, redactor: Redactor) -> Table:
    """The console's table of refuted assumptions, each with the line that adopts what was seen."""
    table = Table(
        title="assumptions refuted (not product defects: adopt the value seen with the line shown)",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
    )
    table.add_column("assumption", no_wrap=True)
    table.add_column("assumed")
    table.add_column("seen")
    table.add_column("first seen at", ratio=1)
    table.add_column("adopt with (\\[assume])")
    for finding in findings:
        table.add_row(
            Text(f"{finding.assumption} {finding.mark}"),
            Text(redactor.text(finding.assumed)),
            Text(redactor.text(finding.seen)),
            Text(redactor.text(finding.where)),
            Text(redactor.text(finding.adopt)),
        )
    return table
