"""One pure-ASGI middleware: request body limit (413), Server-Timing header, request metrics."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pricing_api.metrics import ApiMetrics

log = logging.getLogger(__name__)
CLIENT_CLOSED = 499  # the metrics' status for a request whose client went away mid-body (nginx's convention)


def _too_large(limit: int, size: int | None) -> str:
    got = f" of {size} bytes" if size is not None else ""
    return f"request body{got} exceeds the limit of {limit} bytes (send fewer items per request)"


class ServingMiddleware:
    """Refuses oversize bodies before reading them, times every request and counts it by route template."""

    def __init__(self, app: ASGIApp, *, metrics: ApiMetrics, max_body_bytes: int) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self._series: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500
        limit = self.max_body_bytes

        length = self._content_length(scope)
        if length is not None and length > limit:
            await self._reject(send, _too_large(limit, length))
            self._record(scope, 413, start)
            return

        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise HTTPException(413, _too_large(limit, None))
            return message

        async def timed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                took = (time.perf_counter() - start) * 1000.0
                headers = list(message.get("headers", []))
                headers.append((b"server-timing", f"app;dur={took:.3f}".encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, limited_receive, timed_send)
        except ClientDisconnect:  # the client left before its body arrived: nobody to answer, nothing went wrong
            status = CLIENT_CLOSED
            log.debug("%s %s: client disconnected before sending its body", scope.get("method"), scope.get("path"))
        finally:
            self._record(scope, status, start)

    @staticmethod
    def _content_length(scope: Scope) -> int | None:
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    return int(value)
                except ValueError:
                    return None
        return None

    @staticmethod
    async def _reject(send: Send, detail: str) -> None:
        body = json.dumps({"detail": detail, "problems": [{"field": "body", "message": detail}]}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})

    def _record(self, scope: Scope, status: int, start: float) -> None:
        route: Any = scope.get("route")
        template = getattr(route, "path", None) or "unmatched"
        key = (template, scope.get("method", ""), status)
        series = self._series.get(key)
        if series is None:  # label lookups cost a few µs: resolve each (route, method, status) once
            series = self._series[key] = (self.metrics.requests.labels(template, key[1], str(status)),
                                          self.metrics.latency.labels(template))
        series[0].inc()
        series[1].observe(time.perf_counter() - start)
