"""The HTTP endpoints: /v1/quotes, /v1/quotes/batch, /v1/model, /v1/admin/reload; /healthz, /readyz, /metrics (and under /v1)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import ValidationError
from pydantic_core import to_json

from pricing_api.apikeys import ApiKey
from pricing_api.errors import ERROR_RESPONSES
from pricing_api.quoting import RequestProblemsError
from pricing_api.schemas import (
    BatchRequest,
    BatchResponse,
    ErrorBody,
    Health,
    ModelInfo,
    QuoteRequest,
    QuoteResponse,
    ReloadResponse,
)
from pricing_api.state import ApiState

router = APIRouter()
_bearer = HTTPBearer(auto_error=False, description="An API key from `fedprice api create-key`.")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


async def get_state(request: Request) -> ApiState:
    """The process state created by the app factory."""
    state: ApiState = request.app.state.api
    return state


State = Annotated[ApiState, Depends(get_state)]


def _authorise(request: Request, state: ApiState, scope: str | None) -> ApiKey:
    return state.keys.authenticate(request.headers.get("authorization"), scope=scope)


async def quote_key(request: Request, state: State, _: Credentials) -> ApiKey:
    """Require a key with the quote scope."""
    return _authorise(request, state, "quote")


async def admin_key(request: Request, state: State, _: Credentials) -> ApiKey:
    """Require a key with the admin scope."""
    return _authorise(request, state, "admin")


async def any_key(request: Request, state: State, _: Credentials) -> ApiKey:
    """Require any valid key."""
    return _authorise(request, state, None)


def _json(body: object) -> Response:
    return Response(content=to_json(body), media_type="application/json")


def _body_doc(model: str) -> dict[str, object]:
    """OpenAPI text for a JSON body parsed by the endpoint itself (its schema is added in `pricing_api.app`)."""
    return {"requestBody": {"required": True, "content": {"application/json": {
        "schema": {"$ref": f"#/components/schemas/{model}"}}}}, "security": [{"HTTPBearer": []}]}


def _parse(model: type[QuoteRequest] | type[BatchRequest], raw: bytes) -> Any:
    """Validate a body straight from bytes (pydantic's JSON parser); errors name fields like FastAPI's would."""
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]) from None


async def quote_json(state: ApiState, authorization: str | None, read_body: Callable[[], Awaitable[bytes]]) -> bytes:
    """The JSON body answering one POST /v1/quotes (raises the API's errors; the fast path shares it)."""
    state.keys.authenticate(authorization, scope="quote")
    body: QuoteRequest = _parse(QuoteRequest, await read_body())
    limit = state.settings.max_items_per_quote
    if len(body.items) > limit:
        raise RequestProblemsError([("items", f"{len(body.items)} items, at most {limit} per quote (use /v1/quotes/batch)")])
    assert state.batcher is not None
    return to_json(await state.batcher.quote(body))


@router.post("/v1/quotes", response_model=QuoteResponse, responses=ERROR_RESPONSES, tags=["quotes"],
             openapi_extra=_body_doc("QuoteRequest"))
async def quotes(request: Request) -> Response:
    """Personalised prices for one customer and the items on the page, inside the shop's guardrails.

    The hot path: authenticated first, then the body parsed by pydantic straight from bytes (the schema is
    QuoteRequest), and priced together with the other quotes arriving in the same event-loop turn. In a
    running app `pricing_api.fast_quotes` answers it before routing, with the same `quote_json`.
    """
    state: ApiState = request.app.state.api
    return Response(content=await quote_json(state, request.headers.get("authorization"), request.body),
                    media_type="application/json")


@router.post("/v1/quotes/batch", response_model=BatchResponse, responses=ERROR_RESPONSES, tags=["quotes"],
             openapi_extra=_body_doc("BatchRequest"))
async def quotes_batch(request: Request) -> Response:
    """Prices for many customers at once, priced in one vectorised pass (e.g. campaign pre-computation)."""
    state: ApiState = request.app.state.api
    _authorise(request, state, "quote")
    raw = await request.body()
    start = time.perf_counter()  # from here on the body is in: what follows is the server's own work
    body: BatchRequest = _parse(BatchRequest, raw)
    s = state.settings
    problems = []
    if len(body.requests) > s.max_batch_requests:
        problems.append(("requests", f"{len(body.requests)} requests, at most {s.max_batch_requests} per batch"))
    total = sum(len(r.items) for r in body.requests)
    if total > s.max_batch_items:
        problems.append(("requests", f"{total} items in total, at most {s.max_batch_items} per batch"))
    if problems:
        raise RequestProblemsError(problems)
    model = state.model()
    assert state.service is not None
    results = await run_in_threadpool(state.service.quote, model, body.requests, batch=True)
    response = _json({"model_version": model.version, "results": results})
    response.headers["server-timing"] = f"price;dur={(time.perf_counter() - start) * 1000.0:.3f}"
    return response


@router.get("/v1/model", response_model=ModelInfo, responses={k: ERROR_RESPONSES[k] for k in (401, 403, 503)},
            tags=["model"])
async def model_info(state: State, _: Annotated[ApiKey, Depends(any_key)]) -> ModelInfo:
    """The served model's signed manifest (version, rounds, per-shop epsilon, held-out metrics, schema hash)."""
    m = state.model()
    return ModelInfo(model_version=m.version, loaded_at=m.loaded_at, manifest=m.manifest)


@router.post("/v1/admin/reload", response_model=ReloadResponse,
             responses={**{k: ERROR_RESPONSES[k] for k in (401, 403)},
                        409: {"model": ErrorBody, "description": "The new model was refused; the old one is still served"}},
             tags=["admin"])
async def reload(state: State, _: Annotated[ApiKey, Depends(admin_key)]) -> ReloadResponse:
    """Verify the registry's LATEST model and swap it in; a refused model leaves the served one in place (409)."""
    result = state.record_reload(await asyncio.to_thread(state.holder.reload))
    if result.status == "refused":
        raise RequestProblemsError([("model", result.detail)], status=409)
    return ReloadResponse(status=result.status, model_version=result.version, detail=result.detail)


# Liveness, readiness and metrics at the root (where probes and Prometheus look by default) and under /v1.
@router.get("/healthz", response_model=Health, tags=["ops"], operation_id="healthz")
@router.get("/v1/healthz", response_model=Health, tags=["ops"], operation_id="healthz_v1")
async def healthz() -> Health:
    """Liveness: the process answers."""
    return Health(status="ok")


_NOT_READY: dict[int | str, dict[str, Any]] = {503: {"model": Health, "description": "Not ready"}}


@router.get("/readyz", response_model=Health, responses=_NOT_READY, tags=["ops"], operation_id="readyz")
@router.get("/v1/readyz", response_model=Health, responses=_NOT_READY, tags=["ops"], operation_id="readyz_v1")
async def readyz(state: State, response: Response) -> Health:
    """Readiness: a verified model is loaded, shops have published features, the audit log is writable."""
    problems = state.readiness_problems()
    current = state.holder.current
    if problems:
        response.status_code = 503
        return Health(status="not_ready", model_version=current.version if current else None, problems=problems)
    return Health(status="ok", model_version=current.version if current else None)


_PROMETHEUS_TEXT: dict[int | str, dict[str, Any]] = {
    200: {"content": {CONTENT_TYPE_LATEST.split(";")[0]: {}}, "description": "Prometheus text format"}}


@router.get("/metrics", tags=["ops"], response_class=Response, responses=_PROMETHEUS_TEXT, operation_id="metrics")
@router.get("/v1/metrics", tags=["ops"], response_class=Response, responses=_PROMETHEUS_TEXT, operation_id="metrics_v1")
async def metrics(state: State) -> Response:
    """Prometheus metrics of this process."""
    current = state.holder.current
    state.metrics.served_model(current.version if current else None)
    return Response(content=state.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

