"""The harness's HTTP clients load the certificates they verify servers against once per process.

httpx loads its CA bundle again for every client it makes (about 20 ms each); a run makes hundreds
of clients, and the suite's runs spent over half a minute of CPU loading the same file. Sharing the
context must not loosen it: servers are still verified, host names checked.
"""

from __future__ import annotations

import asyncio
import ssl

import httpx
import pytest

from harness.api import AsyncHarborClient, HarborClient, tls_context
from harness.config import Settings


def test_many_clients_load_the_certificates_once(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """Five clients of the API, sync and async, one load of the certificates between them."""
    loads: list[object] = []
    real = httpx.create_ssl_context
    monkeypatch.setattr(httpx, "create_ssl_context", lambda *a, **k: loads.append(a) or real(*a, **k))
    tls_context.cache_clear()
    try:
        for _ in range(3):
            HarborClient(settings).close()

        async def both() -> None:
            for _ in range(2):
                await AsyncHarborClient(settings).aclose()

        asyncio.run(both())
        assert len(loads) == 1
    finally:
        tls_context.cache_clear()


def test_the_shared_context_still_verifies_servers_and_their_names() -> None:
    context = tls_context()
    assert context.verify_mode is ssl.CERT_REQUIRED and context.check_hostname
    assert context.cert_store_stats()["x509_ca"] > 0
