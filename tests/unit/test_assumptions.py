"""The assumptions registry: one list of what we know of Harbor, each entry honest about where it is used.

The BLE entries are the codec's own (``harness.ble.protocol.assumptions``) and keep their
values; every entry's ``used_by`` files exist and read it (by id, or by its constant for BLE);
only guesses can be adopted, each with a key and a variable; bad ``[assume]`` values are one line.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.assumptions import ASSUMPTIONS, Assumed, Evidence, adopt_line, assumption, env_line
from harness.ble.protocol import assumptions as ble
from harness.config import load_settings
from harness.errors import UsageError

ROOT = Path(__file__).resolve().parents[2]


def test_the_ble_list_joins_the_registry_unchanged() -> None:
    """Every BLE entry is in the registry with its id, mark and value; the codec keeps its constants."""
    for entry in ble.ASSUMPTIONS.values():
        joined = assumption(entry.id)
        assert (joined.evidence, joined.value, joined.constant, joined.key) == (
            entry.evidence,
            entry.value,
            entry.name,
            None,
        )


def test_every_entry_is_read_where_it_says() -> None:
    """Each file an entry names exists and names the entry (its id, or its BLE constant): the list stays true."""
    wrong = []
    for entry in ASSUMPTIONS.values():
        assert entry.used_by, entry.id
        for path in entry.used_by:
            text = (ROOT / path).read_text(encoding="utf-8")
            if (entry.constant or entry.id) not in text:
                wrong.append(f"{entry.id}: {path}")
    assert wrong == []


def test_only_guesses_are_adoptable_and_each_has_a_key_and_a_variable() -> None:
    """[I]/[G] REST entries have a key and a HARBOR_ASSUME_* variable; facts and BLE constants have neither."""
    for entry in ASSUMPTIONS.values():
        if entry.key is not None:
            assert entry.evidence in (Evidence.INFERRED, Evidence.GUESSED), entry.id
            assert entry.env == f"HARBOR_ASSUME_{entry.id.upper()}" and entry.wrong_if
        if entry.is_fact:
            assert entry.key is None and entry.env is None


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"create_status": 404}, "create_status in [assume] of t must be a success status code"),
        ({"token_id_field": "perhaps"}, "must be true or false"),
        ({"occupied_on": "never"}, "must be one of open, close"),
        ({"status_ids": {"available": 7}}, "'available' is not a status whose id is guessed"),
        ({"status_ids": {"rented": 1}}, "the id of rented must be a whole number other than 1"),
        ({"status_names": {"rented": "hired"}}, "rented is spelt so in Harbor's material"),
        ({"locker_fields": ["id"]}, "locker_fields in [assume] of t cannot be adopted: it is [S]"),
        ({"create_stat": 200}, "unknown assumption 'create_stat' in [assume] of t; adoptable:"),
        ({"ble.advert.company_id": 1}, "a BLE constant (change it in code)"),
    ],
)
def test_a_bad_assume_value_is_one_line(table: dict[str, object], message: str) -> None:
    """Each kind of wrong value is refused with a line naming the key, where it came from and what is wanted."""
    with pytest.raises(UsageError) as caught:
        Assumed.of(table, "[assume] of t", {})
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_the_file_and_the_environment_adopt_values(tmp_path: Path) -> None:
    """[assume] in locker-harness.toml and HARBOR_ASSUME_* both adopt; the variable wins over the file."""
    (tmp_path / "locker-harness.toml").write_text(
        '[assume]\ncreate_status = 200\nstatus_names = { out_of_service = "out of service" }\n'
    )
    settings = load_settings(cwd=tmp_path, environ={"HARBOR_ASSUME_CREATE_STATUS": "202"})
    assert settings.assume.create_status == 202
    assert settings.assume.status_names()["out_of_service"] == "out of service"
    assert settings.assume.sources["create_status"] == "HARBOR_ASSUME_CREATE_STATUS"
    (tmp_path / "locker-harness.toml").unlink()
    (tmp_path / "pyproject.toml").write_text("[tool.locker-harness.assume]\noccupied_on = 'close'\n")
    assert load_settings(cwd=tmp_path, environ={}).assume.occupied_on == "close"


def test_a_child_process_gets_the_adopted_values() -> None:
    """target_environment hands every adopted value on as HARBOR_ASSUME_*, and they read back the same."""
    from harness.config import target_environment

    adopted = Assumed.of(
        {"status_ids": {"rented": 13}, "status_names": {"declined": "cancelled, by user"}, "token_id_field": False},
        "t",
        {},
    )
    settings = load_settings(environ={})
    import dataclasses

    env = target_environment(dataclasses.replace(settings, assume=adopted), seed=0)
    again = load_settings(environ={k: v for k, v in env.items() if k.startswith("HARBOR_ASSUME_")}).assume
    assert dict(again.adopted) == {k: (dict(v) if hasattr(v, "keys") else v) for k, v in adopted.adopted.items()} or (
        again.status_ids() == adopted.status_ids() and again.status_names() == adopted.status_names()
    )
    assert again.flag("token_id_field") is False


def test_lines_that_adopt_read_as_toml_and_environment() -> None:
    """adopt_line writes TOML that parses back; env_line a flat variable where one fits."""
    import tomllib

    line = adopt_line("status_names", {"out_of_service": "out of service"})
    assert tomllib.loads(line) == {"status_names": {"out_of_service": "out of service"}}
    assert env_line("create_status", 200) == "HARBOR_ASSUME_CREATE_STATUS=200"
    assert env_line("locker_fields", True) is None


def test_a_table_seen_in_two_stages_is_adopted_whole_by_one_line() -> None:
    """One stage saw reserved/occupied shifted, another declined: the run's line adopts all three (a line
    from the first stage alone left declined refuted after adopting it), and the seen column is one table
    however many answers showed it."""
    from harness.assumptions import Seen, findings, merge_findings

    assumed = Assumed()
    first = findings(
        [Seen("status_ids", {"reserved": 12}, "POST a", 3), Seen("status_ids", {"occupied": 14}, "GET b", 2),
         Seen("status_ids", {"reserved": 12}, "POST c", 1)],
        assumed, stage="smoke",
    )  # fmt: skip
    second = findings([Seen("status_ids", {"declined": 15}, "POST d", 1)], assumed, stage="contract")
    [merged] = merge_findings([*first, *second])
    assert merged.adopt == adopt_line("status_ids", {"reserved": 12, "occupied": 14, "declined": 15})
    assert merged.seen.count("reserved") == 1 and "declined" in merged.seen
    assert merged.stages == ("smoke", "contract") and merged.count == 7
