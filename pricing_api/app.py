"""The app factory: `uvicorn --factory pricing_api.app:create_app`."""

from __future__ import annotations

import os
import sys

if "numpy" not in sys.modules:  # a fresh server process: one BLAS thread (tiny matrices; threads only fight for cores)
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import asyncio  # noqa: E402
import contextlib  # noqa: E402
import logging  # noqa: E402
from collections.abc import AsyncIterator  # noqa: E402
from typing import Any  # noqa: E402

from fastapi import FastAPI  # noqa: E402
from fastapi.openapi.utils import get_openapi  # noqa: E402
from fastapi.routing import APIRoute  # noqa: E402

from pricing_api import errors  # noqa: E402
from pricing_api.fast_quotes import QuoteFastPath  # noqa: E402
from pricing_api.middleware import ServingMiddleware  # noqa: E402
from pricing_api.routes import quotes, router  # noqa: E402
from pricing_api.schemas import BatchRequest, QuoteRequest  # noqa: E402
from pricing_api.settings import ApiSettings, check_settings  # noqa: E402
from pricing_api.state import ApiState  # noqa: E402

log = logging.getLogger(__name__)


async def _watch_registry(state: ApiState) -> None:
    """Poll the registry's LATEST; a new verified model is swapped in, a refused one logged once."""
    interval = state.settings.model_watch_seconds
    while True:
        await asyncio.sleep(interval)
        try:
            result = await asyncio.to_thread(state.holder.reload, force_log=False)
        except Exception:  # the watcher must outlive any surprise; the served model stays
            log.exception("model watcher: reload failed unexpectedly")
            continue
        if result.status != "unchanged":
            state.record_reload(result)


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's schema plus the request bodies the quote endpoints parse themselves (and their sub-models)."""
    if app.openapi_schema is None:
        doc = get_openapi(title=app.title, version=app.version, summary=app.summary, routes=app.routes)
        components = doc.setdefault("components", {})
        schemas = components.setdefault("schemas", {})
        for model in (QuoteRequest, BatchRequest):
            body = model.model_json_schema(ref_template="#/components/schemas/{model}")
            schemas.update(body.pop("$defs", {}))
            schemas[model.__name__] = body
        components.setdefault("securitySchemes", {})["HTTPBearer"] = {"type": "http", "scheme": "bearer"}
        app.openapi_schema = doc
    return app.openapi_schema


def _configure_logging() -> None:
    """Under a bare uvicorn nobody configured logging: send our records to stderr (no-op if it is configured)."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        logging.getLogger("pricing_api").setLevel(logging.INFO)


def create_app(settings: ApiSettings | None = None) -> FastAPI:
    """Build the pricing API; the model is loaded and the audit log opened in the lifespan."""
    _configure_logging()
    settings = settings or ApiSettings()
    check_settings(settings)
    state = ApiState.build(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(state.start)
        watcher = asyncio.create_task(_watch_registry(state)) if settings.model_watch_seconds > 0 else None
        log.info("pricing API ready (model %s, environment %s)",
                 state.holder.current.version if state.holder.current else "none", settings.environment)
        try:
            yield
        finally:
            if watcher is not None:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
            await asyncio.to_thread(state.stop)

    production = settings.environment == "production"
    app = FastAPI(
        title="fedprice pricing API",
        version="1",
        summary="One price per customer from the federated demand model, inside the shop's guardrails.",
        lifespan=lifespan,
        docs_url=None if production else "/docs",
        redoc_url=None,
    )
    app.state.api = state
    errors.install(app)
    app.include_router(router)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    route = next(r for r in router.routes if isinstance(r, APIRoute) and r.endpoint is quotes)  # what routing puts in scope
    app.add_middleware(QuoteFastPath, state=state, route=route)  # inside ServingMiddleware (added last = outermost)
    app.add_middleware(ServingMiddleware, metrics=state.metrics, max_body_bytes=settings.max_body_bytes)
    return app
