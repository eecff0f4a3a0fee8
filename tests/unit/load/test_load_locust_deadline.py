"""``run_locust`` keeps within a deadline it is given: a Locust that would run on is stopped early
enough that its stop, even one that ends in a kill, is over by then."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from harness.errors import InfrastructureError
from harness.load._locust import STOP_MAX_S, LocustFiles, run_locust


def test_locust_is_stopped_in_time_for_the_deadline_it_was_given(tmp_path: Path) -> None:
    """A child that would run a minute is stopped at once when the deadline leaves room only for its stop."""
    files = LocustFiles(tmp_path / "load")
    hangs = [sys.executable, "-c", "import time; time.sleep(60)"]
    finish_by = time.monotonic() + STOP_MAX_S + 0.5
    with pytest.raises(InfrastructureError, match=r"did not finish within [01] s"):
        run_locust(hangs, env={}, files=files, duration_s=30.0, finish_by=finish_by)
    assert time.monotonic() < finish_by - STOP_MAX_S + 5.0  # SIGTERM ended it: no grace was waited out
