"""``locker-harness sim``: serve the virtual sandbox on loopback until Ctrl-C.

The sandbox runs as ``python -m harness.sim`` in a child process (its documented entry point),
with the demo identities passed in the environment, never on the command line. The demo
credentials are public, local-only throwaway values: printing them is the point.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from typing import Annotated

import click
import typer

from harness.cli._common import Output, VerboseOption, run_command
from harness.config import DEFAULT_LOCAL_TOWER, is_loopback_host
from harness.errors import ExitCode, InfrastructureError, UsageError

__all__ = ["command"]

_STARTUP_TIMEOUT = 30.0
_STOP_TIMEOUT = 10.0
_SECOND_TOWER = "0100000000000175"


def _first_line(process: subprocess.Popen[str]) -> str:
    """The child's first stdout line (its URL), waited for with a bound."""
    assert process.stdout is not None
    stdout = process.stdout
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.append(stdout.readline()), daemon=True)
    reader.start()
    reader.join(_STARTUP_TIMEOUT)
    return lines[0].strip() if lines else ""


def _banner(out: Output, url: str) -> None:
    from harness.sim import DEMO_IDENTITIES  # only the public face, and only once it serves

    main, second = DEMO_IDENTITIES[0], DEMO_IDENTITIES[1]
    # Printed without redaction on purpose: these are the sandbox's public demo values.
    lines = [
        f"virtual sandbox serving at {url}  (Ctrl-C to stop)",
        f"  API document  {url}/openapi.json",
        f"  token URL     {url}/realms/harbor/protocol/openid-connect/token",
        f"  control plane {url}/_sim/state",
        f"  towers        {DEFAULT_LOCAL_TOWER} (24 lockers), {_SECOND_TOWER} (12 lockers)",
        f"  identities    {main.client_id} / {main.client_secret}, {second.client_id} / {second.client_secret}"
        "  (local throwaway values)",
        f"  try           HARBOR_TARGET={url} HARBOR_CLIENT_ID={main.client_id} "
        f"HARBOR_CLIENT_SECRET={main.client_secret} locker-harness smoke",
    ]
    for line in lines:
        out.console.print(line, markup=False)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)  # uvicorn's graceful shutdown
        try:
            process.wait(_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(_STOP_TIMEOUT)
    if process.stdout is not None:
        process.stdout.close()


def command(
    host: Annotated[str, typer.Option("--host", help="Address to serve on (loopback only by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port; 0 picks a free one.", min=0, max=65535)] = 8765,
    seed: Annotated[int, typer.Option("--seed", help="World seed; 0 is the world of docs/design.md.")] = 0,
    allow_non_loopback: Annotated[
        bool, typer.Option("--allow-non-loopback", help="Serve on a non-loopback address (exposes the sandbox).")
    ] = False,
    verbose: VerboseOption = False,
) -> None:
    """Serve the virtual sandbox on loopback and print its URL and demo credentials, until Ctrl-C."""

    def body(out: Output) -> int:
        if not is_loopback_host(host) and not allow_non_loopback:
            raise UsageError(
                f"refusing to serve on {host}: the sandbox is for loopback; pass --allow-non-loopback to expose it"
            )
        argv = [sys.executable, "-m", "harness.sim", "--host", host, "--port", str(port), "--seed", str(seed)]
        if allow_non_loopback:
            argv.append("--allow-non-loopback")
        if verbose:
            argv += ["--log-level", "info"]
        env = {key: value for key, value in os.environ.items() if key != "HARBOR_SIM_IDENTITIES"}  # demo identities
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=env)
        # A service manager stops with SIGTERM: treat it like Ctrl-C so the child is stopped too.
        previous = signal.signal(signal.SIGTERM, _interrupt)
        try:
            url = _first_line(process)
            if not url.startswith("http"):
                _stop(process)
                code = process.returncode
                if code == ExitCode.USAGE:  # the child said why on stderr, in one line
                    return code
                raise InfrastructureError(f"the virtual sandbox did not start (exit {code})")
            _banner(out, url)
            code = process.wait()
            raise InfrastructureError(f"the virtual sandbox stopped by itself (exit {code})")
        except KeyboardInterrupt:
            _stop(process)
            click.echo("virtual sandbox stopped", err=True)
            return ExitCode.OK
        finally:
            signal.signal(signal.SIGTERM, previous)
            if process.poll() is None:
                _stop(process)

    run_command(body, verbose=verbose)
