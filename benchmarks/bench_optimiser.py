"""Median wall time of pricing 10k and 100k items: the optimiser alone and with guardrails.

Run from the repo root with `python benchmarks/bench_optimiser.py`; prints timings, asserts nothing.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import numpy as np

from demand.guardrails import Guardrails, apply_guardrails, price_bounds
from demand.optimiser import optimal_prices

RUNS = 20
GUARDRAILS = Guardrails(min_margin=0.05, competitor_cap=1.05, price_ending=0.99)


def median_seconds(fn: Callable[[], object]) -> float:
    fn()  # warm-up
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def random_items(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    list_price = rng.uniform(0.5, 500, n)
    return {
        "mu": rng.uniform(-3, 4, n),
        "scale": rng.uniform(0.02, 2, n),
        "list_price": list_price,
        "unit_cost": list_price * rng.uniform(0, 0.9, n),
        "competitor_price": np.where(rng.random(n) < 0.5, np.nan, list_price * rng.uniform(0.9, 1.3, n)),
    }


def optimise(items: dict[str, np.ndarray], lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    return optimal_prices(
        mu=items["mu"],
        scale=items["scale"],
        list_price=items["list_price"],
        unit_cost=items["unit_cost"],
        lower=lower,
        upper=upper,
    )


def optimise_and_guard(items: dict[str, np.ndarray]) -> object:
    market = {k: items[k] for k in ("list_price", "unit_cost", "competitor_price")}
    lower, upper = price_bounds(GUARDRAILS, **market)
    return apply_guardrails(GUARDRAILS, prices=optimise(items, lower, upper), **market)


def main() -> None:
    rng = np.random.default_rng(7)
    for n in (10_000, 100_000):
        items = random_items(n, rng)
        lower, upper = price_bounds(
            GUARDRAILS,
            list_price=items["list_price"],
            unit_cost=items["unit_cost"],
            competitor_price=items["competitor_price"],
        )
        alone = median_seconds(lambda items=items, lower=lower, upper=upper: optimise(items, lower, upper))
        full = median_seconds(lambda items=items: optimise_and_guard(items))
        print(f"{n:>7} items: optimal_prices {alone * 1e3:6.2f} ms, with guardrails {full * 1e3:6.2f} ms")
    print(f"(median of {RUNS} runs each)")


if __name__ == "__main__":
    main()
