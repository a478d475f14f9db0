"""Start the pricing API as a real uvicorn process on a free loopback port, and stop it by pid."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import httpx

from fedprice.errors import FedpriceError
from server.deploy.processes import free_port, terminate


class ApiProcess:
    """Context manager: an API key, a uvicorn process serving `pricing_api.app:create_app`, then shutdown."""

    def __init__(self, *, root: Path, registry: Path, public_key: Path, feature_store: Path, shops_dir: Path,
                 scopes: str = "quote,admin", startup_timeout: float = 90.0) -> None:
        self.root = root
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.keys_file = root / "api_keys.json"
        self.log_path = root / "api.log"
        self.scopes = scopes
        self.startup_timeout = startup_timeout
        self.env = {
            **os.environ,
            "FEDPRICE_API_REGISTRY_DIR": str(registry),
            "FEDPRICE_API_PUBLIC_KEY": str(public_key),
            "FEDPRICE_API_FEATURE_STORE": str(feature_store),
            "FEDPRICE_API_SHOPS_DIR": str(shops_dir),
            "FEDPRICE_API_AUDIT_DB": str(root / "audit.sqlite"),
            "FEDPRICE_API_API_KEYS_FILE": str(self.keys_file),
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.api_key = ""

    def _create_key(self) -> str:
        cmd = [sys.executable, "-m", "fedprice", "api", "create-key", "--name", "demo", "--scopes", self.scopes,
               "--keys-file", str(self.keys_file)]
        out = subprocess.run(cmd, env=self.env, capture_output=True, text=True, check=False)
        if out.returncode != 0:
            raise FedpriceError(f"could not create an API key: {out.stderr.strip()[-400:]}")
        return out.stdout.strip().splitlines()[-1].strip()

    def __enter__(self) -> ApiProcess:
        self.api_key = self._create_key()
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "pricing_api.app:create_app", "--factory", "--host", "127.0.0.1",
             "--port", str(self.port), "--log-level", "warning"],
            env=self.env, stdout=log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise FedpriceError(f"the pricing API exited with code {self.proc.returncode}; see {self.log_path}")
            try:
                if httpx.get(f"{self.base_url}/readyz", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise FedpriceError(f"the pricing API was not ready after {self.startup_timeout:.0f} s; see {self.log_path}")

    @property
    def headers(self) -> dict[str, str]:
        """Authorization header for the created key."""
        return {"Authorization": f"Bearer {self.api_key}"}

    def stop(self) -> None:
        """Terminate the process (then kill it if it lingers)."""
        if self.proc is not None:
            terminate(self.proc, grace=15)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
