"""The API document is the sandbox's contract: served as is, and every operation has its route."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

import httpx
import yaml
from fastapi.routing import APIRoute

from harness.sim import VirtualSandbox, create_app

ROOT = Path(__file__).resolve().parents[3]
DOCUMENT = ROOT / "contracts" / "harbor-api.yaml"
METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}

#: The control plane of docs/design.md's table, which the document must not contain.
CONTROL_PLANE = {
    ("POST", "/_sim/reset"),
    ("GET", "/_sim/state"),
    ("POST", "/_sim/clock/advance"),
    ("GET", "/_sim/bugs"),
    ("POST", "/_sim/bugs"),
    ("GET", "/_sim/dialects"),
    ("POST", "/_sim/dialects"),
    ("GET", "/_sim/webhooks"),
    ("POST", "/_sim/webhooks"),
    ("DELETE", "/_sim/webhooks"),
    ("GET", "/_sim/faults"),
    ("POST", "/_sim/faults"),
    ("POST", "/_sim/towers/{tower_id}/lockers/{locker_id}/open"),
    ("POST", "/_sim/towers/{tower_id}/lockers/{locker_id}/close"),
    ("GET", "/_sim/towers/{tower_id}/lockers/{locker_id}/door"),
    ("POST", "/_sim/towers/{tower_id}/lockers/{locker_id}/force"),
    ("GET", "/_sim/radio"),
    ("POST", "/_sim/radio"),
    ("GET", "/_sim/events"),
}
EXTRA = {
    ("POST", "/realms/harbor/protocol/openid-connect/token"),
    ("GET", "/openapi.json"),
    # Harbor's interactive pages [S] and the SDK API's document, with the Swagger UI files they load.
    ("GET", "/docs"),
    ("GET", "/sdk/docs"),
    ("GET", "/sdk/openapi.json"),
    ("GET", "/docs/oauth2-redirect"),
    ("GET", "/docs/assets/{name}"),
}


def document_operations() -> set[tuple[str, str]]:
    document = yaml.safe_load(DOCUMENT.read_text())
    return {(method.upper(), path) for path, item in document["paths"].items() for method in item if method in METHODS}


def app_routes() -> set[tuple[str, str]]:
    routes = set()
    for route in create_app().routes:
        if isinstance(route, APIRoute):
            path = re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path)  # "{request_id:int}" -> "{request_id}"
            routes |= {(method, path) for method in route.methods or ()}
    return routes


def test_openapi_json_is_the_yaml_document(sandbox: VirtualSandbox) -> None:
    """``/openapi.json`` serves contracts/harbor-api.yaml exactly, and no ``/_sim`` path in it."""
    served = httpx.get(sandbox.url + "/openapi.json", timeout=5).json()
    assert served == yaml.safe_load(DOCUMENT.read_text())
    assert not any(path.startswith("/_sim") for path in served["paths"])


def test_sdk_openapi_json_is_the_documents_sdk_part(sandbox: VirtualSandbox) -> None:
    """``/sdk/openapi.json`` holds the document's ``/sdk/v1`` operations, all of them and nothing else."""
    whole = yaml.safe_load(DOCUMENT.read_text())
    served = httpx.get(sandbox.url + "/sdk/openapi.json", timeout=5).json()
    assert set(served["paths"]) == {path for path in whole["paths"] if path.startswith("/sdk/v1/")}
    assert served["components"] == whole["components"]


def test_routes_are_exactly_the_documents_operations_and_the_control_plane() -> None:
    """Every operation of the document has a route, and the app has no route beyond it,
    the token endpoint, ``/openapi.json``, the Swagger UI pages and the control plane."""
    assert app_routes() == document_operations() | EXTRA | CONTROL_PLANE


def test_the_packaged_document_is_the_contract() -> None:
    """The copy shipped in the package (a link) is contracts/harbor-api.yaml byte for byte."""
    packaged = resources.files("harness.sim").joinpath("harbor-api.yaml").read_bytes()
    assert packaged == DOCUMENT.read_bytes()
