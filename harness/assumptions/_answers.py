"""What one raw answer shows of the assumptions, for readers that do not go through the API client.

The API client records its observations as it parses (``harness.api``). The contract suite and
the probe see raw answers (Schemathesis's, httpx's): ``observe_answer`` walks such a body and
records what it shows, the same way: a create's status code, each locker's status (read by name),
whether a token carries ``id``, an open request ``requestType``, an SDK token ``token_type``, and
whether each ``expires`` has an offset.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from harness.assumptions._observe import read_expires, read_status, record
from harness.assumptions._values import Assumed

__all__ = ["observe_answer"]

_LOCKER_KEYS = frozenset({"status", "towerId", "isLowLocker"})


def observe_answer(where: str, status_code: int, body: Any, assumed: Assumed, *, documented: int | None) -> None:
    """Record what the answer to ``where`` (``POST /api/v1/...``) shows of our assumptions.

    ``documented``: the success code the document gives the operation (201 for a create: then the
    code answered is an observation of ``create_status``). Only success answers are walked.
    """
    if not 200 <= status_code < 300:
        return
    answered = f"{where} answered {status_code}"
    if documented == 201:
        record("create_status", status_code, answered)
    _walk(body, assumed, where, depth=0)


def _walk(value: Any, assumed: Assumed, where: str, *, depth: int) -> None:
    if depth > 6:  # Harbor's bodies nest three deep; anything deeper is not ours to read
        return
    if isinstance(value, list):
        for item in value[:200]:
            _walk(item, assumed, where, depth=depth + 1)
        return
    if not isinstance(value, Mapping):
        return
    if value.keys() >= _LOCKER_KEYS:
        status = value.get("status")
        if isinstance(status, Mapping) and isinstance(status.get("name"), str) and _is_int(status.get("id")):
            read_status(status["name"], status["id"], assumed, where)
    if "payload_auth" in value and "locker" in value:  # a drop-off or pickup token
        record("token_id_field", value.get("id") is not None, where)
    if "linkToken" in value:  # a locker open request
        record("request_type_field", value.get("requestType") is not None, where)
    if "access_token" in value and "expires_in" not in value:  # login/authorize's SDK token
        record("token_type_field", value.get("token_type") is not None, where)
    expires = value.get("expires")
    if isinstance(expires, str):
        read_expires(expires, assumed, where)
    for key, item in value.items():
        if key != "status" and isinstance(item, Mapping | list):
            _walk(item, assumed, where, depth=depth + 1)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
