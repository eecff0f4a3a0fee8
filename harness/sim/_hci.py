"""The virtual radio served to other processes: raw HCI over TCP, one controller per connection.

A client in another process (the harness's virtual bleak backend, a bumble ``Device`` built with
``Device.with_hci`` on bumble's ``tcp-client:HOST:PORT`` transport, any host stack that speaks H4)
connects and is handed a controller of its own on the radio's link: the same ``RadioController``
an in-process central gets (``RadioLink.central_controller``), so it sees what they see (scan
responses, the MTU and idle timeout the towers grant, the latency model, supervision faults).

bumble's own ``tcp-server`` transport is not used: it shares one controller between every client
(a second client takes over the first one's event stream and address), and it never notices a
client that went away, so a tower connected to it stays connected and stops advertising. Here the
controller lives and dies with its socket: when the client closes it (or its process dies), the
controller leaves the link (``RadioLink.leave``) and every tower it was connected to loses the
link with reason 0x08, as after a supervision timeout, and advertises again.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from typing import Protocol

from bumble.controller import Controller
from bumble.transport.common import StreamPacketSink, StreamPacketSource

__all__ = ["CentralLink", "HciServer"]

log = logging.getLogger(__name__)


class CentralLink(Protocol):
    """What the server needs of the radio's link: a central's controller on it, and its leaving."""

    def central_controller(self, name: str, address: str) -> Controller: ...

    def leave(self, controller: Controller) -> None: ...


class _HciConnection(StreamPacketSource):
    """One client's socket: H4 packets in go to its controller; the controller's events go out."""

    def __init__(self, server: HciServer) -> None:
        super().__init__()
        self._server = server
        self.controller: Controller | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        controller = self._server.attach(self)
        controller.host = StreamPacketSink(transport)  # controller -> socket
        self.set_packet_sink(controller)  # socket -> H4 parser -> controller
        self.controller = controller

    def connection_lost(self, exc: Exception | None) -> None:
        self.on_transport_lost()
        if self.controller is not None:
            self._server.detach(self)


class HciServer:
    """Serves the link to HCI hosts on a TCP address; ``address`` is what a client opens.

    Runs on the radio's loop: ``start`` and ``close`` are awaited there.
    """

    def __init__(self, link: CentralLink) -> None:
        self._link = link
        self._server: asyncio.Server | None = None
        self._clients: set[_HciConnection] = set()
        self._numbers = itertools.count(1)
        self.host = ""
        self.port = 0

    @property
    def address(self) -> str:
        """The transport address as bumble spells it (``tcp-client:127.0.0.1:PORT``; IPv6 unbracketed)."""
        return f"tcp-client:{self.host}:{self.port}"

    @property
    def clients(self) -> int:
        """Hosts connected now."""
        return len(self._clients)

    async def start(self, host: str, port: int) -> str:
        """Listen on ``host:port`` (0: a free port); the transport address. ``OSError`` if it cannot bind."""
        server = await asyncio.get_running_loop().create_server(lambda: _HciConnection(self), host, port)
        self._server = server
        bound = server.sockets[0].getsockname()
        self.host, self.port = str(bound[0]), int(bound[1])
        return self.address

    def attach(self, connection: _HciConnection) -> Controller:
        """A fresh controller on the link for a new client, with an address no other has."""
        number = next(self._numbers)
        controller = self._link.central_controller(
            f"hci-client-{number}", f"C1:00:00:{number >> 16 & 0xFF:02X}:{number >> 8 & 0xFF:02X}:{number & 0xFF:02X}"
        )
        self._clients.add(connection)
        log.info("HCI client %s connected (controller %s)", number, controller.name)
        return controller

    def detach(self, connection: _HciConnection) -> None:
        """The client is gone: its controller leaves the link, and its links are lost."""
        self._clients.discard(connection)
        controller, connection.controller = connection.controller, None
        if controller is not None:
            self._link.leave(controller)
            log.info("HCI client gone: controller %s left the link", controller.name)

    async def close(self) -> None:
        """Stop listening and hang up on every client (each one's controller leaves the link)."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for client in list(self._clients):
            if client.transport is not None:
                client.transport.close()  # connection_lost follows on this loop: detach
            else:
                self.detach(client)
        if server is not None:
            await server.wait_closed()
        await asyncio.sleep(0)  # let the connection_lost callbacks run
