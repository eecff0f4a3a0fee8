"""``locker-harness sim``: serve the virtual sandbox and its towers' radio on loopback until Ctrl-C.

The sandbox runs as ``python -m harness.sim`` in a child process of its own session, started by
``VirtualSandbox.start_subprocess`` (the demo identities travel in the environment, never on the
command line; its log lines reach this terminal). The towers' radio is served to other processes
as raw HCI over TCP on the same host (``--radio-port``; ``--no-radio`` for HTTP alone); the banner
and ``GET /_sim/radio`` give its address, ``tcp-client:HOST:PORT``. A Ctrl-C or SIGTERM reaches this process only,
which then stops the child gracefully. The demo credentials are public, local-only throwaway
values: printing them is the point.
"""

from __future__ import annotations

import dataclasses
import os
import signal
from typing import TYPE_CHECKING, Annotated

import click
import httpx
import typer

from harness.cli._common import Output, VerboseOption, run_command
from harness.config import DEFAULT_LOCAL_TOWER, Secret, is_loopback_host
from harness.errors import ExitCode, InfrastructureError, UsageError
from harness.redaction import redactor

if TYPE_CHECKING:
    from harness.sim import SimSettings

if TYPE_CHECKING:
    from harness.sim import VirtualSandbox

__all__ = ["command"]

_STARTUP_TIMEOUT = 30.0
#: The shared secret that signs the deliveries to every --webhook receiver (environment only, never argv).
WEBHOOK_SECRET_ENV = "HARBOR_SIM_WEBHOOK_SECRET"
_SECOND_TOWER = "0100000000000175"


def _banner(out: Output, url: str, settings: SimSettings, radio: str | None) -> None:
    from harness.sim import DEMO_IDENTITIES  # only the public face, and only once it serves

    main, second = DEMO_IDENTITIES[0], DEMO_IDENTITIES[1]
    # Printed without redaction on purpose: these are the sandbox's public demo values.
    lines = [
        f"virtual sandbox serving at {url}  (Ctrl-C to stop)",
        f"  API document  {url}/openapi.json",
        f"  token URL     {url}/realms/harbor/protocol/openid-connect/token",
        f"  control plane {url}/_sim/state",
        f"  radio         {radio}  (HCI over TCP; {url}/_sim/radio)" if radio else "  radio         not served",
        f"  towers        {DEFAULT_LOCAL_TOWER} (24 lockers), {_SECOND_TOWER} (12 lockers)",
        f"  identities    {main.client_id} / {main.client_secret}, {second.client_id} / {second.client_secret}"
        "  (local throwaway values)",
        f"  try           HARBOR_TARGET={url} HARBOR_TOWER_ID={DEFAULT_LOCAL_TOWER} HARBOR_CLIENT_ID={main.client_id} "
        f"HARBOR_CLIENT_SECRET={main.client_secret} locker-harness smoke",
    ]
    if settings.dialects:
        lines.insert(1, f"  dialects      {', '.join(sorted(settings.dialects))}  (/_sim/reset turns them off)")
    for webhook in settings.webhooks:
        signed = f"signed ({WEBHOOK_SECRET_ENV})" if webhook.secret else "unsigned"
        lines.insert(1, f"  webhooks to   {webhook.url}  ({signed})")
    for line in lines:
        out.console.print(line, markup=False)


def _radio_address(sandbox: VirtualSandbox) -> str | None:
    """Where the child serves its radio, as its control plane says (``None`` if it cannot say)."""
    from harness.sim import ControlError

    try:
        transport = sandbox.control.radio().get("transport")
    except (ControlError, httpx.HTTPError):  # a non-loopback bind may refuse /_sim to this process
        return None
    return transport if isinstance(transport, str) else None


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def command(
    host: Annotated[str, typer.Option("--host", help="Address to serve on (loopback only by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port; 0 picks a free one.", min=0, max=65535)] = 8765,
    seed: Annotated[int, typer.Option("--seed", help="World seed; 0 is the world of docs/design.md.")] = 0,
    radio_port: Annotated[
        int,
        typer.Option(
            "--radio-port",
            help="Port of the towers' radio for other processes (HCI over TCP); 0 picks a free one.",
            min=0,
            max=65535,
        ),
    ] = 0,
    no_radio: Annotated[
        bool, typer.Option("--no-radio", help="Serve HTTP alone: no virtual radio for other processes.")
    ] = False,
    allow_non_loopback: Annotated[
        bool, typer.Option("--allow-non-loopback", help="Serve on a non-loopback address (exposes the sandbox).")
    ] = False,
    dialect: Annotated[
        list[str] | None,
        typer.Option(
            "--dialect",
            help="Answer as another plausible Harbor would (repeatable), e.g. create_200; see docs: bug switches.",
        ),
    ] = None,
    webhook: Annotated[
        list[str] | None,
        typer.Option(
            "--webhook",
            help=f"Deliver every locker operation event to this URL as Harbor's webhooks (repeatable); "
            f"signed when {WEBHOOK_SECRET_ENV} is set. Loopback only unless --allow-non-loopback-webhooks.",
        ),
    ] = None,
    allow_non_loopback_webhooks: Annotated[
        bool,
        typer.Option("--allow-non-loopback-webhooks", help="Let --webhook name a receiver off this machine."),
    ] = False,
    verbose: VerboseOption = False,
) -> None:
    """Serve the virtual sandbox and its towers' radio on loopback; print the URL, the radio's address
    and the demo credentials, until Ctrl-C."""

    def body(out: Output) -> int:
        if not is_loopback_host(host) and not allow_non_loopback:
            raise UsageError(
                f"refusing to serve on {host}: the sandbox is for loopback; pass --allow-non-loopback to expose it"
            )
        from harness.sim import (  # fastapi only when serving
            SandboxNotRunning,
            SimSettings,
            VirtualSandbox,
            Webhook,
            WebhookDelivery,
        )

        secret = os.environ.get(WEBHOOK_SECRET_ENV) or None  # a secret comes from the environment only
        if secret is not None:
            redactor().register(Secret(secret))
        try:  # the demo identities (SimSettings' default), whatever HARBOR_SIM_IDENTITIES says
            settings = SimSettings(seed=seed, dialects=frozenset(dialect or ()))
        except ValueError as exc:
            raise UsageError(f"--dialect: {exc}") from None
        try:
            settings = dataclasses.replace(
                settings,
                webhooks=tuple(Webhook(url, secret) for url in webhook or ()),
                webhook_delivery=WebhookDelivery(allow_non_loopback=allow_non_loopback_webhooks),
            )
        except ValueError as exc:
            raise UsageError(f"--webhook: {exc}") from None
        sandbox = VirtualSandbox(settings, startup_timeout=_STARTUP_TIMEOUT)
        # A service manager stops with SIGTERM: treat it like Ctrl-C so the child is stopped too.
        previous = signal.signal(signal.SIGTERM, _interrupt)
        try:
            try:
                sandbox.start_subprocess(
                    host=host,
                    port=port,
                    log_level="info" if verbose else "warning",
                    allow_non_loopback=allow_non_loopback,
                    inherit_stderr=True,
                    radio=not no_radio,
                    radio_port=radio_port,
                )
            except SandboxNotRunning as exc:
                if exc.exit_code == ExitCode.USAGE:  # the child said why on stderr, in one line
                    return ExitCode.USAGE
                raise InfrastructureError(f"the virtual sandbox did not start: {exc}") from None
            _banner(out, sandbox.url, settings, None if no_radio else _radio_address(sandbox))
            code = sandbox.wait()
            raise InfrastructureError(f"the virtual sandbox stopped by itself (exit {code})")
        except KeyboardInterrupt:
            sandbox.stop()
            click.echo("virtual sandbox stopped", err=True)
            return ExitCode.OK
        finally:
            signal.signal(signal.SIGTERM, previous)
            sandbox.stop()

    run_command(body, "sim", verbose=verbose)
