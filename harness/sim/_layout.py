"""The seeded world of docs/design.md: locations, towers and lockers, as frozen data."""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from harness.model import LOCKER_TYPES, LockerStatus, TowerId

__all__ = [
    "BACKGROUND_TENANT",
    "Layout",
    "LocationSpec",
    "LockerSpec",
    "TowerSpec",
    "initial_statuses",
    "seeded_layout",
]

#: The party holding the lockers a non-zero seed fills, so clients must pick available ones.
BACKGROUND_TENANT = "background-tenant"


@dataclass(frozen=True, slots=True)
class LocationSpec:
    id: int
    name: str
    lat: float
    lon: float
    address1: str
    city: str
    state: str
    zip: str
    country: str
    timezone: str


@dataclass(frozen=True, slots=True)
class LockerSpec:
    id: int
    tower_id: TowerId
    name: str  # the door label, e.g. "14"
    type_id: int
    is_low: bool
    out_of_service: bool = False

    @property
    def type_name(self) -> str:
        return LOCKER_TYPES[self.type_id]


@dataclass(frozen=True, slots=True)
class TowerSpec:
    id: TowerId
    name: str
    firmware_version: str
    location_id: int
    locker_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Layout:
    locations: Mapping[int, LocationSpec]
    towers: Mapping[TowerId, TowerSpec]
    lockers: Mapping[int, LockerSpec]


def _tower_14() -> tuple[TowerSpec, list[LockerSpec]]:
    tower_id = TowerId("0100000000000014")
    lockers = []
    for label in range(1, 25):
        type_id = 1 if label <= 8 else 2 if label <= 16 else 3 if label <= 20 else 4
        lockers.append(
            LockerSpec(
                id=1400 + label,
                tower_id=tower_id,
                name=str(label),
                type_id=type_id,
                is_low=label <= 6,
                out_of_service=label in (12, 24),
            )
        )
    return TowerSpec(tower_id, "Virtual Tower 14", "1.2.3", 1, tuple(s.id for s in lockers)), lockers


def _tower_175() -> tuple[TowerSpec, list[LockerSpec]]:
    tower_id = TowerId("0100000000000175")
    lockers = [
        LockerSpec(
            id=17500 + label,
            tower_id=tower_id,
            name=str(label),
            type_id=1 if label <= 6 else 2,
            is_low=label <= 4,
        )
        for label in range(1, 13)
    ]
    return TowerSpec(tower_id, "Second Tower 175", "1.2.3", 2, tuple(s.id for s in lockers)), lockers


def seeded_layout() -> Layout:
    """The towers and lockers every seed shares (docs/design.md, "Seeded world")."""
    locations = {
        1: LocationSpec(
            id=1,
            name="Harness Virtual Location",
            lat=37.7749,
            lon=-122.4194,
            address1="1 Harness Way",
            city="San Francisco",
            state="CA",
            zip="94103",
            country="US",
            timezone="America/Los_Angeles",
        ),
        2: LocationSpec(
            id=2,
            name="Harness Second Location",
            lat=37.8044,
            lon=-122.2712,
            address1="2 Harness Way",
            city="Oakland",
            state="CA",
            zip="94612",
            country="US",
            timezone="America/Los_Angeles",
        ),
    }
    towers: dict[TowerId, TowerSpec] = {}
    lockers: dict[int, LockerSpec] = {}
    for tower, specs in (_tower_14(), _tower_175()):
        towers[tower.id] = tower
        lockers.update((spec.id, spec) for spec in specs)
    return Layout(MappingProxyType(locations), MappingProxyType(towers), MappingProxyType(lockers))


def initial_statuses(layout: Layout, seed: int) -> dict[int, LockerStatus]:
    """Each locker's status at reset: ``seed=0`` all available but the out-of-service ones; any
    other seed also fills about a quarter of the rest with a background tenant's items."""
    statuses = {
        locker_id: LockerStatus.OUT_OF_SERVICE if spec.out_of_service else LockerStatus.AVAILABLE
        for locker_id, spec in layout.lockers.items()
    }
    if seed:
        rng = random.Random(seed)
        in_service = sorted(i for i, status in statuses.items() if status is LockerStatus.AVAILABLE)
        for locker_id in rng.sample(in_service, len(in_service) // 4):
            statuses[locker_id] = LockerStatus.OCCUPIED
    return statuses
