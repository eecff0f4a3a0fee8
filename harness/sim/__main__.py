"""``python -m harness.sim``: serve the virtual sandbox; the first stdout line is its URL.

Its towers' virtual radio is served too, to other processes, as raw HCI over TCP on the same host
(``--radio-port``, a free port by default; ``--no-radio`` for HTTP alone): ``GET /_sim/radio``
gives the transport address (``tcp-client:127.0.0.1:PORT``) a bumble host opens.
Identities come from ``HARBOR_SIM_IDENTITIES`` (JSON) and never from the command line; without
it the demo identities are used. Dialects come from ``HARBOR_SIM_DIALECTS`` (comma-separated) and
webhook receivers from ``HARBOR_SIM_WEBHOOKS`` (JSON, with their secrets). Only loopback hosts are
served, and webhooks delivered to loopback receivers only, unless ``--allow-non-loopback`` and
``--allow-non-loopback-webhooks``. SIGINT and SIGTERM stop it gracefully; with
``--stop-when-stdin-closes`` so does the end of its standard input: the parent that started it
with a pipe closed it (``VirtualSandbox.stop``, exit 0) or died, so no sandbox outlives its harness.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import socket
import sys
import threading

import uvicorn

from ._app import create_app
from ._server import uvicorn_config
from ._settings import SimSettings
from ._webhooks import WebhookDelivery


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m harness.sim", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (loopback only by default)")
    parser.add_argument("--port", type=int, default=0, help="port; 0 picks a free one (default)")
    parser.add_argument("--seed", type=int, default=0, help="world seed; 0 is the world of docs/design.md")
    parser.add_argument("--token-lifetime", type=float, default=300.0, help="bearer token lifetime, seconds")
    parser.add_argument("--sdk-token-lifetime", type=float, default=3600.0, help="SDK token lifetime, seconds")
    parser.add_argument("--no-uplink", action="store_true", help="door events reach the API only after an upload")
    parser.add_argument(
        "--radio-port", type=int, default=0, help="port of the virtual radio's HCI transport; 0 picks a free one"
    )
    parser.add_argument(
        "--no-radio", action="store_true", help="serve HTTP alone: no virtual radio for other processes"
    )
    parser.add_argument("--allow-non-loopback", action="store_true", help="serve on a non-loopback address")
    parser.add_argument("--webhook-attempts", type=int, default=5, help="tries per webhook delivery")
    parser.add_argument("--webhook-first-delay", type=float, default=0.1, help="seconds before the 2nd try; doubling")
    parser.add_argument("--webhook-timeout", type=float, default=2.0, help="seconds one webhook POST may take")
    parser.add_argument("--webhook-queue", type=int, default=1000, help="events a receiver may have waiting")
    parser.add_argument(
        "--allow-non-loopback-webhooks", action="store_true", help="deliver webhooks to non-loopback receivers"
    )
    parser.add_argument("--log-level", default="warning", choices=["critical", "error", "warning", "info", "debug"])
    parser.add_argument(
        "--stop-when-stdin-closes",
        action="store_true",
        help="stop when standard input ends (the parent closed it, or died)",
    )
    return parser


def _stop_when_stdin_closes(server: uvicorn.Server) -> None:
    """Read stdin to its end on a daemon thread, then ask the server to stop gracefully."""

    def watch() -> None:
        stdin = sys.stdin.fileno()
        while os.read(stdin, 4096):  # nobody writes; it returns b"" once the writer is gone
            pass
        server.should_exit = True

    threading.Thread(target=watch, name="harness-sim-stdin-watch", daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if not _is_loopback(args.host) and not args.allow_non_loopback:
        print(
            f"error: refusing to serve on {args.host}: the sandbox is for loopback; "
            "pass --allow-non-loopback to expose it",
            file=sys.stderr,
        )
        return 2
    try:
        delivery = WebhookDelivery(
            attempts=args.webhook_attempts,
            first_delay=args.webhook_first_delay,
            timeout=args.webhook_timeout,
            queue=args.webhook_queue,
            allow_non_loopback=args.allow_non_loopback_webhooks,
        )
        settings = SimSettings.from_environment(
            seed=args.seed,
            token_lifetime=args.token_lifetime,
            sdk_token_lifetime=args.sdk_token_lifetime,
            uplink=not args.no_uplink,
            webhook_delivery=delivery,
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    # This process owns its logging: uvicorn leaves it alone (``uvicorn_config``), so say where it goes.
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets it recognises as TCP, and without
    # it Nagle and delayed ACKs add about 40 ms to every response on loopback.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted sockets inherit it: without it a response's header and body writes meet Nagle and
    # the client's delayed ACK, and every answer waits ~40 ms (asyncio sets it only for proto 6).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((args.host, args.port))
    except OSError as exc:
        print(f"error: cannot bind {args.host}:{args.port}: {exc.strerror}", file=sys.stderr)
        return 2
    sock.listen(2048)  # connections queue from now on, so the URL below is usable at once
    host, port = sock.getsockname()[:2]
    app = create_app(settings)
    radio = None
    if not args.no_radio:
        from .radio import VirtualRadio  # bumble only when the radio is served

        radio = VirtualRadio(app.world)
        try:
            radio.serve(args.host, args.radio_port)
        except OSError as exc:
            radio.stop()
            sock.close()
            print(f"error: cannot bind the radio on {args.host}:{args.radio_port}: {exc.strerror}", file=sys.stderr)
            return 2
        app.radio = radio
    shown = f"[{host}]" if family == socket.AF_INET6 else host
    print(f"http://{shown}:{port}", flush=True)
    server = uvicorn.Server(uvicorn_config(app, host=args.host, port=port, log_level=args.log_level))
    if args.stop_when_stdin_closes:
        _stop_when_stdin_closes(server)
    try:
        server.run(sockets=[sock])
    finally:
        if radio is not None:
            radio.stop()
        app.world.webhooks.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
