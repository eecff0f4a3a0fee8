"""``VirtualSandbox``: the sandbox served on a loopback port, in a thread or a child process."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import tempfile
import threading
import time
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, Literal, Self

import httpx

from ._control_client import ControlError, SimControl
from ._settings import DIALECTS_ENV, IDENTITIES_ENV, SECRET_ENV, WEBHOOKS_ENV, SimSettings

if TYPE_CHECKING:
    # FastAPI and uvicorn load when a sandbox is served from this process: a process that only
    # starts one as a child and drives its control plane (load, soak) never pays their import.
    import uvicorn

    from ._app import SandboxApp
    from ._world import World

__all__ = ["LogLevel", "SandboxNotRunning", "VirtualSandbox", "uvicorn_config"]

_POLL = 0.005  # seconds between readiness polls; every wait below is bounded by a deadline
_STOP_TIMEOUT = 10.0  # seconds a stopping child gets for uvicorn's graceful shutdown before SIGTERM

LogLevel = Literal["critical", "error", "warning", "info", "debug"]


class SandboxNotRunning(RuntimeError):
    """The sandbox is not started, failed to start, or this mode does not offer what was asked.

    ``exit_code`` is the child's when a sandbox subprocess exited during start-up (2: it refused
    its arguments or could not bind, and said why on its stderr), else ``None``.
    """

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def uvicorn_config(app: Any, *, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning") -> uvicorn.Config:
    """How the sandbox is served everywhere: the ``Date`` header is the sandbox's (virtual clock),
    no access log (it costs throughput and could echo ids), no lifespan (nothing to start). uvicorn
    parses HTTP with httptools (a dependency) where it is installed, else with h11.

    ``log_config=None``: uvicorn leaves logging alone, so its records (an app's traceback too)
    propagate to the root logger, where the harness's redacting handler and its one-line error
    policy sit; uvicorn's default would give its loggers their own stderr handler and stop them there.
    """
    import uvicorn

    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        log_level=log_level,
        access_log=False,
        date_header=False,
        server_header=False,
        lifespan="off",
        timeout_graceful_shutdown=2,
    )


class VirtualSandbox:
    """The embedded virtual sandbox on ``127.0.0.1`` and a free port.

    ``start_in_thread()`` serves it from a uvicorn thread of this process (``world`` and
    ``radio`` reachable); ``start_subprocess()`` runs ``python -m harness.sim`` for callers that
    need a URL in another process (Locust, the Schemathesis CLI, ``locker-harness sim``) or a
    process of its own (the soak watches its memory). As a context manager it starts in a thread
    unless already started, and always stops.
    """

    def __init__(self, settings: SimSettings | None = None, *, startup_timeout: float = 15.0) -> None:
        self.settings = settings or SimSettings()
        self._startup_timeout = startup_timeout
        self._url: str | None = None
        self._app: SandboxApp | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None
        self._returncode: int | None = None
        self._control: SimControl | None = None
        self._radio: Any = None

    def __repr__(self) -> str:
        mode = "thread" if self._thread else "subprocess" if self._process else "stopped"
        return f"VirtualSandbox({self._url or '-'}, {mode})"

    # -- starting -----------------------------------------------------------------------------

    def _require_stopped(self) -> None:
        if self._url is not None:
            raise SandboxNotRunning(f"the sandbox already runs at {self._url}")

    def start_in_thread(self) -> Self:
        """Serve from a uvicorn thread; returns once it accepts connections."""
        self._require_stopped()
        import uvicorn

        from ._app import create_app

        app = create_app(self.settings)
        server = uvicorn.Server(uvicorn_config(app))
        thread = threading.Thread(target=server.run, name="harness-sim-uvicorn", daemon=True)
        thread.start()
        deadline = time.perf_counter() + self._startup_timeout
        while not server.started:
            if not thread.is_alive():
                raise SandboxNotRunning("the sandbox's uvicorn thread exited during start-up")
            if time.perf_counter() > deadline:
                server.should_exit = True
                raise SandboxNotRunning(f"the sandbox did not start within {self._startup_timeout} s")
            time.sleep(_POLL)
        port = server.servers[0].sockets[0].getsockname()[1]
        self._app, self._server, self._thread = app, server, thread
        self._url = f"http://127.0.0.1:{port}"
        return self

    def start_subprocess(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        log_level: LogLevel = "warning",
        allow_non_loopback: bool = False,
        inherit_stderr: bool = False,
        radio: bool = False,
        radio_port: int = 0,
    ) -> Self:
        """Run ``python -m harness.sim`` on ``host:port`` (0: a free port); returns once it answers.

        ``radio``: the child also serves its towers' virtual radio to other processes, as HCI over TCP
        on ``host:radio_port`` (0: a free port); ``control.radio()["transport"]`` says where. Off by
        default: the children the harness starts for load and soak serve HTTP alone.

        Identities travel in the environment as JSON, never on the command line. The child runs in
        a session of its own, so a Ctrl-C at the terminal reaches this process only, which stops the
        sandbox (``stop()``) once its users have given back what they hold. Should this process die
        without stopping it (SIGKILL), the child sees its stdin pipe close and stops by itself.

        A non-loopback ``host`` needs ``allow_non_loopback``; the child refuses it otherwise (exit 2).
        ``inherit_stderr``: the child's log lines go to this process's stderr (``locker-harness sim``
        shows them); by default they are kept in a temporary file and quoted if start-up fails.
        Start-up failures raise ``SandboxNotRunning`` with the child's ``exit_code`` when it exited.
        """
        self._require_stopped()
        env = dict(os.environ)
        env[IDENTITIES_ENV] = self.settings.identities_json()
        if self.settings.secret is not None:
            env[SECRET_ENV] = self.settings.secret.hex()
        env[DIALECTS_ENV] = self.settings.dialects_env()
        env[WEBHOOKS_ENV] = self.settings.webhooks_json()  # their secrets too: never on the command line
        delivery = self.settings.webhook_delivery
        command = [
            sys.executable, "-m", "harness.sim", "--host", host, "--port", str(port),
            "--seed", str(self.settings.seed),
            "--token-lifetime", repr(self.settings.token_lifetime),
            "--sdk-token-lifetime", repr(self.settings.sdk_token_lifetime),
            "--log-level", log_level, "--stop-when-stdin-closes",
        ]  # fmt: skip
        if not self.settings.uplink:
            command.append("--no-uplink")
        if allow_non_loopback:
            command.append("--allow-non-loopback")
        command.extend(["--radio-port", str(radio_port)] if radio else ["--no-radio"])
        command += [
            "--webhook-attempts", str(delivery.attempts), "--webhook-first-delay", repr(delivery.first_delay),
            "--webhook-timeout", repr(delivery.timeout), "--webhook-queue", str(delivery.queue),
        ]  # fmt: skip
        if delivery.allow_non_loopback:
            command.append("--allow-non-loopback-webhooks")
        if not inherit_stderr:
            self._stderr = tempfile.TemporaryFile()  # noqa: SIM115  # lives as long as the child; stop() closes it
        self._returncode = None
        process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,  # held open by this process only: its end is the child's lifeline
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=env,
            start_new_session=True,
        )
        self._process = process
        try:
            line = self._first_line(process)
            if not line.startswith("http://"):
                code = self._exit_code_within(1.0)
                reason = line or self._stderr_tail() or ("see its stderr" if inherit_stderr else "it said nothing")
                raise SandboxNotRunning(
                    f"the sandbox subprocess did not start ({reason if code is None else f'exit {code}: {reason}'})",
                    exit_code=code,
                )
            self._url = line
            self._wait_until_ready()
        except BaseException:  # a refusal, or Ctrl-C during start-up: nothing is left running
            self.stop()
            raise
        return self

    def _exit_code_within(self, seconds: float) -> int | None:
        """The child's exit code if it exits within ``seconds`` (it closed stdout: it is on its way out)."""
        assert self._process is not None
        try:
            return self._process.wait(seconds)
        except subprocess.TimeoutExpired:
            return None

    def _first_line(self, process: subprocess.Popen[bytes]) -> str:
        """The child's first stdout line (its URL), read in a helper thread so the wait is bounded."""
        assert process.stdout is not None
        stdout = process.stdout
        lines: list[bytes] = []
        reader = threading.Thread(target=lambda: lines.append(stdout.readline()), daemon=True)
        reader.start()
        reader.join(self._startup_timeout)
        return lines[0].decode().strip() if lines else ""

    def _stderr_tail(self) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        return self._stderr.read()[-2000:].decode(errors="replace").strip()

    def _wait_until_ready(self) -> None:
        deadline = time.perf_counter() + self._startup_timeout
        assert self._url is not None
        with SimControl(self._url, timeout=1.0) as control:
            while True:
                try:
                    control.bugs()
                    return
                except (ControlError, ValueError):
                    return  # any answer means it serves (a non-loopback address may be refused /_sim: 403)
                except httpx.TransportError:
                    pass
                if self._process is not None and self._process.poll() is not None:
                    code = self._process.returncode
                    raise SandboxNotRunning(
                        f"the sandbox subprocess exited ({code}): {self._stderr_tail()}", exit_code=code
                    )
                if time.perf_counter() > deadline:
                    raise SandboxNotRunning(f"the sandbox did not answer within {self._startup_timeout} s")
                time.sleep(_POLL)

    # -- stopping -----------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop serving and release everything; safe to call twice."""
        if self._control is not None:
            self._control.close()
            self._control = None
        if self._radio is not None and hasattr(self._radio, "close"):
            self._radio.close()
        self._radio = None
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._app is not None:
            self._app.world.webhooks.stop()  # a stopped sandbox delivers nothing more
        if self._process is not None:
            process = self._process
            if process.stdin is not None:
                process.stdin.close()  # the child's cue: uvicorn's graceful shutdown, then exit 0
            try:
                process.wait(timeout=_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.terminate()
                try:
                    process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=5)
            if process.stdout is not None:
                process.stdout.close()
            self._returncode = process.returncode
        if self._stderr is not None:
            self._stderr.close()
        self._server = self._thread = self._process = self._stderr = None
        self._app = None
        self._url = None

    def __enter__(self) -> Self:
        if self._url is None:
            self.start_in_thread()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- what a running sandbox offers --------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._url is not None

    @property
    def pid(self) -> int:
        """The sandbox subprocess's process id (subprocess mode only)."""
        if self._process is None:
            raise SandboxNotRunning("no sandbox subprocess: call start_subprocess()")
        return self._process.pid

    def wait(self, timeout: float | None = None) -> int | None:
        """Wait for the sandbox subprocess to exit and give its exit code; ``None`` if it still runs
        after ``timeout`` seconds. After ``stop()``, the code it stopped with."""
        if self._process is None:
            if self._returncode is not None:
                return self._returncode
            raise SandboxNotRunning("no sandbox subprocess: call start_subprocess()")
        try:
            return self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:54321``."""
        if self._url is None:
            raise SandboxNotRunning("the sandbox is not running: call start_in_thread() or start_subprocess()")
        return self._url

    @property
    def control(self) -> SimControl:
        """A client of the control plane (``/_sim``)."""
        if self._control is None:
            self._control = SimControl(self.url)
        return self._control

    @property
    def app(self) -> SandboxApp:
        """The ASGI app (in-thread mode only)."""
        if self._app is None:
            raise SandboxNotRunning("the app is reachable only when the sandbox runs in this process's thread")
        return self._app

    @property
    def world(self) -> World:
        """The sandbox's world: towers' firmware, faults, clock (in-thread mode only)."""
        return self.app.world

    @property
    def radio(self) -> Any:
        """The virtual BLE radio of ``harness.sim.radio``, created on first use (in-thread only; a
        subprocess's is reached through ``control.radio()``)."""
        if self._radio is None:
            world = self.world
            try:
                module = importlib.import_module("harness.sim.radio")
            except ModuleNotFoundError as exc:
                if exc.name != "harness.sim.radio":
                    raise
                raise SandboxNotRunning(
                    "the virtual radio is not available: harness/sim/radio.py is not part of this build"
                ) from None
            self._radio = module.VirtualRadio(world)
            self.app.radio = self._radio  # /_sim/radio describes it from now on
        return self._radio
