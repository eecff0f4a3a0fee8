"""The seeded world of docs/design.md, and the public face of ``harness.sim``."""

from __future__ import annotations

import pytest

import harness.sim
from harness.model import LockerStatus
from harness.sim import DEMO_IDENTITIES, Identity, SimSettings
from harness.sim._layout import BACKGROUND_TENANT, initial_statuses, seeded_layout
from harness.sim._world import World


def test_every_seeded_tower_name_fits_the_advertisement() -> None:
    """A tower's name is on the air in the scan record's 16 bytes [40,56) (reference 9.1): a seeded name
    that did not fit would read one way over GET_DEVICE_INFO and the control plane, another on the air."""
    for tower in seeded_layout().towers.values():
        assert len(tower.name.encode()) <= 16, tower.name


def test_seed_zero_is_the_designed_world() -> None:
    """Towers 14 and 175 with their ids, labels, types, low and out-of-service lockers, as designed."""
    layout = seeded_layout()
    assert sorted(layout.towers) == ["0100000000000014", "0100000000000175"]
    tower = layout.towers["0100000000000014"]
    assert (tower.name, tower.firmware_version, tower.location_id) == ("Virtual Tower 14", "1.2.3", 1)
    assert tower.locker_ids == tuple(range(1401, 1425))
    lockers = [layout.lockers[i] for i in tower.locker_ids]
    assert [locker.name for locker in lockers] == [str(n) for n in range(1, 25)]
    assert [locker.type_id for locker in lockers] == [1] * 8 + [2] * 8 + [3] * 4 + [4] * 4
    assert [locker.name for locker in lockers if locker.is_low] == ["1", "2", "3", "4", "5", "6"]
    assert [locker.name for locker in lockers if locker.out_of_service] == ["12", "24"]
    second = layout.towers["0100000000000175"]
    assert second.locker_ids == tuple(range(17501, 17513)) and second.location_id == 2
    assert {layout.lockers[i].type_id for i in second.locker_ids} == {1, 2}
    assert not any(layout.lockers[i].out_of_service for i in second.locker_ids)
    assert [location.name for location in layout.locations.values()] == [
        "Harness Virtual Location",
        "Harness Second Location",
    ]
    statuses = initial_statuses(layout, 0)
    assert {i for i, s in statuses.items() if s is LockerStatus.OUT_OF_SERVICE} == {1412, 1424}
    assert sum(s is LockerStatus.AVAILABLE for s in statuses.values()) == 34


def test_other_seeds_fill_some_lockers_reproducibly() -> None:
    """A non-zero seed fills a quarter of the in-service lockers, the same ones every time."""
    world = World(SimSettings(seed=5))
    held = {i for i, state in world.states.items() if state.holder == BACKGROUND_TENANT}
    assert len(held) == 34 // 4
    assert all(world.states[i].status is LockerStatus.OCCUPIED for i in held)
    assert held == {i for i, s in World(SimSettings(seed=5)).states.items() if s.holder == BACKGROUND_TENANT}
    world.reset(seed=0)
    assert not any(state.holder for state in world.states.values())


def test_identities_travel_as_json() -> None:
    """Identities survive the environment's JSON; malformed values are one-line ``ValueError``s."""
    settings = SimSettings(identities=(Identity("a", "b"), Identity("c", "d")))
    assert SimSettings.identities_from_json(settings.identities_json()) == settings.identities
    for bad in ("not json", '{"client_id": "a"}', '[{"client_id": "a"}]'):
        with pytest.raises(ValueError):
            SimSettings.identities_from_json(bad)
    with pytest.raises(ValueError):
        SimSettings(identities=(Identity("a", "b"), Identity("a", "c")))
    assert "b" not in repr(Identity("a", "b")).replace("client_id", "")


def test_public_face() -> None:
    """``harness.sim`` exports a short, stable list."""
    assert sorted(harness.sim.__all__) == sorted(
        [
            "BUG_NAMES", "DEMO_IDENTITIES", "DIALECT_ASSUMPTIONS", "DIALECT_NAMES", "FAULT_NAMES", "BugSwitches",
            "ControlError", "Dialects", "Faults", "SIGNATURE_HEADER", "WEBHOOK_SOURCES", "Webhook", "WebhookDelivery",
            "FirmwareRefusal", "Identity", "Retention", "SandboxNotRunning", "SessionGrant", "SimControl",
            "SimSettings", "TOKEN_PATH", "TowerEvent", "TowerFirmware", "VirtualSandbox", "api_document", "create_app",
            "parse_fault_spec", "uvicorn_config",
        ]
    )  # fmt: skip
    assert DEMO_IDENTITIES[0].client_id == "demo-provider"
