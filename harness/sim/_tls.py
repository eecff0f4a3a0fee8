"""The certificates the sandbox's own HTTP clients (webhook delivery, the control-plane client)
verify servers against, loaded once per process: httpx would load them again for each client it
makes, about 20 ms each. The sandbox keeps its own copy: it shares no code with the harness's client."""

from __future__ import annotations

import functools
import ssl

import httpx

__all__ = ["tls_context"]


@functools.cache
def tls_context() -> ssl.SSLContext:
    """httpx's defaults (certifi's bundle, or ``SSL_CERT_FILE``/``SSL_CERT_DIR``), made once."""
    return httpx.create_ssl_context()
