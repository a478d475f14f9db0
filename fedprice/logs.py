"""Logging set up once per command: our records readable, Flower's and Ray's kept quiet."""

from __future__ import annotations

import logging
import sys

from rich.console import Console
from rich.logging import RichHandler


def configure(verbose: bool = False) -> None:
    """Route logs through rich; INFO for fedprice packages, WARNING for third parties."""
    logging.basicConfig(level=logging.WARNING, format="%(message)s", datefmt="[%X]",
                        handlers=[RichHandler(console=Console(stderr=True, width=None if sys.stderr.isatty() else 140),
                                                  show_path=False, markup=False)], force=True)
    for name in ("fedprice", "client", "server", "privacy", "pricing_api", "simulation", "feature_store", "demand"):
        logging.getLogger(name).setLevel(logging.DEBUG if verbose else logging.INFO)
    for noisy in ("flwr", "ray"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
