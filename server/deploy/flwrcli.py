"""Call Flower's own CLI (`flwr …`) with the central team's FLWR_HOME and read its JSON answers."""

from __future__ import annotations

import json
import logging
import re
import subprocess
from pathlib import Path
from typing import Any

from fedprice.errors import FedpriceError
from server.deploy.layout import CentralLayout, flower_binary, flower_env

log = logging.getLogger(__name__)
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class FlowerCliError(FedpriceError):
    """`flwr` refused or failed; the message carries Flower's own reason."""

    exit_code = 69


def clean(text: str) -> str:
    """Flower's output without colour codes and its 'Using SuperLink' preamble."""
    lines = [_ANSI.sub("", ln) for ln in text.splitlines()]
    return "\n".join(ln for ln in lines if ln.strip() and not ln.startswith("Using SuperLink:")).strip()


def flwr_command(args: list[str]) -> list[str]:
    """`flwr` (from this venv) followed by `args`."""
    return [flower_binary("flwr"), *args]


def flwr_json(layout: CentralLayout, args: list[str], *, cwd: Path | None = None, timeout: float = 120.0) -> dict[str, Any]:
    """Run `flwr <args> --format json` and return the parsed answer, or raise with Flower's reason."""
    cmd = flwr_command([*args, "--format", "json"])
    try:
        out = subprocess.run(cmd, env=flower_env(layout.flwr_home), cwd=cwd, capture_output=True, text=True,
                             timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise FlowerCliError(f"`flwr {' '.join(args)}` did not answer within {timeout:.0f} s: is the SuperLink up?") from None
    start = out.stdout.find("{")
    try:
        answer: dict[str, Any] = json.loads(out.stdout[start:]) if start >= 0 else {}
    except json.JSONDecodeError:
        answer = {}
    if out.returncode != 0 or not answer.get("success", False):
        reason = clean(str(answer.get("error-message", "")) or out.stderr or out.stdout) or f"exit code {out.returncode}"
        raise FlowerCliError(f"`flwr {' '.join(args)}` failed: {reason}")
    return answer
