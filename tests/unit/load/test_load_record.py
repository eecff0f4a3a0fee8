"""``LoadRecord``: what load processes measure, merged exactly and carried as JSON."""

from __future__ import annotations

import json

import pytest

from harness.load import ALL_REQUESTS, VIOLATION_KINDS, LoadRecord

MS = 1_000_000


def _record(latencies_ms: list[int], *, step: str = "reserve") -> LoadRecord:
    record = LoadRecord()
    for latency in latencies_ms:
        record.request(step, latency * MS)
    return record


def test_merge_adds_histograms_count_by_count_not_percentiles() -> None:
    """Two workers' histograms merge into the distribution of all their samples."""
    fast, slow = _record([1] * 99), _record([1000])
    merged = LoadRecord.merged([fast, slow])
    assert merged.processes == 2
    assert merged.steps["reserve"].requests == 100
    assert merged.latencies.count("reserve") == 100
    assert merged.latencies.percentile_ms("reserve", 99.0) == pytest.approx(1.0, rel=1e-3)
    assert merged.latencies.summary("reserve").max_ms == pytest.approx(1000.0, rel=1e-3)


def test_json_round_trip_keeps_every_count_and_histogram() -> None:
    """A record survives ``to_json``/``from_json`` through real JSON text unchanged."""
    record = _record([2, 4, 8])
    counts = record.request("dropoff_token", 3 * MS)
    record.error(counts, "dropoff_token: no answer (ConnectionRefusedError)")
    record.violation(counts, "unexpected_status", "dropoff_token", 1401, "declined after dropoff_token")
    record.lost_answer(counts, "server_error", "dropoff_token: 503")
    record.flow("completed", "delivery", 40 * MS)
    record.flow("unserved", "delivery", 900 * MS)
    record.cleaned(False, "locker 1401: cleanup_release failed")
    copy = LoadRecord.from_json(json.loads(json.dumps(record.to_json())))
    assert copy.to_json() == record.to_json()
    assert copy.violations["unexpected_status"] == 1 and copy.server_errors == 1
    assert copy.steps["dropoff_token"].failures == 3
    assert copy.flow_latencies.count("delivery") == 2


def test_violations_are_counted_apart_from_errors_and_conflicts() -> None:
    """An oracle's finding, an ordinary error and a conflict each land in their own count."""
    record = LoadRecord()
    counts = record.request("reserve", MS)
    counts.conflicts += 1
    record.error(record.request("reserve", MS), "reserve: 429")
    record.violation(record.request("reserve", MS), "double_booking", "reserve", 1402, "held by another user")
    assert (counts.requests, counts.errors, counts.violations, counts.conflicts) == (3, 1, 1, 1)
    assert record.failures == 2  # the conflict is contention, not a failure
    assert record.violation_count == 1
    assert set(record.violations) == set(VIOLATION_KINDS)


def test_unknown_oracle_kind_is_refused() -> None:
    """Only the three oracles exist; a typo is a harness bug, raised at once."""
    with pytest.raises(ValueError, match="not an oracle"):
        LoadRecord().violation(None, "slow", "reserve", None, "")


def test_all_requests_merges_every_step() -> None:
    """The overall histogram holds every request of every step."""
    record = _record([1, 2])
    record.request("list_lockers", 5 * MS)
    total = record.all_requests()
    assert total.count(ALL_REQUESTS) == 3
    assert total.summary(ALL_REQUESTS).max_ms == pytest.approx(5.0, rel=1e-3)


def test_examples_and_reasons_stay_bounded() -> None:
    """However long a run, examples and distinct error reasons are capped."""
    record = LoadRecord()
    for index in range(500):
        counts = record.request("reserve", MS)
        record.violation(counts, "unexpected_status", "reserve", index, "x")
        record.error(counts, f"reason {index}")
    assert len(record.examples) == 20
    assert len(record.errors) == 51  # 50 reasons and "other"
    assert sum(record.errors.values()) == 500


def test_from_json_refuses_what_is_not_a_record() -> None:
    """A file that is not a record is a clear ValueError, never a half-read record."""
    with pytest.raises(ValueError):
        LoadRecord.from_json({"schema": 99})
    with pytest.raises(ValueError, match="malformed"):
        LoadRecord.from_json({"schema": 1, "processes": 1})


def test_the_timeline_counts_each_group_s_requests_and_failures_and_survives_the_wire() -> None:
    """Every request lands in its step group's current interval, an error or a violation as a failure there,
    a whole delivery under "delivery (end to end)"; the timeline travels in the JSON and merges; a record
    written before the timeline existed still reads."""
    record = LoadRecord()
    for _ in range(30):
        record.request("reserve", 3_000_000)
        record.request("browse_lockers", 2_000_000)
    record.error(record.request("reserve", 9_000_000), "reserve: 503")
    record.violation(record.request("contend_reserve", 4_000_000), "double_booking", "contend_reserve", 1401, "x")
    record.flow("completed", "delivery", 40_000_000)
    timeline = record.timeline
    assert timeline.groups() == ["browsing", "contention", "delivery", "delivery (end to end)"]
    totals = {group: (sum(p.count for p in timeline.points(group)), sum(p.failures for p in timeline.points(group)))
              for group in timeline.groups()}  # fmt: skip
    assert totals == {"browsing": (30, 0), "contention": (1, 1), "delivery": (31, 1), "delivery (end to end)": (1, 0)}

    wire = json.loads(json.dumps(record.to_json()))
    merged = LoadRecord.merged([LoadRecord.from_json(wire), LoadRecord.from_json(wire)])
    assert sum(p.count for p in merged.timeline.points("delivery")) == 62
    del wire["timeline"]
    assert not LoadRecord.from_json(wire).timeline  # an older record: no timeline, no error
