"""The P2 baseline: the virtual sandbox's own server stack answering one static JSON.

The same FastAPI application class with the same outermost middleware (``Date`` header, fault
hook, bearer check and scope), the same token endpoint, served by uvicorn with the same
configuration on a socket set up the same way (``TCP_NODELAY``): only the handlers differ. Every
``/api/v1`` request gets a locker view prepared once, so the ratio of the sandbox's requests per
second to this server's is the cost of the sandbox's own work (validation, the world, the model,
sealing tokens).

``python benchmarks/static_server.py`` prints its URL as the first line, like ``python -m harness.sim``;
identities come from ``HARBOR_SIM_IDENTITIES``.
"""

from __future__ import annotations

import json
import socket
import sys

import uvicorn
from fastapi.responses import Response

# The benchmark serves with exactly the sandbox's token path and uvicorn settings.
from harness.sim import TOKEN_PATH, SimSettings, create_app, uvicorn_config

#: A locker view as the sandbox answers it, serialised once.
STATIC = json.dumps(
    {
        "id": 1401,
        "name": "1",
        "isLowLocker": True,
        "towerId": "0100000000000014",
        "status": {"name": "available", "id": 1},
        "type": {"name": "small", "description": None, "id": 1},
        "accessMode": "public",
    },
    separators=(",", ":"),
).encode()


def static_app() -> object:
    """The sandbox's app with every route but the token endpoint replaced by one static answer."""
    app = create_app(SimSettings.from_environment())
    app.router.routes[:] = [route for route in app.router.routes if getattr(route, "path", None) == TOKEN_PATH]

    async def static() -> Response:
        return Response(STATIC, media_type="application/json")

    app.add_api_route("/api/v1/{rest:path}", static, methods=["GET", "POST", "DELETE"])
    return app


def main() -> int:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # as harness.sim's __main__
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(2048)
    print(f"http://127.0.0.1:{sock.getsockname()[1]}", flush=True)
    uvicorn.Server(uvicorn_config(static_app(), port=sock.getsockname()[1])).run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())
