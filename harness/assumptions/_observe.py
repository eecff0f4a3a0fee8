"""What a target showed about our assumptions, and which of them it refutes.

Readers of Harbor's answers (the API client, the flow, the contract suite, the probe) record an
``Observation`` each time an answer shows an assumption's value: a create's status code, whether
a token carried its ``id``, a status name and id, when a locker turned occupied. Observations go
to the *current* ``ObservationLog`` (``observing()`` opens one for a block; otherwise the
process's own), which keeps each distinct value once with a count and the first request that
showed it, so a suite of thousands of calls stays small. A child process writes its log into
``$LOCKER_HARNESS_FINDINGS_DIR`` and the run reads it back (``write_log``, ``read_logs``), as
histograms travel.

``findings(log, assumed)`` turns a log into the refuted assumptions, each with the value seen,
the request that showed it and the line that adopts it; ``outcomes`` into the probe's table
(confirmed, refuted, not seen).

The tolerant readings live here once: ``read_status`` (a status by name, its id compared with
the ids in effect, an unknown name kept), ``read_expires`` (a time without an offset read as UTC).
"""

from __future__ import annotations

import contextlib
import contextvars
import enum
import json
import os
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from harness.assumptions._registry import ASSUMPTIONS, SEEN_STATUS_NAMES, Assumption, Kind
from harness.assumptions._values import Assumed, adopt_line, env_line, render_value
from harness.model import LockerStatus

__all__ = [
    "FINDINGS_ENV",
    "UNKNOWN_STATUS",
    "Finding",
    "Judged",
    "Observation",
    "ObservationLog",
    "Outcome",
    "Seen",
    "StatusReading",
    "current_log",
    "findings",
    "merge_findings",
    "observing",
    "outcomes",
    "read_expires",
    "read_logs",
    "read_status",
    "record",
    "write_log",
]

#: A child process (a pytest stage, Locust) writes its observations into this folder, one JSON
#: file per process; the stage reads them back (``read_logs``).
FINDINGS_ENV: Final = "LOCKER_HARNESS_FINDINGS_DIR"
#: The key of an unknown status name in ``status_names``' observed table.
UNKNOWN_STATUS: Final = "?"


@dataclass(frozen=True, slots=True)
class Observation:
    """One answer showing an assumption's value; ``seen`` is JSON-ready (a table entry for tables)."""

    assumption: str
    seen: object
    #: The request that showed it: ``POST /api/v1/towers/.../reservations answered 200``.
    where: str


@dataclass(slots=True)
class Seen:
    """A distinct value seen for one assumption: how often, and the first request that showed it."""

    assumption: str
    seen: object
    where: str
    count: int = 1

    def as_dict(self) -> dict[str, Any]:
        return {"assumption": self.assumption, "seen": self.seen, "where": self.where, "count": self.count}


def _frozen(value: object) -> object:
    """``value`` as a hashable key; its type kept, so that ``True`` and ``1`` stay apart."""
    if isinstance(value, Mapping):
        return ("map", tuple(sorted((str(k), _frozen(v)) for k, v in value.items())))
    if isinstance(value, list | tuple):
        return ("seq", tuple(_frozen(item) for item in value))
    return (type(value).__name__, value if isinstance(value, int | float | str | bool | None) else str(value))


def _key(assumption: str, seen: object) -> tuple[str, object]:
    # Called for every locker of every answer: a tuple, not a JSON dump.
    return assumption, _frozen(seen)


class ObservationLog:
    """Observations kept bounded: each distinct (assumption, value) once. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: dict[tuple[str, object], Seen] = {}

    def record(self, observation: Observation) -> None:
        key = _key(observation.assumption, observation.seen)
        with self._lock:
            known = self._seen.get(key)
            if known is None:
                self._seen[key] = Seen(observation.assumption, observation.seen, observation.where)
            else:
                known.count += 1

    def merge(self, entries: Sequence[Seen]) -> None:
        with self._lock:
            for entry in entries:
                key = _key(entry.assumption, entry.seen)
                known = self._seen.get(key)
                if known is None:
                    self._seen[key] = Seen(entry.assumption, entry.seen, entry.where, entry.count)
                else:
                    known.count += entry.count

    def entries(self) -> list[Seen]:
        with self._lock:
            return [Seen(s.assumption, s.seen, s.where, s.count) for s in self._seen.values()]

    def __len__(self) -> int:
        return len(self._seen)

    def clear(self) -> None:
        with self._lock:
            self._seen.clear()


_PROCESS_LOG: Final = ObservationLog()
_CURRENT: contextvars.ContextVar[ObservationLog] = contextvars.ContextVar("locker_harness_observations")


def current_log() -> ObservationLog:
    """The log observations go to here: the innermost ``observing()`` block's, else the process's."""
    return _CURRENT.get(_PROCESS_LOG)


def record(assumption: str, seen: object, where: str) -> None:
    """Record that an answer (``where``) showed ``seen`` for ``assumption``."""
    if assumption not in ASSUMPTIONS:
        raise KeyError(f"no assumption {assumption!r}")
    current_log().record(Observation(assumption, seen, where))


_record = record


@contextlib.contextmanager
def observing(log: ObservationLog | None = None) -> Iterator[ObservationLog]:
    """Collect the observations made in this block (and in tasks it starts) into a log of its own."""
    log = log if log is not None else ObservationLog()
    token = _CURRENT.set(log)
    try:
        yield log
    finally:
        _CURRENT.reset(token)


# -- travelling between processes ----------------------------------------------------------------


def write_log(log: ObservationLog | None = None, *, environ: Mapping[str, str] | None = None) -> Path | None:
    """Write ``log`` (default: the process's) into ``$LOCKER_HARNESS_FINDINGS_DIR`` as
    ``observations-<pid>.json``, if the variable is set and anything was observed."""
    folder = (os.environ if environ is None else environ).get(FINDINGS_ENV, "").strip()
    entries = (log if log is not None else _PROCESS_LOG).entries()
    if not folder or not entries:
        return None
    path = Path(folder) / f"observations-{os.getpid()}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps([entry.as_dict() for entry in entries], indent=1), encoding="utf-8")
    temporary.replace(path)  # a reader never sees half a file
    return path


def read_logs(folder: Path) -> tuple[list[Seen], list[str]]:
    """Every observation the stage's child processes left in ``folder``, and the files that could
    not be read (a harness defect, reported without losing the rest)."""
    entries: list[Seen] = []
    unreadable: list[str] = []
    for path in sorted(folder.glob("observations-*.json")) if folder.is_dir() else []:
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
            entries += [
                Seen(str(item["assumption"]), item["seen"], str(item["where"]), int(item.get("count", 1)))
                for item in document
                if str(item["assumption"]) in ASSUMPTIONS
            ]
        except (OSError, ValueError, TypeError, KeyError) as error:
            unreadable.append(f"{path.name}: {error}")
    return entries, unreadable


# -- judging ----------------------------------------------------------------------------------------


def _differs(entry: Assumption, assumed: Assumed, seen: object) -> bool:
    """Whether ``seen`` refutes the value in effect for ``entry``."""
    if entry.kind is Kind.STATUS_IDS:
        ids = assumed.status_ids()
        return isinstance(seen, Mapping) and any(ids.get(str(k)) != v for k, v in seen.items())
    if entry.kind is Kind.STATUS_NAMES:
        names = assumed.status_names()
        return isinstance(seen, Mapping) and any(names.get(str(k)) != v for k, v in seen.items())
    return bool(seen != assumed.value(entry.id))


@dataclass(frozen=True, slots=True)
class Finding:
    """A refuted assumption: what we assumed, what the target showed, where, and how to adopt it."""

    assumption: str
    mark: str
    assumed: str
    seen: str
    #: The request that first showed it.
    where: str
    count: int
    #: The ``[assume]`` line that adopts the value seen, or advice where no line fits.
    adopt: str
    #: ``HARBOR_ASSUME_*=...`` that adopts it, where a flat value fits.
    env: str | None = None
    stages: tuple[str, ...] = ()
    #: The value the ``adopt`` line carries (a table's entries merge across stages).
    value: object = None

    @property
    def message(self) -> str:
        """One line: the assumption, the values, the request and the line that adopts it."""
        return (
            f"assumption refuted: {self.assumption} {self.mark} assumed {self.assumed}, seen {self.seen} "
            f"({self.where}); adopt with [assume] {self.adopt}"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "assumption": self.assumption,
            "mark": self.mark,
            "assumed": self.assumed,
            "seen": self.seen,
            "where": self.where,
            "count": self.count,
            "adopt": f"[assume] {self.adopt}",
            "env": self.env,
            "stages": list(self.stages),
        }

    @classmethod
    def from_dict(cls, item: Mapping[str, Any]) -> Finding:
        adopt = str(item.get("adopt", ""))
        return cls(
            assumption=str(item["assumption"]),
            mark=str(item.get("mark", "")),
            assumed=str(item.get("assumed", "")),
            seen=str(item.get("seen", "")),
            where=str(item.get("where", "")),
            count=int(item.get("count", 1)),
            adopt=adopt.removeprefix("[assume] "),
            env=item.get("env"),
            stages=tuple(str(stage) for stage in item.get("stages", ())),
        )


def _adopted_value(entry: Assumption, assumed: Assumed, refuting: list[Seen]) -> object:
    """The value the ``[assume]`` line should carry: tables merge every entry seen that differs."""
    if entry.kind in (Kind.STATUS_IDS, Kind.STATUS_NAMES):
        merged: dict[str, object] = {}
        for seen in refuting:
            if isinstance(seen.seen, Mapping):
                merged |= {str(k): v for k, v in seen.seen.items() if str(k) != UNKNOWN_STATUS}
        if entry.kind is Kind.STATUS_IDS:
            merged.pop("available", None)
        return merged
    return refuting[0].seen


def _shown(value: object) -> str:
    return render_value(dict(value) if isinstance(value, Mapping) else value)


def findings(entries: Sequence[Seen], assumed: Assumed, *, stage: str | None = None) -> list[Finding]:
    """The refuted [I]/[G] assumptions in ``entries``, one finding each, in registry order."""
    refuting: dict[str, list[Seen]] = {}
    for seen in entries:
        entry = ASSUMPTIONS.get(seen.assumption)
        if entry is None or entry.is_fact or entry.key is None or not _differs(entry, assumed, seen.seen):
            continue
        refuting.setdefault(entry.id, []).append(seen)
    result = []
    for id_, seen_list in sorted(refuting.items(), key=lambda item: list(ASSUMPTIONS).index(item[0])):
        entry = ASSUMPTIONS[id_]
        value = _adopted_value(entry, assumed, seen_list)
        unknown = [
            str(s.seen[UNKNOWN_STATUS]) for s in seen_list if isinstance(s.seen, Mapping) and UNKNOWN_STATUS in s.seen
        ]
        if entry.kind in (Kind.STATUS_IDS, Kind.STATUS_NAMES) and value:
            seen_text = _shown(value)  # one table, not a fragment per answer
        else:
            seen_text = "; ".join(dict.fromkeys(_shown(s.seen) for s in seen_list))
        if unknown and not value:
            adopt = f'status_names = {{ <one of ours> = "{unknown[0]}" }} if {unknown[0]!r} is one of the six'
            env = None
        else:
            adopt, env = adopt_line(id_, value), env_line(id_, value)
        result.append(
            Finding(
                assumption=id_,
                mark=entry.mark,
                assumed=_shown(_in_effect(entry, assumed, seen_list)),
                seen=seen_text,
                where=seen_list[0].where,
                count=sum(s.count for s in seen_list),
                adopt=adopt,
                env=env,
                stages=(stage,) if stage else (),
                value=value,
            )
        )
    return result


def _in_effect(entry: Assumption, assumed: Assumed, seen_list: list[Seen]) -> object:
    """The value in effect, narrowed for tables to the entries the target contradicted."""
    if entry.kind in (Kind.STATUS_IDS, Kind.STATUS_NAMES):
        table: Mapping[str, object] = assumed.status_ids() if entry.kind is Kind.STATUS_IDS else assumed.status_names()
        keys = {str(k) for s in seen_list if isinstance(s.seen, Mapping) for k in s.seen if str(k) in table}
        return {key: table[key] for key in table if key in keys} or dict(table)
    return assumed.value(entry.id)


def merge_findings(found: Sequence[Finding]) -> list[Finding]:
    """Findings of several stages as one list: one per assumption, counts added, stages named."""
    merged: dict[str, Finding] = {}
    for finding in found:
        known = merged.get(finding.assumption)
        if known is None:
            merged[finding.assumption] = finding
            continue
        seen = known.seen if finding.seen in known.seen.split("; ") else f"{known.seen}; {finding.seen}"
        stages = tuple(dict.fromkeys((*known.stages, *finding.stages)))
        adopt, env, value = known.adopt, known.env, known.value
        if isinstance(known.value, Mapping) and isinstance(finding.value, Mapping) and finding.value:
            # A table's line adopts every entry any stage saw differ (one stage saw declined, another occupied).
            value = {**known.value, **finding.value}
            adopt, env, seen = adopt_line(known.assumption, value), env_line(known.assumption, value), _shown(value)
        merged[finding.assumption] = Finding(
            known.assumption,
            known.mark,
            known.assumed,
            seen,
            known.where,
            known.count + finding.count,
            adopt,
            env,
            stages,
            value,
        )
    return sorted(merged.values(), key=lambda f: list(ASSUMPTIONS).index(f.assumption))


class Outcome(enum.StrEnum):
    """What a probe learnt of one assumption."""

    CONFIRMED = "confirmed"
    REFUTED = "refuted"
    BROKEN = "broken"  # a fact ([S]) the target does not keep: a product defect
    NOT_SEEN = "not seen"


@dataclass(frozen=True, slots=True)
class Judged:
    """One row of the probe's table."""

    assumption: Assumption
    outcome: Outcome
    assumed: str
    seen: str = ""
    where: str = ""
    adopt: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "assumption": self.assumption.id,
            "mark": self.assumption.mark,
            "area": self.assumption.area.value,
            "outcome": self.outcome.value,
            "assumed": self.assumed,
            "seen": self.seen,
            "where": self.where,
            "adopt": f"[assume] {self.adopt}" if self.adopt else "",
        }


def outcomes(entries: Sequence[Seen], assumed: Assumed, *, areas: Sequence[str] | None = None) -> list[Judged]:
    """Every registered assumption (of ``areas``, default all but BLE) with what ``entries`` showed of it."""
    chosen = [e for e in ASSUMPTIONS.values() if (e.area.value in areas if areas is not None else e.area != "ble")]
    refuted = {finding.assumption: finding for finding in findings(entries, assumed)}
    by_id: dict[str, list[Seen]] = {}
    for seen in entries:
        by_id.setdefault(seen.assumption, []).append(seen)
    rows = []
    for entry in chosen:
        seen_list = by_id.get(entry.id, [])
        in_effect = _shown(_in_effect(entry, assumed, seen_list) if seen_list else assumed.value(entry.id))
        if entry.id in refuted:
            finding = refuted[entry.id]
            rows.append(Judged(entry, Outcome.REFUTED, finding.assumed, finding.seen, finding.where, finding.adopt))
        elif not seen_list:
            rows.append(Judged(entry, Outcome.NOT_SEEN, in_effect))
        elif entry.is_fact and any(s.seen is False for s in seen_list):
            broken = next(s for s in seen_list if s.seen is False)
            rows.append(Judged(entry, Outcome.BROKEN, in_effect, "not kept", broken.where))
        else:
            first = seen_list[0]
            if entry.kind in (Kind.STATUS_IDS, Kind.STATUS_NAMES):  # every entry of the table seen
                merged = {str(k): v for s in seen_list if isinstance(s.seen, Mapping) for k, v in s.seen.items()}
                shown = _shown(merged)
            else:
                shown = _shown(first.seen)
            rows.append(Judged(entry, Outcome.CONFIRMED, in_effect, shown, first.where))
    return rows


# -- tolerant readings -------------------------------------------------------------------------------

_SEPARATORS: Final = re.compile(r"[\s_-]+")


def _normal(name: str) -> str:
    return _SEPARATORS.sub("_", name.strip().lower())


@dataclass(frozen=True, slots=True)
class StatusReading:
    """A status as read: the model's status (or an unknown one, kept by name), and whether it
    breaks a seen fact (``broken``: what is wrong, for a product defect)."""

    status: LockerStatus
    broken: str | None = None


def read_status(name: str, status_id: int, assumed: Assumed, where: str, *, observe: bool = True) -> StatusReading:
    """The status a ``{name, id}`` shows, read by its name; observations recorded on the way.

    The name decides: one the values in effect spell (``status_names``) is that status; one that
    differs from it only in case, spaces or dashes (``out of service``) is that status too, and
    refutes ``status_names``; any other is kept as an unknown status under its own name. The id is
    then compared with the ids in effect (``status_ids``); available's id 1 is seen, so another
    id for it is ``broken``. ``observe=False`` reads without recording (a second reader of an
    answer already recorded).
    """

    def record(assumption: str, seen: object, where: str) -> None:
        if observe:
            _record(assumption, seen, where)

    names = assumed.status_names()
    by_name = {wire: status for status, wire in names.items()}
    status_name = by_name.get(name)
    if status_name is None:
        normal = _normal(name)
        status_name = next((s for s, wire in names.items() if normal in (_normal(wire), _normal(s))), None)
        if status_name is None:
            record("status_names", {UNKNOWN_STATUS: name}, where)
            return StatusReading(LockerStatus.unknown(name))
        if status_name in SEEN_STATUS_NAMES:
            # rented, occupied and available are spelt so in Harbor's own material: another spelling breaks it
            record("seen_status_names", False, where)
            return StatusReading(LockerStatus[status_name.upper()], f"{status_name} is spelt {name!r}")
        record("status_names", {status_name: name}, where)
    elif status_name in SEEN_STATUS_NAMES:
        record("seen_status_names", True, where)
    else:
        record("status_names", {status_name: name}, where)
    status = LockerStatus[status_name.upper()]
    if status is LockerStatus.AVAILABLE:
        record("available_status", status_id == 1, where)
        if status_id != 1:
            return StatusReading(status, f"available has id {status_id}, not 1")
    else:
        record("status_ids", {status_name: status_id}, where)
    return StatusReading(status)


def read_expires(text: str, assumed: Assumed, where: str, *, observe: bool = True) -> datetime | None:
    """An ``expires`` time: with its offset, or without one read as UTC (recorded: ``expires_offset``).
    ``None`` if it is no ISO time at all."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if observe:
        record("expires_offset", moment.tzinfo is not None, where)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
