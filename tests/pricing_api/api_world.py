"""Helpers of the pricing API tests: the serving world, an API handle, baskets of real products."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from fastapi.testclient import TestClient

from pricing_api.settings import ApiSettings
from server.registry import publish
from server.signing import load_or_create_signing_key, public_key_path

SHOPS = ("S1", "S2")


@dataclass(frozen=True)
class World:
    """Paths of the serving world and some real ids to ask about."""

    root: Path
    shops_dir: Path
    feature_store: Path
    registry: Path
    signing_key: Path
    customers: dict[str, list[str]]  # raw ids as each shop's export holds them
    products: dict[str, list[dict[str, Any]]]  # product_id, ref_price, unit_cost per shop

    @property
    def public_key(self) -> Path:
        return public_key_path(self.signing_key)

    def publish_model(self, registry: Path, *, seed: int = 0, state: dict[str, torch.Tensor] | None = None) -> Path:
        """Publish another signed model version (a perturbed copy of the trained one unless `state` is given)."""
        weights = state or perturbed(self.trained_state(), seed)
        key = load_or_create_signing_key(self.signing_key)
        return publish(registry, weights, {"rounds": 1, "note": f"test model {seed}"}, key)

    def trained_state(self) -> dict[str, torch.Tensor]:
        return torch.load(self.root / "trained.pt", weights_only=True)


def perturbed(state: dict[str, torch.Tensor], seed: int) -> dict[str, torch.Tensor]:
    """A slightly different model (so versions differ) with the same structure."""
    gen = torch.Generator().manual_seed(seed)
    return {k: v + 0.01 * torch.randn(v.shape, generator=gen) if seed else v.clone() for k, v in state.items()}


@dataclass
class Api:
    """A running app (lifespan entered) with a quote+admin key, a quote-only key and an admin-only key."""

    client: TestClient
    settings: ApiSettings
    keys: dict[str, str]

    def headers(self, who: str = "both") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[who]}"}

    def quote(self, body: dict[str, Any], who: str = "both") -> Any:
        return self.client.post("/v1/quotes", json=body, headers=self.headers(who))


def basket(world: World, shop: str = "S1", n: int = 3, **extra: Any) -> list[dict[str, Any]]:
    """Items of real products with their list price and a cost below it."""
    return [{"product_id": p["product_id"], "list_price": round(p["ref_price"], 2),
             "unit_cost": round(min(p["unit_cost"], 0.7 * p["ref_price"]), 2), **extra} for p in world.products[shop][:n]]
