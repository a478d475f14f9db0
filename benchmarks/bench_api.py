"""Pricing API benchmark: quote throughput vs a bare FastAPI endpoint, latency at half load, a 10,000-item batch.

Both servers run as real uvicorn processes with identical settings (1 worker, uvloop, httptools, no access
log) and are loaded by the same generator, wrk (Debian package `wrk`), with the same connections and threads.
Without arguments it builds a small synthetic world (2 shops, signed model) in a temporary directory;
`--registry/--public-key/--feature-store/--shops-dir` point it at real data instead (e.g. the demo's).

    .venv/bin/python benchmarks/bench_api.py [--duration 10] [--connections 16] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from server.deploy.processes import free_port, terminate

UVICORN_FLAGS = ["--workers", "1", "--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning"]
TARGETS = {"throughput_ratio": 0.60, "p99_ms_at_half_load": 20.0, "batch_10k_ms": 100.0}
HERE = Path(__file__).resolve().parent

LUA = r"""
local bodies = {}
for line in io.lines(os.getenv("BENCH_BODIES")) do bodies[#bodies + 1] = line end
local key = os.getenv("BENCH_KEY")
local mean_delay = tonumber(os.getenv("BENCH_DELAY_MS") or "0")
local counter = 0
function setup(thread) thread:set("offset", math.random(1, #bodies)) end
function init(args) counter = offset or 1; math.randomseed(os.time() + counter) end
function request()
  counter = counter % #bodies + 1
  local headers = {["Content-Type"] = "application/json"}
  if key ~= "" then headers["Authorization"] = "Bearer " .. key end
  return wrk.format("POST", nil, headers, bodies[counter])
end
function delay()
  if mean_delay <= 0 then return 0 end
  return math.floor(-math.log(1 - math.random()) * mean_delay)
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests": %d, "duration_us": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, "p999_us": %d, ' ..
    '"max_us": %d, "errors": %d, "non_2xx": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, e.connect + e.read + e.write + e.timeout, e.status))
end
"""


def create_bare_app() -> Any:
    """The baseline: a FastAPI app whose one endpoint returns a constant."""
    from fastapi import FastAPI

    app = FastAPI()

    @app.post("/bare")
    async def bare() -> dict[str, str]:
        return {"status": "ok"}

    return app


def build_world(root: Path) -> dict[str, Path]:
    """Two synthetic shops prepared by the real shop pipeline, and a signed (untrained) model."""
    from client.prepare import prepare_shop
    from client.storage import ShopPaths
    from demand.model import DemandModel
    from server.registry import publish
    from server.signing import load_or_create_signing_key, public_key_path
    from simulation.synthetic import MarketConfig, generate_market

    generate_market(MarketConfig.small(), root / "shops")
    for shop in ("S1", "S2"):
        prepare_shop(ShopPaths(shop, root / "shops" / shop), feature_store=root / "fs.sqlite")
    key_path = root / "central" / "signing.key"
    publish(root / "registry", DemandModel().state_dict(), {"rounds": 0, "note": "benchmark"},
            load_or_create_signing_key(key_path))
    return {"registry": root / "registry", "public_key": public_key_path(key_path), "feature_store": root / "fs.sqlite",
            "shops_dir": root / "shops"}


def request_pool(world: dict[str, Path], *, n: int, items: int, seed: int = 3) -> list[dict[str, Any]]:
    """Storefront-like quote requests: real customers of each shop (10% unknown), baskets of its products."""
    import numpy as np
    import pandas as pd

    from feature_store.store import connect, published_shops, shop_products

    rng = np.random.default_rng(seed)
    conn = connect(world["feature_store"], readonly=True)
    try:
        shops = sorted(published_shops(conn))
        catalogues = {s: list(shop_products(conn, s).values()) for s in shops}
    finally:
        conn.close()
    customers = {}
    for s in shops:
        raw = pd.read_csv(world["shops_dir"] / s / "raw" / "export.csv", dtype=str, encoding="utf-8-sig", usecols=["CUSTOMER_ID"])
        customers[s] = raw["CUSTOMER_ID"].dropna().unique().tolist()
    pool = []
    for i in range(n):
        shop = shops[i % len(shops)]
        cid = f"unknown-{i}" if rng.random() < 0.1 else str(rng.choice(customers[shop]))
        picks = rng.choice(len(catalogues[shop]), size=min(items, len(catalogues[shop])), replace=False)
        basket = [{"product_id": catalogues[shop][j].product_id, "list_price": round(catalogues[shop][j].ref_price, 2),
                   "unit_cost": round(min(catalogues[shop][j].unit_cost, 0.9 * catalogues[shop][j].ref_price), 2)}
                  for j in picks]
        pool.append({"shop_id": shop, "customer_id": cid, "items": basket})
    return pool


class Server:
    """One uvicorn process on a free port, stopped by pid."""

    def __init__(self, target: list[str], env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.log = log
        self.proc = subprocess.Popen([sys.executable, "-m", "uvicorn", *target, "--host", "127.0.0.1", "--port", str(self.port),
                                      *UVICORN_FLAGS], env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)

    def wait(self, path: str, timeout: float = 90.0) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited ({self.proc.returncode}); see {self.log}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}{path}", timeout=1.0).status_code < 500:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"server not ready after {timeout} s; see {self.log}")

    def stop(self) -> None:
        terminate(self.proc, grace=15)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk(url: str, *, lua: Path, bodies: Path, key: str, duration: float, connections: int,
        delay_ms: float = 0.0, pid: int | None = None) -> dict[str, Any]:
    """One wrk run; returns requests/s, latency percentiles (ms) and the server's CPU per request (µs)."""
    env = {**os.environ, "BENCH_BODIES": str(bodies), "BENCH_KEY": key, "BENCH_DELAY_MS": f"{delay_ms:.3f}"}
    cpu0 = cpu_seconds(pid) if pid else 0.0
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{duration:.0f}s", "--timeout", "5s", "-s", str(lua), url],
                         env=env, capture_output=True, text=True, check=True).stdout
    line = next(ln for ln in out.splitlines() if ln.startswith("WRKJSON "))
    r = json.loads(line[len("WRKJSON "):])
    secs = r["duration_us"] / 1e6
    cpu_us = (cpu_seconds(pid) - cpu0) * 1e6 / max(r["requests"], 1) if pid else float("nan")
    return {"rps": r["requests"] / secs, "requests": r["requests"], "errors": r["errors"], "non_2xx": r["non_2xx"],
            "server_cpu_us_per_request": cpu_us,
            **{k.replace("_us", "_ms"): r[k] / 1000.0 for k in ("p50_us", "p90_us", "p99_us", "p999_us", "max_us")}}


def batch_timing(base: str, key: str, pool: list[dict[str, Any]], *, items: int, runs: int, pid: int) -> dict[str, Any]:
    """Server-side time to price one batch of `items` items (Server-Timing `price`: from the received body to the
    serialised response) and the server's CPU for it; other customers each run, so nothing is reused."""
    import httpx

    per_request = 100
    n_req = items // per_request
    product_ids = [f"sku-{j:05d}" for j in range(per_request)]
    times, client, cpu = [], [], []
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=60.0) as http:
        for run in range(runs + 1):
            reqs = []
            for i in range(n_req):
                src = pool[(run * n_req + i) % len(pool)]
                known = src["items"]
                extra = [{"product_id": pid, "list_price": 10.0 + (j % 37), "unit_cost": 6.0 + (j % 37) * 0.5}
                         for j, pid in enumerate(product_ids[len(known):])]
                reqs.append({"shop_id": src["shop_id"], "customer_id": f"{src['customer_id']}" if run else f"warm-{i}",
                             "items": (known + extra)[:per_request]})
            payload = json.dumps({"requests": reqs}).encode()
            time.sleep(0.3)  # the previous batch's audit rows are written meanwhile
            c0, t0 = cpu_seconds(pid), time.perf_counter()
            resp = http.post("/v1/quotes/batch", content=payload, headers={"Content-Type": "application/json"})
            took = (time.perf_counter() - t0) * 1000.0
            used = (cpu_seconds(pid) - c0) * 1000.0
            resp.raise_for_status()
            n_items = sum(len(r["quotes"]) for r in resp.json()["results"])
            if n_items != items:
                raise RuntimeError(f"batch priced {n_items} items, expected {items}")
            if run:  # run 0 warms caches
                timing = dict(part.strip().split(";dur=") for part in resp.headers["server-timing"].split(","))
                times.append(float(timing["price"]))  # body received -> response ready (parse, price, serialise)
                client.append(took)
                cpu.append(used)
    return {"items": items, "server_ms_median": statistics.median(times), "server_ms_max": max(times),
            "client_ms_median": statistics.median(client), "server_cpu_ms_median": statistics.median(cpu), "runs": runs}


def main() -> int:
    """Run the benchmark and print (and optionally save) the figures and ratios."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=6.0, help="Seconds per wrk run.")
    ap.add_argument("--rounds", type=int, default=3, help="Alternating quote/bare rounds at full load (medians kept).")
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--items", type=int, default=4, help="Items per quote request.")
    ap.add_argument("--batch-items", type=int, default=10_000)
    ap.add_argument("--batch-runs", type=int, default=5)
    ap.add_argument("--registry", type=Path)
    ap.add_argument("--public-key", type=Path)
    ap.add_argument("--feature-store", type=Path)
    ap.add_argument("--shops-dir", type=Path)
    ap.add_argument("--json", type=Path, help="Also write the results here.")
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install -y wrk", file=sys.stderr)
        return 2
    root = Path(tempfile.mkdtemp(prefix="fedprice-bench-"))
    servers: list[Server] = []
    try:
        if args.registry:
            world = {"registry": args.registry, "public_key": args.public_key, "feature_store": args.feature_store,
                     "shops_dir": args.shops_dir}
        else:
            print("building a synthetic world (2 shops, signed model) ...", flush=True)
            world = build_world(root / "world")
        from pricing_api.apikeys import create_key

        key = create_key(root / "api_keys.json", name="bench", scopes=frozenset({"quote"}))
        env = {**os.environ, "FLWR_TELEMETRY_ENABLED": "0", "FLWR_DISABLE_UPDATE_CHECK": "1",
               "FEDPRICE_API_REGISTRY_DIR": str(world["registry"]), "FEDPRICE_API_PUBLIC_KEY": str(world["public_key"]),
               "FEDPRICE_API_FEATURE_STORE": str(world["feature_store"]), "FEDPRICE_API_SHOPS_DIR": str(world["shops_dir"]),
               "FEDPRICE_API_AUDIT_DB": str(root / "audit.sqlite"), "FEDPRICE_API_API_KEYS_FILE": str(root / "api_keys.json"),
               "FEDPRICE_API_MAX_BODY_BYTES": str(8 * 1024 * 1024)}
        pool = request_pool(world, n=2000, items=args.items)
        bodies = root / "bodies.jsonl"
        bodies.write_text("\n".join(json.dumps(b, separators=(",", ":")) for b in pool) + "\n")
        lua = root / "bench.lua"
        lua.write_text(LUA)

        quote = Server(["--factory", "pricing_api.app:create_app"], env, root / "quote.log")
        bare = Server(["--factory", "--app-dir", str(HERE), "bench_api:create_bare_app"], env, root / "bare.log")
        servers += [quote, bare]
        quote.wait("/readyz")
        bare.wait("/docs")
        q_url, b_url = f"http://127.0.0.1:{quote.port}/v1/quotes", f"http://127.0.0.1:{bare.port}/bare"
        common = {"lua": lua, "bodies": bodies, "key": key, "connections": args.connections}
        print(f"warming up; then {args.duration:.0f} s per run, wrk -t1 -c{args.connections}, {args.items} items per quote",
              flush=True)
        wrk(q_url, duration=3, **common)
        wrk(b_url, duration=3, **common)
        # Alternate the two endpoints, so load from anything else on the machine hits both alike; keep the medians.
        q_runs, b_runs = [], []
        load_before = os.getloadavg()
        for _ in range(args.rounds):
            q_runs.append(wrk(q_url, duration=args.duration, pid=quote.proc.pid, **common))
            b_runs.append(wrk(b_url, duration=args.duration, pid=bare.proc.pid, **common))
        q_max = sorted(q_runs, key=lambda r: r["rps"])[len(q_runs) // 2]
        b_max = sorted(b_runs, key=lambda r: r["rps"])[len(b_runs) // 2]
        half = q_max["rps"] / 2
        delay = 1000.0 * args.connections / half
        q_half = wrk(q_url, duration=args.duration, delay_ms=delay, **common)
        if q_half["rps"] < 0.9 * half:  # each connection also waits for its responses: correct the pacing once
            q_half = wrk(q_url, duration=args.duration, delay_ms=delay * q_half["rps"] / half, **common)
        batch = batch_timing(f"http://127.0.0.1:{quote.port}", key, pool, items=args.batch_items, runs=args.batch_runs,
                             pid=quote.proc.pid)
    finally:
        for s in servers:
            s.stop()
    results = {
        "quote_max": q_max, "bare_max": b_max, "quote_half_load": {**q_half, "target_rps": half}, "batch": batch,
        "throughput_ratio": q_max["rps"] / b_max["rps"],
        "round_ratios": [q["rps"] / b["rps"] for q, b in zip(q_runs, b_runs, strict=True)],
        "cpu_ratio": statistics.median(b["server_cpu_us_per_request"] for b in b_runs)
        / statistics.median(q["server_cpu_us_per_request"] for q in q_runs),
        "load_average": {"before": load_before, "after": os.getloadavg()},
        "p99_ms_at_half_load": q_half["p99_ms"], "batch_10k_ms": batch["server_ms_median"] * 10_000 / batch["items"],
        "settings": {"uvicorn": UVICORN_FLAGS, "wrk": f"-t1 -c{args.connections} -d{args.duration:.0f}s",
                     "items_per_quote": args.items, "cpus": os.cpu_count()},
    }
    report(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    shutil.rmtree(root, ignore_errors=True)
    return 0


def report(r: dict[str, Any]) -> None:
    """Print the figures, the ratios and each target's verdict."""
    q, b, h, bt = r["quote_max"], r["bare_max"], r["quote_half_load"], r["batch"]
    print(f"\nbare FastAPI constant : {b['rps']:8.0f} req/s  p50 {b['p50_ms']:.2f} ms  p99 {b['p99_ms']:.2f} ms  "
          f"errors {b['errors'] + b['non_2xx']}")
    print(f"POST /v1/quotes (max) : {q['rps']:8.0f} req/s  p50 {q['p50_ms']:.2f} ms  p99 {q['p99_ms']:.2f} ms  "
          f"errors {q['errors'] + q['non_2xx']}")
    print(f"POST /v1/quotes (half): {h['rps']:8.0f} req/s (target {h['target_rps']:.0f})  p50 {h['p50_ms']:.2f} ms  "
          f"p90 {h['p90_ms']:.2f} ms  p99 {h['p99_ms']:.2f} ms  errors {h['errors'] + h['non_2xx']}")
    print(f"batch of {bt['items']} items : server {bt['server_ms_median']:.1f} ms median (max {bt['server_ms_max']:.1f}), "
          f"client round trip {bt['client_ms_median']:.1f} ms, server CPU {bt['server_cpu_ms_median']:.1f} ms, {bt['runs']} runs")
    print("per-round throughput ratios: " + ", ".join(f"{x:.2f}" for x in r["round_ratios"]))
    print(f"server CPU per request: quote {q['server_cpu_us_per_request']:.0f} µs, bare {b['server_cpu_us_per_request']:.0f} µs "
          f"-> capacity ratio {r['cpu_ratio']:.2f} (robust to other load on the machine)")
    la = r["load_average"]
    print(f"machine load average (1 min) before/after: {la['before'][0]:.1f} / {la['after'][0]:.1f} on {os.cpu_count()} CPUs")
    print("\nratio / target                         value    target   verdict")
    rows = (("quote throughput / bare", r["throughput_ratio"], TARGETS["throughput_ratio"], "high"),
            ("p99 at half load (ms)", r["p99_ms_at_half_load"], TARGETS["p99_ms_at_half_load"], "low"),
            ("10k-item batch, server (ms)", r["batch_10k_ms"], TARGETS["batch_10k_ms"], "low"))
    for name, value, target, better in rows:
        ok = value >= target if better == "high" else value <= target
        print(f"  {name:<34} {value:8.2f} {target:9.2f}   {'met' if ok else 'MISSED'}")


if __name__ == "__main__":
    sys.exit(main())
