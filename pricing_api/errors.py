"""Every error becomes one JSON shape, {"detail": ..., "problems": [...]}, mapped in this one place."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from fedprice.errors import AuthenticationError, FedpriceError
from pricing_api.quoting import MAX_LISTED_PROBLEMS, RequestProblemsError
from pricing_api.schemas import ErrorBody

log = logging.getLogger(__name__)

# Documented on every endpoint that takes a body or a key (schemathesis checks responses against these).
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": text}
    for status, text in ((401, "Missing or invalid API key"), (403, "The key lacks the scope"),
                         (404, "Unknown shop"), (413, "Request body too large"),
                         (422, "Invalid request; the message names the field"),
                         (503, "No verified model or the shop's data is unavailable"))
}


def field_name(loc: Sequence[Any]) -> str:
    """('body', 'items', 0, 'list_price') -> 'items[0].list_price'."""
    parts = list(loc[1:] if loc and loc[0] in ("body", "query", "path", "header") else loc)
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out += f".{p}" if out else str(p)
    return out or "body"


def _body(detail: str, problems: list[tuple[str, str]]) -> dict[str, Any]:
    return {"detail": detail, "problems": [{"field": f, "message": m} for f, m in problems]}


def _validation_problems(exc: RequestValidationError) -> list[tuple[str, str]]:
    out = []
    for err in exc.errors():
        loc = tuple(err.get("loc", ()))
        if err.get("type") == "json_invalid":
            if len(loc) > 1:  # FastAPI's json.loads: loc holds the character position
                out.append(("body", f"invalid JSON at character {loc[1]}: {err.get('ctx', {}).get('error', 'decode error')}"))
            else:  # pydantic's own parser: the message says where
                out.append(("body", str(err.get("msg", "invalid JSON"))))
            continue
        if err.get("type") == "missing" and loc == ("body",):
            out.append(("body", "a JSON request body is required"))
            continue
        out.append((field_name(loc), str(err.get("msg", "invalid value"))))
    return out


def validation_response(exc: RequestValidationError) -> JSONResponse:
    """422 naming every invalid field."""
    problems = _validation_problems(exc)
    detail = "; ".join(f"{f}: {m}" for f, m in problems[:MAX_LISTED_PROBLEMS])
    return JSONResponse(_body(detail, problems), status_code=422)


def product_error_response(exc: FedpriceError, method: str, path: str) -> JSONResponse:
    """The error's own status and message (401 with a Bearer challenge; 5xx logged)."""
    problems = exc.problems if isinstance(exc, RequestProblemsError) else []
    status = exc.http_status
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, AuthenticationError) else None
    if status >= 500:
        log.error("%s %s failed: %s", method, path, exc)
    return JSONResponse(_body(str(exc), problems), status_code=status, headers=headers)


def http_error_response(exc: StarletteHTTPException) -> JSONResponse:
    """Starlette's HTTP errors (404, 405, 413, ...) in the same shape."""
    field = "body" if exc.status_code in (400, 413) else "path"
    return JSONResponse(_body(str(exc.detail), [(field, str(exc.detail))]), status_code=exc.status_code,
                        headers=exc.headers)


def known_error_response(exc: Exception, method: str, path: str) -> JSONResponse | None:
    """The response the handlers below give `exc`; None for an unexpected error (left to the 500 handler)."""
    if isinstance(exc, RequestValidationError):
        return validation_response(exc)
    if isinstance(exc, FedpriceError):
        return product_error_response(exc, method, path)
    if isinstance(exc, StarletteHTTPException):
        return http_error_response(exc)
    return None


def install(app: FastAPI) -> None:
    """Register the handlers."""

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return validation_response(exc)

    @app.exception_handler(FedpriceError)
    async def _product_error(request: Request, exc: FedpriceError) -> JSONResponse:
        return product_error_response(exc, request.method, request.url.path)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return http_error_response(exc)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("%s %s: unexpected error", request.method, request.url.path)
        return JSONResponse(_body("internal error (logged on the server)", []), status_code=500)
