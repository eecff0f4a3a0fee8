"""A client-side double of the sandbox's Harbor dialects: the embedded sandbox's answers, rewritten in flight.

Each dialect flips one [I]/[G] assumption the way the real Harbor plausibly might (the contract in
the dialects table of the docs): creates answering 200, status ids shifted by ten, ``out of
service`` with spaces, no token ``id``, ``expires`` without an offset, no ``requestType``, no
``token_type``: the sandbox's own switches (``--sim-dialect``, ``/_sim/dialects``) stated a second,
independent time as a rewrite in flight, so the client side is tested in process against each.
Dialects that no rewrite of an answer can make (``occupied_on_close``, ``webhook_signature_header``)
are tested through the sandbox's own switches (the probe command's test).
"""

from __future__ import annotations

import json
from typing import Any, Final

import httpx

#: dialect -> the assumption it refutes, and the [assume] line that adopts what it answers.
DIALECTS: Final = {
    "create_200": ("create_status", "create_status = 200"),
    "status_ids_shifted": ("status_ids", None),  # the line lists the ids the answers happened to show
    "out_of_service_spaced": ("status_names", 'status_names = { out_of_service = "out of service" }'),
    "no_token_id": ("token_id_field", "token_id_field = false"),
    "expires_naive": ("expires_offset", "expires_offset = false"),
    "no_request_type": ("request_type_field", "request_type_field = false"),
    "no_token_type": ("token_type_field", "token_type_field = false"),
}


def _rewrite(value: Any, dialect: str) -> Any:
    if isinstance(value, list):
        return [_rewrite(item, dialect) for item in value]
    if not isinstance(value, dict):
        return value
    body = {key: _rewrite(item, dialect) for key, item in value.items()}
    status = body.get("status")
    if isinstance(status, dict) and {"name", "id"} <= status.keys():
        if dialect == "status_ids_shifted" and status["name"] != "available":
            body["status"] = {**status, "id": status["id"] + 10}
        if dialect == "out_of_service_spaced" and status["name"] == "out_of_service":
            body["status"] = {**status, "name": "out of service"}
    if dialect == "no_token_id" and "payload_auth" in body and "locker" in body:
        body.pop("id", None)
    if dialect == "expires_naive" and isinstance(body.get("expires"), str):
        body["expires"] = body["expires"].replace("+00:00", "").removesuffix("Z")
    if dialect == "no_request_type":
        body.pop("requestType", None)
    if dialect == "no_token_type" and "access_token" in body:
        body.pop("token_type", None)
    return body


class DialectDouble(httpx.BaseTransport):
    """The embedded sandbox over loopback, its answers rewritten as ``dialect`` would answer."""

    def __init__(self, dialect: str, inner: httpx.BaseTransport | None = None) -> None:
        if dialect not in DIALECTS:
            raise ValueError(f"unknown dialect {dialect!r}")
        self.dialect = dialect
        self._inner = inner if inner is not None else httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self._inner.handle_request(request)
        content = response.read()
        status = response.status_code
        if self.dialect == "create_200" and request.method == "POST" and status == 201:
            status = 200
        if "json" not in response.headers.get("content-type", "") or not content:
            return httpx.Response(status, headers=response.headers, content=content, request=request)
        body = _rewrite(json.loads(content), self.dialect)
        headers = {k: v for k, v in response.headers.items() if k.lower() not in ("content-length", "content-encoding")}
        return httpx.Response(status, headers=headers, json=body, request=request)

    def close(self) -> None:
        self._inner.close()
