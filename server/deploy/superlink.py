"""Start the SuperLink: TLS on, only registered SuperNodes, persistent state, no runtime `uv sync`."""

from __future__ import annotations

import logging
import os
import socket
import ssl
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fedprice.errors import ConfigError, FedpriceError
from server.deploy.certs import check_superlink_certificate
from server.deploy.connection import DEFAULT_CONNECTION, write_connection
from server.deploy.layout import CentralLayout, flower_binary, flower_env

log = logging.getLogger(__name__)
DEFAULT_PORT = 9092


@dataclass(frozen=True)
class SuperLinkSettings:
    """How the SuperLink listens and how the central team's CLI reaches it."""

    layout: CentralLayout
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    connection: str = DEFAULT_CONNECTION
    log_file: Path | None = None

    @property
    def dial_host(self) -> str:
        """The host the local CLI dials (a wildcard bind is reached over loopback)."""
        return "127.0.0.1" if self.host in ("0.0.0.0", "::", "[::]") else self.host

    @property
    def address(self) -> str:
        return f"{self.dial_host}:{self.port}"


def superlink_command(s: SuperLinkSettings) -> list[str]:
    """The `flower-superlink` command line for these settings."""
    lay = s.layout
    cmd = [flower_binary("flower-superlink"), "--ssl-ca-certfile", str(lay.ca_cert),
           "--ssl-certfile", str(lay.superlink_cert), "--ssl-keyfile", str(lay.superlink_key),
           "--enable-supernode-auth", "--database", str(lay.database), "--host", s.host, "--port", str(s.port),
           "--disable-runtime-dependency-installation"]
    if s.log_file is not None:
        cmd += ["--log-file", str(s.log_file)]
    return cmd


def prepare_superlink(s: SuperLinkSettings) -> tuple[list[str], dict[str, str]]:
    """Check the certificates, create the state directory, write the CLI connection; return command and environment."""
    check_superlink_certificate(s.layout, s.dial_host)
    s.layout.database.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(s.layout.database.parent, 0o700)
    write_connection(s.layout.flwr_home, address=s.address, ca_cert=s.layout.ca_cert, name=s.connection)
    return superlink_command(s), flower_env(s.layout.flwr_home)


def exec_superlink(s: SuperLinkSettings) -> None:
    """Replace this process with the SuperLink (so its pid is the SuperLink's, and signals reach it directly)."""
    cmd, env = prepare_superlink(s)
    log.info("starting the SuperLink on %s:%d (state %s)", s.host, s.port, s.layout.database)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvpe(cmd[0], cmd, env)


def wait_for_tls(address: str, ca_cert: Path, *, timeout: float = 60.0, alive: Callable[[], bool] | None = None) -> None:
    """Wait until `address` completes a TLS handshake verified against `ca_cert` (host name checked)."""
    host, port = address.rsplit(":", 1)
    host = host.strip("[]")
    ctx = ssl.create_default_context(cafile=str(ca_cert))
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if alive is not None and not alive():
            raise FedpriceError(f"the SuperLink process exited before {address} accepted TLS connections")
        try:
            with socket.create_connection((host, int(port)), timeout=2.0) as raw, \
                    ctx.wrap_socket(raw, server_hostname=host):
                return
        except ssl.SSLCertVerificationError as exc:
            raise ConfigError(f"{address} presents a certificate that {ca_cert} does not verify: {exc.verify_message}") from None
        except OSError as exc:
            last = str(exc)
        time.sleep(0.25)
    raise FedpriceError(f"the SuperLink at {address} did not accept TLS connections within {timeout:.0f} s ({last})")
