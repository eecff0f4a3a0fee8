"""The evidence people read: results, JUnit, Allure, plots, summaries and the HTML report.

Everything here writes through a ``harness.redaction.Redactor``. Nothing here imports the
virtual sandbox or locust; the flow reaches the Allure writer only through the events it emits.
"""

from harness.report._allure import (
    CATEGORIES,
    AllureAttachment,
    AllureStep,
    AllureTest,
    AllureWriter,
    engine_versions,
    environment_properties,
    write_categories,
    write_environment,
)
from harness.report._console import VERDICT_STYLES, fit_table, gate_table, run_table, table_figures
from harness.report._findings import ASSUMPTIONS_SUITE, findings_table
from harness.report._folder import RunFolder, finish_reports
from harness.report._html import HtmlReport, build_html, find_node_project, redact_results, strip_analytics
from harness.report._junit import read_junit, write_junit, write_run_junit
from harness.report._plots import plot_latencies
from harness.report._results import (
    CaseOutcome,
    CaseResult,
    Failure,
    FailureKind,
    Figure,
    GateLine,
    LatencyLimit,
    RunResult,
    StageResult,
    TargetInfo,
    Verdict,
    Window,
    classify,
    verdict_of,
)
from harness.report._run_ids import check_run_id, new_run_id, resolve_run_id, run_id_started, run_id_tail
from harness.report._steps import StepRecorder
from harness.report._summary import format_figures, render_markdown, summary_document, write_summaries

__all__ = [
    "ASSUMPTIONS_SUITE",
    "CATEGORIES",
    "VERDICT_STYLES",
    "AllureAttachment",
    "AllureStep",
    "AllureTest",
    "AllureWriter",
    "CaseOutcome",
    "CaseResult",
    "Failure",
    "FailureKind",
    "Figure",
    "GateLine",
    "HtmlReport",
    "LatencyLimit",
    "RunFolder",
    "RunResult",
    "StageResult",
    "StepRecorder",
    "TargetInfo",
    "Verdict",
    "Window",
    "build_html",
    "check_run_id",
    "classify",
    "engine_versions",
    "environment_properties",
    "find_node_project",
    "findings_table",
    "finish_reports",
    "fit_table",
    "format_figures",
    "gate_table",
    "new_run_id",
    "plot_latencies",
    "read_junit",
    "redact_results",
    "render_markdown",
    "resolve_run_id",
    "run_id_started",
    "run_id_tail",
    "run_table",
    "strip_analytics",
    "summary_document",
    "table_figures",
    "verdict_of",
    "write_categories",
    "write_environment",
    "write_junit",
    "write_run_junit",
    "write_summaries",
]
