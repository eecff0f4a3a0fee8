"""The pytest plugin: light to load, its fixtures on the embedded sandbox, and its guide's example kept true."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from harness.config import Settings, TargetKind
from harness.pytest_plugin import redact_report_text
from harness.sim import SimControl, VirtualSandbox
from harness.testing import LocalTarget, fresh_world

ROOT = Path(__file__).resolve().parents[3]


def test_loading_the_plugin_imports_no_engine() -> None:
    """Importing the plugin (every pytest run does) loads neither bleak, bumble, fastapi, uvicorn nor locust."""
    engines = ("bleak", "bumble", "fastapi", "uvicorn", "locust", "schemathesis", "hypothesis")
    code = f"import sys, harness.pytest_plugin; print(sorted(set({engines!r}) & set(sys.modules)))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"


def test_the_guide_shows_the_example_that_runs_here() -> None:
    """The plugin guide's example is test_plugin_example.py, line for line (without its docstring)."""
    example = (Path(__file__).with_name("test_plugin_example.py")).read_text(encoding="utf-8")
    body = example.split('"""', 2)[2].strip()
    guide = (ROOT / "docs" / "guides" / "pytest-plugin.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", guide, flags=re.DOTALL)
    assert body in [block.strip() for block in blocks]


def test_local_target_has_two_identities_and_a_control_plane(
    harbor_target: Settings, virtual_sandbox: VirtualSandbox, sim_control: SimControl
) -> None:
    """On local the plugin starts one sandbox for the session, with two identities and its /_sim."""
    assert harbor_target.target.kind is TargetKind.LOCAL
    assert harbor_target.target.api_url == virtual_sandbox.url
    assert harbor_target.credentials().client_id != harbor_target.second_credentials().client_id
    assert "double_booking" in sim_control.bugs()


def test_failing_reports_show_no_token_secret() -> None:
    """A secret key's value is masked in a report, also when the report cut the value short."""
    cut = '[201] Created: `{"id":7,"payload":"a1b2","payload_auth":"ab89fbecd44 // Output truncated...`'
    assert "ab89" not in redact_report_text(cut)
    assert "c0ffee" not in redact_report_text('{"session_seed": "c0ffeec0ffee", "id": 1}')


def test_fresh_world_keeps_the_switches_and_faults_that_were_on(planted: LocalTarget) -> None:
    """``fresh_world`` resets lockers and clock but keeps a planted bug, a dialect and a fault: a run's
    defect stays planted and its Harbor keeps its dialect."""
    control = planted.control
    control.reset()
    control.set_bugs(double_booking=True)
    control.set_dialects(create_200=True)
    control.set_faults("latency", ms=1.0)
    control.advance_clock(100)
    fresh_world(control)
    assert control.bugs()["double_booking"] is True
    assert {name for name, on in control.dialects().items() if on} == {"create_200"}
    assert control.faults()["latency"]["ms"] == 1.0
    assert control.state()["clock_offset"] == 0
    control.reset()


def test_local_target_speaks_its_dialects_and_delivers_its_webhooks() -> None:
    """``local_target(dialects=..., webhooks=...)``: on from the first request, to a loopback receiver;
    a receiver's secret is registered with the redactor."""
    from harness.redaction import redactor
    from harness.sim import Webhook
    from harness.testing import local_target

    from ..sim.webhook_receiver import Receiver

    with (
        Receiver() as receiver,
        local_target(dialects=["no_token_id"], webhooks=[Webhook(receiver.url, "plugin-secret")]) as target,
    ):
        assert target.control.dialects()["no_token_id"] is True
        assert target.control.webhooks()[0]["url"] == receiver.url
        assert "plugin-secret" not in redactor().text("signed with plugin-secret")
        target.control.force(target.settings.tower(), 1412, "available")
        [delivery] = receiver.wait_for(1)
        assert delivery.json()["data"]["source"] == "LOCKER_STATUS_FORCED"


def test_a_stop_shows_where_it_stopped_and_formats_only_that(tmp_path: Path) -> None:
    """A Ctrl-C deep in a suite's stack: pytest still names where it stopped, and the plugin leaves it
    only that entry to format (the whole stack only with --full-trace), as pytest would show anyway."""
    (tmp_path / "test_deep.py").write_text(
        "def outermost_frame(depth):\n"
        "    if depth:\n"
        "        return outermost_frame(depth - 1)\n"
        "    raise KeyboardInterrupt\n\n"
        "def test_stops():\n"
        "    outermost_frame(30)\n"
    )
    (tmp_path / "conftest.py").write_text(
        "import pytest\n\n"
        "@pytest.hookimpl(trylast=True)\n"
        "def pytest_keyboard_interrupt(excinfo):\n"
        "    print(f'entries to format: {len(excinfo.traceback)}')\n"
    )
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "test_deep.py"]
    short = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    full = subprocess.run([*command, "--full-trace"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert "KeyboardInterrupt" in short.stdout and "test_deep.py:4: KeyboardInterrupt" in short.stdout
    assert "entries to format: 1\n" in short.stdout, short.stdout
    assert short.stdout.count("outermost_frame(depth - 1)") == 0, short.stdout
    assert full.stdout.count("outermost_frame(depth - 1)") >= 30, full.stdout[-2000:]
