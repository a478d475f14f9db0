"""Real deployment on 127.0.0.1: a SuperLink (TLS, node authentication) and three shops' SuperNodes run the app with
`flwr run`; a crash mid-round, an intruder, a run below the minimum of shops, a stopped run, and a live quote."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest

from client.node import SuperNodeSettings, create_node_key, supernode_command, supernode_env
from client.prepare import prepare_shop
from client.storage import ShopPaths
from feature_store.store import connect, shop_products
from server.deploy.certs import init_ca
from server.deploy.layout import CentralLayout
from server.deploy.processes import Background, free_port
from server.deploy.runs import launch_run, list_runs, published_versions, stop_run
from server.deploy.shops import node_status, register_shop
from server.deploy.superlink import wait_for_tls
from server.registry import latest_version_dir, load_verified
from server.signing import load_public_key
from simulation.synthetic import MarketConfig, generate_market

REPO = Path(__file__).resolve().parents[2]
FEDPRICE = str(Path(sys.executable).parent / "fedprice")
ENV = {**os.environ, "FLWR_TELEMETRY_ENABLED": "0", "FLWR_DISABLE_UPDATE_CHECK": "1"}
SHOPS = ("S1", "S2", "S3")


def wait_until(check: Callable[[], object], *, timeout: float, what: str, every: float = 0.5) -> object:
    """Poll `check` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if out := check():
            return out
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


class Federation:
    """The processes of one local deployment; every one is stopped by pid at the end."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.procs: list[Background] = []
        self.shops_dir, self.store, self.registry = root / "shops", root / "feature_store.sqlite", root / "registry"
        self.layout = CentralLayout(root / "central")
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.nodes: dict[str, Background] = {}

    def start(self, name: str, args: list[str]) -> Background:
        proc = Background(name, [FEDPRICE, *args], log_path=self.root / "logs" / f"{name}-{len(self.procs)}.log", env=ENV)
        self.procs.append(proc)
        return proc

    def supernode(self, shop: str) -> Background:
        """The shop's SuperNode, started with the command `fedprice shop supernode` execs (minus the CLI's imports)."""
        paths = ShopPaths(shop, self.shops_dir / shop)
        cmd = supernode_command(paths, SuperNodeSettings(superlink=self.address, ca_cert=self.layout.ca_cert, port=free_port()))
        proc = Background(f"supernode-{shop}", cmd, log_path=self.root / "logs" / f"supernode-{shop}-{len(self.procs)}.log",
                          env=supernode_env(paths))
        self.procs.append(proc)
        return proc

    def online(self) -> set[str]:
        return {n for n, s in node_status(self.layout).items() if s == "online"}

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()


@pytest.fixture
def federation(tmp_path: Path) -> Iterator[Federation]:
    """Three prepared synthetic shops, a CA, a running SuperLink; stops every process it or the test started."""
    fed = Federation(tmp_path)
    generate_market(MarketConfig.small(), fed.shops_dir)
    for shop in SHOPS:
        prepare_shop(ShopPaths(shop, fed.shops_dir / shop), feature_store=fed.store)
    init_ca(fed.layout)
    try:
        link = fed.start("superlink", ["federation", "superlink", "--central-dir", str(fed.layout.root), "--port", str(fed.port)])
        wait_for_tls(fed.address, fed.layout.ca_cert, alive=link.alive)
        yield fed
    finally:
        fed.stop()


def _train_started(node: Background) -> bool:
    log = node.output()
    return "Receiving: train message" in log and "Start `flwr-clientapp` process" in log.split("Receiving: train message", 1)[1]


def _evaluating(node: Background) -> bool:
    return "Receiving: evaluate message" in node.output()


def _storefront_request(fed: Federation, shop: str) -> dict[str, object]:
    raw = pd.read_csv(fed.shops_dir / shop / "raw" / "export.csv", dtype=str, encoding="utf-8-sig", usecols=["CUSTOMER_ID"])
    customer = str(raw["CUSTOMER_ID"].value_counts().index[0])
    conn = connect(fed.store, readonly=True)
    try:
        products = sorted((p for p in shop_products(conn, shop).values() if 0 < p.unit_cost < p.ref_price),
                          key=lambda p: -p.buy_rate)[:2]
    finally:
        conn.close()
    return {"shop_id": shop, "customer_id": customer,
            "items": [{"product_id": p.product_id, "list_price": p.ref_price, "unit_cost": p.unit_cost} for p in products]}


@pytest.mark.timeout(420)
def test_three_shops_train_over_tls_survive_a_crash_and_the_api_quotes(federation: Federation) -> None:
    fed = federation
    keys = {shop: create_node_key(ShopPaths(shop, fed.shops_dir / shop)) for shop in SHOPS}
    node_ids = {shop: register_shop(fed.layout, shop, keys[shop].public_key).node_id for shop in SHOPS}
    assert register_shop(fed.layout, "S1", keys["S1"].public_key).already_registered
    # A shop whose key was never registered is refused (Flower reports its exit code 305) and never listed online.
    shutil.copytree(fed.shops_dir / "S1" / "prepared", fed.shops_dir / "intruder" / "prepared")
    create_node_key(ShopPaths("intruder", fed.shops_dir / "intruder"))
    intruder = fed.start("intruder", ["shop", "supernode", "intruder", "--shops-dir", str(fed.shops_dir), "--superlink",
                                      fed.address, "--ca-cert", str(fed.layout.ca_cert), "--port", str(free_port())])
    for shop in SHOPS:
        fed.nodes[shop] = fed.supernode(shop)
    wait_until(lambda: fed.online() == set(node_ids.values()), timeout=90, what="3 SuperNodes online")
    wait_until(lambda: not intruder.alive(), timeout=90, what="the unregistered SuperNode to be refused")
    assert intruder.proc.returncode != 0 and "Exit Code: 305" in intruder.output(), intruder.output()[-3000:]
    assert "Failed to activate SuperNode" in intruder.output()
    assert fed.online() == set(node_ids.values())

    overrides = {"num-server-rounds": 2, "min-train-nodes": 2, "round-timeout": 180, "shops-dir": str(fed.shops_dir)}
    run_id = launch_run(fed.layout, REPO, overrides, registry=fed.registry, stream=False).run_id

    # S3 crashes (SIGKILL) while it trains in round 1; the round closes with S1 and S2 once the SuperLink
    # declares S3 unavailable (no heartbeat for up to a minute). Restarted with the same key, S3 rejoins
    # (Flower refuses to re-activate a node id while its old session still counts as online).
    wait_until(lambda: _train_started(fed.nodes["S3"]), timeout=90, what="S3 to start training")
    fed.nodes["S3"].kill()

    # Meanwhile, a second run asking for more shops than are connected fails with the reason and exit code 70,
    # and a third one, waiting for a 5th shop, is stopped by the central team; neither publishes anything.
    failing = fed.start("failing-run", ["federation", "run", "--app", str(REPO), "--central-dir", str(fed.layout.root),
                                        "--registry", str(fed.registry), "--rounds", "1", "--min-shops", "4",
                                        "--round-timeout", "3"])
    waiting = launch_run(fed.layout, REPO, {"min-train-nodes": 5, "round-timeout": 120}, registry=fed.registry, stream=False)
    wait_until(lambda: list_runs(fed.layout, run_id=waiting.run_id)[0]["status"] == "running", timeout=90, what="a running run")
    stop_run(fed.layout, waiting.run_id)
    wait_until(lambda: not failing.alive(), timeout=120, what="the run below the minimum to fail")
    assert failing.proc.returncode == 70, failing.output()[-3000:]
    assert re.search(r"only [23] shop\(s\) connected after 3 s, at least 4 are needed", failing.output())

    wait_until(lambda: _evaluating(fed.nodes["S1"]), timeout=150, what="round 1 to close without S3", every=1.0)
    assert node_status(fed.layout)[node_ids["S3"]] == "offline"
    fed.nodes["S3"] = fed.supernode("S3")
    wait_until(lambda: node_ids["S3"] in fed.online(), timeout=60, what="S3 to rejoin")
    run = wait_until(lambda: next((r for r in list_runs(fed.layout, run_id=run_id) if r["status"].startswith("finished")), None),
                     timeout=200, what="the run to finish", every=3.0)
    assert run["status"] == "finished:completed", run  # type: ignore[index]
    statuses = {r["run-id"]: r["status"] for r in list_runs(fed.layout)}
    assert statuses[waiting.run_id] == "finished:stopped" and len(statuses) == 3
    assert list(published_versions(fed.registry)) == [run_id]  # the failed and the stopped run published nothing

    _, manifest = load_verified(latest_version_dir(fed.registry), load_public_key(fed.layout.root / "keys" / "signing.pub"))
    assert manifest["flower_run_id"] == run_id and manifest["rounds_completed"] == 2
    per_shop = manifest["privacy"]["per_shop"]
    assert per_shop["S1"]["rounds_trained"] == per_shop["S2"]["rounds_trained"] == 2
    assert per_shop["S3"]["rounds_trained"] <= 1 and "held_out" in per_shop["S3"]  # evaluated the final model: rejoined
    assert any("Node Unavailable" in reason for reason in manifest["refusals"]["1"])

    if importlib.util.find_spec("pricing_api.app") is None:
        return  # the pricing API is developed in parallel: the verified model above is the end of the line until then
    from simulation.api_process import ApiProcess

    with ApiProcess(root=fed.root, registry=fed.registry, public_key=fed.layout.root / "keys" / "signing.pub",
                    feature_store=fed.store, shops_dir=fed.shops_dir) as api:
        resp = httpx.post(f"{api.base_url}/v1/quotes", json=_storefront_request(fed, "S2"), headers=api.headers, timeout=10)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["model_version"] == manifest["version"] and len(body["quotes"]) == 2
    assert all(q["unit_cost"] <= q["price"] <= 1.2 * q["list_price"] + 0.01 for q in body["quotes"])
