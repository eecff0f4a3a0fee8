"""Session crypto of reference 9.4: key derivation, sealing, grants, sequence numbers."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from harness.ble import protocol as p
from harness.ble.protocol import Field, FirmwareCode, PacketType

SEED = bytes(range(32))
REQUEST_NONCE = b"\x11" * 16
GRANT_NONCE = b"\x22" * 16
SESSION_KEY = b"\x33" * 16


def test_keys_follow_hkdf_sha256_with_empty_salt() -> None:
    """Keys are HKDF-SHA256(empty salt, seed||request nonce||grant nonce), 32 B auth and 16 B encrypt."""
    keys = p.derive_keys(SEED, REQUEST_NONCE, GRANT_NONCE)
    ikm = SEED + REQUEST_NONCE + GRANT_NONCE
    expect_auth = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"", info=b"authenticate").derive(ikm)
    expect_enc = HKDF(algorithm=hashes.SHA256(), length=16, salt=b"", info=b"encrypt").derive(ikm)
    assert (keys.auth, keys.encrypt) == (expect_auth, expect_enc)
    assert SEED.hex() not in repr(keys) and expect_auth.hex() not in repr(keys)


def test_seal_layout_and_round_trip() -> None:
    """A sealed item is prefix + 16-byte IV + ciphertext, authenticated by prefix + 32-byte HMAC."""
    keys = p.derive_keys(SEED, REQUEST_NONCE, GRANT_NONCE)
    wrapper, auth = p.seal(keys, b"hello blink", iv=b"\x00" * 16)
    assert wrapper[0] == p.assumptions.WRAPPER_PREFIX and len(wrapper) == 1 + 16 + 11
    assert auth[0] == p.assumptions.AUTH_PREFIX and len(auth) == 33
    assert b"hello" not in wrapper
    assert p.unseal(keys, wrapper, auth) == b"hello blink"


@pytest.mark.parametrize(
    ("tamper", "code"),
    [
        (lambda w, a: (w[:-1] + bytes([w[-1] ^ 1]), a), FirmwareCode.AUTH_SIGNATURE),
        (lambda w, a: (w, a[:-1]), FirmwareCode.AUTH_SIZE),
        (lambda w, a: (b"\x02" + w[1:], a), FirmwareCode.MSG_ITEM_VALUE),
        (lambda w, a: ("text", a), FirmwareCode.MSG_ITEM_TYPE),
    ],
)
def test_tampered_items_are_refused(tamper, code) -> None:  # type: ignore[no-untyped-def]
    """A flipped bit, a short HMAC, a foreign prefix or a wrong type never decrypts."""
    keys = p.derive_keys(SEED, REQUEST_NONCE, GRANT_NONCE)
    wrapper, auth = p.seal(keys, b"x" * 20)
    with pytest.raises(p.DecodeError) as caught:
        p.unseal(keys, *tamper(wrapper, auth))
    assert caught.value.firmware_code is code


def test_grant_opens_only_with_the_right_seed_and_nonce() -> None:
    """The phone opens GRANT_SESSION with its seed and nonce; another seed fails authentication."""
    packet = p.grant_session(
        SEED, REQUEST_NONCE, session_id=7, session_key=SESSION_KEY, grant_nonce=GRANT_NONCE, timestamp=1_700_000_000
    )
    assert packet[Field.PACKET_TYPE] == PacketType.GRANT_SESSION
    grant = p.open_grant(SEED, REQUEST_NONCE, p.decode_packet(p.encode_packet(packet)))
    assert (grant.session_id, grant.session_key, grant.grant_nonce) == (7, SESSION_KEY, GRANT_NONCE)
    assert SESSION_KEY.hex() not in repr(grant)
    with pytest.raises(p.DecodeError) as caught:
        p.open_grant(b"\x00" * 32, REQUEST_NONCE, packet)
    assert caught.value.firmware_code is FirmwareCode.AUTH_SIGNATURE


def test_request_session_is_clear_and_parses_back() -> None:
    """REQUEST_SESSION carries the sealed token and the nonce in clear; the tower reads them back."""
    packet = p.request_session(b"pay", b"auth", nonce=REQUEST_NONCE, timestamp=5)
    request = p.SessionRequest.from_packet(packet)
    assert (request.payload, request.payload_auth) == (b"pay", b"auth")
    assert (request.nonce, request.timestamp) == (REQUEST_NONCE, 5)
    with pytest.raises(p.DecodeError):
        p.SessionRequest.from_packet({**packet, Field.SESSION_REQUEST_NONCE: b"short"})
    with pytest.raises(p.DecodeError):
        p.SessionRequest.from_packet({1: 1})


def _pair() -> tuple[p.SessionChannel, p.SessionChannel]:
    return (
        p.SessionChannel(7, SESSION_KEY, REQUEST_NONCE, GRANT_NONCE),
        p.SessionChannel(7, SESSION_KEY, REQUEST_NONCE, GRANT_NONCE),
    )


def test_channel_round_trip_numbers_each_direction() -> None:
    """Each side numbers what it sends from 1 and the other side accepts them in order."""
    phone, tower = _pair()
    first = phone.wrap({Field.PACKET_TYPE: PacketType.CHECK_LOCKER_DOOR})
    assert set(first) == {Field.SESSION_ID, Field.INNER_WRAPPER, Field.INNER_AUTH}
    inner = tower.unwrap(p.decode_packet(p.encode_packet(first)))
    assert inner == {Field.PACKET_TYPE: PacketType.CHECK_LOCKER_DOOR, Field.SESSION_SEQUENCE: 1}
    reply = phone.unwrap(tower.wrap({Field.PACKET_TYPE: 48, Field.LOCKER_DOOR_OPEN: False}))
    assert reply[Field.SESSION_SEQUENCE] == 1
    assert "session_id=7" in repr(phone)


def test_channel_refuses_replays_and_other_sessions() -> None:
    """A replayed or reordered packet and a packet of another session are refused with their codes."""
    phone, tower = _pair()
    one = phone.wrap({1: 47})
    two = phone.wrap({1: 47})
    tower.unwrap(two)
    with pytest.raises(p.DecodeError) as replay:
        tower.unwrap(one)
    assert replay.value.firmware_code is FirmwareCode.AUTH_INVALID
    with pytest.raises(p.DecodeError) as other:
        tower.unwrap({**phone.wrap({1: 47}), Field.SESSION_ID: 8})
    assert other.value.firmware_code is FirmwareCode.AUTH_SESSION_ID


def test_channel_with_other_keys_fails_authentication() -> None:
    """A packet sealed under another session key is refused as a bad signature."""
    phone = p.SessionChannel(7, b"\x44" * 16, REQUEST_NONCE, GRANT_NONCE)
    _, tower = _pair()
    with pytest.raises(p.DecodeError) as caught:
        tower.unwrap(phone.wrap({1: 47}))
    assert caught.value.firmware_code is FirmwareCode.AUTH_SIGNATURE
