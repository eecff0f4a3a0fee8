"""The benchmarks' figures: ratios of medians over alternating rounds, and P1's client-CPU companion."""

from __future__ import annotations

from pathlib import Path

from harness.load._bench import Comparison, Sample, _client_cpu_s, medians_table


def _p1(*rounds: tuple[float, float, float, float]) -> Comparison:
    comparison = Comparison("P1", "harness vs bare", "harness", "bare", "requests_per_s", ">= 0.9")
    for index, (harness_rps, harness_cpu, bare_rps, bare_cpu) in enumerate(rounds, start=1):
        comparison.samples.append(
            Sample("harness", index, 1000, harness_rps, 1, 2, 3, requests_per_client_cpu_s=harness_cpu)
        )
        comparison.samples.append(Sample("bare", index, 1000, bare_rps, 1, 2, 3, requests_per_client_cpu_s=bare_cpu))
    return comparison


def test_p1_is_a_ratio_of_medians_with_its_client_cpu_companion() -> None:
    """P1 compares median requests per second; beside it, the median requests per client CPU-second,
    which a busy machine does not skew, is shown as its own ratio."""
    comparison = _p1((900, 1800, 1000, 2000), (500, 1700, 1000, 2000), (950, 1900, 1000, 2000))
    assert comparison.ratio == 0.9 and comparison.met
    assert comparison.client_cpu_ratio == 0.9
    (row,) = medians_table([comparison])
    assert row["ratio"] == "0.90 (per client CPU-s: 0.90)"
    assert comparison.as_dict()["client_cpu_ratio"] == 0.9


def test_a_bare_run_without_its_cpu_file_counts_no_client_cpu(tmp_path: Path) -> None:
    """The bare locustfile's CPU file is read when written, and reads as 0 (no companion) when not."""
    assert _client_cpu_s(tmp_path / "missing.json") == 0.0
    (tmp_path / "cpu.json").write_text('{"cpu_s": 2.5}', encoding="utf-8")
    assert _client_cpu_s(tmp_path / "cpu.json") == 2.5
