"""Paired timing: the candidate and its baseline in the same rounds.

On a shared machine the cost of a spawn drifts by tens of percent within a
minute; timing the candidate and the baseline alternately in each round, and
reporting the ratio of their medians, cancels the drift that separate runs
would measure as a difference.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def paired(benchmark, ours: Callable[[], object], baseline: Callable[[], object], *,
           rounds: int = 200, warmup: int = 10, key: str = "ratio_over_baseline") -> dict:
    """Benchmark ``ours``; put median(ours)/median(baseline) in extra_info[key]."""
    samples: dict[str, list[float]] = {"ours": [], "baseline": []}
    turn = [0]

    def one() -> None:
        turn[0] += 1
        order = (("ours", ours), ("baseline", baseline))
        for who, fn in (order if turn[0] % 2 else order[::-1]):
            t0 = time.perf_counter()
            fn()
            samples[who].append(time.perf_counter() - t0)

    benchmark.pedantic(one, rounds=rounds, warmup_rounds=warmup, iterations=1)
    med = {k: statistics.median(v) for k, v in samples.items()}
    benchmark.extra_info["median_us"] = {k: round(v * 1e6, 1) for k, v in med.items()}
    benchmark.extra_info[key] = round(med["ours"] / med["baseline"], 3)
    return med
