"""The interactive API pages Harbor serves [S]: ``/docs`` (service-provider API) and ``/sdk/docs``
(SDK API), as FastAPI's Swagger UI, with their documents ``/openapi.json`` and ``/sdk/openapi.json``.

FastAPI's own pages load Swagger UI's script and style from a CDN, so offline they show a blank
page. Here they come from the ``swagger-ui-bundle`` package, served under ``/docs/assets/``: the
pages work with no network at all (the browser still needs JavaScript).

``/openapi.json`` is the whole API document (the harness's contract); ``/sdk/openapi.json`` is its
``/sdk/v1`` part, as a Harbor whose SDK API is a FastAPI application of its own would serve it [I].
"""

from __future__ import annotations

import json
from typing import Any, Final

from fastapi import FastAPI, HTTPException
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import FileResponse, HTMLResponse, Response
from swagger_ui_bundle import swagger_ui_path

__all__ = ["add_docs_routes"]

_ASSETS: Final = "/docs/assets"
#: The Swagger UI files the pages load, by the name they are served under.
_ASSET_FILES: Final = {
    "swagger-ui-bundle.js": "application/javascript",
    "swagger-ui.css": "text/css",
    "favicon-32x32.png": "image/png",
}
_OAUTH2_REDIRECT: Final = "/docs/oauth2-redirect"


def sdk_document(document: dict[str, Any]) -> dict[str, Any]:
    """The ``/sdk/v1`` operations of ``document``, with all its components."""
    paths = {path: item for path, item in document["paths"].items() if path.startswith("/sdk/")}
    used = {tag for item in paths.values() for operation in item.values() if isinstance(operation, dict)
            for tag in operation.get("tags", ())}  # fmt: skip
    tags = [tag for tag in document.get("tags", ()) if tag["name"] in used]
    info = {**document["info"], "title": f"{document['info']['title']}: SDK API"}
    return {**document, "info": info, "tags": tags, "paths": paths}


def _page(title: str, openapi_url: str) -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url=openapi_url,
        title=title,
        swagger_js_url=f"{_ASSETS}/swagger-ui-bundle.js",
        swagger_css_url=f"{_ASSETS}/swagger-ui.css",
        swagger_favicon_url=f"{_ASSETS}/favicon-32x32.png",
        oauth2_redirect_url=_OAUTH2_REDIRECT,
    )


def add_docs_routes(app: FastAPI, document: dict[str, Any]) -> None:
    """``/docs``, ``/sdk/docs``, ``/sdk/openapi.json`` and the Swagger UI files they load."""
    sdk = json.dumps(sdk_document(document), separators=(",", ":")).encode()
    title = str(document["info"]["title"])

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return _page(f"{title} - Swagger UI", "/openapi.json")

    @app.get("/sdk/docs", include_in_schema=False)
    async def sdk_docs() -> HTMLResponse:
        return _page(f"{title}: SDK API - Swagger UI", "/sdk/openapi.json")

    @app.get("/sdk/openapi.json", include_in_schema=False)
    async def sdk_openapi() -> Response:
        return Response(sdk, media_type="application/json")

    @app.get(_OAUTH2_REDIRECT, include_in_schema=False)
    async def oauth2_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get(_ASSETS + "/{name}", include_in_schema=False)
    async def asset(name: str) -> FileResponse:
        media_type = _ASSET_FILES.get(name)
        if media_type is None:
            raise HTTPException(404, "Not Found")
        return FileResponse(swagger_ui_path / name, media_type=media_type)
