"""Sealed tokens: only the sandbox's keys mint and check them; the seed travels encrypted."""

from __future__ import annotations

import dataclasses

import pytest

from harness.model import TokenKind
from harness.sim._sealing import (
    LockerTokenClaims,
    SessionClaims,
    TowerKeys,
    read_locker_claims,
    read_session_claims,
    seal_locker_token,
    seal_session_token,
    verify_mac,
)

SECRET = b"s" * 32
TOWER = "0100000000000014"
CLAIMS = LockerTokenClaims(TOWER, 1401, "1", TokenKind.DROPOFF, 1_000.5, 3, 7, "order 9", "demo-provider")


def test_locker_token_round_trips_and_verifies() -> None:
    """A sealed locker token reads back to its claims and its MAC verifies with the tower's key only."""
    keys = TowerKeys.derive(SECRET, TOWER)
    payload, auth = seal_locker_token(keys, CLAIMS)
    assert read_locker_claims(payload) == CLAIMS
    assert verify_mac(keys.locker_auth, payload, auth)
    assert not verify_mac(TowerKeys.derive(SECRET, "0100000000000175").locker_auth, payload, auth)
    assert not verify_mac(TowerKeys.derive(b"t" * 32, TOWER).locker_auth, payload, auth)


def test_any_changed_claim_breaks_the_mac() -> None:
    """Re-sealing different claims gives a payload the original MAC no longer covers."""
    keys = TowerKeys.derive(SECRET, TOWER)
    _, auth = seal_locker_token(keys, CLAIMS)
    forged, _ = seal_locker_token(keys, dataclasses.replace(CLAIMS, locker_id=1402))
    assert not verify_mac(keys.locker_auth, forged, auth)


@pytest.mark.parametrize("payload", [b"", b"\xff\x00garbage", b"\xa1av\x02"])
def test_garbage_is_not_a_token(payload: bytes) -> None:
    """Bytes that are not our CBOR claim map read as ``None`` (never an exception)."""
    assert read_locker_claims(payload) is None
    assert read_session_claims(payload) is None


def test_session_seed_is_encrypted_to_the_tower() -> None:
    """The seed is absent from the payload in clear and opens only with the right tower's keys."""
    keys = TowerKeys.derive(SECRET, TOWER)
    seed = bytes(range(32))
    claims = SessionClaims(TOWER, ("developer",), 2_000.0, "demo-provider", None, "1.2.3", seed)
    payload, auth = seal_session_token(keys, claims)
    assert seed not in payload
    assert verify_mac(keys.session_auth, payload, auth)
    assert read_session_claims(payload, keys) == claims
    assert read_session_claims(payload, TowerKeys.derive(b"t" * 32, TOWER)) is None
    unopened = read_session_claims(payload)
    assert unopened is not None and unopened.seed == b""


def test_a_session_payload_is_not_a_locker_token() -> None:
    """Kinds are separated: a session payload never reads or verifies as a locker token."""
    keys = TowerKeys.derive(SECRET, TOWER)
    claims = SessionClaims(TOWER, ("owner",), 2_000.0, "demo-provider", None, "1.2.3", b"x" * 32)
    payload, auth = seal_session_token(keys, claims)
    assert read_locker_claims(payload) is None
    assert not verify_mac(keys.locker_auth, payload, auth)


def test_keys_never_show_in_repr() -> None:
    """Key material and seeds stay out of ``repr``."""
    keys = TowerKeys.derive(SECRET, TOWER)
    assert keys.locker_auth.hex() not in repr(keys) and str(keys.locker_auth) not in repr(keys)
    claims = SessionClaims(TOWER, ("owner",), 1.0, "c", None, "1.2.3", b"\x01" * 32)
    assert "\\x01" not in repr(claims)
