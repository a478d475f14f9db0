"""Central deployment pieces without a federation: certificates over a real TLS handshake, flwr's config, run config."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from flwr.common.config import parse_config_args

from fedprice.errors import ConfigError
from server.deploy.certs import check_superlink_certificate, describe, init_ca
from server.deploy.connection import write_connection
from server.deploy.layout import CentralLayout
from server.deploy.runs import check_app_bundle, format_run_config, run_config
from server.deploy.superlink import SuperLinkSettings, superlink_command, wait_for_tls

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[CentralLayout, str]]:
    """A TLS listener on 127.0.0.1 serving the SuperLink certificate `init-ca` issued; handshakes, then closes."""
    layout = CentralLayout(tmp_path / "central")
    init_ca(layout, ["shops.example"])
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(layout.superlink_cert, layout.superlink_key)
    sock = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except TimeoutError:
                continue
            try:
                with ctx.wrap_socket(conn, server_side=True):
                    pass
            except (ssl.SSLError, OSError):
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield layout, f"127.0.0.1:{sock.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(timeout=5)
        sock.close()


def test_superlink_certificate_verifies_against_the_federation_ca(tls_server: tuple[CentralLayout, str]) -> None:
    layout, address = tls_server
    wait_for_tls(address, layout.ca_cert, timeout=10)  # handshake + host name 127.0.0.1 checked against the SANs
    info = describe(layout.superlink_cert)
    assert {"localhost", "127.0.0.1", "::1", "shops.example"} <= set(info.hosts)
    assert layout.ca_key.stat().st_mode & 0o077 == 0 and layout.superlink_key.stat().st_mode & 0o077 == 0


def test_a_foreign_ca_is_refused_by_name(tls_server: tuple[CentralLayout, str], tmp_path: Path) -> None:
    _, address = tls_server
    other = CentralLayout(tmp_path / "other")
    init_ca(other)
    with pytest.raises(ConfigError, match="does not verify"):
        wait_for_tls(address, other.ca_cert, timeout=10)


def test_ca_is_kept_and_the_server_certificate_reissued_for_new_hosts(tmp_path: Path) -> None:
    layout = CentralLayout(tmp_path / "central")
    init_ca(layout)
    ca_before = layout.ca_cert.read_bytes()
    with pytest.raises(ConfigError, match="not valid for 'central.example'.*--host central.example"):
        check_superlink_certificate(layout, "central.example")
    init_ca(layout, ["central.example", "10.0.0.5"])
    assert layout.ca_cert.read_bytes() == ca_before
    assert {"central.example", "10.0.0.5"} <= set(check_superlink_certificate(layout, "central.example").hosts)


def test_superlink_runs_with_tls_node_auth_persistent_state_and_no_runtime_installs(tmp_path: Path) -> None:
    cmd = superlink_command(SuperLinkSettings(CentralLayout(tmp_path), host="0.0.0.0", port=9092))
    joined = " ".join(cmd)
    assert "--enable-supernode-auth" in cmd and "--disable-runtime-dependency-installation" in cmd
    assert f"--database {tmp_path / 'superlink' / 'state.db'}" in joined and "--insecure" not in cmd
    assert f"--ssl-certfile {tmp_path / 'certs' / 'superlink.crt'}" in joined
    assert SuperLinkSettings(CentralLayout(tmp_path), host="0.0.0.0").address == "127.0.0.1:9092"


def test_connection_is_written_where_flwr_reads_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from flwr.cli.flower_config import read_superlink_connection

    home = tmp_path / "flwr"
    ca = tmp_path / "ca.crt"
    ca.write_text("-")
    write_connection(home, address="127.0.0.1:9092", ca_cert=ca)
    write_connection(home, address="10.0.0.5:9092", ca_cert=ca, name="prod", make_default=False)
    monkeypatch.setenv("FLWR_HOME", str(home))
    default = read_superlink_connection(None)
    assert (default.name, default.address, default.root_certificates, default.insecure) == \
        ("fedprice", "127.0.0.1:9092", str(ca.resolve()), False)
    assert read_superlink_connection("prod").address == "10.0.0.5:9092"
    assert read_superlink_connection("local").address is not None  # Flower's built-in entries are kept
    with pytest.raises(ConfigError, match="host:port"):
        write_connection(home, address="central.example", ca_cert=ca)


def test_run_config_is_checked_typed_and_parsed_back_by_flower(tmp_path: Path) -> None:
    cfg = run_config({"num-server-rounds": "3", "epsilon-budget": 2, "registry-dir": "rel/registry",
                      "shops-dir": str(tmp_path / "my shops")})
    assert cfg["num-server-rounds"] == 3 and cfg["epsilon-budget"] == 2.0
    assert Path(cfg["registry-dir"]).is_absolute()
    assert parse_config_args([format_run_config(cfg)]) == cfg  # what `flwr run --run-config` will see
    with pytest.raises(ConfigError, match="unknown run-config key.*num-rounds"):
        run_config({"num-rounds": 3})
    with pytest.raises(ConfigError, match="num-server-rounds='many': expected int"):
        run_config({"num-server-rounds": "many"})


def test_the_app_bundle_carries_code_and_config_only() -> None:
    size, files = check_app_bundle(REPO)
    assert size < 2 * 1024 * 1024 and files > 20
    with pytest.raises(ConfigError, match="no pyproject.toml"):
        check_app_bundle(REPO / "server")
