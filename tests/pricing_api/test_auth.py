"""API keys: created once, stored hashed, checked with scopes; clear 401/403 texts; production refuses weak setups."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from api_world import Api, World, basket

from fedprice.errors import ConfigError
from pricing_api.apikeys import create_key, hash_key, load_key_file, parse_scopes, revoke_key
from pricing_api.app import create_app


def body(world: World) -> dict[str, object]:
    return {"shop_id": "S1", "customer_id": "c", "items": basket(world, n=1)}


def test_missing_and_malformed_and_wrong_keys_get_401(api: Api, world: World) -> None:
    none = api.client.post("/v1/quotes", json=body(world))
    assert none.status_code == 401
    assert none.json()["detail"] == "missing API key: send the header 'Authorization: Bearer <key>'"
    assert none.headers["www-authenticate"] == "Bearer"
    basic = api.client.post("/v1/quotes", json=body(world), headers={"Authorization": "Basic dXNlcjpwdw=="})
    assert basic.status_code == 401 and basic.json()["detail"] == "malformed Authorization header: expected 'Bearer <key>'"
    wrong = api.client.post("/v1/quotes", json=body(world), headers={"Authorization": "Bearer fpk_0000_nope"})
    assert wrong.status_code == 401 and wrong.json()["detail"] == "invalid API key"
    batch = api.client.post("/v1/quotes/batch", json={"requests": [body(world)]})
    assert batch.status_code == 401
    assert api.client.get("/v1/model").status_code == 401


def test_wrong_scope_gets_403(api: Api, world: World) -> None:
    quote_only = api.client.post("/v1/admin/reload", headers=api.headers("quote"))
    assert quote_only.status_code == 403 and quote_only.json()["detail"] == "API key 'quote' lacks the 'admin' scope"
    admin_only = api.quote(body(world), who="admin")
    assert admin_only.status_code == 403 and admin_only.json()["detail"] == "API key 'admin' lacks the 'quote' scope"
    assert api.quote(body(world), who="quote").status_code == 200
    assert api.client.post("/v1/admin/reload", headers=api.headers("admin")).status_code == 200


def test_keys_are_stored_only_as_hashes_and_revocation_takes_effect(api: Api, world: World) -> None:
    stored = api.settings.api_keys_file.read_text()
    for key in api.keys.values():
        assert key not in stored and hash_key(key) in stored
    assert oct(api.settings.api_keys_file.stat().st_mode & 0o777) == "0o600"
    revoke_key(api.settings.api_keys_file, name="quote")
    assert api.quote(body(world), who="quote").status_code == 401  # keys_refresh_seconds=0 in tests
    fresh = create_key(api.settings.api_keys_file, name="late", scopes=frozenset({"quote"}))
    assert api.client.post("/v1/quotes", json=body(world), headers={"Authorization": f"Bearer {fresh}"}).status_code == 200


def test_key_names_and_scopes_are_checked(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    create_key(path, name="a", scopes=frozenset({"quote"}))
    with pytest.raises(ConfigError, match="name: a key named 'a' already exists"):
        create_key(path, name="a", scopes=frozenset({"quote"}))
    doc = json.loads(path.read_text())
    doc["keys"][0]["scopes"] = ["quote", "root"]
    path.write_text(json.dumps(doc))
    with pytest.raises(ConfigError, match=r"keys\[0\] \(a\) has unknown scopes \['root'\]"):
        load_key_file(path)


def test_create_key_cli_prints_the_key_alone_on_stdout(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    env = {**os.environ, "FLWR_TELEMETRY_ENABLED": "0", "FLWR_DISABLE_UPDATE_CHECK": "1"}
    out = subprocess.run([sys.executable, "-m", "fedprice", "api", "create-key", "--name", "shopfront", "--scopes",
                          "quote,admin", "--keys-file", str(path)], capture_output=True, text=True, env=env, check=True)
    lines = out.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("fpk_") and len(lines[0]) > 50
    (stored,) = load_key_file(path)
    assert stored.name == "shopfront" and stored.scopes == {"quote", "admin"} and stored.sha256 == hash_key(lines[0])
    with pytest.raises(ConfigError, match=r"scopes: unknown or empty \['root'\]; choose from quote, admin"):
        parse_scopes("quote,root")


def test_production_refuses_missing_or_placeholder_secrets(settings_for, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match="api_keys_file .* does not exist"):
        create_app(settings_for(environment="production", api_keys_file=tmp_path / "none.json"))
    weak = tmp_path / "weak.json"
    weak.write_text(json.dumps({"keys": [{"id": "1", "name": "dev", "scopes": ["quote"], "sha256": hash_key("changeme")}]}))
    weak.chmod(0o600)
    with pytest.raises(ConfigError, match=r"placeholder keys \(dev\)"):
        create_app(settings_for(environment="production", api_keys_file=weak))
    good = tmp_path / "good.json"
    create_key(good, name="real", scopes=frozenset({"quote"}))
    app = create_app(settings_for(environment="production", api_keys_file=good))
    assert app.docs_url is None
