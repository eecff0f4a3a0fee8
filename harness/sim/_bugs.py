"""Bug switches: each plants exactly one defect, so a test that should catch it can prove it does.

=============================  ==========================================================================
switch                         the one behaviour it flips
=============================  ==========================================================================
``double_booking``             reserving a held locker succeeds: the new party takes the reservation over
``stale_status_after_close``   after a door closes, the REST views keep showing the status they showed before
                               the close until the locker's next change (a drop-off is occupied on the open
                               already [S], so it is the pickup's close that shows occupied, not available)
``wrong_field_type``           every locker object carries ``id`` as a string ("1401") instead of an integer
``token_opens_other_locker``   a valid token presented at another door of its tower opens that door
``ignore_token_expiry``        the tower opens for a token past its ``expires`` (no MSG_EXPIRED 107, and the
                               model's expiry check is skipped; a locker the sandbox already freed still
                               refuses the token as stale)
``accept_any_token``           the tower opens the door the payload names with no check at all (forged,
                               mis-signed, expired or foreign tokens open)
``cross_party_access``         the holder check is skipped: another party may cancel, release or get tokens
                               for a locker someone else holds
``held_shown_available``       the tower's locker listing shows held lockers (reserved, rented, occupied,
                               declined) as available; single-locker reads stay truthful
``reservation_never_expires``  a reservation outlives its ``duration``: the locker stays reserved
``replay_after_pickup``        a token of an earlier tenancy (e.g. the drop-off token after the pickup) still
                               opens the door
``wrong_status_id``            every locker object's ``status.id`` is the next status's id (available shows 2,
                               out_of_service 1): still within the document's 1..6, only the model tells
``token_issued_expired``       a new locker token's ``expires`` field is ``duration`` seconds in the past (the
                               token itself, as the tower checks it, is valid)
``open_available_opens_held``  OPEN_AVAILABLE_LOCKER opens a held locker: the lowest door of the type asked
                               for opens whatever its status (its status stays; no token is kept for it)
=============================  ==========================================================================

Bugs bypass ``harness.model.apply`` on purpose, and only where their row says so: that is what
makes them defects the harness's checks must see.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ._switchboard import Switchboard

__all__ = ["BUG_NAMES", "BugSwitches"]


@dataclass(slots=True)
class BugSwitches(Switchboard):
    """The switches of the module docstring's table; all off by default."""

    KIND: ClassVar[str] = "bug switch(es)"

    double_booking: bool = False
    stale_status_after_close: bool = False
    wrong_field_type: bool = False
    token_opens_other_locker: bool = False
    ignore_token_expiry: bool = False
    accept_any_token: bool = False
    cross_party_access: bool = False
    held_shown_available: bool = False
    reservation_never_expires: bool = False
    replay_after_pickup: bool = False
    wrong_status_id: bool = False
    token_issued_expired: bool = False
    open_available_opens_held: bool = False


BUG_NAMES: tuple[str, ...] = BugSwitches.names()
