"""The shop's SuperNode key and command: in the formats Flower itself parses, refusing unsafe or missing pieces."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_ssh_private_key
from flwr.cli.supernode.register import try_load_public_key
from flwr.common.config import parse_config_args

from client.node import SuperNodeSettings, create_node_key, supernode_command, supernode_env
from client.storage import ShopPaths
from fedprice.errors import ConfigError
from server.deploy.shops import key_fingerprint


@pytest.fixture
def shop(prepared: dict, tmp_path: Path) -> ShopPaths:  # type: ignore[type-arg]
    """A copy of prepared shop S1 under a directory name with a space (paths must survive Flower's parsing)."""
    src: ShopPaths = prepared["S1"][0]
    dst = tmp_path / "shop data" / "S1"
    shutil.copytree(src.root, dst)
    return ShopPaths("S1", dst)


def test_node_key_is_p384_openssh_and_kept(shop: ShopPaths) -> None:
    key = create_node_key(shop)
    private = load_ssh_private_key(key.private_key.read_bytes(), password=None)
    assert isinstance(private, ec.EllipticCurvePrivateKey) and private.curve.name == "secp384r1"
    assert key.private_key.stat().st_mode & 0o077 == 0
    assert try_load_public_key(key.public_key)  # exactly what `flwr supernode register` does with the .pub
    assert key_fingerprint(key.public_key) == key.fingerprint  # shop and central team see the same fingerprint
    again = create_node_key(shop)
    assert not again.created and again.fingerprint == key.fingerprint


def test_supernode_command_names_the_shop_and_its_data(shop: ShopPaths, tmp_path: Path) -> None:
    create_node_key(shop)
    ca = tmp_path / "ca.crt"
    ca.write_text("-")
    cmd = supernode_command(shop, SuperNodeSettings(superlink="central.example:9092", ca_cert=ca, port=9095, epsilon_budget=2.5))
    assert cmd[cmd.index("--superlink") + 1] == "central.example:9092" and "--insecure" not in cmd
    assert cmd[cmd.index("--port") + 1] == "9095" and cmd[cmd.index("--root-certificates") + 1] == str(ca.resolve())
    node_config = parse_config_args([cmd[cmd.index("--node-config") + 1]])  # as flower-supernode parses it
    assert node_config == {"shop-id": "S1", "data-dir": str(shop.root.resolve()), "epsilon-budget": 2.5}
    env = supernode_env(shop)
    assert env["FLWR_TELEMETRY_ENABLED"] == "0" and env["FLWR_DISABLE_UPDATE_CHECK"] == "1"
    assert env["FLWR_HOME"] == str((shop.root / "flwr").resolve())


def test_supernode_refuses_unsafe_or_missing_pieces(shop: ShopPaths, tmp_path: Path) -> None:
    ca = tmp_path / "ca.crt"
    settings = SuperNodeSettings(superlink="127.0.0.1:9092", ca_cert=ca)
    with pytest.raises(ConfigError, match="ca.crt is missing"):
        supernode_command(shop, settings)
    ca.write_text("-")
    with pytest.raises(ConfigError, match="supernode.key is missing: run `fedprice shop node-key`"):
        supernode_command(shop, settings)
    key = create_node_key(shop)
    os.chmod(key.private_key, 0o640)
    with pytest.raises(ConfigError, match="readable by others; run: chmod 600"):
        supernode_command(shop, settings)
    os.chmod(key.private_key, 0o600)
    with pytest.raises(ConfigError, match="must be host:port"):
        supernode_command(shop, SuperNodeSettings(superlink="central.example", ca_cert=ca))
    shop.train.unlink()
    with pytest.raises(ConfigError, match="run `fedprice shop prepare` first"):
        supernode_command(shop, settings)
