"""Micro-batching: single-customer quotes that arrive together are priced in one vectorised pass.

No request waits for a timer. The first quote schedules a flush with `call_soon`, which runs after the
callbacks the event loop already has queued: requests that arrived in the same loop turn join the batch.
While the batch keeps growing from one loop turn to the next (the server is busy), the flush steps back
one more turn, at most MAX_TURNS times; under light load a batch is one request, priced a turn later. A
batch that fails (one bad request) is priced again request by request, so no error reaches another.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from pricing_api.model_holder import ServingModel
from pricing_api.quoting import QuoteService
from pricing_api.schemas import QuoteRequest

log = logging.getLogger(__name__)
MAX_TURNS = 3  # loop turns a batch may wait while it is still growing
MAX_WAITING = 256  # requests; a batch this large is priced at once


class QuoteBatcher:
    """Collects concurrent quote requests within one event-loop turn and prices them together."""

    def __init__(self, service: QuoteService, model: Callable[[], ServingModel], *, max_items: int = 4096) -> None:
        self.service = service
        self.model = model
        self.max_items = max_items
        self._pending: list[tuple[QuoteRequest, asyncio.Future[dict[str, Any]]]] = []
        self._scheduled = False
        self._turns = 0
        self._seen = 0
        self.batches = 0
        self.requests = 0

    async def quote(self, request: QuoteRequest) -> dict[str, Any]:
        """The response body for one request (raises what pricing it alone would raise)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[dict[str, Any]] = loop.create_future()
        self._pending.append((request, future))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        grew = len(self._pending) > self._seen
        if grew and self._turns < MAX_TURNS and len(self._pending) < MAX_WAITING:
            self._turns += 1
            self._seen = len(self._pending)
            asyncio.get_running_loop().call_soon(self._flush)
            return
        self._scheduled = False
        self._turns = self._seen = 0
        pending, self._pending = self._pending, []
        chunk: list[tuple[QuoteRequest, asyncio.Future[dict[str, Any]]]] = []
        items = 0
        for entry in pending:
            if chunk and items + len(entry[0].items) > self.max_items:
                self._price(chunk)
                chunk, items = [], 0
            chunk.append(entry)
            items += len(entry[0].items)
        if chunk:
            self._price(chunk)

    def _price(self, chunk: list[tuple[QuoteRequest, asyncio.Future[dict[str, Any]]]]) -> None:
        live = [(r, f) for r, f in chunk if not f.done()]  # a client that went away cancelled its future
        if not live:
            return
        self.batches += 1
        self.requests += len(live)
        try:
            model = self.model()
            bodies = self.service.quote(model, [r for r, _ in live], batch=False)
        except Exception as exc:
            if len(live) == 1:
                live[0][1].set_exception(exc)
                return
            for r, f in live:  # somebody's request is bad: price each alone so only that one fails
                try:
                    f.set_result(self.service.quote(self.model(), [r], batch=False)[0])
                except Exception as single:
                    f.set_exception(single)
            return
        for (_, f), body in zip(live, bodies, strict=True):
            f.set_result(body)
