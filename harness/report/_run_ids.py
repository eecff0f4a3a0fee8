"""Run ids and the short forms people type for them.

A run id is ``20261128-040512-3f9a2c``: the start in UTC to the second, so ids sort by time,
then 24 random bits, so two runs started in the same second (two CI jobs, a script in a loop)
never share a folder or a history row. ``report``, ``history`` and ``compare`` accept the whole
id, a prefix of it, or its random tail (``3f9a2c``, like a short commit hash); one that names
several runs is a usage error listing them, never a guess.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Final

from harness.errors import UsageError

__all__ = ["RUN_ID_TAIL_HEX", "check_run_id", "new_run_id", "resolve_run_id", "run_id_started", "run_id_tail"]

#: Hex digits of the random tail: 16.7 million ids per second, and a tail unique enough to type.
RUN_ID_TAIL_HEX: Final = 6
#: Candidates an ambiguity error lists before it says how many more there are.
_LISTED: Final = 6
#: A run id a person chooses (``--run-id``): a folder name on every OS, and a word in a CI log.
_CHOSEN_ID: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def new_run_id(now: datetime | None = None) -> str:
    """A run id that sorts by time and does not collide: ``20261128-040512-3f9a2c`` (UTC)."""
    now = now or datetime.now(UTC)
    return f"{now.astimezone(UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(RUN_ID_TAIL_HEX // 2)}"


def run_id_started(run_id: str) -> datetime | None:
    """The second (UTC) a run id drawn by ``new_run_id`` names; ``None`` for an id a person chose."""
    stamp, _, tail = run_id.rpartition("-")
    if len(tail) != RUN_ID_TAIL_HEX or not all(c in "0123456789abcdef" for c in tail):
        return None
    try:
        return datetime.strptime(stamp, "%Y%m%d-%H%M%S").replace(tzinfo=UTC)
    except ValueError:
        return None


def check_run_id(run_id: str) -> str:
    """A run id given on the command line, as it is; a ``UsageError`` if it cannot name a folder."""
    if not _CHOSEN_ID.fullmatch(run_id):
        raise UsageError(
            f"--run-id {run_id!r}: use 1 to 100 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return run_id


def run_id_tail(run_id: str) -> str:
    """The random part of a run id, its shortest unambiguous name: ``3f9a2c``."""
    return run_id.rpartition("-")[2]


def resolve_run_id(reference: str, run_ids: Sequence[str], *, where: str) -> str:
    """The one id of ``run_ids`` that ``reference`` names: the id, a prefix of it, or its tail.

    ``where`` ends the error messages ("under reports", "in the history ...").
    """
    if reference in run_ids:
        return reference
    matches = [run_id for run_id in run_ids if run_id.startswith(reference) or run_id_tail(run_id) == reference]
    if not matches:
        raise UsageError(f"no run {reference!r} {where}")
    if len(matches) > 1:
        more = len(matches) - _LISTED
        listed = ", ".join(matches[:_LISTED]) + (f" and {more} more" if more > 0 else "")
        raise UsageError(
            f"run {reference!r} is ambiguous: it names {len(matches)} runs {where}: {listed}; "
            f"give more of the id, or its random tail (e.g. {run_id_tail(matches[0])})"
        )
    return matches[0]
