"""Guardrails per shop and product category, read from a TOML or JSON file.

Layout (every section optional, every setting optional; a more specific section wins):

    [default]                       # all shops and categories
    min_margin = 0.05
    band_low = 0.8
    band_high = 1.2
    competitor_cap = 1.05           # price <= 1.05 x the competitor price the request gives; "none" = off
    price_ending = 0.99             # "none" = round to whole cents
    [categories.tobacco]            # a category in every shop
    band_low = 1.0
    [shops.105]                     # one shop
    band_high = 1.15
    [shops.105.categories.dairy]    # one category in one shop
    min_margin = 0.1

Precedence: default < shops.S < categories.C < shops.S.categories.C.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
from pathlib import Path
from typing import Any

from demand.guardrails import Guardrails
from fedprice.errors import ConfigError

SETTINGS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Guardrails))
_OPTIONAL = ("competitor_cap", "price_ending")
Overrides = dict[str, float | None]


def _overrides(section: Any, where: str, source: Path | str) -> Overrides:
    """Validate one section's settings (names and value types), without sub-sections."""
    if not isinstance(section, dict):
        raise ConfigError(f"guardrails file {source}: [{where}] must be a table of settings")
    out: Overrides = {}
    for name, value in section.items():
        if name == "categories" and isinstance(value, dict):
            continue
        if name not in SETTINGS:
            raise ConfigError(f"guardrails file {source}: [{where}] unknown setting {name!r} (known: {', '.join(SETTINGS)})")
        if name in _OPTIONAL and (value is None or (isinstance(value, str) and value.lower() == "none")):
            out[name] = None
        elif isinstance(value, int | float) and not isinstance(value, bool):
            out[name] = float(value)
        else:
            raise ConfigError(f"guardrails file {source}: [{where}] {name} must be a number, got {value!r}")
    return out


def _build(layers: list[Overrides], where: str, source: Path | str) -> Guardrails:
    merged: dict[str, Any] = {}
    for layer in layers:
        merged.update(layer)
    try:
        return Guardrails(**merged)
    except ValueError as exc:
        raise ConfigError(f"guardrails file {source}: [{where}] {exc}") from None


class GuardrailBook:
    """Resolves the guardrails for (shop, category); unconfigured shops and categories use the defaults."""

    def __init__(self, doc: dict[str, Any] | None = None, *, source: Path | str = "<defaults>") -> None:
        doc = doc or {}
        unknown = sorted(set(doc) - {"default", "shops", "categories"})
        if unknown:
            raise ConfigError(f"guardrails file {source}: unknown sections {unknown} (known: default, shops, categories)")
        self.source = source
        self._base = _overrides(doc.get("default", {}), "default", source)
        self.default = _build([self._base], "default", source)
        self._shops: dict[str, Overrides] = {}
        self._categories: dict[str, Overrides] = {}
        self._shop_categories: dict[tuple[str, str], Overrides] = {}
        for cat, section in dict(doc.get("categories", {})).items():
            self._categories[str(cat)] = _overrides(section, f"categories.{cat}", source)
        for shop, section in dict(doc.get("shops", {})).items():
            self._shops[str(shop)] = _overrides(section, f"shops.{shop}", source)
            for cat, sub in dict(section.get("categories", {}) if isinstance(section, dict) else {}).items():
                self._shop_categories[(str(shop), str(cat))] = _overrides(sub, f"shops.{shop}.categories.{cat}", source)
        self._cache: dict[tuple[str, str | None], Guardrails] = {}
        # Build every configured combination now, so a bad file fails at start-up, not on a request.
        for shop in self._shops:
            self.resolve(shop, None)
            for cat in self._categories:
                self.resolve(shop, cat)
        for cat in self._categories:
            self.resolve("", cat)
        for shop, cat in self._shop_categories:
            self.resolve(shop, cat)

    @classmethod
    def load(cls, path: Path | None) -> GuardrailBook:
        """Read a .toml or .json guardrails file; None gives the built-in defaults."""
        if path is None:
            return cls()
        try:
            text = path.read_text()
        except OSError as exc:
            raise ConfigError(f"guardrails file {path}: cannot read it ({exc.strerror})") from None
        try:
            doc = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)
        except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
            raise ConfigError(f"guardrails file {path}: not valid {path.suffix.lstrip('.') or 'TOML'} ({exc})") from None
        return cls(doc, source=path)

    @property
    def has_categories(self) -> bool:
        """Whether any section sets category guardrails (if not, the category of an item never matters)."""
        return bool(self._categories or self._shop_categories)

    def resolve(self, shop: str, category: str | None) -> Guardrails:
        """The guardrails for one shop and (optional) product category."""
        if category is not None and category not in self._categories and (shop, category) not in self._shop_categories:
            category = None  # an unconfigured category behaves like no category: one cache entry per shop
        key = (shop, category)
        found = self._cache.get(key)
        if found is not None:
            return found
        layers = [self._base, self._shops.get(shop, {})]
        where = f"shops.{shop}" if shop in self._shops else "default"
        if category is not None:
            layers += [self._categories.get(category, {}), self._shop_categories.get((shop, category), {})]
            where += f" + category {category}"
        g = _build(layers, where, self.source)
        self._cache[key] = g
        return g
