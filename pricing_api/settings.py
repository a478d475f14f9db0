"""The pricing API's one settings class (env prefix FEDPRICE_API_) and its production safety check."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from fedprice.errors import ConfigError
from pricing_api.apikeys import PLACEHOLDER_KEYS, hash_key, load_key_file


class ApiSettings(BaseSettings):
    """Where the API finds its model, features, keys and audit log, and its limits.

    Precedence: constructor arguments > FEDPRICE_API_* environment > .env file > these defaults.
    """

    model_config = SettingsConfigDict(env_prefix="FEDPRICE_API_", env_file=".env", extra="ignore")

    environment: Literal["development", "production"] = "development"
    registry_dir: Path = Path("var/registry")
    public_key: Path = Path("var/central/keys/signing.pub")
    feature_store: Path = Path("var/feature_store.sqlite")
    shops_dir: Path = Path("var/shops")
    audit_db: Path = Path("var/audit.sqlite")
    api_keys_file: Path = Path("var/api_keys.json")
    guardrails_file: Path | None = None

    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024, description="Larger request bodies get 413.")
    max_items_per_quote: int = Field(default=1000, ge=1, description="Items in one customer's quote request.")
    max_batch_items: int = Field(default=20_000, ge=1, description="Items across all requests of one batch.")
    max_batch_requests: int = Field(default=5_000, ge=1, description="Customer requests in one batch.")
    consistency_window_seconds: float = Field(default=1800.0, ge=0, description="Price kept per customer+product+model; 0 = off.")
    consistency_max_entries: int = Field(default=500_000, ge=1)
    customer_cache_size: int = Field(default=100_000, ge=1, description="Decrypted customer feature records kept in memory.")
    feature_refresh_seconds: float = Field(default=5.0, ge=0, description="How often to look for shops' new publications.")
    model_watch_seconds: float = Field(default=10.0, ge=0, description="Polling of the LATEST model; 0 = reload only.")
    keys_refresh_seconds: float = Field(default=5.0, ge=0, description="How often to re-read the API keys file if it changed.")
    audit_flush_seconds: float = Field(default=0.05, gt=0, le=5.0, description="Longest time an audit record waits in memory.")
    timezone: str = Field(default="UTC", description="Zone whose calendar decides the weekend feature.")
    torch_threads: int = Field(default=1, ge=1, description="Torch intra-op threads (1 is fastest for small batches).")


def production_problems(settings: ApiSettings) -> list[str]:
    """Every reason the settings are unsafe for production (empty list when they are fine)."""
    problems: list[str] = []
    if not settings.public_key.is_file():
        problems.append(f"public_key {settings.public_key} does not exist (models cannot be verified)")
    if not settings.api_keys_file.is_file():
        problems.append(f"api_keys_file {settings.api_keys_file} does not exist (run `fedprice api create-key`)")
    else:
        try:
            keys = load_key_file(settings.api_keys_file)
        except (ConfigError, json.JSONDecodeError) as exc:
            problems.append(f"api_keys_file {settings.api_keys_file}: {exc}")
        else:
            if not keys:
                problems.append(f"api_keys_file {settings.api_keys_file} holds no keys")
            placeholder_hashes = {hash_key(p) for p in PLACEHOLDER_KEYS}
            weak = sorted(k.name for k in keys if k.sha256 in placeholder_hashes)
            if weak:
                problems.append(f"api_keys_file holds placeholder keys ({', '.join(weak)}); create real ones with "
                                "`fedprice api create-key` and remove these")
            if settings.api_keys_file.stat().st_mode & 0o077:
                problems.append(f"api_keys_file {settings.api_keys_file} is readable by others; run: chmod 600 "
                                f"{settings.api_keys_file}")
    if settings.guardrails_file is not None and not settings.guardrails_file.is_file():
        problems.append(f"guardrails_file {settings.guardrails_file} does not exist")
    return problems


def check_settings(settings: ApiSettings) -> None:
    """Raise ConfigError listing every problem when running in production with unsafe settings."""
    if settings.environment != "production":
        return
    problems = production_problems(settings)
    if problems:
        raise ConfigError("refusing to start in production: " + "; ".join(problems))
