"""A run's Allure results folder as a whole: tidied once every stage wrote into it, and counted as
Allure 3 will count it.

**Tidy.** allure-pytest names a fixture's teardown ``<fixture>::<finalizer name>``: a generator
fixture's teardown has no name and becomes ``<fixture>::1``, and pytest's own hook call that closes
a fixture (a lambda) is recorded as a teardown that never finishes, which Allure shows with a "?"
for its status. The tidy pass names the first ``<fixture> (teardown)``, drops the second (it is no
code of the suite's), and gives any nameless step, set-up or teardown a name.

**Count.** Allure 3 merges results into one test when they share the test-case id (the
``ALLURE_ID``/``AS_ID`` label, else ``testCaseId``, else ``fullName``) and the non-excluded
parameters; the latest becomes the test, the others its retries. ``allure_totals`` applies that
rule, so ``summary.json`` says what the HTML report will show, and a run whose results would merge
(22 contract operations shown as one test with 21 retries) is seen in the figures themselves.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

__all__ = ["AllureTotals", "allure_totals", "tidy_results"]

#: allure-pytest's name of a finalizer without a ``__name__`` (a generator fixture's teardown): its index.
_NAMELESS_FINALIZER: Final = re.compile(r"^(?P<fixture>.+)::\d+$")
#: allure-pytest's name of pytest's own closing hook call, which it wraps and never finishes.
_CLOSING_HOOK: Final = re.compile(r"^(?P<fixture>.+)::<lambda>$")
#: Labels Allure 3 reads as a test's own id before testCaseId (case-sensitive, as Allure 3 compares them).
_ID_LABELS: Final = ("ALLURE_ID", "AS_ID")
_STATUSES: Final = ("passed", "failed", "broken", "skipped", "unknown")


def _load(path: Path) -> dict[str, Any] | None:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return document if isinstance(document, dict) else None


def _name_steps(steps: Any, default: str) -> bool:
    """Give every nameless step (at any depth) a name; whether one changed."""
    changed = False
    for step in steps if isinstance(steps, list) else ():
        if not isinstance(step, dict):
            continue
        if not str(step.get("name") or "").strip():
            step["name"] = default
            changed = True
        changed |= _name_steps(step.get("steps"), default)
    return changed


def _tidy_fixtures(fixtures: list[Any], kind: str) -> list[Any]:
    """A container's set-ups or teardowns, named for a person and without pytest's closing hook."""
    tidy: list[Any] = []
    for fixture in fixtures:
        if not isinstance(fixture, dict):
            continue
        name = str(fixture.get("name") or "").strip()
        closing = _CLOSING_HOOK.match(name)
        if closing is not None and not fixture.get("status"):
            continue  # pytest's hook that closes the fixture, recorded as a teardown that never ended
        nameless = _NAMELESS_FINALIZER.match(name)
        if nameless is not None:
            fixture["name"] = f"{nameless.group('fixture')} ({kind})"
        elif closing is not None:
            fixture["name"] = f"{closing.group('fixture')} ({kind})"
        elif not name:
            fixture["name"] = kind
        _name_steps(fixture.get("steps"), "step")
        tidy.append(fixture)
    return tidy


def tidy_results(results_dir: Path) -> int:
    """Name every set-up, teardown and step of a results folder, drop the teardowns that are pytest's
    own bookkeeping; returns how many files changed. Safe to run twice."""
    changed = 0
    for path in sorted(results_dir.glob("*-container.json")):
        container = _load(path)
        if container is None:
            continue
        before = json.dumps(container, sort_keys=True)
        for key, kind in (("befores", "set-up"), ("afters", "teardown")):
            if isinstance(container.get(key), list):
                container[key] = _tidy_fixtures(container[key], kind)
        if json.dumps(container, sort_keys=True) != before:
            path.write_text(json.dumps(container, ensure_ascii=False), encoding="utf-8")
            changed += 1
    for path in sorted(results_dir.glob("*-result.json")):
        result = _load(path)
        if result is not None and _name_steps(result.get("steps"), "step"):
            path.write_text(json.dumps(result, ensure_ascii=False), encoding="utf-8")
            changed += 1
    return changed


@dataclass(frozen=True, slots=True)
class AllureTotals:
    """What Allure 3 will show for a results folder: results read, tests they make, and each status."""

    results: int
    tests: int
    passed: int
    failed: int
    broken: int
    skipped: int
    unknown: int
    #: Tests made of more than one result: Allure shows the latest and calls the others retries.
    retried: int

    def as_dict(self) -> dict[str, int]:
        return {field: getattr(self, field) for field in self.__dataclass_fields__}


def _identity(result: dict[str, Any]) -> tuple[str, ...] | None:
    """The key Allure 3 merges results on (test case, parameters); ``None``: never merged."""
    labels = {label.get("name"): label.get("value") for label in result.get("labels") or () if isinstance(label, dict)}
    case = next((f"{name}={labels[name]}" for name in _ID_LABELS if labels.get(name) not in (None, "", "-1")), None)
    case = case or result.get("testCaseId") or result.get("fullName")
    if not case:
        return None
    parameters = sorted(
        f"{parameter.get('name')}:{parameter.get('value')}"
        for parameter in result.get("parameters") or ()
        if isinstance(parameter, dict) and not parameter.get("excluded")
    )
    return (str(case), *parameters)


def allure_totals(results_dir: Path) -> AllureTotals:
    """Count the results of a folder as Allure 3 groups them into tests (latest start wins)."""
    tests: dict[tuple[str, ...] | int, list[dict[str, Any]]] = {}
    results = 0
    for index, path in enumerate(sorted(results_dir.glob("*-result.json"))):
        result = _load(path)
        if result is None:
            continue
        results += 1
        tests.setdefault(_identity(result) or index, []).append(result)
    statuses = dict.fromkeys(_STATUSES, 0)
    for attempts in tests.values():
        latest = max(attempts, key=lambda attempt: int(attempt.get("start") or 0))
        status = latest.get("status")
        statuses[status if status in statuses else "unknown"] += 1
    return AllureTotals(
        results=results,
        tests=len(tests),
        retried=sum(len(attempts) > 1 for attempts in tests.values()),
        **statuses,
    )
