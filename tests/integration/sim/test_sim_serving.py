"""Serving the sandbox: in a thread, as ``python -m harness.sim``, and its refusals."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import httpx
import pytest
from sandbox_parties import TOKEN_PATH, TOWER

from harness.sim import Identity, SandboxNotRunning, SimSettings, VirtualSandbox


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
