"""A capturing HTTP(S) proxy on loopback that plays Harbor well enough to be written to.

Child processes started with ``HTTPS_PROXY``/``HTTP_PROXY`` pointing here and ``SSL_CERT_FILE``
(``REQUESTS_CA_BUNDLE`` for Schemathesis's session) naming its throwaway CA send it everything
they would send to the Internet. It opens each ``CONNECT`` tunnel with a certificate for Harbor's
hosts signed by that CA, so it sees the very method, host and path of each request, and records
them. It answers like a friendly Harbor: a bearer token, a tower with an available locker, a
reserved locker, so a command that is not stopped by the guard goes on to write, and is caught.
Nothing leaves this machine: the proxy never connects anywhere.
"""

from __future__ import annotations

import datetime
import json
import socket
import socketserver
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

__all__ = ["CaptureProxy", "Captured"]

_LOCKER: dict[str, Any] = {
    "id": 959,
    "name": "14",
    "isLowLocker": False,
    "towerId": "1000000000000001",
    "status": {"name": "available", "id": 1},
    "type": {"name": "small", "description": None, "id": 1},
    "accessMode": "public",
}


@dataclass(frozen=True, slots=True)
class Captured:
    """One request as it would have left: its method, scheme, host and path."""

    method: str
    scheme: str
    host: str
    path: str


def _ca_and_leaf(folder: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA (its PEM for the clients) and a leaf for Harbor's hosts (cert and key)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "locker-harness capture CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )  # key_cert_sign, crl_sign
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    names = ["harborlockers.com", "*.harborlockers.com", "*.sandbox.harborlockers.com"]
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "harborlockers.com")]))
        .issuer_name(ca_name)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=2))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name) for name in names]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_pem, cert_pem, key_pem = folder / "ca.pem", folder / "leaf.pem", folder / "leaf.key"
    ca_pem.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_pem.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_pem.write_bytes(
        leaf_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return ca_pem, cert_pem, key_pem


def _answer(method: str, path: str) -> tuple[int, Any]:
    """What a friendly Harbor says: enough for a client to go on to its writes."""
    bare = path.split("?", 1)[0].rstrip("/")
    if bare.endswith("/openid-connect/token"):
        return 200, {"access_token": "proxy-bearer", "expires_in": 300, "token_type": "Bearer"}
    if method == "GET" and bare.endswith("/lockers"):
        return 200, [_LOCKER]
    if method == "GET" and "/lockers/" in bare:
        return 200, {**_LOCKER, "status": {"name": "reserved", "id": 2}}
    if method == "GET" and bare.endswith("/assigned-lockers"):
        return 200, []
    return 404, {"detail": "Not Found"}


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.settimeout(10)
        try:
            head, rest = _read_head(sock, b"")
            if head is None:
                return
            method, target, _ = head[0].split(" ", 2)
            if method == "CONNECT":
                host = target.rsplit(":", 1)[0]
                sock.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                with self.server.tls.wrap_socket(sock, server_side=True) as tls:
                    self._serve(tls, "https", host, b"")
            else:  # absolute form: plain http through the proxy
                scheme, _, after = target.partition("://")
                host, _, path = after.partition("/")
                self._record(method, scheme, host, "/" + path)
                self._reply(sock, method, "/" + path, rest, head)
        except (OSError, ValueError, ssl.SSLError):
            return

    def _serve(self, sock: socket.socket, scheme: str, host: str, buffer: bytes) -> None:
        while True:
            head, buffer = _read_head(sock, buffer)
            if head is None:
                return
            method, path, _ = head[0].split(" ", 2)
            self._record(method, scheme, host, path)
            buffer = self._reply(sock, method, path, buffer, head)

    def _record(self, method: str, scheme: str, host: str, path: str) -> None:
        with self.server.lock:
            self.server.captured.append(Captured(method, scheme, host.lower(), path))

    @staticmethod
    def _reply(sock: socket.socket, method: str, path: str, buffer: bytes, head: list[str]) -> bytes:
        length = 0
        for line in head[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        while len(buffer) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            buffer += chunk
        buffer = buffer[length:]
        status, body = _answer(method, path)
        data = json.dumps(body).encode()
        reason = "OK" if status == 200 else "Not Found"
        sock.sendall(
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\n\r\n".encode()
            + data
        )
        return buffer


def _read_head(sock: socket.socket, buffer: bytes) -> tuple[list[str] | None, bytes]:
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            return None, b""
        buffer += chunk
        if len(buffer) > 1 << 20:
            return None, b""
    head, _, rest = buffer.partition(b"\r\n\r\n")
    return head.decode("latin-1").split("\r\n"), rest


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, tls: ssl.SSLContext) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.tls = tls
        self.lock = threading.Lock()
        self.captured: list[Captured] = []


class CaptureProxy:
    """``with CaptureProxy(folder) as proxy:`` ... ``proxy.environment()`` for children, ``proxy.captured``."""

    def __init__(self, folder: Path) -> None:
        self.ca, cert, key = _ca_and_leaf(folder)
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(cert, key)
        self._server = _Server(tls)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def captured(self) -> list[Captured]:
        with self._server.lock:
            return list(self._server.captured)

    def environment(self) -> dict[str, str]:
        """What sends a child's traffic here and makes it trust the proxy's certificates."""
        return {
            "HTTPS_PROXY": self.url,
            "HTTP_PROXY": self.url,
            "https_proxy": self.url,
            "http_proxy": self.url,
            "NO_PROXY": "127.0.0.1,localhost,::1",
            "no_proxy": "127.0.0.1,localhost,::1",
            "SSL_CERT_FILE": str(self.ca),
            "REQUESTS_CA_BUNDLE": str(self.ca),
        }

    def __enter__(self) -> CaptureProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
