"""Shared fixtures: a small synthetic market written as real shop exports, and its prepared shops."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from client.prepare import PrepareReport, prepare_shop
from client.storage import ShopPaths
from simulation.synthetic import MarketConfig, generate_market

os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
os.environ.setdefault("FLWR_DISABLE_UPDATE_CHECK", "1")


@pytest.fixture(scope="session")
def market_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three small synthetic shops (S1-S3) with raw exports in the real export format."""
    out = tmp_path_factory.mktemp("market")
    generate_market(MarketConfig.small(), out)
    return out


@pytest.fixture(scope="session")
def prepared(market_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[ShopPaths, PrepareReport]]:
    """The small market's shops, prepared by the real shop pipeline (read-only for tests)."""
    store = tmp_path_factory.mktemp("fs") / "feature_store.sqlite"
    out = {}
    for shop in ("S1", "S2", "S3"):
        paths = ShopPaths(shop, market_dir / shop)
        out[shop] = (paths, prepare_shop(paths, feature_store=store))
    return out
