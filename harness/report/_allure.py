"""Allure results written by the harness: test cases of non-pytest stages, the environment, categories.

pytest-based stages write their own results with ``--alluredir`` into the same folder; the
harness adds what allure-pytest has no API for (``environment.properties`` and
``categories.json``) after they ran, since ``--clean-alluredir`` would delete them.

Test cases are built as allure-python-commons' model objects and handed straight to its
``AllureFileLogger``, without its global plugin manager: a run inside pytest (with
allure-pytest listening) must not have the harness's results mixed into the test's own.
"""

from __future__ import annotations

import enum
import json
import platform
import urllib.parse
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Final

from allure_commons.logger import AllureFileLogger
from allure_commons.model2 import (
    Attachment,
    Label,
    Parameter,
    StatusDetails,
    TestResult,
    TestStepResult,
)

from harness.redaction import Redactor
from harness.report._results import (
    BLUETOOTH_ERRORS,
    DID_NOT_RAISE,
    OTHER_INFRASTRUCTURE_ERRORS,
    PRODUCT_ERRORS,
    REFUTED_ERROR,
    SERVER_ERRORS,
    UNREACHABLE_ERRORS,
    CaseOutcome,
    Failure,
    names_pattern,
)

__all__ = [
    "CATEGORIES",
    "ENGINES",
    "AllureAttachment",
    "AllureStep",
    "AllureTest",
    "AllureWriter",
    "engine_versions",
    "environment_properties",
    "failure_message",
    "redact_document",
    "write_categories",
    "write_environment",
]

#: The distributions whose versions every report names: the harness and the engines it drives.
#: Read from installed metadata, never by importing them (importing locust would patch the process).
ENGINES: Final = (
    "locker-harness",
    "httpx",
    "schemathesis",
    "hypothesis",
    "locust",
    "bleak",
    "bumble",
    "allure-pytest",
)

#: Allure categories, first match wins: infrastructure trouble first (whatever status a
#: framework gave it), then product defects, then test defects (everything else broken).
#: allure-pytest calls any exception but an ``AssertionError`` "broken", so a product defect
#: is found by its exception's name as well as by the "failed" status; the two rules share a
#: name, which Allure 2 groups by and Allure 3 merges into one category.
CATEGORIES: Final[tuple[Mapping[str, Any], ...]] = (
    {
        # First of all: a refuted guess of ours is no failure of anyone's, whatever its status.
        "name": "Assumptions refuted",
        "description": "Harbor answered differently from a guess of ours ([I]/[G]): adopt the value seen "
        "with the [assume] line in the message. Not a product defect.",
        "matchedStatuses": ["skipped", "failed"],
        "messageRegex": names_pattern((REFUTED_ERROR,)),
    },
    {
        # First: "DID NOT RAISE ServerError" names the error a check expected, not one that happened.
        "name": "Product defects",
        "description": "The target broke a promise of the contract or the locker model.",
        "matchedStatuses": ["broken", "failed"],
        "messageRegex": names_pattern((DID_NOT_RAISE,)),
    },
    {
        "name": "Infrastructure: target unreachable or timed out",
        "matchedStatuses": ["broken", "failed"],
        "messageRegex": names_pattern(UNREACHABLE_ERRORS),
    },
    {
        "name": "Infrastructure: server errors (5xx) after retries",
        "matchedStatuses": ["broken", "failed"],
        "messageRegex": names_pattern(SERVER_ERRORS),
    },
    {
        "name": "Infrastructure: Bluetooth adapter or link",
        "matchedStatuses": ["broken", "failed"],
        "messageRegex": names_pattern(BLUETOOTH_ERRORS),
    },
    {
        "name": "Infrastructure: other",
        "matchedStatuses": ["broken", "failed"],
        "messageRegex": names_pattern(OTHER_INFRASTRUCTURE_ERRORS),
    },
    {
        "name": "Product defects",
        "description": "The target broke a promise of the contract or the locker model.",
        "matchedStatuses": ["broken", "failed"],
        "messageRegex": names_pattern(PRODUCT_ERRORS),
    },
    {
        "name": "Product defects",
        "description": "The target broke a promise of the contract or the locker model.",
        "matchedStatuses": ["failed"],
    },
    {
        "name": "Test defects",
        "description": "The harness or a test raised an error nobody planned for: fix the harness, not the product.",
        "matchedStatuses": ["broken"],
    },
)


def engine_versions() -> dict[str, str]:
    """``{distribution: version}`` for the harness and its engines; ``absent`` when not installed."""
    versions: dict[str, str] = {}
    for name in ENGINES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions


def _escape_property(text: str, *, key: bool) -> str:
    """Java ``.properties`` escaping, which Allure's reader follows."""
    out = text.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    if key:
        out = out.replace("=", "\\=").replace(":", "\\:").replace(" ", "\\ ")
    return out


def write_environment(results_dir: Path, properties: Mapping[str, str], *, redactor: Redactor) -> Path:
    """``environment.properties``: what ran against what, one ``key=value`` a line, redacted."""
    results_dir.mkdir(parents=True, exist_ok=True)
    lines = [
        f"{_escape_property(key, key=True)}={_escape_property(redactor.text(value), key=False)}"
        for key, value in properties.items()
    ]
    path = results_dir / "environment.properties"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_categories(results_dir: Path) -> Path:
    """``categories.json``: product defects apart from infrastructure trouble and test defects."""
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / "categories.json"
    path.write_text(json.dumps(list(CATEGORIES), indent=2) + "\n", encoding="utf-8")
    return path


def redact_document(text: str, redactor: Redactor, *, is_json: bool, suffix: str = ".txt") -> str:
    """A JSON document redacted by key and value (text redaction could break its syntax); markup
    (an SVG plot) by value; else text."""
    if is_json:
        try:
            return json.dumps(redactor.value(json.loads(text)), indent=2, ensure_ascii=False)
        except ValueError:
            pass
    return redactor.document(text, suffix)


def failure_message(failure: Failure) -> str:
    """The status message Allure shows, led by the exception type the categories match on."""
    return f"{failure.error_type}: {failure.message}" if failure.error_type else failure.message


class _Mime(enum.StrEnum):
    JSON = "application/json"
    TEXT = "text/plain"
    SVG = "image/svg+xml"


_EXTENSIONS: Final = {_Mime.JSON: "json", _Mime.SVG: "svg"}


@dataclass(frozen=True, slots=True)
class AllureAttachment:
    """Evidence on a step: a request, a response, a frame dump. Redacted when written."""

    name: str
    body: str
    mime: str = _Mime.TEXT

    @classmethod
    def json(cls, name: str, value: Any) -> AllureAttachment:
        return cls(name, json.dumps(value, indent=2, default=str, ensure_ascii=False), _Mime.JSON)

    @classmethod
    def svg(cls, name: str, image: str) -> AllureAttachment:
        """A drawing (a plot), shown as an image."""
        return cls(name, image, _Mime.SVG)


@dataclass(slots=True)
class AllureStep:
    """One step of a test case: a flow step, a BLE phase."""

    name: str
    outcome: CaseOutcome
    start_ms: int
    stop_ms: int
    failure: Failure | None = None
    attachments: list[AllureAttachment] = field(default_factory=list)
    parameters: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class AllureTest:
    """One Allure test case of a non-pytest stage."""

    name: str
    full_name: str  # stable across runs: Allure derives its history id from it
    stage: str
    outcome: CaseOutcome
    start_ms: int
    stop_ms: int
    failure: Failure | None = None
    steps: list[AllureStep] = field(default_factory=list)
    attachments: list[AllureAttachment] = field(default_factory=list)
    parameters: dict[str, str] = field(default_factory=dict)
    description: str = ""


class AllureWriter:
    """Writes ``AllureTest`` cases into an Allure results folder, every text through the redactor."""

    def __init__(self, results_dir: Path, *, redactor: Redactor, suite: str = "locker-harness") -> None:
        self.results_dir = results_dir
        self._redactor = redactor
        self._suite = suite
        # allure-python-commons ships py.typed but leaves these functions unannotated.
        self._logger = AllureFileLogger(str(results_dir), clean=False)  # type: ignore[no-untyped-call]

    def write(self, test: AllureTest) -> str:
        """Write one test case and its attachments; returns its uuid."""
        redact = self._redactor.text
        result = TestResult(
            uuid=str(uuid.uuid4()),
            name=redact(test.name),
            fullName=redact(test.full_name),
            historyId=uuid.uuid5(uuid.NAMESPACE_URL, f"locker-harness:{test.full_name}").hex,
            status=test.outcome.value,
            stage="finished",
            start=test.start_ms,
            stop=test.stop_ms,
            description=redact(test.description) or None,
        )
        result.testCaseId = result.historyId
        result.labels = [
            Label(name="parentSuite", value=self._suite),
            Label(name="suite", value=test.stage),
            Label(name="framework", value="locker-harness"),
            Label(name="language", value="python"),
        ]
        result.titlePath = [self._suite, test.stage]
        result.parameters = [Parameter(name=k, value=redact(v)) for k, v in test.parameters.items()]
        result.statusDetails = self._details(test.failure)
        result.steps = [self._step(step) for step in test.steps]
        result.attachments = [self._attach(a) for a in test.attachments]
        self._logger.report_result(result)  # type: ignore[no-untyped-call]
        return str(result.uuid)

    def _details(self, failure: Failure | None) -> StatusDetails | None:
        if failure is None:
            return None
        redact = self._redactor.text
        return StatusDetails(
            message=redact(failure_message(failure)), trace=redact(failure.trace) if failure.trace else None
        )

    def _step(self, step: AllureStep) -> TestStepResult:
        result = TestStepResult(
            name=self._redactor.text(step.name),
            status=step.outcome.value,
            stage="finished",
            start=step.start_ms,
            stop=step.stop_ms,
        )
        result.statusDetails = self._details(step.failure)
        result.parameters = [Parameter(name=k, value=self._redactor.text(v)) for k, v in step.parameters.items()]
        result.attachments = [self._attach(a) for a in step.attachments]
        return result

    def _attach(self, attachment: AllureAttachment) -> Attachment:
        extension = _EXTENSIONS.get(_Mime(attachment.mime), "txt") if attachment.mime in set(_Mime) else "txt"
        file_name = f"{uuid.uuid4()}-attachment.{extension}"
        self._logger.report_attached_data(  # type: ignore[no-untyped-call]
            body=redact_document(
                attachment.body, self._redactor, is_json=attachment.mime == _Mime.JSON, suffix=f".{extension}"
            ),
            file_name=file_name,
        )
        return Attachment(name=self._redactor.text(attachment.name), source=file_name, type=attachment.mime)


def environment_properties(
    *,
    run_id: str,
    target: str,
    url: str | None,
    tower: str | None,
    firmware: str | None,
    seed: int,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The properties every run records, in a stable order."""
    properties = {
        "run.id": run_id,
        "target": target,
        "target.url": url or "-",
        "target.host": urllib.parse.urlsplit(url).netloc if url else "-",
        "tower": tower or "-",
        "tower.firmware": firmware or "-",
        "seed": str(seed),
        "python": platform.python_version(),
    }
    properties |= {f"version.{name}": version for name, version in engine_versions().items()}
    properties |= dict(extra or {})
    return properties
