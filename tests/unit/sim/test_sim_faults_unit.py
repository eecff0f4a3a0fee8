"""The fault profile object: triggers, seeded fractions, stall windows, validation."""

from __future__ import annotations

from typing import cast

import pytest

from harness.ble.protocol import Field, FirmwareCode, PacketType
from harness.sim import Faults, TowerFirmware, _faults, parse_fault_spec
from harness.sim._faults import TOKEN_PATH
from harness.sim.blink import TowerBlinkServer


class FakeWall:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_nothing_set_is_the_fast_path() -> None:
    """Without profiles the middleware's flag is off and every decision is "serve"."""
    faults = Faults()
    assert faults.http_active is False
    action = faults.for_request("/api/v1/towers")
    assert (action.delay, action.drop, action.status) == (0.0, False, None)


def test_count_fires_exactly_n_times() -> None:
    """``count=2`` fires on the next two matching requests only."""
    faults = Faults()
    faults.set("http_5xx", {"count": 2, "paths": ["/api"]})
    assert faults.for_request("/sdk/v1/x").status is None  # not matching: not spent
    assert [faults.for_request("/api/v1").status for _ in range(3)] == [503, 503, None]


def test_fraction_is_reproducible_from_the_seed() -> None:
    """Two profiles with the same seed fail the same requests."""
    runs = []
    for _ in range(2):
        faults = Faults(seed=7)
        faults.set("http_5xx", {"fraction": 0.3})
        runs.append([faults.for_request("/api").status for _ in range(50)])
    assert runs[0] == runs[1] and 5 < runs[0].count(503) < 30


def test_stall_window_math() -> None:
    """``stall`` 1 s every 10 s: 9 s of service, then requests wait until the window ends."""
    wall = FakeWall()
    faults = Faults(wall=wall)
    faults.set("stall", {"seconds": 1, "every": 10})
    assert faults.for_request("/api").delay == 0.0
    wall.now += 9.25
    assert faults.for_request("/api").delay == pytest.approx(0.75)
    wall.now += 1.0  # the next period's quiet part
    assert faults.for_request("/api").delay == 0.0


def test_drop_wins_over_status_and_delays_add_up() -> None:
    """Latency and slow_token add their delays; a drop comes before any status."""
    faults = Faults()
    faults.set("latency", {"ms": 100})
    faults.set("slow_token", {"ms": 200})
    faults.set("drop_connection", {"count": 1})
    faults.set("rate_limit", {})
    first = faults.for_request(TOKEN_PATH)
    assert first.delay == pytest.approx(0.3) and first.drop
    second = faults.for_request("/api")
    assert (second.status, second.retry_after) == (429, 1.0) and second.delay == pytest.approx(0.1)


def test_ble_faults_do_not_touch_http() -> None:
    """BLE flags leave the HTTP fast path off and are spent one at a time."""
    faults = Faults()
    faults.set("ble_lost_notification", {"count": 1})
    assert faults.http_active is False
    assert (faults.ble("ble_lost_notification"), faults.ble("ble_lost_notification")) == (True, False)
    with pytest.raises(ValueError):
        faults.ble("latency")


def test_link_faults_carry_their_timeouts() -> None:
    """The supervision timeout's silence (100 ms unless given) and the idle timeout the towers use while
    ``ble_idle_timeout`` is on (none otherwise); both read by the radio in seconds."""
    faults = Faults()
    assert faults.idle_timeout() is None and faults.supervision_timeout() == 0.0
    faults.set("ble_supervision_timeout", {"count": 1})
    assert faults.supervision_timeout() == 0.1
    assert faults.as_dict()["ble_supervision_timeout"] == {"profile": "ble_supervision_timeout", "count": 1,
                                                           "fraction": None, "ms": 100.0}  # fmt: skip
    faults.set("ble_idle_timeout", {"ms": 250})
    assert faults.idle_timeout() == 0.25 and faults.http_active is False
    assert (faults.ble("ble_supervision_timeout"), faults.ble("ble_supervision_timeout")) == (True, False)


def test_none_clears_everything() -> None:
    """Profile ``none`` clears every profile."""
    faults = Faults()
    faults.set("latency", {"ms": 5})
    faults.set("ble_busy", {})
    faults.set("none")
    assert faults.as_dict() == {} and faults.http_active is False


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("quake", {}),
        ("http_5xx", {"count": -1}),
        ("http_5xx", {"count": True}),
        ("http_5xx", {"fraction": 1.5}),
        ("http_5xx", {"paths": ["api"]}),
        ("latency", {"ms": "slow"}),
        ("stall", {"seconds": 5, "every": 5}),
        ("slow_token", {"paths": ["/x"]}),
        ("ble_idle_timeout", {"count": 1}),
        ("ble_idle_timeout", {"ms": 0}),
        ("ble_supervision_timeout", {"ms": 40_000}),
    ],
)
def test_invalid_profiles_are_refused(name: str, params: dict[str, object]) -> None:
    """Unknown names, out-of-range numbers and parameters a profile does not take: ValueError."""
    with pytest.raises(ValueError):
        Faults().set(name, params)


@pytest.mark.parametrize("command", [PacketType.REQUEST_SYNC_STATUS, PacketType.SYNC_PULL])
def test_the_fault_table_names_the_code_a_busy_tower_answers(command: PacketType) -> None:
    """The table's ble_busy row names the firmware code the virtual tower answers a sync command with."""
    faults = Faults()
    faults.set("ble_busy")
    server = TowerBlinkServer(cast(TowerFirmware, None), faults, clock=lambda: 0.0)  # busy before any firmware call
    answer = server.connection()._command(command, {Field.SYNC_EVENT_START: 0})
    code = FirmwareCode(answer[Field.ERROR_CODE])
    lines = (_faults.__doc__ or "").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("``ble_busy``"))
    end = next(i for i in range(start + 1, len(lines)) if lines[i][:1] in ("`", "="))  # the next row
    row = " ".join(lines[start:end])
    assert code.name in row and command.name in row, (code.name, row)


def test_fault_specs_read_as_profile_and_parameters() -> None:
    """``name:key=value,...`` gives the profile and its parameters, numbers as numbers, paths as a list."""
    assert parse_fault_spec("ble_busy") == ("ble_busy", {})
    assert parse_fault_spec("latency:ms=200, paths=/api") == ("latency", {"ms": 200, "paths": ["/api"]})
    assert parse_fault_spec("http_5xx:fraction=0.5") == ("http_5xx", {"fraction": 0.5})
    name, params = parse_fault_spec("ble_disconnect:count=1")
    assert Faults().set(name, params)["count"] == 1  # what it reads, the profile takes
    for bad in ("", ":ms=1", "latency:ms", "latency:=3"):
        with pytest.raises(ValueError):
            parse_fault_spec(bad)


def test_a_stall_says_where_its_period_stands_so_a_client_can_mark_it() -> None:
    """``timing()`` gives a stall's length, period and the seconds into its current period: the windows a
    client marks from it are the ones the middleware holds requests in."""
    wall = FakeWall()
    faults = Faults(wall=wall)
    assert faults.timing() == {}
    faults.set("stall", {"seconds": 1, "every": 10})
    wall.now += 23.5
    assert faults.timing() == {"stall": {"seconds": 1.0, "every": 10.0, "phase_s": 3.5}}
    wall.now += 6.0  # 9.5 s into the period: inside the stall, held to its end
    assert faults.for_request("/api/v1/towers").delay == pytest.approx(0.5)
