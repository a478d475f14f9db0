"""POST /v1/quotes answered before Starlette's routing: the hot path without the framework's per-request objects.

The FastAPI route stays declared (OpenAPI schema, docs, direct calls), and both run `routes.quote_json`; errors
get the responses of `errors.known_error_response`, the same mapping the app's exception handlers use, and
anything unexpected propagates to the app's 500 handler as it would from the route. It sits inside
ServingMiddleware, so the body limit, Server-Timing and request metrics (labelled by the route) are unchanged.
"""

from __future__ import annotations

from fastapi.routing import APIRoute
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Receive, Scope, Send

from pricing_api.errors import known_error_response
from pricing_api.routes import quote_json
from pricing_api.state import ApiState

_JSON = (b"content-type", b"application/json")


def _header(scope: Scope, name: bytes) -> str | None:
    """The first value of a request header (names arrive lower-cased), as Starlette's Headers.get decodes it."""
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


async def read_body(receive: Receive) -> bytes:
    """The whole request body, as Starlette's Request.body reads it (ClientDisconnect if the client left)."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.request":
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                return b"".join(chunks)
        elif message["type"] == "http.disconnect":
            raise ClientDisconnect()


class QuoteFastPath:
    """Pure-ASGI handler of the quote route's path and method; every other request goes on to the app."""

    def __init__(self, app: ASGIApp, *, state: ApiState, route: APIRoute) -> None:
        self.app = app
        self.state = state
        self.route = route
        self.path = route.path
        self.methods = set(route.methods)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != scope.get("root_path", "") + self.path \
                or scope["method"] not in self.methods:
            await self.app(scope, receive, send)
            return
        scope["route"] = self.route  # what the router would have set: metrics are labelled by its template
        try:
            body = await quote_json(self.state, _header(scope, b"authorization"), lambda: read_body(receive))
        except Exception as exc:
            response = known_error_response(exc, scope["method"], scope["path"])
            if response is None:
                raise
            await response(scope, receive, send)
            return
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(len(body)).encode()), _JSON]})
        await send({"type": "http.response.body", "body": body})
