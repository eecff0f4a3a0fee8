"""The assumptions registry: what the harness knows of Harbor, how sure it is, and what a target showed.

    from harness.assumptions import ASSUMPTIONS
    for entry in ASSUMPTIONS.values():
        print(entry.mark, entry.id, entry.value, entry.key)

- ``ASSUMPTIONS``: every entry (REST, the locker model, webhooks, BLE) with its evidence mark, the
  value assumed, the files that use it, what a real target would show if it is wrong, and the
  ``[assume]`` key that adopts another value.
- ``Assumed``: the values in effect for a run (``Settings.assume``): the registry's, with the
  adopted ones (``[assume]``, ``HARBOR_ASSUME_*``) over them.
- ``record`` / ``observing`` / ``ObservationLog``: what answers showed; ``findings`` turns them
  into refuted assumptions (a finding about our guess, never a product defect), ``outcomes`` into
  the probe's table.
- ``read_status`` and ``read_expires``: the tolerant readings every reader of Harbor's answers shares.

The virtual sandbox never imports this package: it is the client side's knowledge, and the
sandbox is a second implementation that must not share it.
"""

from harness.assumptions._answers import observe_answer
from harness.assumptions._document import tolerant_document
from harness.assumptions._observe import (
    FINDINGS_ENV,
    UNKNOWN_STATUS,
    Finding,
    Judged,
    Observation,
    ObservationLog,
    Outcome,
    Seen,
    StatusReading,
    current_log,
    findings,
    merge_findings,
    observing,
    outcomes,
    read_expires,
    read_logs,
    read_status,
    record,
    write_log,
)
from harness.assumptions._registry import ASSUMPTIONS, SEEN_STATUS_NAMES, Area, Assumption, Evidence, Kind, assumption
from harness.assumptions._values import ASSUME_ENV_PREFIX, Assumed, adopt_line, env_line, render_value

__all__ = [
    "ASSUME_ENV_PREFIX",
    "ASSUMPTIONS",
    "FINDINGS_ENV",
    "SEEN_STATUS_NAMES",
    "UNKNOWN_STATUS",
    "Area",
    "Assumed",
    "Assumption",
    "Evidence",
    "Finding",
    "Judged",
    "Kind",
    "Observation",
    "ObservationLog",
    "Outcome",
    "Seen",
    "StatusReading",
    "adopt_line",
    "assumption",
    "current_log",
    "env_line",
    "findings",
    "merge_findings",
    "observe_answer",
    "observing",
    "outcomes",
    "read_expires",
    "read_logs",
    "read_status",
    "record",
    "render_value",
    "tolerant_document",
    "write_log",
]
