"""Checking `Authorization: Bearer <key>` against the hashed keys file, with scopes."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from fedprice.errors import AuthenticationError, ConfigError, PermissionDeniedError
from pricing_api.apikeys import ApiKey, hash_key, load_key_file

log = logging.getLogger(__name__)


class KeyChecker:
    """The keys file held in memory, re-read when it changes (checked at most every `refresh_seconds`)."""

    def __init__(self, path: Path, *, refresh_seconds: float = 5.0) -> None:
        self.path = path
        self.refresh_seconds = refresh_seconds
        self._by_hash: dict[str, ApiKey] = {}
        self._stamp: tuple[int, int] | None = None
        self._checked = 0.0
        self._lock = threading.Lock()
        self.reload()

    def _file_stamp(self) -> tuple[int, int] | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return st.st_mtime_ns, st.st_size

    def reload(self) -> int:
        """Re-read the keys file now; a malformed file keeps the previous keys (and is logged)."""
        with self._lock:
            stamp = self._file_stamp()
            try:
                keys = load_key_file(self.path)
            except (ConfigError, ValueError) as exc:
                log.error("API keys file %s is malformed, keeping %d loaded keys: %s", self.path, len(self._by_hash), exc)
                self._stamp = stamp
                return len(self._by_hash)
            self._by_hash = {k.sha256: k for k in keys}
            self._stamp = stamp
            self._checked = time.monotonic()
            if not keys:
                log.warning("no API keys in %s: every request will get 401 (run `fedprice api create-key`)", self.path)
            return len(keys)

    def _maybe_refresh(self) -> None:
        now = time.monotonic()
        if now - self._checked < self.refresh_seconds:
            return
        self._checked = now
        if self._file_stamp() != self._stamp:
            n = self.reload()
            log.info("API keys file %s changed: %d keys loaded", self.path, n)

    def authenticate(self, authorization: str | None, *, scope: str | None) -> ApiKey:
        """Return the key behind an Authorization header value, or raise 401/403 errors with clear text."""
        self._maybe_refresh()
        if not authorization:
            raise AuthenticationError("missing API key: send the header 'Authorization: Bearer <key>'")
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise AuthenticationError("malformed Authorization header: expected 'Bearer <key>'")
        key = self._by_hash.get(hash_key(token))
        if key is None:
            if not self._by_hash:
                raise AuthenticationError("invalid API key: this server has no API keys configured")
            raise AuthenticationError("invalid API key")
        if scope is not None and scope not in key.scopes:
            raise PermissionDeniedError(f"API key '{key.name}' lacks the '{scope}' scope")
        return key
