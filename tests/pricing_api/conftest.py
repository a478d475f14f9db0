"""A tiny serving world (two synthetic shops prepared by the real pipeline, a signed model) and API clients."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch
from api_world import SHOPS, Api, World
from fastapi.testclient import TestClient

from client.prepare import prepare_shop
from client.storage import ShopPaths, load_train
from demand.model import DemandModel
from demand.training import fit
from feature_store.store import connect, shop_products
from pricing_api.apikeys import create_key
from pricing_api.app import create_app
from pricing_api.settings import ApiSettings
from server.registry import publish
from server.signing import load_or_create_signing_key
from simulation.synthetic import MarketConfig, generate_market


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    """Two synthetic shops prepared and published by the real shop pipeline, and a briefly trained signed model."""
    root = tmp_path_factory.mktemp("api-world")
    generate_market(MarketConfig.small(), root / "shops")
    store = root / "feature_store.sqlite"
    for shop in SHOPS:
        prepare_shop(ShopPaths(shop, root / "shops" / shop), feature_store=store)
    paths = ShopPaths("S1", root / "shops" / "S1")
    model = DemandModel()
    fit(model, load_train(paths, paths.keyring(create=False)), epochs=4, lr=0.01, batch_size=64, seed=0)
    torch.save(model.state_dict(), root / "trained.pt")
    signing_key = root / "central" / "signing.key"
    publish(root / "registry", model.state_dict(), {"rounds": 1, "note": "test model"}, load_or_create_signing_key(signing_key))
    customers, products = {}, {}
    conn = connect(store, readonly=True)
    try:
        for shop in SHOPS:
            raw = pd.read_csv(root / "shops" / shop / "raw" / "export.csv", dtype=str, encoding="utf-8-sig")
            customers[shop] = raw["CUSTOMER_ID"].value_counts().index[:20].tolist()
            products[shop] = [{"product_id": p.product_id, "ref_price": p.ref_price, "unit_cost": p.unit_cost}
                              for p in sorted(shop_products(conn, shop).values(), key=lambda p: -p.buy_rate)]
    finally:
        conn.close()
    return World(root, root / "shops", store, root / "registry", signing_key, customers, products)


@pytest.fixture
def registry_copy(world: World, tmp_path: Path) -> Path:
    """A private copy of the registry a test may publish to or damage."""
    target = tmp_path / "registry"
    shutil.copytree(world.registry, target)
    return target


@pytest.fixture
def settings_for(world: World, tmp_path: Path) -> Callable[..., ApiSettings]:
    """ApiSettings pointing at the world, with overrides (audit and keys in the test's own directory)."""

    def make(**overrides: Any) -> ApiSettings:
        base: dict[str, Any] = {
            "registry_dir": world.registry, "public_key": world.public_key, "feature_store": world.feature_store,
            "shops_dir": world.shops_dir, "audit_db": tmp_path / "audit.sqlite", "api_keys_file": tmp_path / "api_keys.json",
            "model_watch_seconds": 0, "keys_refresh_seconds": 0, "audit_flush_seconds": 0.01, "_env_file": None,
        }
        return ApiSettings(**{**base, **overrides})

    return make


@pytest.fixture
def api_for(settings_for: Callable[..., ApiSettings]) -> Iterator[Callable[..., Api]]:
    """Start apps with given settings overrides; all are shut down (audit flushed) after the test."""
    opened: list[TestClient] = []
    created: dict[Path, dict[str, str]] = {}

    def start(**overrides: Any) -> Api:
        settings = settings_for(**overrides)
        if settings.api_keys_file not in created:
            created[settings.api_keys_file] = {
                who: create_key(settings.api_keys_file, name=who, scopes=frozenset(scopes))
                for who, scopes in (("both", {"quote", "admin"}), ("quote", {"quote"}), ("admin", {"admin"}))}
        client = TestClient(create_app(settings), raise_server_exceptions=False)
        client.__enter__()
        opened.append(client)
        return Api(client, settings, created[settings.api_keys_file])

    yield start
    for c in opened:
        c.__exit__(None, None, None)


@pytest.fixture
def api(api_for: Callable[..., Api]) -> Api:
    """The API on the world with default settings."""
    return api_for()


