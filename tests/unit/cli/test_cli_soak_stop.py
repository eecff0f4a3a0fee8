"""What a stopped soak says under its table: whole, and true to what its sandbox still held."""

from __future__ import annotations

from harness.cli.soak import _rows, _stopped
from harness.run import SoakFigures


def test_a_stopped_soak_that_gave_everything_back_says_so() -> None:
    """Nothing left held: the line says every worker gave back, and names no locker."""
    line = _stopped(SoakFigures(deliveries=192, interrupted=True), sigterm=True)
    assert line == (
        "terminated (SIGTERM) after 192 deliveries: the figures so far; "
        "every worker gave back what it held (nothing was left held)"
    )


def test_a_stopped_soak_names_what_was_left_held_and_where_to_go() -> None:
    """A give-back that could not free a locker: the line names it and points at cleanup, never 'gave back'."""
    line = _stopped(SoakFigures(deliveries=5, interrupted=True, lockers_left_held=[1401, 1402]), sigterm=False)
    assert line.startswith("interrupted after 5 deliveries: the figures so far; locker(s) 1401, 1402 were still held")
    assert "`locker-harness cleanup`" in line and "gave back" not in line


def test_a_soak_stopped_before_its_warm_up_shows_no_reading_it_never_took() -> None:
    """No RSS baseline yet: the marks show a dash and the growth says 'not measured', never 0.0 MiB or +0.0 %."""
    rows = {row[0]: row[1] for row in _rows(SoakFigures(deliveries=40, interrupted=True, rss_end_mib=64.7), 0.1)}
    assert rows["sandbox RSS start / middle / end"] == "- / - / 64.7 MiB"
    assert rows["RSS growth after warm-up"].startswith("not measured: stopped before the warm-up ended")
    assert rows["RSS growth: second half / per delivery"] == "not measured: stopped before half-way"
