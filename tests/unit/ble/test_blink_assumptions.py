"""The BLE assumptions are data: each registered entry has an id, an evidence mark, the value its
constant holds, and the files that use it really name it (so the list of where to look stays true)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.ble.protocol import assumptions
from harness.ble.protocol.assumptions import ASSUMPTIONS, Evidence

ROOT = Path(__file__).resolve().parents[3]


def test_every_constant_is_registered_once_with_its_value() -> None:
    """Each upper-case constant of the module is an entry, under its own name, holding the same value."""
    constants = {name for name in vars(assumptions) if name.isupper() and not name.startswith("_")}
    constants.discard("ASSUMPTIONS")
    registered = {entry.name: entry for entry in ASSUMPTIONS.values()}
    assert constants == set(registered)
    for name, entry in registered.items():
        assert getattr(assumptions, name) == entry.value, name
        assert entry.id.startswith("ble.") and entry.chosen and entry.used_by, name


@pytest.mark.parametrize("entry", sorted(ASSUMPTIONS.values(), key=lambda e: e.id), ids=lambda e: e.id)
def test_every_entry_names_the_files_that_use_it(entry: assumptions.Assumption) -> None:
    """Every file an entry lists exists and mentions the constant."""
    for path in entry.used_by:
        text = (ROOT / path).read_text(encoding="utf-8")
        assert entry.name in text, f"{path} does not mention {entry.name}"


def test_guesses_say_what_a_bench_tower_would_show() -> None:
    """An [I] or [G] entry that a bench tower can contradict says how it would show (``wrong_if``), or
    is only a length or layout the [S] facts pin down."""
    unconfirmed = [e for e in ASSUMPTIONS.values() if e.evidence in (Evidence.INFERRED, Evidence.GUESSED)]
    assert unconfirmed
    assert all(e.mark in ("[I]", "[G]") for e in unconfirmed)
    assert sum(bool(e.wrong_if) for e in unconfirmed) >= len(unconfirmed) * 2 // 3
