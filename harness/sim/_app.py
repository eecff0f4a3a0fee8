"""``create_app``: the virtual sandbox as one FastAPI application."""

from __future__ import annotations

import json
import math
from functools import cache
from importlib import resources
from typing import Any

import yaml
from fastapi import FastAPI, Request
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.types import ASGIApp

from harness.model import Refused

from ._api import add_api_routes
from ._auth import BearerAuthority
from ._control import ServedRadio, add_control_routes
from ._docs import add_docs_routes
from ._faults import TOKEN_PATH
from ._issued import IssuedSecretsLog
from ._middleware import SandboxMiddleware
from ._settings import SimSettings
from ._world import World, WorldError

__all__ = ["SandboxApp", "api_document", "create_app"]

#: The API document, shipped inside the package (a link to contracts/harbor-api.yaml).
DOCUMENT = "harbor-api.yaml"


@cache
def _document_json() -> bytes:
    text = resources.files(__package__).joinpath(DOCUMENT).read_text(encoding="utf-8")
    # libyaml's loader where PyYAML was built with it: ten times faster, and every sandbox start reads this.
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return json.dumps(yaml.load(text, Loader=loader), separators=(",", ":")).encode()


def api_document() -> dict[str, Any]:
    """contracts/harbor-api.yaml as a dict: exactly what ``/openapi.json`` serves."""
    document: dict[str, Any] = json.loads(_document_json())
    return document


class SandboxApp(FastAPI):
    """A FastAPI app whose outermost layer is the sandbox middleware (faults must reach the raw
    connection to drop it, and the ``Date`` header must be on every answer, 500s included)."""

    world: World
    authority: BearerAuthority
    #: The virtual radio once it is on the air (``VirtualSandbox.radio``, ``python -m harness.sim``):
    #: ``/_sim/radio`` describes it. ``None``: the sandbox serves HTTP alone.
    radio: ServedRadio | None = None

    def build_middleware_stack(self) -> ASGIApp:
        app = super().build_middleware_stack()
        if self.world.settings.issued_log:  # the redaction canary's debug hook (_issued.py)
            app = IssuedSecretsLog(app, self.world.settings.issued_log)
        return SandboxMiddleware(app, clock=self.world.clock, faults=self.world.faults, authority=self.authority)


async def _world_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, WorldError)
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)


async def _refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Refused)
    return JSONResponse({"detail": exc.detail}, status_code=exc.reason.http_status)


async def _invalid(request: Request, exc: Exception) -> Response:
    """Malformed JSON is 400 as Harbor answers it; FastAPI's own choice would be 422."""
    assert isinstance(exc, RequestValidationError)
    for error in exc.errors():
        if error.get("type") == "json_invalid":
            reason = error.get("ctx", {}).get("error", "")
            return JSONResponse({"detail": f"The body is not valid JSON: {reason}".rstrip(": ")}, status_code=400)
    # Python's JSON reader takes NaN, Infinity and 1e999, which no JSON answer may carry: the 422
    # names such an input as text rather than failing to render (a 500 for a bad value).
    errors = [_json_safe(error) for error in exc.errors()]
    return await request_validation_exception_handler(request, RequestValidationError(errors, body=exc.body))


def _json_safe(value: Any) -> Any:
    """``value`` with every non-finite float written as text (``"nan"``, ``"inf"``)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    return value


def create_app(settings: SimSettings | None = None) -> SandboxApp:
    """The whole sandbox: ``/api/v1``, ``/sdk/v1``, the token endpoint, ``/openapi.json``, the
    Swagger UI pages (``/docs``, ``/sdk/docs``), ``/_sim``."""
    settings = settings or SimSettings()
    world = World(settings)
    authority = BearerAuthority(
        world.secret,
        settings.identities,
        lifetime=settings.token_lifetime,
        sdk_lifetime=settings.sdk_token_lifetime,
        dialects=world.dialects,
    )
    app = SandboxApp(
        title="Harbor virtual sandbox",
        openapi_url=None,  # /openapi.json is the document itself, below
        docs_url=None,
        redoc_url=None,
        exception_handlers={WorldError: _world_error, Refused: _refused, RequestValidationError: _invalid},
    )
    app.world = world
    app.authority = authority
    document = _document_json()

    @app.get("/openapi.json", include_in_schema=False)
    async def openapi() -> Response:
        return Response(document, media_type="application/json")

    @app.post(TOKEN_PATH, include_in_schema=False)
    async def token(request: Request) -> JSONResponse:
        answer = authority.token_endpoint(await request.body(), request.headers.get("authorization"))
        return JSONResponse(
            answer.body, status_code=answer.status_code, headers={"Cache-Control": "no-store", "Pragma": "no-cache"}
        )

    add_api_routes(app, world, authority)
    add_docs_routes(app, api_document())
    add_control_routes(app, world, radio=lambda: app.radio)
    return app
