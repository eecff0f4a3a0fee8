"""The values in effect: the registry's guesses, with the ones a user adopted over them.

A user adopts a value seen on a real target with one line in ``[assume]`` of
``locker-harness.toml`` (``[tool.locker-harness.assume]`` in ``pyproject.toml``), or a
``HARBOR_ASSUME_<ID>`` variable (the environment wins over the file, as for every setting)::

    [assume]
    create_status = 200
    status_ids = { reserved = 12, rented = 13 }
    status_names = { out_of_service = "out of service" }
    token_id_field = false
    occupied_on = "close"

    HARBOR_ASSUME_STATUS_IDS="reserved=12,rented=13"

Only [I] and [G] entries can be adopted: a fact ([S], [S3]) is what Harbor's own material shows,
and a target that differs from it breaks a promise. Every bad value is one ``UsageError`` line.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

from harness.assumptions._registry import ASSUMPTIONS, SEEN_STATUS_NAMES, Assumption, Kind
from harness.errors import UsageError

__all__ = ["ASSUME_ENV_PREFIX", "Assumed", "adopt_line", "env_line", "render_value"]

#: ``HARBOR_ASSUME_<ID>`` adopts a value for the entry ``<id>``.
ASSUME_ENV_PREFIX: Final = "HARBOR_ASSUME_"
_HEADER: Final = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+")
#: Statuses whose id may be adopted: every one but available (id 1 is seen).
_ID_STATUSES: Final = ("reserved", "rented", "occupied", "declined", "out_of_service")
_ADOPTABLE: Final = {entry.id: entry for entry in ASSUMPTIONS.values() if entry.key is not None}


def _parse(entry: Assumption, value: object, source: str) -> object:
    """``value`` (from a TOML file, or text from the environment) as the entry's kind of value."""
    text = value.strip() if isinstance(value, str) else None
    match entry.kind:
        case Kind.STATUS_CODE:
            number = int(text) if text is not None and text.isdigit() else value
            if isinstance(number, bool) or not isinstance(number, int) or not 200 <= number <= 299:
                raise UsageError(f"{source} must be a success status code (200..299), not {value!r}")
            return number
        case Kind.BOOLEAN:
            if isinstance(value, bool):
                return value
            if text is not None and text.lower() in ("true", "1", "yes", "false", "0", "no"):
                return text.lower() in ("true", "1", "yes")
            raise UsageError(f"{source} must be true or false, not {value!r}")
        case Kind.CHOICE:
            if text is None or text.lower() not in entry.choices:
                raise UsageError(f"{source} must be one of {', '.join(entry.choices)}, not {value!r}")
            return text.lower()
        case Kind.HEADER:
            if text is None or not _HEADER.fullmatch(text):
                raise UsageError(f"{source} must be an HTTP header name, not {value!r}")
            return text
        case Kind.STATUS_IDS:
            table = _table(value, source)
            ids: dict[str, int] = {}
            for status, item in table.items():
                if status not in _ID_STATUSES:
                    guessed = ", ".join(_ID_STATUSES)
                    raise UsageError(f"{source}: {status!r} is not a status whose id is guessed ({guessed})")
                number = int(item) if isinstance(item, str) and item.strip().isdigit() else item
                if isinstance(number, bool) or not isinstance(number, int) or number < 0 or number == 1:
                    raise UsageError(f"{source}: the id of {status} must be a whole number other than 1, not {item!r}")
                ids[status] = number
            return MappingProxyType(ids)
        case Kind.STATUS_NAMES:
            table = _table(value, source)
            named = tuple(entry.value) if isinstance(entry.value, Mapping) else ()
            names: dict[str, str] = {}
            for status, item in table.items():
                if status not in named:
                    seen = f" ({status} is spelt so in Harbor's material)" if status in SEEN_STATUS_NAMES else ""
                    raise UsageError(f"{source}: {status!r} is not a status whose name is guessed{seen}")
                if not isinstance(item, str) or not item.strip():
                    raise UsageError(f"{source}: the name of {status} must be a non-empty string, not {item!r}")
                names[status] = item
            return MappingProxyType(names)
    raise UsageError(f"{source}: {entry.id} is {entry.mark}, not a guess: it cannot be adopted")


def _table(value: object, source: str) -> Mapping[str, object]:
    """A TOML table, or the environment's ``name=value,name=value``."""
    if isinstance(value, Mapping):
        return {str(key): item for key, item in value.items()}
    if isinstance(value, str) and value.strip().startswith("{"):
        try:  # a child process's form of a table whose names hold ',' or '=' (``Assumed.environment``)
            loaded = json.loads(value)
        except ValueError:
            raise UsageError(f"{source} is not a JSON object: {value!r}") from None
        if isinstance(loaded, dict):
            return {str(key): item for key, item in loaded.items()}
    if isinstance(value, str):
        pairs = [part for part in value.split(",") if part.strip()]
        table: dict[str, object] = {}
        for pair in pairs:
            key, sep, item = pair.partition("=")
            if not sep or not key.strip():
                raise UsageError(f"{source} must read name=value,name=value, not {value!r}")
            table[key.strip()] = item.strip()
        if table:
            return table
    raise UsageError(f"{source} must be a table (name = value, ...), not {value!r}")


@dataclass(frozen=True, slots=True)
class Assumed:
    """The values in effect for one run: the registry's, with the adopted ones over them."""

    #: Adopted values by assumption id, already parsed.
    adopted: Mapping[str, object] = field(default_factory=dict)
    #: Where each adopted value came from (``create_status in [assume] of locker-harness.toml``).
    sources: Mapping[str, str] = field(default_factory=dict)
    # The status tables in effect, made once: a reader consults them for every locker it reads.
    _ids: Mapping[str, int] = field(init=False, repr=False, compare=False)
    _names: Mapping[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        ids = {"available": 1, **_mapping(ASSUMPTIONS["status_ids"].value)}
        ids |= dict(_mapping(self.adopted.get("status_ids", {})))
        names = {name: name for name in (*SEEN_STATUS_NAMES, *_mapping(ASSUMPTIONS["status_names"].value))}
        names |= {str(k): str(v) for k, v in _mapping(self.adopted.get("status_names", {})).items()}
        object.__setattr__(self, "_ids", MappingProxyType(ids))
        object.__setattr__(self, "_names", MappingProxyType(names))

    @classmethod
    def of(cls, table: Mapping[str, object], where: str, environ: Mapping[str, str]) -> Assumed:
        """The values an ``[assume]`` table (named ``where`` in messages) and ``HARBOR_ASSUME_*`` adopt."""
        adopted: dict[str, object] = {}
        sources: dict[str, str] = {}
        for key, value in table.items():
            entry = _ADOPTABLE.get(str(key))
            if entry is None:
                raise UsageError(_unknown(str(key), where))
            source = f"{key} in {where}"
            adopted[entry.id], sources[entry.id] = _parse(entry, value, source), source
        for variable, value in environ.items():
            if not variable.startswith(ASSUME_ENV_PREFIX) or not value.strip():
                continue
            key = variable[len(ASSUME_ENV_PREFIX) :].lower()
            entry = _ADOPTABLE.get(key)
            if entry is None:
                raise UsageError(_unknown(key, variable))
            adopted[entry.id], sources[entry.id] = _parse(entry, value, variable), variable
        return cls(MappingProxyType(adopted), MappingProxyType(sources))

    def value(self, id_: str) -> object:
        """The value in effect for entry ``id_``: adopted, else the registry's."""
        return self.adopted[id_] if id_ in self.adopted else ASSUMPTIONS[id_].value

    @property
    def create_status(self) -> int:
        value = self.value("create_status")
        assert isinstance(value, int)
        return value

    def flag(self, id_: str) -> bool:
        """A boolean entry's value in effect (``token_id_field``, ``expires_offset``, ...)."""
        return bool(self.value(id_))

    @property
    def occupied_on(self) -> str:
        return str(self.value("occupied_on"))

    @property
    def webhook_signature_header(self) -> str:
        return str(self.value("webhook_signature_header"))

    def status_ids(self) -> Mapping[str, int]:
        """Every status's id in effect, available's seen 1 included."""
        return self._ids

    def status_names(self) -> Mapping[str, str]:
        """Every status (the model's name) -> its name on the wire in effect."""
        return self._names

    def environment(self) -> dict[str, str]:
        """``HARBOR_ASSUME_*`` variables that give a child process these adopted values."""
        return {
            variable: text
            for id_, value in self.adopted.items()
            if (variable := ASSUMPTIONS[id_].env) is not None and (text := _env_text(value)) is not None
        }


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _unknown(key: str, where: str) -> str:
    entry = ASSUMPTIONS.get(key)
    if entry is not None:
        why = "a fact seen in Harbor's material" if entry.is_fact else "a BLE constant (change it in code)"
        return f"{key} in {where} cannot be adopted: it is {entry.mark}, {why}"
    return f"unknown assumption {key!r} in {where}; adoptable: {', '.join(sorted(_ADOPTABLE))}"


def render_value(value: object) -> str:
    """A value as TOML writes it: ``200``, ``false``, ``"close"``, ``{ reserved = 12 }``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, Mapping):
        inner = ", ".join(f"{key} = {render_value(item)}" for key, item in value.items())
        return f"{{ {inner} }}" if inner else "{}"
    if isinstance(value, bytes):
        return value.hex(" ")
    if isinstance(value, tuple | list):
        return "[" + ", ".join(render_value(item) for item in value) + "]"
    return json.dumps(str(value))


def adopt_line(id_: str, value: object) -> str:
    """The ``[assume]`` line that adopts ``value`` for entry ``id_`` (``create_status = 200``)."""
    return f"{id_} = {render_value(value)}"


def _env_text(value: object) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | str):
        return str(value)
    if isinstance(value, Mapping):
        if any("," in str(item) or "=" in str(item) for item in value.values()):
            return json.dumps(dict(value), ensure_ascii=False)  # not flat: a JSON object
        return ",".join(f"{key}={item}" for key, item in value.items())
    return None


def env_line(id_: str, value: object) -> str | None:
    """The ``HARBOR_ASSUME_*=...`` line that adopts ``value``, where a flat value fits."""
    variable = ASSUMPTIONS[id_].env
    text = _env_text(value)
    return None if variable is None or text is None else f"{variable}={text}"
