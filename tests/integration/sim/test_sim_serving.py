"""Serving the sandbox: in a thread, as ``python -m harness.sim``, and its refusals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import httpx
import psutil
import pytest

from harness.sim import Identity, SandboxNotRunning, SimSettings, VirtualSandbox

from .sandbox_parties import TOKEN_PATH, TOWER


def test_subprocess_serves_the_given_identities_only() -> None:
    """``start_subprocess`` passes identities through the environment, never argv; the demo ones
    are then unknown."""
    settings = SimSettings(identities=(Identity("ci-provider", "ci-secret"),), seed=0)
    with VirtualSandbox(settings).start_subprocess() as sandbox:
        assert sandbox.url.startswith("http://127.0.0.1:")
        assert sandbox._process is not None
        assert not any("ci-secret" in str(arg) for arg in sandbox._process.args)  # type: ignore[union-attr]
        form = {"grant_type": "client_credentials", "scope": "service_provider"}
        granted = httpx.post(
            sandbox.url + TOKEN_PATH, data={**form, "client_id": "ci-provider", "client_secret": "ci-secret"}
        )
        assert granted.status_code == 200
        refused = httpx.post(
            sandbox.url + TOKEN_PATH, data={**form, "client_id": "demo-provider", "client_secret": "demo-secret"}
        )
        assert refused.status_code == 401
        headers = {"Authorization": f"Bearer {granted.json()['access_token']}"}
        assert httpx.get(f"{sandbox.url}/api/v1/towers/{TOWER}/lockers", headers=headers).status_code == 200
        assert sandbox.control.state()["seed"] == 0
        with pytest.raises(SandboxNotRunning):
            sandbox.world  # noqa: B018  # the world lives in the child process
        process = sandbox._process
        assert process is not None
    assert process.poll() is not None  # stopped with the context


def test_module_refuses_a_non_loopback_host() -> None:
    """``python -m harness.sim --host 0.0.0.0`` exits 2 with one line, unless explicitly allowed."""
    result = subprocess.run(
        [sys.executable, "-m", "harness.sim", "--host", "0.0.0.0"], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2
    assert "--allow-non-loopback" in result.stderr and result.stdout == ""


def test_thread_mode_offers_world_and_a_lazy_radio() -> None:
    """In a thread the world is reachable and the radio module is imported only when asked."""
    with VirtualSandbox() as sandbox:
        assert sorted(sandbox.world.firmwares) == [TOWER, "0100000000000175"]
        assert "harness.sim.radio" not in sys.modules or sandbox._radio is None
        radio = sandbox.radio
        assert radio is sandbox.radio and type(radio).__name__ == "VirtualRadio"
    with pytest.raises(SandboxNotRunning):
        sandbox.url  # noqa: B018


#: Serves an app that raises, the way the sandbox is served, with a root handler that keeps what it gets.
_TRACEBACK_PROBE = textwrap.dedent(
    """
    import logging, sys, threading, time
    import httpx, uvicorn
    from harness.sim._server import uvicorn_config

    kept = []

    class Keep(logging.Handler):
        def emit(self, record):
            kept.append(record)

    logging.getLogger().addHandler(Keep())

    async def broken(scope, receive, send):
        if scope["type"] == "http":
            raise RuntimeError("a sandbox bug")

    server = uvicorn.Server(uvicorn_config(broken))
    threading.Thread(target=server.run, daemon=True).start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    assert httpx.get(f"http://127.0.0.1:{port}/", timeout=5).status_code == 500
    server.should_exit = True
    print(sum(1 for r in kept if r.name.startswith("uvicorn") and r.exc_info is not None))
    print(len(logging.getLogger("uvicorn").handlers))
    """
)


def test_server_tracebacks_reach_the_root_handlers() -> None:
    """uvicorn's records (a traceback from the app included) propagate to the root logger, where the
    harness's redacting handler sits, instead of uvicorn's own stderr handler."""
    done = subprocess.run(
        [sys.executable, "-c", _TRACEBACK_PROBE], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    with_traceback, uvicorn_handlers = done.stdout.split()
    assert int(with_traceback) >= 1, done.stderr[-2000:]
    assert uvicorn_handlers == "0"


def test_subprocess_runs_in_its_own_session_and_reports_its_exit_code() -> None:
    """The child leads a session of its own; ``wait`` says it still runs, and after ``stop`` its graceful exit 0."""
    sandbox = VirtualSandbox().start_subprocess(log_level="info")
    try:
        assert os.getsid(sandbox.pid) == sandbox.pid != os.getsid(0)
        assert os.getpgid(sandbox.pid) == sandbox.pid
        assert sandbox.wait(timeout=0.01) is None
    finally:
        sandbox.stop()
    assert sandbox.wait() == 0


def test_subprocess_on_a_taken_port_is_exit_2_with_the_reason() -> None:
    """A second sandbox on the first one's port fails to start with the child's exit 2 and its one-line reason."""
    with VirtualSandbox().start_subprocess() as first:
        port = int(first.url.rsplit(":", 1)[1])
        with pytest.raises(SandboxNotRunning) as refused:
            VirtualSandbox().start_subprocess(port=port)
        assert first.control.bugs()  # the first one still serves
    assert refused.value.exit_code == 2
    assert f"cannot bind 127.0.0.1:{port}" in str(refused.value)


def test_subprocess_refuses_a_non_loopback_host_unless_allowed() -> None:
    """``host`` off loopback without ``allow_non_loopback`` is the child's exit 2, naming the option."""
    with pytest.raises(SandboxNotRunning) as refused:
        VirtualSandbox().start_subprocess(host="0.0.0.0")
    assert refused.value.exit_code == 2 and "--allow-non-loopback" in str(refused.value)


#: A harness that starts a sandbox subprocess, then waits for Ctrl-C: it checks the sandbox survived the
#: group's SIGINT (it runs in its own session), stops it, and prints the exit code.
_HARNESS = textwrap.dedent(
    """
    import sys
    from harness.sim import VirtualSandbox

    sandbox = VirtualSandbox().start_subprocess()
    try:
        # inside the try: the test's SIGINT may land while this print is still returning
        print(sandbox.pid, flush=True)
        sys.stdin.read()  # until the test's Ctrl-C (or SIGKILL)
    except KeyboardInterrupt:
        print("serving" if sandbox.control.bugs() is not None else "gone", flush=True)
        sandbox.stop()
        print(sandbox.wait(), flush=True)
    """
)


def _harness() -> tuple[subprocess.Popen[str], int]:
    harness = subprocess.Popen(
        [sys.executable, "-c", _HARNESS],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # a group of its own, as a terminal gives a foreground job
    )
    assert harness.stdout is not None
    line = harness.stdout.readline()  # bounded: start_subprocess gives up after its start-up timeout
    assert line.strip().isdigit(), harness.stderr.read() if harness.stderr else line
    return harness, int(line)


def test_ctrl_c_reaches_the_harness_which_then_stops_the_sandbox() -> None:
    """A SIGINT to the harness's group (a terminal's Ctrl-C) spares the sandbox; the harness then stops it: exit 0."""
    harness, pid = _harness()
    try:
        os.killpg(harness.pid, signal.SIGINT)
        stdout, stderr = harness.communicate(timeout=30)
    finally:
        if harness.poll() is None:
            harness.kill()
            harness.communicate()
    assert stdout.split() == ["serving", "0"], stderr
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_sandbox_stops_by_itself_when_its_harness_is_killed() -> None:
    """SIGKILL the harness: the sandbox's stdin pipe closes and it shuts down instead of serving as an orphan."""
    harness, pid = _harness()
    sandbox = psutil.Process(pid)
    try:
        harness.kill()
        harness.communicate(timeout=10)
        sandbox.wait(timeout=15)  # bounded; psutil.TimeoutExpired fails the test
    finally:
        if sandbox.is_running():
            sandbox.kill()
