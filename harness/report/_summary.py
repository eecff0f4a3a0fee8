"""``summary.md`` (for a CI step summary and people) and ``summary.json`` (for machines).

Both are rendered from one ``RunResult`` and pass through the redactor whole, after rendering,
so nothing a stage put into a figure or a failure message can leak around it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from harness.redaction import Redactor
from harness.report._findings import findings_markdown
from harness.report._results import Figure, RunResult, StageResult, Verdict

__all__ = ["SUMMARY_SCHEMA", "format_figures", "render_markdown", "summary_document", "write_summaries"]

#: Bumped when a field of ``summary.json`` changes meaning; readers check it.
SUMMARY_SCHEMA: Final = 1

_BADGES: Final = {
    Verdict.PASSED: "✅ passed",
    Verdict.FAILED: "❌ failed: a check found a product defect",
    Verdict.BREACHED: "⚠️ SLO breached",
    Verdict.INFRASTRUCTURE: "🔌 could not test (infrastructure)",
    Verdict.SKIPPED: "⏭️ skipped",
}


def _figure(value: Figure) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def format_figures(figures: dict[str, Figure]) -> str:
    """Key figures on one line: ``deliveries 1, p95 4.12 ms``."""
    return ", ".join(f"{key} {_figure(value)}" for key, value in figures.items())


def _seconds(duration_ns: int) -> str:
    return f"{duration_ns / 1e9:.1f} s"


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell: one line, no column breaks."""
    return " ".join(text.split()).replace("|", "\\|")


def _stage_line(stage: StageResult) -> str:
    what = format_figures(stage.figures)
    if stage.reason:
        what = f"{stage.reason}; {what}" if what else stage.reason
    return f"| {stage.name} | {stage.verdict.value} | {_cell(what) or '-'} | {_seconds(stage.duration_ns)} |"


def render_markdown(run: RunResult, *, run_dir: Path | None = None) -> str:
    """The run as Markdown: verdict, stage table, per-step percentiles, failures with their class."""
    target = run.target
    where = [f"target `{target.name}`"]
    if target.url and target.url != target.name:
        where.append(f"at `{target.url}`")
    if target.tower:
        where.append(f"tower `{target.tower}`" + (f" (firmware {target.firmware})" if target.firmware else ""))
    refuted = run.findings()
    badge = _BADGES[run.verdict] + (f", {_count(len(refuted))} refuted" if refuted else "")
    lines = [
        f"## locker-harness run `{run.run_id}`: {badge}" + (" (interrupted)" if run.interrupted else ""),
        "",
        f"{', '.join(where)}; seed {run.seed}; {run.started_at:%Y-%m-%d %H:%M:%S %Z}; {_seconds(run.duration_ns)}; "
        f"exit code {int(run.exit_code)}.",
        "",
        "| stage | verdict | key figures | time |",
        "|---|---|---|---|",
        *(_stage_line(stage) for stage in run.stages),
    ]
    steps = [(stage.name, s) for stage in run.stages for s in stage.summaries() if s.count]
    if steps:
        lines += [
            "",
            "### Latency per step (ms)",
            "",
            "| stage | step | n | p50 | p95 | p99 | max |",
            "|---|---|---:|---:|---:|---:|---:|",
        ]
        lines += [
            f"| {stage} | {_cell(s.name)} | {s.count} | "
            + " | ".join(f"{ms:.3f}" for ms in (s.p50_ms, s.p95_ms, s.p99_ms, s.max_ms))
            + " |"
            for stage, s in steps
        ]
    gated = [stage for stage in run.stages if stage.gates]
    if gated:
        lines += ["", "### Gates", "", "| stage | gate | limit | measured | | note |", "|---|---|---:|---:|:-:|---|"]
        lines += [
            f"| {stage.name} | {_cell(gate.name)} | {_cell(gate.limit)} | {_cell(gate.measured)} | {gate.mark} | "
            f"{_cell(gate.note) or ''} |"
            for stage in gated
            for gate in stage.gates
        ]
    lines += findings_markdown(refuted)
    failures = run.failures()
    if failures:
        lines += ["", "### Failures", "", "| stage | class | where | what |", "|---|---|---|---|"]
        lines += [
            f"| {stage} | {failure.kind.value} | {_cell(failure.step or failure.name)} | "
            f"{_cell((failure.error_type + ': ' if failure.error_type else '') + failure.message)} |"
            for stage, failure in failures
        ]
    plots = [p for stage in run.stages for p in stage.artefacts if p.suffix in (".svg", ".png")]
    if plots and run_dir is not None:
        page = run_dir / "plots" / "index.html"
        shown = [page] if page.is_file() else plots
        lines += ["", "Plots (the run over time, each step's percentile curve): "]
        lines[-1] += ", ".join(f"`{_relative(p, run_dir)}`" for p in shown)
    return "\n".join(lines) + "\n"


def _count(refuted: int) -> str:
    return f"{refuted} assumption" + ("s" if refuted != 1 else "")


def _relative(path: Path, base: Path) -> str:
    try:
        return path.relative_to(base).as_posix()
    except ValueError:
        return path.as_posix()


def summary_document(
    run: RunResult, *, run_dir: Path | None = None, allure: Mapping[str, int] | None = None
) -> dict[str, Any]:
    """The run as JSON-ready data, histograms included (HdrHistogram's compressed base64); ``allure``:
    the tests the HTML report will show (``AllureTotals.as_dict``), when the run has Allure results."""
    base = run_dir or Path()
    document: dict[str, Any] = {
        "schema": SUMMARY_SCHEMA,
        "run_id": run.run_id,
        "started_at": run.started_at.isoformat(),
        "duration_s": round(run.duration_ns / 1e9, 3),
        "target": {
            "name": run.target.name,
            "url": run.target.url,
            "tower": run.target.tower,
            "firmware": run.target.firmware,
        },
        "seed": run.seed,
        "verdict": run.verdict.value,
        "exit_code": int(run.exit_code),
        "interrupted": run.interrupted,
        "strict_assumptions": run.strict_assumptions,
        "assumptions_refuted": [finding.as_dict() for finding in run.findings()],
        "environment": dict(run.environment),
        "stages": [
            {
                "name": stage.name,
                "verdict": stage.verdict.value,
                "reason": stage.reason,
                "duration_s": round(stage.duration_ns / 1e9, 3),
                "figures": stage.figures,
                "failures": [failure.as_dict() for failure in stage.failures],
                "assumptions_refuted": [finding.assumption for finding in stage.findings],
                "latency_ms": [s.as_dict() for s in stage.summaries()],
                "gates": [gate.as_dict() for gate in stage.gates],
                "histograms": stage.latencies.encode(),
                "artefacts": [_relative(p, base) for p in stage.artefacts],
            }
            for stage in run.stages
        ],
    }
    if allure is not None:
        document["allure"] = dict(allure)
    return document


def write_summaries(
    run: RunResult, run_dir: Path, *, redactor: Redactor, allure: Mapping[str, int] | None = None
) -> tuple[Path, Path]:
    """Write ``summary.md`` and ``summary.json`` into ``run_dir``; returns both paths."""
    run_dir.mkdir(parents=True, exist_ok=True)
    markdown = run_dir / "summary.md"
    markdown.write_text(redactor.text(render_markdown(run, run_dir=run_dir)), encoding="utf-8")
    document = summary_document(run, run_dir=run_dir, allure=allure)
    # Histograms are numbers the harness encoded itself: no secret can be in them, and masking a
    # chance match inside base64 would corrupt them. Everything else is redacted.
    histograms = [stage.pop("histograms") for stage in document["stages"]]
    document = redactor.value(document)
    for stage, encoded in zip(document["stages"], histograms, strict=True):
        stage["histograms"] = encoded
    machine = run_dir / "summary.json"
    machine.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return markdown, machine
