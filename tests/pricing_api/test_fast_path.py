"""POST /v1/quotes answered by the pure-ASGI fast path and by the FastAPI route: identical for good and bad requests."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from api_world import World, basket
from fastapi.testclient import TestClient

from pricing_api.apikeys import create_key
from pricing_api.app import create_app
from pricing_api.fast_quotes import QuoteFastPath
from pricing_api.settings import ApiSettings

Pair = tuple[TestClient, TestClient, dict[str, str]]


@pytest.fixture
def pair(settings_for: Callable[..., ApiSettings], tmp_path: Any) -> Iterator[Pair]:
    """Two apps on the same world and keys: the normal one and one without the fast path (the route answers)."""
    keys = {who: create_key(tmp_path / "api_keys.json", name=who, scopes=frozenset(scopes))
            for who, scopes in (("quote", {"quote"}), ("admin", {"admin"}))}
    fast_app = create_app(settings_for(max_body_bytes=4000, max_items_per_quote=5, audit_db=tmp_path / "fast.sqlite"))
    route_app = create_app(settings_for(max_body_bytes=4000, max_items_per_quote=5, audit_db=tmp_path / "route.sqlite"))
    assert any(m.cls is QuoteFastPath for m in route_app.user_middleware)
    route_app.user_middleware = [m for m in route_app.user_middleware if m.cls is not QuoteFastPath]
    with TestClient(fast_app, raise_server_exceptions=False) as fast, \
            TestClient(route_app, raise_server_exceptions=False) as route:
        yield fast, route, keys


def _cases(world: World, keys: dict[str, str]) -> list[tuple[str, dict[str, Any]]]:
    good = {"shop_id": "S1", "customer_id": world.customers["S1"][0], "items": basket(world, n=3)}
    auth = {"Authorization": f"Bearer {keys['quote']}"}
    post = "POST"
    return [
        (post, {"json": good, "headers": auth}),
        (post, {"json": good, "headers": auth}),  # the consistency window: the same prices again
        (post, {"json": {**good, "customer_id": "somebody-new", "items": [*basket(world, n=1), {"product_id": "never-sold",
                "list_price": 20.0, "unit_cost": 12.0, "competitor_price": 19.0, "category": "x"}]}, "headers": auth}),
        (post, {"json": good}),
        (post, {"json": good, "headers": {"Authorization": "Basic abc"}}),
        (post, {"json": good, "headers": {"Authorization": "Bearer not-a-key"}}),
        (post, {"json": good, "headers": {"Authorization": f"Bearer {keys['admin']}"}}),
        (post, {"json": {**good, "shop_id": "NOPE"}, "headers": auth}),
        (post, {"json": {**good, "items": basket(world, n=3) * 2}, "headers": auth}),
        (post, {"json": {**good, "items": [{"product_id": "p", "list_price": 10, "unit_cost": 50}]}, "headers": auth}),
        (post, {"json": {**good, "items": [{"product_id": "p", "list_price": -1, "unit_cost": 0, "extra": 1}]}, "headers": auth}),
        (post, {"json": {"shop_id": "S1"}, "headers": auth}),
        (post, {"content": b"{not json", "headers": auth}),
        (post, {"content": b"", "headers": auth}),
        (post, {"content": b"x" * 5000, "headers": auth}),
        (post, {"chunks": [b"x" * 3000, b"x" * 3000], "headers": auth}),  # no length: the limit hits while reading
        ("GET", {"headers": auth}),
        ("PUT", {"json": good, "headers": auth}),
    ]


def _send(client: TestClient, method: str, kwargs: dict[str, Any]) -> httpx.Response:
    if "chunks" in kwargs:  # a fresh generator per request: httpx streams it chunked
        kwargs = {**kwargs, "content": iter(kwargs["chunks"])}
        del kwargs["chunks"]
    return client.request(method, "/v1/quotes", **kwargs)


def _comparable(resp: httpx.Response) -> tuple[int, bytes, list[tuple[str, str]]]:
    headers = [(k, re.sub(r"dur=[0-9.]+", "dur=*", v)) for k, v in resp.headers.multi_items() if k != "date"]
    return resp.status_code, resp.content, headers


def test_fast_path_and_route_answer_identically(pair: Pair, world: World) -> None:
    fast, route, keys = pair
    statuses = set()
    for method, kwargs in _cases(world, keys):
        a, b = _send(fast, method, kwargs), _send(route, method, kwargs)
        assert _comparable(a) == _comparable(b), (method, kwargs.get("json"), a.text, b.text)
        statuses.add(a.status_code)
    assert statuses >= {200, 401, 403, 404, 405, 413, 422}, statuses

    def requests_metric(client: TestClient) -> list[str]:
        text = client.get("/metrics").text
        return sorted(line for line in text.splitlines() if line.startswith("fedprice_api_requests_total"))

    assert requests_metric(fast) == requests_metric(route)
    assert any('route="/v1/quotes",status="200"' in line for line in requests_metric(fast))


def test_fast_path_leaves_other_paths_to_the_app(pair: Pair, world: World) -> None:
    fast, route, keys = pair
    auth = {"Authorization": f"Bearer {keys['quote']}"}
    for path in ("/v1/quotes/", "/v1/quotesx", "/v1/quotes/batch"):
        a = fast.post(path, json={"requests": []}, headers=auth, follow_redirects=False)
        b = route.post(path, json={"requests": []}, headers=auth, follow_redirects=False)
        assert _comparable(a) == _comparable(b), path


def _leave_mid_body(client: TestClient, key: str) -> list[dict[str, Any]]:
    """Send half a quote body straight to the ASGI app, then disconnect; return what the app sent back."""
    messages: list[dict[str, Any]] = []
    incoming = iter([{"type": "http.request", "body": b'{"shop_id": "S1", ', "more_body": True}, {"type": "http.disconnect"}])

    async def receive() -> dict[str, Any]:
        return next(incoming)

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/v1/quotes", "raw_path": b"/v1/quotes", "root_path": "", "query_string": b"",
             "headers": [(b"authorization", f"Bearer {key}".encode()), (b"content-type", b"application/json")],
             "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 80), "state": {}}
    assert client.portal is not None
    client.portal.call(client.app, scope, receive, send)  # raises if the disconnect escaped to the server
    return messages


def test_a_client_that_leaves_mid_body_is_no_server_error(pair: Pair, caplog: pytest.LogCaptureFixture) -> None:
    """Both paths: nothing is sent, nothing is logged as an error, the metrics count it as 499, not 500."""
    fast, route, keys = pair
    for client in (fast, route):
        assert _leave_mid_body(client, keys["quote"]) == []
        metrics = client.get("/metrics").text
        assert 'fedprice_api_requests_total{method="POST",route="/v1/quotes",status="499"} 1.0' in metrics
        assert 'route="/v1/quotes",status="500"' not in metrics
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
