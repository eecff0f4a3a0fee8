"""The wrong-token tests can fail: with a sandbox bug that lets a wrong token open a door, the test
written for that token goes red because the door opened, and only the tests that should.

The wrong-token tests run here in this process, against the session's sandbox with one bug switch
on, and each outcome is read from what it raised: ``DID NOT RAISE`` (the tower opened instead of
refusing) is "opened"; any other failure or error is the rig broken, not the bug caught.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
import test_wrong_tokens
from hw_rig import SWITCHES_NEED_LOCAL, Rig

pytestmark = pytest.mark.anyio

WRONG_TOKEN_TESTS = (
    "test_token_for_another_locker_is_refused",
    "test_expired_token_is_refused",
    "test_token_of_another_tower_is_refused",
)

#: Bug switch -> the wrong-token tests it must turn red (every other one stays green).
CAUGHT_BY = {
    "accept_any_token": frozenset(WRONG_TOKEN_TESTS),
    "token_opens_other_locker": frozenset({"test_token_for_another_locker_is_refused"}),
    "ignore_token_expiry": frozenset({"test_expired_token_is_refused"}),
}


async def _outcome(test: Callable[[Rig], Awaitable[None]], rig: Rig) -> str:
    try:
        await test(rig)
    except pytest.fail.Exception as failed:
        # pytest.raises says DID NOT RAISE when the tower answered LOCKER_OPENED instead of refusing.
        return "opened" if "DID NOT RAISE" in str(failed) else f"failed otherwise: {failed}"
    except pytest.skip.Exception as skipped:
        return f"skipped: {skipped}"
    except Exception as error:  # an assertion or an error of the rig: red, but not for the bug
        return f"failed otherwise: {type(error).__name__}: {error}"
    return "passed"


@pytest.mark.parametrize("bug", sorted(CAUGHT_BY))
async def test_each_wrong_token_test_fails_for_its_bug(rig: Rig, bug: str) -> None:
    """With the sandbox's ``bug`` on, the wrong-token tests it concerns fail because the door opened;
    the others still pass."""
    if not rig.virtual:
        pytest.skip(SWITCHES_NEED_LOCAL)
    outcomes: dict[str, str] = {}
    try:
        for name in WRONG_TOKEN_TESTS:
            rig.sandbox.world.reset()
            rig.sandbox.control.set_bugs({bug: True})
            outcomes[name] = await _outcome(getattr(test_wrong_tokens, name), rig)
    finally:
        rig.sandbox.world.reset()  # the next test's fresh_world resets too; this one leaves nothing on
    assert outcomes == {name: "opened" if name in CAUGHT_BY[bug] else "passed" for name in WRONG_TOKEN_TESTS}


async def test_the_all_doors_check_sees_a_door_no_token_names(rig: Rig) -> None:
    """The wrong-token tests' CHECK_ALL_LOCKER_DOORS check fails when any door of the tower opened while
    the test ran, even one the test's tokens do not name."""
    if not rig.virtual:
        pytest.skip("opening a door behind the test's back needs the virtual sandbox's control plane")
    async with rig.api() as api:
        token = await rig.dropoff_token(api)
        try:
            async with rig.session(api) as tower:
                before = await tower.doors_open()
                rig.sandbox.control.open_door(token.tower_id, token.locker.id, token.payload, token.payload_auth)
                with pytest.raises(AssertionError, match="opened after a wrong token"):
                    await test_wrong_tokens._no_door_opened(rig, tower, before)
        finally:
            rig.sandbox.world.reset()
