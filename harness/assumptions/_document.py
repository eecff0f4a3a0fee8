"""The API document as the contract suite holds a target to it: strict where Harbor's material is
seen, open where contracts/harbor-api.yaml writes down a guess.

contracts/harbor-api.yaml states our best guesses as if they were promises (a create answers 201,
a token has an ``id``, a status is one of six names with ids 1..6, ``expires`` has an offset). A
target that answers otherwise refutes a guess: the suite must not fail the product for it. So the
suite validates answers against a copy of the document that accepts what the guesses might turn
out to be, and the guesses themselves are checked as observations (``harness.assumptions``).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

__all__ = ["tolerant_document"]

_HTTP_METHODS = frozenset({"get", "put", "post", "delete", "patch", "head", "options"})
#: (schema, required field the guess adds, the assumption)
_OPTIONAL_FIELDS = (
    ("LockerToken", "id", "token_id_field"),
    ("LockerOpenRequest", "requestType", "request_type_field"),
    ("SdkToken", "token_type", "token_type_field"),
)
#: (schema, property holding a time that may lack its offset: ``expires_offset``)
_TIMES = (("Reservation", "expires"), ("LockerToken", "expires"))


def tolerant_document(document: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of the OpenAPI ``document`` with each [I]/[G] promise opened to what a real target may answer:

    - ``create_status``: an operation documented to answer 201 may answer any 2xx (``2XX``, with
      the 201's body; the stateful phase follows links from a 201 only);
    - ``token_id_field``, ``request_type_field``, ``token_type_field``: those fields become optional;
    - ``expires_offset``: ``expires`` is any string (a time without an offset is read as UTC);
    - ``status_names``, ``status_ids``: a status is any name with any whole-number id.
    """
    relaxed: dict[str, Any] = copy.deepcopy(dict(document))
    for item in relaxed.get("paths", {}).values():
        for method, operation in item.items():
            if method not in _HTTP_METHODS or not isinstance(operation, dict):
                continue
            responses = operation.get("responses", {})
            created = responses.get("201", responses.get(201))
            if isinstance(created, dict) and "2XX" not in responses:
                # The 201's body; its links stay on the 201 (a link named twice would be two transitions).
                responses["2XX"] = {key: copy.deepcopy(value) for key, value in created.items() if key != "links"}
    schemas = relaxed.get("components", {}).get("schemas", {})
    for name, field, _assumption in _OPTIONAL_FIELDS:
        schema = schemas.get(name, {})
        if field in schema.get("required", []):
            schema["required"] = [item for item in schema["required"] if item != field]
    for name, field in _TIMES:
        prop = schemas.get(name, {}).get("properties", {}).get(field)
        if isinstance(prop, dict):
            prop.pop("format", None)
    status = schemas.get("LockerStatus", {}).get("properties", {})
    if isinstance(status.get("name"), dict):
        status["name"].pop("enum", None)
    if isinstance(status.get("id"), dict):
        status["id"] = {"type": "integer", "minimum": 0}
    return relaxed
