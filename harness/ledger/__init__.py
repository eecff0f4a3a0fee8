"""The cleanup ledger: every reservation and token the harness asks a target for, written down
before the call, so that ``locker-harness cleanup`` can give back what a crashed run left held.

    ledger = shared_ledger(settings.state_dir)          # .locker-harness/ledger.sqlite
    holds = LedgerHolds(ledger, settings, run_id=...)   # the API client's Holds hook
    client = AsyncHarborClient(settings, holds=holds)
    await run_delivery(client, opener, listeners=[holds.listener], ...)

A child process (Locust, a pytest stage) finds its parent's run in ``LOCKER_HARNESS_RUN_ID``
and the ledger under ``HARBOR_STATE_DIR``: ``ledger_holds(settings)`` does both.
"""

from harness.ledger._cleanup import (
    FOREIGN_GRACE_S,
    LockerClaim,
    Outcome,
    Plan,
    Settlement,
    UntrustedRow,
    give_back,
    plan,
    row_target,
)
from harness.ledger._holds import RUN_ID_ENV, LedgerHolds, ledger_holds, new_run_id, shared_ledger
from harness.ledger._store import LEDGER_FILE, OPEN_STATES, EntryState, Ledger, LedgerEntry, ProcessStamp

__all__ = [
    "FOREIGN_GRACE_S",
    "LEDGER_FILE",
    "OPEN_STATES",
    "RUN_ID_ENV",
    "EntryState",
    "Ledger",
    "LedgerEntry",
    "LedgerHolds",
    "LockerClaim",
    "Outcome",
    "Plan",
    "ProcessStamp",
    "Settlement",
    "UntrustedRow",
    "give_back",
    "ledger_holds",
    "new_run_id",
    "plan",
    "row_target",
    "shared_ledger",
]
