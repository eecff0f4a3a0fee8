"""The sandbox's virtual clock: wall time plus an offset that only grows."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import formatdate

__all__ = ["VirtualClock", "http_date", "iso_timestamp"]


class VirtualClock:
    """Sandbox time in epoch seconds. Every expiry, ``expires`` field, firmware check and the
    HTTP ``Date`` header read it; bearer tokens do not (they age on the wall clock)."""

    def __init__(self, wall: Callable[[], float] = time.time) -> None:
        self._wall = wall
        self._offset = 0.0

    @property
    def offset(self) -> float:
        return self._offset

    def now(self) -> float:
        return self._wall() + self._offset

    def advance(self, seconds: float) -> float:
        """Move forward by ``seconds`` (never back) and return the new time."""
        if not seconds >= 0:  # also refuses NaN
            raise ValueError("the virtual clock only moves forward")
        self._offset += seconds
        return self.now()

    def reset(self) -> None:
        self._offset = 0.0


def http_date(epoch: float) -> str:
    """RFC 9110 ``Date`` header value, e.g. ``Sat, 28 Nov 2026 04:00:00 GMT``."""
    return formatdate(epoch, usegmt=True)


def iso_timestamp(epoch: float, *, timespec: str = "milliseconds", naive: bool = False) -> str:
    """RFC 3339 date-time in UTC, as the API's ``expires`` fields carry it; ``naive``: without the
    offset (UTC implied), as the ``expires_naive`` dialect answers."""
    moment = datetime.fromtimestamp(epoch, UTC)
    return (moment.replace(tzinfo=None) if naive else moment).isoformat(timespec=timespec)
