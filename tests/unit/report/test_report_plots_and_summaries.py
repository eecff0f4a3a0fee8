"""Latency plots and the two summaries: what a person and a machine read after a run."""

from __future__ import annotations

import json
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.metrics import Latencies
from harness.redaction import Redactor
from harness.report import RunResult, plot_latencies, render_markdown, write_summaries


def test_one_svg_per_histogram_with_enough_samples(tmp_path: Path, make_latencies: Callable[..., Latencies]) -> None:
    """A histogram with enough values becomes a percentile-curve SVG; a single value does not."""
    latencies = make_latencies(**{"connect": [float(v) for v in range(1, 50)], "write/notify": [5.0] * 10, "x": [1.0]})
    written = plot_latencies(latencies, tmp_path, stage="hw", target="local", min_count=5)
    assert [p.name for p in written] == ["hw-connect.svg", "hw-write-notify.svg"]
    root = ET.parse(written[0]).getroot()
    assert root.tag.endswith("svg")
    assert "hw: connect" in written[0].read_text()


def test_plots_are_byte_stable_for_the_same_data(tmp_path: Path, make_latencies: Callable[..., Latencies]) -> None:
    """No date or random ids in the SVG, so reports diff cleanly."""
    latencies = make_latencies(step=[1.0, 2.0, 3.0, 4.0, 5.0])
    [first] = plot_latencies(latencies, tmp_path / "a", stage="load")
    [second] = plot_latencies(latencies, tmp_path / "b", stage="load")
    assert first.read_bytes() == second.read_bytes()


@pytest.mark.perf
def test_a_plot_costs_well_under_a_tenth_of_a_second(tmp_path: Path, make_latencies: Callable[..., Latencies]) -> None:
    """Ten percentile curves (a run draws thirty) take under 80 ms of CPU each, not the 160-300 ms of old."""
    latencies = make_latencies(**{f"step {i}": [float(v % 97 + i) for v in range(500)] for i in range(10)})
    plot_latencies(make_latencies(warm=[1.0] * 5), tmp_path / "warm", stage="load")  # matplotlib's import
    # This thread's CPU time, not the wall clock: other processes on a loaded CI machine do not count.
    started = time.thread_time_ns()
    written = plot_latencies(latencies, tmp_path, stage="load", target="local")
    per_plot_ms = (time.thread_time_ns() - started) / 1e6 / len(written)
    assert len(written) == 10
    assert per_plot_ms < 80, f"{per_plot_ms:.0f} ms a plot"


def test_markdown_summary_has_verdict_stages_percentiles_and_classified_failures(run: RunResult) -> None:
    """summary.md says the verdict, a stage table, per-step p50/p95/p99, and each failure's class."""
    text = render_markdown(run)
    assert "❌ failed" in text
    assert "| smoke | failed | deliveries 1, steps 3 |" in text
    assert "| load | reserve | 100 | 50.004 | 95.027 | 99.025 |" in text
    assert "| smoke | product | open dropoff | ProductDefect: door stayed closed" in text
    assert "exit code 1" in text


def test_summary_files_are_redacted_and_carry_decodable_histograms(
    tmp_path: Path, run: RunResult, redactor: Redactor, canary: str
) -> None:
    """summary.json is machine-readable with encoded histograms; neither file holds a secret."""
    markdown, machine = write_summaries(run, tmp_path, redactor=redactor)
    assert canary not in markdown.read_text() and canary not in machine.read_text()
    document = json.loads(machine.read_text())
    assert (document["verdict"], document["exit_code"], document["schema"]) == ("failed", 1, 1)
    load = document["stages"][1]
    assert Latencies.decode(load["histograms"]).count("reserve") == 100
    assert load["latency_ms"][0]["name"] == "reserve"
    assert document["stages"][0]["failures"][0]["kind"] == "product"
