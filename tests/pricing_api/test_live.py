"""The API as a real uvicorn process: schemathesis against the live OpenAPI schema, reloads under steady load."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import requests
import schemathesis
from api_world import World, basket
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from pricing_api.apikeys import create_key


@dataclass
class Live:
    """A running server."""

    base: str
    key: str
    registry: Path
    log: Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(cmd: list[str], env: dict[str, str], log: Path, base: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(cmd, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    stop(proc)
    raise RuntimeError(f"server not ready: {log.read_text()[-2000:]}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def server_env(world: World, root: Path, registry: Path) -> dict[str, str]:
    return {**os.environ, "FLWR_TELEMETRY_ENABLED": "0", "FLWR_DISABLE_UPDATE_CHECK": "1",
            "FEDPRICE_API_REGISTRY_DIR": str(registry), "FEDPRICE_API_PUBLIC_KEY": str(world.public_key),
            "FEDPRICE_API_FEATURE_STORE": str(world.feature_store), "FEDPRICE_API_SHOPS_DIR": str(world.shops_dir),
            "FEDPRICE_API_AUDIT_DB": str(root / "audit.sqlite"), "FEDPRICE_API_API_KEYS_FILE": str(root / "keys.json"),
            "FEDPRICE_API_MODEL_WATCH_SECONDS": "0"}


@pytest.fixture
def live(world: World, registry_copy: Path, tmp_path: Path) -> Iterator[Live]:
    """uvicorn serving the world on a free loopback port; stopped by pid afterwards."""
    key = create_key(tmp_path / "keys.json", name="tester", scopes=frozenset({"quote", "admin"}))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "uvicorn", "pricing_api.app:create_app", "--factory", "--host", "127.0.0.1",
           "--port", str(port), "--log-level", "warning"]
    proc = start_server(cmd, server_env(world, tmp_path, registry_copy), tmp_path / "server.log", base)
    try:
        yield Live(base, key, registry_copy, tmp_path / "server.log")
    finally:
        stop(proc)


def published_shop(case: schemathesis.Case) -> schemathesis.Case:
    """Point half of the generated requests at a shop that exists, so pricing itself gets fuzzed too."""
    body = case.body
    if isinstance(body, dict):
        nested = body.get("requests")
        targets = [body] if "shop_id" in body else [r for r in nested if isinstance(r, dict)] if isinstance(nested, list) else []
        for target in targets:
            if isinstance(target.get("shop_id"), str) and len(str(target.get("customer_id"))) % 2 == 0:
                target["shop_id"] = "S1"
    return case


def test_schemathesis_finds_no_server_error(live: Live) -> None:
    schema = schemathesis.openapi.from_url(f"{live.base}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {f"{op.method.upper()} {op.path}" for op in operations} >= {"POST /v1/quotes", "POST /v1/quotes/batch",
                                                                        "GET /v1/model", "POST /v1/admin/reload"}
    statuses: Counter[int] = Counter()
    errors: list[str] = []
    odd: list[str] = []
    session = requests.Session()
    auth = {"Authorization": f"Bearer {live.key}"}
    budget = {"POST /v1/quotes": 350, "POST /v1/quotes/batch": 200}
    for op in operations:
        name = f"{op.method.upper()} {op.path}"
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(max_examples=budget.get(name, 25), deadline=None, database=None, derandomize=True,
                      suppress_health_check=list(HealthCheck))
            @given(case=op.as_strategy(generation_mode=mode, headers=auth).map(published_shop))
            def call(case: schemathesis.Case) -> None:
                response = case.call(base_url=live.base, session=session, timeout=30)
                statuses[response.status_code] += 1
                if response.status_code == 400:
                    odd.append(f"{case.method} {case.path} {case.body!r:.200} -> {response.text[:200]}")
                if response.status_code >= 500:
                    errors.append(f"{case.method} {case.path} -> {response.status_code}: {response.text[:300]}")

            try:
                call()
            except Unsatisfiable:  # no parameters or body to make invalid (e.g. GET /healthz in negative mode)
                assert mode == GenerationMode.NEGATIVE and not op.body and not op.query, name
    print(statuses, odd[:5])
    assert not errors, errors[:5]
    assert sum(statuses.values()) >= 1000, statuses
    assert statuses[200] > 50 and statuses[422] > 100, statuses


def test_no_request_fails_while_models_are_reloaded(live: Live, world: World) -> None:
    stop_flag = threading.Event()
    seen: Counter[str] = Counter()
    failures: list[str] = []
    bodies = [{"shop_id": shop, "customer_id": cid, "items": basket(world, shop, n=3)}
              for shop in ("S1", "S2") for cid in world.customers[shop][:5]]

    def load() -> None:
        with httpx.Client(base_url=live.base, headers={"Authorization": f"Bearer {live.key}"}, timeout=30) as http:
            i = 0
            while not stop_flag.is_set():
                body = bodies[i % len(bodies)]
                i += 1
                try:
                    resp = http.post("/v1/quotes", json=body)
                except httpx.HTTPError as exc:  # a dropped connection is a failed request too
                    failures.append(f"{type(exc).__name__}: {exc}")
                    continue
                if resp.status_code != 200:
                    failures.append(f"{resp.status_code} {resp.text[:200]}")
                else:
                    seen[resp.json()["model_version"]] += 1

    threads = [threading.Thread(target=load) for _ in range(3)]
    for t in threads:
        t.start()
    versions = [(live.registry / "LATEST").read_text().strip()]
    try:
        with httpx.Client(base_url=live.base, headers={"Authorization": f"Bearer {live.key}"}, timeout=60) as admin:
            for seed in (11, 12, 13):
                time.sleep(0.4)
                new_dir = world.publish_model(live.registry, seed=seed)
                if seed == 12:  # a broken one in between: refused, the previous model keeps serving
                    (new_dir / "model.safetensors").write_bytes(b"half")
                    assert admin.post("/v1/admin/reload").status_code == 409
                    continue
                assert admin.post("/v1/admin/reload").json()["status"] == "loaded"
                versions.append(new_dir.name)
            time.sleep(0.4)
    finally:
        stop_flag.set()
        for t in threads:
            t.join(timeout=30)
    assert not failures, failures[:5]
    assert set(seen) == set(versions) and sum(seen.values()) > 50, seen
    assert "refused model" in live.log.read_text()


def test_fedprice_api_serve_runs_uvicorn(world: World, tmp_path: Path) -> None:
    create_key(tmp_path / "keys.json", name="ops", scopes=frozenset({"quote"}))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "fedprice", "api", "serve", "--host", "127.0.0.1", "--port", str(port)]
    proc = start_server(cmd, server_env(world, tmp_path, world.registry), tmp_path / "serve.log", base)
    try:
        assert httpx.get(f"{base}/healthz").json()["status"] == "ok"
    finally:
        stop(proc)
    log = (tmp_path / "serve.log").read_text()
    assert "Application shutdown complete." in log  # SIGTERM reached uvicorn itself (the CLI exec'd it)
    assert "pricing API ready (model " in log
