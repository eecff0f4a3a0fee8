"""The contract stage's Schemathesis report, beside its JUnit and Allure results.

``locker-harness run`` (and ``contract``) name the stage's own folder in ``$LOCKER_HARNESS_STAGE_DIR``
(``reports/<run-id>/contract/``); run without it (``make test``, a bare ``pytest``), the suite writes
nothing. With it, ``schemathesis/`` there holds:

- ``calls.ndjson``: every call the suite made, one JSON line each: operation, method, path, status,
  elapsed milliseconds, phase, generation mode, and each failed check with its title and message.
- ``index.html``: Schemathesis's own HTML report (operations, cases, each failure with a curl line
  to reproduce it), drawn by its ``HtmlWriter`` from the same calls.

Why not ``reports.html`` in the suite's configuration: Schemathesis's pytest plugin writes that
report for the per-operation tests only. The stateful phase runs inside a fixture, which the plugin
never sees, so a run whose only failure was stateful (a double booking along the links) showed
"All operations passed". Two global hooks hear every call instead, the stateful phase's too.

Both files go through ``harness.redaction`` in this process, the one that learnt every token's
``payload_auth`` from the answers: each NDJSON line as it is written, the HTML once written.
Schemathesis masks the ``Authorization`` header itself, not a secret in a body.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import sys
import time
import urllib.parse
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Final

import pytest
import schemathesis
from contract_checks import Case, operation_id
from schemathesis import Response
from schemathesis.checks import CheckResult
from schemathesis.engine.recorder import ScenarioRecorder

from harness.redaction import Redactor, redactor

__all__ = ["STAGE_DIR_ENV", "CallLog", "report_calls"]

#: Where ``locker-harness run`` wants a stage's own reports (``harness.run`` sets the same name).
STAGE_DIR_ENV: Final = "LOCKER_HARNESS_STAGE_DIR"
#: Calls waiting for their checks; one whose checks never ran (a check's own extra request) is
#: written without them past this.
_PENDING_MAX: Final = 64
#: A failure message in a line is evidence, not a transcript: the HTML report keeps the whole of it.
_MESSAGE_CHARS: Final = 500


def report_dir() -> Path | None:
    """``<stage folder>/schemathesis`` when a run asked for reports, else ``None``."""
    stage_dir = os.environ.get(STAGE_DIR_ENV, "").strip()
    return Path(stage_dir) / "schemathesis" if stage_dir else None


class CallLog:
    """Every call of the contract suite: a redacted NDJSON line each, and Schemathesis's HTML report.

    A pytest plugin (for the session's end) holding two global Schemathesis hooks: ``after_call``
    keeps the call and registers any secret its answer carries, ``after_validate`` adds how the
    checks ended and writes the line.
    """

    def __init__(self, folder: Path, redaction: Redactor) -> None:
        self.folder = folder
        self.calls = folder / "calls.ndjson"
        self.html = folder / "index.html"
        self._redaction = redaction
        self._out: IO[str] | None = None
        self._pending: dict[str, dict[str, Any]] = {}
        self._hooks: list[Callable[..., None]] = []
        #: What Schemathesis's HTML writer reads: one recorder per operation, and its time.
        self._recorders: dict[str, ScenarioRecorder] = {}
        self._elapsed_s: dict[str, float] = {}
        self._schema: Any = None  # the schema of the first call: its configuration, location, checks
        self._base_url: str | None = None  # where the first call went (the document's own is a file)
        self._started = time.time()

    def start(self) -> None:
        # Plain functions, kept: Schemathesis marks what it registers (a bound method takes no
        # attribute) and unregisters by identity.
        def after_call(context: schemathesis.HookContext, case: Case, response: Response) -> None:
            self.called(case, response)

        def after_validate(
            context: schemathesis.HookContext, case: Case, response: Response, results: list[CheckResult]
        ) -> None:
            self.validated(case, response, results)

        self._hooks = [schemathesis.hook("after_call")(after_call), schemathesis.hook("after_validate")(after_validate)]

    def called(self, case: Case, response: Response) -> None:
        """Keep a call until its checks ran; register any secret its answer carries."""
        with contextlib.suppress(ValueError, UnicodeDecodeError):
            # The suite registers an answer's secrets after this hook: register them first.
            self._redaction.register_fields(response.json())
        if self._schema is None:
            self._schema = case.operation.schema
            url = urllib.parse.urlsplit(str(response.request.url))
            self._base_url = f"{url.scheme}://{url.netloc}" if url.netloc else None
        label = case.operation.label
        recorder = self._recorders.setdefault(label, ScenarioRecorder(label=label, config=self._schema.config.output))
        recorder.record_case(case=case)
        recorder.record_response(case_id=case.id, response=response)
        self._elapsed_s[label] = self._elapsed_s.get(label, 0.0) + response.elapsed
        if case.id in self._pending:
            self._write(self._pending.pop(case.id))  # the same case sent again: keep both calls
        meta = case.meta
        self._pending[case.id] = {
            "at": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "case": case.id,
            "operation": operation_id(case) or label,
            "method": case.method.upper(),
            "path": case.formatted_path,
            "status": response.status_code,
            "elapsed_ms": round(response.elapsed * 1000, 3),
            "phase": meta.phase.name.value if meta is not None else None,
            "mode": meta.generation.mode.value if meta is not None else None,
        }
        while len(self._pending) > _PENDING_MAX:
            self._write(self._pending.pop(next(iter(self._pending))))

    def validated(self, case: Case, response: Response, results: list[CheckResult]) -> None:
        """Write a kept call with how its checks ended; tell the HTML report's recorder too."""
        recorder = self._recorders.get(case.operation.label)
        if recorder is not None:
            for result in results:
                if result.failure is None:
                    recorder.record_check_success(name=result.name, case_id=case.id)
                    continue
                curl = case.as_curl_command(headers=dict(response.request.headers), verify=response.verify)
                recorder.record_check_failure(
                    name=result.name, case_id=case.id, code_sample=curl, failure=result.failure
                )
        entry = self._pending.pop(case.id, None)
        if entry is None:
            return
        entry["checks_failed"] = [
            {"check": result.name, "title": failure.title, "message": failure.message[:_MESSAGE_CHARS]}
            for result in results
            if (failure := result.failure) is not None
        ]
        entry["checks_passed"] = len(results) - len(entry["checks_failed"])
        self._write(entry)

    def _write(self, entry: dict[str, Any]) -> None:
        if self._out is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._out = self.calls.open("a", encoding="utf-8")
        self._out.write(json.dumps(self._redaction.value(entry), ensure_ascii=False) + "\n")

    def close(self) -> None:
        """Write what still waits for checks, stop listening, close the file, draw the HTML report."""
        for entry in self._pending.values():
            self._write(entry)
        self._pending.clear()
        for hook in self._hooks:
            schemathesis.hooks.unregister(hook)
        self._hooks.clear()
        if self._out is not None:
            self._out.close()
            self._out = None
        if self._recorders:
            try:
                self._write_html()
            except Exception as error:
                # The writer is not Schemathesis's public API: should it change, the calls stay and
                # a line in the stage's pytest.log says why (a warning would be an error here).
                print(f"Schemathesis's HTML report not written: {error!r}", file=sys.stderr)
            self._redaction.file(self.html)
        self._recorders.clear()

    def _write_html(self) -> None:
        # The writer Schemathesis's pytest plugin uses for ``reports.html``, fed every call.
        from schemathesis.reporting.html.build import enabled_checks
        from schemathesis.reporting.html.writer import HtmlWriter

        schema = self._schema
        writer = HtmlWriter(
            self.folder,
            config=schema.config.output,
            location=schema.location,
            base_url=self._base_url,
            command=shlex.join(["pytest", *sys.argv[1:]]),
            seed=schema.config.seed,
            checks=enabled_checks(schema.config.checks_config_for()),
            started_at=self._started,
        )
        for label, recorder in self._recorders.items():
            writer.write(recorder, self._elapsed_s.get(label, 0.0))
        writer.close()

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self) -> None:
        self.close()


def report_calls(config: pytest.Config) -> CallLog | None:
    """Start the call log when a run asked for reports (``$LOCKER_HARNESS_STAGE_DIR``)."""
    folder = report_dir()
    if folder is None:
        return None
    log = CallLog(folder, redactor())
    log.start()
    config.pluginmanager.register(log, "locker-harness-call-log")
    return log
