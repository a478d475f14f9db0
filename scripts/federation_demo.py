"""`make federation-demo`: the README's "Deploying to real shops" steps, run on this machine.

Three shops as three local SuperNodes (TLS, node authentication) and a SuperLink with persistent state;
a two-round DP training run launched with `flwr run`; the signed model verified; then a quote from the
pricing API on that model. Every command is printed before it runs, and every process started here is
stopped by its pid at the end (also on errors and Ctrl-C). Work happens in var/federation-demo/.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx

from server.deploy.layout import CentralLayout
from server.deploy.processes import Background, free_port
from server.deploy.shops import node_status
from server.deploy.superlink import wait_for_tls

REPO = Path(__file__).resolve().parents[1]
FEDPRICE = str(Path(sys.executable).parent / "fedprice")
ENV = {**os.environ, "FLWR_TELEMETRY_ENABLED": "0", "FLWR_DISABLE_UPDATE_CHECK": "1"}


def show(args: list[str], background: bool = False) -> None:
    """Print a command as a reader would type it."""
    print("\n$ fedprice " + " ".join(shlex.quote(a) for a in args) + (" &" if background else ""), flush=True)


def title(text: str) -> None:
    print(f"\n=== {text} ===", flush=True)


def fedprice(args: list[str], *, capture: bool = False) -> str:
    """Run one `fedprice` command in the foreground (output shown, or captured when `capture`)."""
    show(args)
    out = subprocess.run([FEDPRICE, *args], env=ENV, check=True, text=True, stdout=subprocess.PIPE if capture else None)
    return out.stdout or ""


def background(name: str, args: list[str], logs: Path, env: dict[str, str] | None = None) -> Background:
    """Start one `fedprice` command in the background, its output in logs/<name>.log."""
    show(args, background=True)
    proc = Background(name, [FEDPRICE, *args], log_path=logs / f"{name}.log", env=env or ENV)
    print(f"  (pid {proc.pid}, log {proc.log_path})", flush=True)
    return proc


def wait_online(central: CentralLayout, want: int, procs: list[Background], timeout: float = 90.0) -> None:
    """Wait until `want` SuperNodes are online on the SuperLink."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for p in procs:
            if not p.alive():
                raise SystemExit(f"{p.name} exited:\n{p.output()[-2000:]}")
        online = [n for n, s in node_status(central).items() if s == "online"]
        if len(online) >= want:
            print(f"  {len(online)} SuperNodes online", flush=True)
            return
        time.sleep(1.0)
    raise SystemExit(f"only {len(online)} of {want} SuperNodes came online within {timeout:.0f} s")


def synthetic_shops(shops_dir: Path) -> list[str]:
    """Three small synthetic shops (S1-S3) in the real export format, for machines without the Ta Feng download."""
    from simulation.synthetic import MarketConfig, generate_market

    print("\n(python) generate_market(MarketConfig.small(), shops_dir)  # synthetic S1-S3", flush=True)
    generate_market(MarketConfig.small(), shops_dir)
    return ["S1", "S2", "S3"]


def storefront_request(shops_dir: Path, store: Path, shop: str) -> dict[str, object]:
    """What a storefront sends: the shop's most frequent customer (raw id, as the storefront knows it) and two
    popular products whose unit cost lies below the list price."""
    import pandas as pd

    from feature_store.store import connect, shop_products

    raw = pd.read_csv(shops_dir / shop / "raw" / "export.csv", dtype=str, encoding="utf-8-sig", usecols=["CUSTOMER_ID"])
    conn = connect(store, readonly=True)
    try:
        products = sorted((p for p in shop_products(conn, shop).values() if 0 < p.unit_cost < p.ref_price),
                          key=lambda p: -p.buy_rate)[:2]
    finally:
        conn.close()
    return {"shop_id": shop, "customer_id": str(raw["CUSTOMER_ID"].value_counts().index[0]),
            "items": [{"product_id": p.product_id, "list_price": round(p.ref_price, 2), "unit_cost": round(p.unit_cost, 2)}
                      for p in products]}


def quote(work: Path, shops_dir: Path, store: Path, registry: Path, public_key: Path, shop: str,
          procs: list[Background]) -> None:
    """Create an API key, serve the API on the published model, ask it for one customer's prices."""
    keys = work / "api_keys.json"
    key = fedprice(["api", "create-key", "--name", "storefront-demo", "--scopes", "quote", "--keys-file", str(keys)],
                   capture=True).strip().splitlines()[-1]
    port = free_port()
    api_env = {**ENV, "FEDPRICE_API_REGISTRY_DIR": str(registry), "FEDPRICE_API_PUBLIC_KEY": str(public_key),
               "FEDPRICE_API_FEATURE_STORE": str(store), "FEDPRICE_API_SHOPS_DIR": str(shops_dir),
               "FEDPRICE_API_AUDIT_DB": str(work / "audit.sqlite"), "FEDPRICE_API_API_KEYS_FILE": str(keys)}
    print("\n# the API reads FEDPRICE_API_REGISTRY_DIR, _PUBLIC_KEY, _FEATURE_STORE, _SHOPS_DIR, _AUDIT_DB, _API_KEYS_FILE")
    api = background("pricing-api", ["api", "serve", "--host", "127.0.0.1", "--port", str(port)], work / "logs", env=api_env)
    procs.append(api)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if not api.alive():
            raise SystemExit(f"the pricing API exited:\n{api.output()[-2000:]}")
        try:
            if httpx.get(f"{base}/readyz", timeout=1.0).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    body = storefront_request(shops_dir, store, shop)
    print(f"\n$ curl -s {base}/v1/quotes -H 'Authorization: Bearer <key>' -H 'Content-Type: application/json' \\\n"
          f"    -d '{json.dumps(body)}'", flush=True)
    resp = httpx.post(f"{base}/v1/quotes", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=10.0)
    print(f"HTTP {resp.status_code}")
    print(json.dumps(resp.json(), indent=1))
    if resp.status_code != 200:
        raise SystemExit("the quote failed")


def main() -> None:
    """Run every step of the deployment on this machine, then stop what it started."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workspace", type=Path, default=Path("var/federation-demo"))
    ap.add_argument("--shops", default="105,115,221", help="Ta Feng shops (PIN codes) to run as SuperNodes")
    ap.add_argument("--max-customers", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--synthetic", action="store_true", help="small synthetic shops instead of the Ta Feng slice")
    args = ap.parse_args()
    os.chdir(REPO)
    work = args.workspace
    shops_dir, central, registry, store = work / "shops", work / "central", work / "registry", work / "feature_store.sqlite"
    if work.exists():
        shutil.rmtree(work)  # the demo's own workspace only
    work.mkdir(parents=True)
    procs: list[Background] = []
    t0 = time.perf_counter()
    try:
        title("shops: raw exports (each shop has its own) and preparation")
        if args.synthetic:
            shops = synthetic_shops(shops_dir)
        else:
            shops = args.shops.split(",")
            fedprice(["sim", "fetch-tafeng", "--shops-dir", str(shops_dir), "--max-customers", str(args.max_customers)])
        for shop in shops:
            fedprice(["shop", "prepare", shop, "--shops-dir", str(shops_dir), "--feature-store", str(store)], capture=True)
            print(f"  shop {shop}: prepared (encrypted examples in {shops_dir / shop / 'prepared'})")

        title("central team: CA, SuperLink certificate, SuperLink")
        fedprice(["federation", "init-ca", "--central-dir", str(central)])
        port = free_port()
        procs.append(background("superlink", ["federation", "superlink", "--central-dir", str(central), "--port", str(port)],
                                work / "logs"))
        layout = CentralLayout(central)
        wait_for_tls(f"127.0.0.1:{port}", layout.ca_cert, alive=procs[0].alive)
        print(f"  SuperLink answers TLS on 127.0.0.1:{port}, verified against {layout.ca_cert}")

        title("shops: node keys -> central team registers them -> SuperNodes")
        for shop in shops:
            fedprice(["shop", "node-key", shop, "--shops-dir", str(shops_dir)])
            fedprice(["federation", "register-shop", shop, str(shops_dir / shop / "keys" / "supernode.pub"),
                      "--central-dir", str(central)])
        nodes = []
        for shop in shops:
            nodes.append(background(f"supernode-{shop}", [
                "shop", "supernode", shop, "--shops-dir", str(shops_dir), "--superlink", f"127.0.0.1:{port}",
                "--ca-cert", str(layout.ca_cert), "--port", str(free_port())], work / "logs"))
        procs.extend(nodes)
        wait_online(layout, len(shops), nodes)
        fedprice(["federation", "shops", "--central-dir", str(central)])

        title(f"central team: a {args.rounds}-round training run with `flwr run`")
        fedprice(["federation", "run", "--central-dir", str(central), "--registry", str(registry), "--rounds",
                  str(args.rounds), "--min-shops", "2", "--round-timeout", "600", "--config", f"shops-dir={shops_dir}"])
        fedprice(["federation", "runs", "--central-dir", str(central), "--registry", str(registry)])
        manifest = json.loads(fedprice(["federation", "models", "--registry", str(registry), "--public-key",
                                        str(central / "keys" / "signing.pub")], capture=True))
        print(f"  model {manifest['version']} (Flower run {manifest['flower_run_id']}, {manifest['rounds_completed']} rounds): "
              "signature, weights sha256 and feature schema verified")
        for shop, m in sorted(manifest["privacy"]["per_shop"].items()):
            print(f"  shop {shop}: epsilon {m['epsilon']:.3f} (delta {m['delta']:.0e}) over {m['rounds_trained']} rounds, "
                  f"{m['num_examples']} customers")

        title("storefront: a quote from the pricing API on the published model")
        if importlib.util.find_spec("pricing_api.app") is None:
            print("pricing_api.app is not available yet: the verified manifest above is the demo's end")
        else:
            quote(work, shops_dir, store, registry, central / "keys" / "signing.pub", shops[0], procs)
    finally:
        for p in reversed(procs):
            p.stop()
        print(f"\nstopped {len(procs)} processes by pid; total {time.perf_counter() - t0:.0f} s; logs in {work / 'logs'}")


if __name__ == "__main__":
    main()
