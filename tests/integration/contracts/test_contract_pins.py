"""The contract suite's pins: on a shared sandbox, a case never acts on another run's locker."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from contract_target import Pins

from harness.model import TowerId

TOWER = TowerId("0100000000000014")
OTHER = TowerId("0100000000000175")
PINS = Pins(
    towers=(TOWER, OTHER),
    lockers={TOWER: (1401, 1402, 1403), OTHER: (17503,)},
    locations=(1,),
    spared=frozenset({(TOWER, 1422), (OTHER, 17501)}),
)


def _case(path: dict[str, Any], body: Any = None) -> Any:
    return SimpleNamespace(path_parameters=path, body=body)


def test_a_case_naming_a_spared_locker_is_pointed_at_a_pinned_one() -> None:
    """A link that carried another run's locker (the identity's assigned lockers list it) is re-pinned,
    on its own tower, in the path and in a locker-open body."""
    case = _case({"tower_id": TOWER, "locker_id": 1422}, {"lockerId": 1422})
    PINS.spare(case)
    assert case.path_parameters["locker_id"] in PINS.lockers[TOWER]
    assert case.body["lockerId"] in PINS.lockers[TOWER]
    other = _case({"tower_id": OTHER, "locker_id": 17501})
    PINS.spare(other)
    assert other.path_parameters["locker_id"] == 17503


def test_a_case_naming_anything_else_is_left_as_generated() -> None:
    """Pinned lockers, unknown ids (a 404 on purpose) and invalid values stay what the phase made them."""
    for path in ({"tower_id": TOWER, "locker_id": 1402}, {"tower_id": TOWER, "locker_id": 99999}, {"locker_id": -1}):
        case = _case(dict(path), {"lockerId": "x"})
        PINS.spare(case)
        assert case.path_parameters == path and case.body == {"lockerId": "x"}
    assert PINS.spare(_case({}, None)) is None
