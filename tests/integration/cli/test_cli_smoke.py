"""``locker-harness smoke`` and ``sim`` end to end: exit codes, the step table, Ctrl-C, one-line errors."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness.api import RetryPolicy
from harness.config import ENVIRONMENT

from .invoking import DEMO, invoke

LOCKER_HARNESS = Path(sys.executable).with_name("locker-harness")


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_smoke_local_completes_with_exit_0() -> None:
    """Against the embedded sandbox, smoke runs every step, prints the table and exits 0."""
    code, stdout, stderr = invoke(["smoke"])
    assert code == 0, stderr
    for step in ("authenticate", "reserve", "dropoff_token", "open_for_dropoff", "occupied", "available"):
        assert step in stdout
    assert "delivered: locker 1401 (door 1, small) is available again; 12 steps in" in stdout
    assert stderr == ""


def test_smoke_with_stale_status_bug_exits_1_naming_the_step() -> None:
    """With stale_status_after_close switched on, smoke exits 1 and names the step and the check."""
    code, stdout, stderr = invoke(["smoke", "--sim-bug", "stale_status_after_close", "--status-timeout", "0.3"])
    assert code == 1
    assert stderr.count("\n") == 1
    assert stderr.startswith(
        "error: step available failed [locker_available_after_pickup]: locker 1401 still shows occupied"
    )
    assert "FAILED" in stdout
    assert "cleanup: locker 1401 left occupied (the API shows it occupied)" in stdout


def test_smoke_on_a_slow_target_accepts_the_door_closed_by_the_person() -> None:
    """On a slow target the virtual radio's person closes the door before the status read: still exit 0."""
    code, stdout, stderr = invoke(["smoke", "--sim-fault", "latency:ms=100"])
    assert code == 0, stderr
    assert "is available again" in stdout


def test_malformed_fault_profile_is_one_usage_line() -> None:
    """A --sim-fault not in the name:key=value form is one line and exit 2, read by the sandbox's own parser."""
    code, _, stderr = invoke(["smoke", "--sim-fault", "latency:ms"])
    assert code == 2
    assert stderr.count("\n") == 1
    assert stderr.startswith("error: --sim-fault: fault 'latency:ms': expected name:key=value")


def test_smoke_against_a_sandbox_url(demo_sandbox: Any) -> None:
    """A running virtual sandbox given as a URL is tested through its control plane: exit 0."""
    code, stdout, stderr = invoke(
        ["smoke", "--target", demo_sandbox.url, "--tower", "0100000000000175", "--locker-type", "medium"], DEMO
    )
    assert code == 0, stderr
    assert "is available again" in stdout


def test_sandbox_fault_shows_as_infrastructure(monkeypatch: pytest.MonkeyPatch) -> None:
    """Persistent 503s from the target are infrastructure trouble (exit 4) after the retries."""
    waits: list[float] = []

    async def no_wait(seconds: float) -> None:
        waits.append(seconds)

    monkeypatch.setattr("harness.api._core.DEFAULT_RETRY", RetryPolicy(async_sleep=no_wait))
    code, _, stderr = invoke(["smoke", "--sim-fault", "http_5xx:paths=/api/v1/towers"], {})
    assert waits == [1.0, 2.0]
    assert code == 4
    assert stderr.count("\n") == 1
    assert "step list_lockers failed" in stderr and "503" in stderr


BAD_TARGETS = [
    ("wrong credentials", lambda url: (["smoke", "--target", url, "--tower", "0100000000000014"],
                                       {"HARBOR_CLIENT_ID": "demo-provider", "HARBOR_CLIENT_SECRET": "wrong-secret"}),
     2, "refused client 'demo-provider' (401"),
    ("unknown client", lambda url: (["smoke", "--target", url, "--tower", "0100000000000014"],
                                    {"HARBOR_CLIENT_ID": "nobody", "HARBOR_CLIENT_SECRET": "whatever"}),
     2, "check HARBOR_CLIENT_ID and HARBOR_CLIENT_SECRET"),
    ("unknown tower on a URL", lambda url: (["smoke", "--target", url, "--tower", "0100000000000099"], DEMO),
     2, "step list_lockers failed: tower 0100000000000099 is not known"),
    ("unknown tower on local", lambda url: (["smoke", "--tower", "0100000000000099"], {}),
     2, "tower 0100000000000099 is not known to target local"),
    ("unreachable host", lambda url: (["smoke", "--target", f"http://127.0.0.1:{closed_port()}",
                                       "--tower", "0100000000000014"], DEMO),
     4, "does not answer (ConnectError"),
]  # fmt: skip


@pytest.mark.parametrize(("make", "code", "message"), [c[1:] for c in BAD_TARGETS], ids=[c[0] for c in BAD_TARGETS])
def test_bad_target_is_one_line_and_an_exit_code(demo_sandbox: Any, make: Any, code: int, message: str) -> None:
    """Each bad target or credential prints one line on stderr with the documented exit code, no traceback."""
    args, env = make(demo_sandbox.url)
    exit_code, stdout, stderr = invoke(args, env)
    assert exit_code == code, stderr
    assert stderr.count("\n") == 1, stderr
    assert message in stderr
    assert "Traceback" not in stdout + stderr
    assert "wrong-secret" not in stdout + stderr


def test_console_script_smoke_exits_0() -> None:
    """The installed ``locker-harness smoke`` (what ``make run`` runs) delivers and exits 0."""
    env = {k: v for k, v in os.environ.items() if k not in ENVIRONMENT}
    done = subprocess.run([str(LOCKER_HARNESS), "smoke"], capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    assert "is available again" in done.stdout


def _read_until(process: subprocess.Popen[str], marker: str, timeout: float = 30.0) -> list[str]:
    assert process.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        if marker in line:
            return lines
    raise AssertionError(f"{marker!r} never appeared in {lines}")


def test_ctrl_c_gives_back_and_exits_130() -> None:
    """Ctrl-C mid-delivery releases what the run holds, says so, and exits 130."""
    env = {k: v for k, v in os.environ.items() if k not in ENVIRONMENT}
    process = subprocess.Popen(
        [str(LOCKER_HARNESS), "smoke", "--verbose", "--sim-fault", "latency:ms=200"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        _read_until(process, "reserve: ok")
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 130, stderr
    assert "cleanup: locker 1401 given back" in stdout
    assert stderr.strip().splitlines()[-1].startswith("error: interrupted")
    assert "Traceback" not in stdout + stderr


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_sim_serves_until_stopped(stop: signal.Signals) -> None:
    """``sim`` prints its URL and the demo credentials, serves the API, and stops cleanly with its child."""
    env = {k: v for k, v in os.environ.items() if k not in ENVIRONMENT}
    process = subprocess.Popen(
        [str(LOCKER_HARNESS), "sim", "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        lines = _read_until(process, "try ")
        url = lines[0].split()[4]
        assert url.startswith("http://127.0.0.1:")
        assert "demo-provider / demo-secret" in "".join(lines)
        token = httpx.post(
            f"{url}/realms/harbor/protocol/openid-connect/token",
            data={"grant_type": "client_credentials", "client_id": "demo-provider", "client_secret": "demo-secret",
                  "scope": "service_provider"},
            timeout=5,
        )  # fmt: skip
        assert token.status_code == 200
        process.send_signal(stop)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, stderr
    assert "virtual sandbox stopped" in stderr
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{url}/_sim/bugs", timeout=2)


def test_sim_speaks_its_dialects_and_delivers_signed_webhooks() -> None:
    """``sim --dialect NAME --webhook URL`` (secret from HARBOR_SIM_WEBHOOK_SECRET) says both in its banner,
    answers in the dialect, and POSTs each locker operation, signed, to the loopback receiver."""
    import hashlib
    import hmac

    from ..sim.webhook_receiver import Receiver

    with Receiver() as receiver:
        env = {k: v for k, v in os.environ.items() if k not in ENVIRONMENT}
        env["HARBOR_SIM_WEBHOOK_SECRET"] = "cli-webhook-secret"
        command = [
            str(LOCKER_HARNESS), "sim", "--port", "0", "--dialect", "create_200",
            "--dialect", "webhook_signature_header", "--webhook", receiver.url,
        ]  # fmt: skip
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        try:
            lines = _read_until(process, "try ")
            url = lines[0].split()[4]
            banner = "".join(lines)
            assert "create_200, webhook_signature_header" in banner and f"webhooks to   {receiver.url}" in banner
            assert "cli-webhook-secret" not in banner
            form = {"grant_type": "client_credentials", "client_id": "demo-provider", "client_secret": "demo-secret",
                    "scope": "service_provider"}  # fmt: skip
            token = httpx.post(f"{url}/realms/harbor/protocol/openid-connect/token", data=form, timeout=5).json()
            reserve = httpx.post(
                f"{url}/api/v1/towers/0100000000000014/lockers/1401/reservations",
                json={"duration": 60},
                headers={"Authorization": f"Bearer {token['access_token']}"},
                timeout=5,
            )
            assert reserve.status_code == 200  # the create_200 dialect
            [delivery] = receiver.wait_for(1)
            expected = hmac.new(b"cli-webhook-secret", delivery.body, hashlib.sha256).hexdigest()
            assert delivery.headers["x-signature"] == f"sha256={expected}"
            process.send_signal(signal.SIGINT)
            _, stderr = process.communicate(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
    assert process.returncode == 0, stderr
