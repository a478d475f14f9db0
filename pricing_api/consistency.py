"""Price consistency: the same (shop, customer pseudonym, product, model version) keeps its price for a window.

The window starts at the first quote. Memory is per serving process, bounded (the oldest quotes go first)
and warmed from the audit log at start-up, so a restart does not change prices either.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

Key = tuple[str, str, str, str]  # shop, pseudonym, product, model version
Inputs = tuple[float, float, float | None, object]  # list price, unit cost, competitor price, guardrails (None: unknown)


class Remembered(NamedTuple):
    """An earlier quote of one key."""

    price: float
    guardrail: str
    inputs: Inputs
    expires: float


@dataclass(frozen=True, eq=False)
class Lookup:
    """Earlier quotes for a batch of keys: NaN price where there is none."""

    price: NDArray[np.float64]
    guardrail: NDArray[np.str_]
    same_inputs: NDArray[np.bool_]


class PriceMemory:
    """Bounded in-memory map from key to the first price quoted within the window (oldest evicted first)."""

    def __init__(self, *, window_seconds: float, max_entries: int) -> None:
        self.window = window_seconds
        self.max_entries = max_entries
        self._entries: dict[Key, Remembered] = {}  # insertion-ordered: the oldest quote is evicted first
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        """Whether a window is configured."""
        return self.window > 0

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(self, keys: Sequence[Key], inputs: Sequence[Inputs], *, now: float | None = None) -> Lookup | None:
        """Earlier quotes for these keys still inside the window (None when nothing is remembered)."""
        if not self.enabled or not self._entries:
            return None
        now = time.time() if now is None else now
        recs = list(map(self._entries.get, keys))
        found = [i for i, rec in enumerate(recs) if rec is not None and rec.expires > now]
        if not found:
            return None
        n = len(keys)
        price, label, same = [math.nan] * n, ["none"] * n, [False] * n  # lists: no numpy item assignment per key
        for i in found:
            rec = recs[i]
            price[i], label[i], same[i] = rec.price, rec.guardrail, rec.inputs == inputs[i]  # type: ignore[union-attr]
        return Lookup(np.array(price, dtype=np.float64), np.array(label, dtype=str), np.array(same, dtype=bool))

    def remember(self, keys: Sequence[Key], prices: Sequence[float], labels: Sequence[str], inputs: Sequence[Inputs],
                 *, fresh: Sequence[bool], now: float | None = None) -> None:
        """Store newly quoted prices (`fresh`); reused ones keep their window but note today's inputs and label."""
        if not self.enabled:
            return
        expires = (time.time() if now is None else now) + self.window
        entries = self._entries
        with self._lock:
            for key, p, lab, inp, new in zip(keys, prices, labels, inputs, fresh, strict=True):
                if new:
                    entries.pop(key, None)  # re-inserted at the end: eviction goes oldest first
                    entries[key] = Remembered(p, lab, inp, expires)
                else:
                    old = entries.get(key)
                    if old is not None and old.inputs != inp:
                        entries[key] = Remembered(p, lab, inp, old.expires)
            while len(entries) > self.max_entries:
                del entries[next(iter(entries))]

    def warm(self, rows: Sequence[tuple[object, ...]]) -> int:
        """Load first-time quotes from the audit log (oldest first); returns how many are still in the window."""
        now = time.time()
        n = 0
        for shop, pseud, product, version, price, label, lp, uc, comp, at in rows:
            expires = float(at) + self.window  # type: ignore[arg-type]
            if expires <= now:
                continue
            comp_f = None if comp is None or (isinstance(comp, float) and math.isnan(comp)) else float(comp)  # type: ignore[arg-type]
            key = (str(shop), str(pseud), str(product), str(version))
            self._entries.pop(key, None)
            self._entries[key] = Remembered(float(price), str(label), (float(lp), float(uc), comp_f, None), expires)  # type: ignore[arg-type]
            n += 1
        while len(self._entries) > self.max_entries:
            del self._entries[next(iter(self._entries))]
        return n
