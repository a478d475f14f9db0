"""Background processes for the local federation demo and tests: logged to files, stopped by pid with their children."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

log = logging.getLogger(__name__)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def terminate(proc: subprocess.Popen, *, grace: float = 10.0) -> None:  # type: ignore[type-arg]
    """SIGTERM a child we started, wait up to `grace` seconds, then SIGKILL it."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


Proc = tuple[int, str]  # (pid, start time): a pid is only signalled while it still names the same process


def _stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _identity(pid: int) -> Proc | None:
    fields = _stat(pid)
    return (pid, fields[19]) if fields and fields[0] != "Z" else None


def descendants(pid: int) -> list[Proc]:
    """Every live process below `pid` (Linux /proc), children first; Flower starts its helpers in new sessions."""
    parent_of: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))):
            parent_of[int(entry.name)] = int(fields[1])
    found: list[Proc] = []
    frontier = [pid]
    while frontier:
        kids = [c for c, p in parent_of.items() if p in frontier]
        found.extend(i for c in kids if (i := _identity(c)))
        frontier = kids
    return found


def _alive(proc: Proc) -> bool:
    return _identity(proc[0]) == proc


def stop_pids(procs: list[Proc], *, grace: float = 10.0) -> None:
    """SIGTERM each process, wait up to `grace` seconds, then SIGKILL the ones still alive."""
    for proc in procs:
        if _alive(proc):
            os.kill(proc[0], signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(_alive(p) for p in procs):
        time.sleep(0.1)
    for proc in procs:
        if _alive(proc):
            os.kill(proc[0], signal.SIGKILL)


class Background:
    """A command running in the background with its output in a log file; `stop()` ends it and its descendants."""

    def __init__(self, name: str, cmd: list[str], *, log_path: Path, env: dict[str, str] | None = None,
                 cwd: Path | None = None) -> None:
        self.name, self.cmd, self.log_path = name, cmd, log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd)
        self._orphans: list[Proc] = []
        log.info("%s started (pid %d), log %s", name, self.proc.pid, log_path)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        """Whether the process is still running."""
        return self.proc.poll() is None

    def output(self) -> str:
        """Everything the process wrote so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        """SIGKILL the process only, as a crash would (its Flower children notice their parent is gone and exit)."""
        if self.alive():
            self._orphans += descendants(self.pid)
            self.proc.kill()
        self.proc.wait(timeout=10)

    def stop(self, grace: float = 10.0) -> None:
        """Stop the process and every process it started, by pid."""
        if self.alive():
            tree = descendants(self.pid)
            terminate(self.proc, grace=grace)
            self._orphans += tree
        stop_pids(self._orphans, grace=grace)
        self._orphans = []

    def __enter__(self) -> Background:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
