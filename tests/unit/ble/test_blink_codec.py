"""The pure Blink codec: packets, framing, reassembly, identities and tolerant error codes."""

from __future__ import annotations

import cbor2
import pytest

from harness.ble import protocol as p
from harness.ble.protocol import Field, FirmwareCode, PacketType, SdkCode
from harness.model import TowerId


def test_packet_starts_with_the_self_describe_tag() -> None:
    """Every request on the wire is D9 D9 F7 followed by one CBOR map with integer keys."""
    raw = p.encode_packet({Field.PACKET_TYPE: PacketType.CHECK_LOCKER_DOOR})
    assert raw[:3] == b"\xd9\xd9\xf7"
    assert cbor2.loads(raw[3:]) == {1: 47}


def test_packet_round_trips_with_and_without_tag() -> None:
    """A packet decodes to the same map whether or not the self-describe tag is present."""
    packet = {Field.PACKET_TYPE: PacketType.LOCKER_OPENED, Field.LOCKER_ID: 1401, Field.PAYLOAD: b"\x00\x01"}
    assert p.decode_packet(p.encode_packet(packet)) == packet
    assert p.decode_packet(p.encode_map(packet)) == packet


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"\xff\x00", FirmwareCode.MSG_CBOR_INVALID),
        (cbor2.dumps([1, 2]), FirmwareCode.MSG_CBOR_INVALID),
        (cbor2.dumps({"type": 1}), FirmwareCode.MSG_ITEM_TYPE),
        (cbor2.dumps({5: 1}), FirmwareCode.MSG_ITEM_MISSING),
    ],
)
def test_malformed_bytes_are_a_decode_error_with_the_towers_code(raw: bytes, code: FirmwareCode) -> None:
    """Bytes that are not a Blink packet raise DecodeError naming the code a tower would answer."""
    with pytest.raises(p.DecodeError) as caught:
        p.decode_packet(raw)
    assert caught.value.firmware_code is code
    assert caught.value.code is SdkCode.PACKET_NOT_DECODED


def test_unknown_packet_type_stays_a_number() -> None:
    """A packet type the table does not know is returned as its int, not an exception."""
    assert p.packet_type({1: 250}) == 250
    assert p.packet_type({1: 46}) is PacketType.LOCKER_OPENED


@pytest.mark.parametrize("mtu", [23, 24, 100, 247])
def test_chunks_respect_the_mtu_and_reassemble(mtu: int) -> None:
    """Writes are at most MTU - 3 bytes and the reassembler yields the packet only when complete."""
    raw = p.encode_packet({Field.PACKET_TYPE: PacketType.OPEN_LOCKER_WITH_TOKEN, Field.PAYLOAD: bytes(range(256)) * 2})
    parts = list(p.chunks(raw, mtu))
    assert all(len(part) <= mtu - 3 for part in parts)
    assert b"".join(parts) == raw
    reassembler = p.Reassembler()
    done = [reassembler.feed(part) for part in parts]
    assert all(d == [] for d in done[:-1])
    assert done[-1] == [raw]
    assert len(reassembler) == 0


def test_chunks_refuse_an_mtu_without_room() -> None:
    """An MTU of 3 or less leaves no payload bytes: refused rather than looping forever."""
    with pytest.raises(ValueError):
        list(p.chunks(b"x", 3))


def test_reassembler_keeps_bytes_after_a_complete_item() -> None:
    """Two packets in one stream come out one by one; a partial tail waits for more bytes."""
    a = p.encode_packet({1: 0})
    b = p.encode_packet({1: 48, 76: True})
    reassembler = p.Reassembler()
    assert reassembler.feed(a + b[:2]) == [a]
    assert reassembler.feed(b[2:]) == [b]


def test_reassembler_rejects_garbage_and_bounds_its_buffer() -> None:
    """Undecodable bytes raise and clear the buffer; an endless item is cut at max_bytes."""
    reassembler = p.Reassembler()
    with pytest.raises(p.DecodeError):
        reassembler.feed(b"\xff\xff")
    assert len(reassembler) == 0
    small = p.Reassembler(max_bytes=8)
    with pytest.raises(p.DecodeError):
        small.feed(b"\x5a\x00\x01\x00\x00" + bytes(10))  # a 65536-byte string, never complete


def test_firmware_codes_are_tolerant() -> None:
    """An unknown firmware code becomes a pseudo-member named UNKNOWN_<n> instead of raising."""
    code = FirmwareCode(999)
    assert int(code) == 999
    assert code.name == "UNKNOWN_999"
    assert FirmwareCode(207) is FirmwareCode.AUTH_SIGNATURE
    assert SdkCode(4242).name == "UNKNOWN_4242"
    assert FirmwareCode.SYS_SYNC_BUSY.retryable and not FirmwareCode.AUTH_INVALID.retryable
    assert SdkCode.RESPONSE_TIMEOUT.communication and not SdkCode.PACKET_NOT_DECODED.communication


def test_errors_carry_fields_and_say_them() -> None:
    """Blink exceptions keep code, name, phase and locker id, and print them on one line."""
    error = p.FirmwareError("token for another locker", code=201, phase="open", locker_id=1402, tower_id="01AB")
    assert error.code is FirmwareCode.AUTH_INVALID
    assert error.name == "AUTH_INVALID"
    assert (error.phase, error.locker_id) == ("open", 1402)
    assert str(error) == "token for another locker [firmware.blink 201 AUTH_INVALID phase=open tower=01AB locker=1402]"
    session = p.FirmwareError("no", code=202, session_level=True)
    assert session.domain == "firmware.session"


def test_raise_for_error_turns_error_packets_into_exceptions() -> None:
    """ERROR and SESSION_ERROR packets raise FirmwareError; other packets pass through."""
    p.raise_for_error({1: 46, 70: 1})
    with pytest.raises(p.FirmwareError) as caught:
        p.raise_for_error(p.error_packet(107, "expired"), phase="open")
    assert caught.value.code is FirmwareCode.MSG_EXPIRED
    assert caught.value.phase == "open"
    with pytest.raises(p.FirmwareError) as session:
        p.raise_for_error(p.error_packet(206, session_level=True))
    assert session.value.session_level


def test_identity_round_trips_through_advert_and_device_info() -> None:
    """Tower id, name and firmware survive the advertisement parts, the merged form and device info."""
    tower = p.TowerIdentity("0100000000000014", "Virtual Tower 14", "1.2.3")
    advert, scan_response = tower.manufacturer_payloads()
    assert len(advert) == 3 and len(scan_response) == 24
    assert p.TowerIdentity.from_manufacturer_data({0xFFFF: advert + scan_response}) == tower
    assert p.TowerIdentity.from_manufacturer_data({1: scan_response, 2: advert}) == tower
    assert p.TowerIdentity.from_manufacturer_data({1: scan_response}) == p.TowerIdentity(
        "0100000000000014", "Virtual Tower 14", None
    )
    assert p.TowerIdentity.from_manufacturer_data({0x004C: b"\x02\x15"}) is None
    info = tower.device_info()
    assert info[:2] == p.assumptions.DEVICE_INFO_PREFIX
    assert p.TowerIdentity.from_device_info(info) == tower
    with pytest.raises(p.DecodeError):
        p.TowerIdentity.from_device_info(info[:10])


def test_an_advertised_tower_id_is_a_tower_id() -> None:
    """The 8 bytes a tower advertises come out as its ``TowerId`` (upper-case hex) and go back as the same bytes."""
    tower = p.TowerIdentity(TowerId("01000000000000ab"), "Tower", "1.2.3")
    advert, scan_response = tower.manufacturer_payloads()
    found = p.TowerIdentity.from_manufacturer_data({0x0A: advert, 0x0B: scan_response})
    assert found is not None and isinstance(found.tower_id, TowerId) and found.tower_id == "01000000000000AB"
    assert scan_response[:8] == bytes.fromhex("01000000000000ab")
