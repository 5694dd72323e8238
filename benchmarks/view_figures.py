"""Figures for the contained spawn, all candidates interleaved in the same rounds:
python benchmarks/view_figures.py [ROUNDS]  (prints median and p10 per candidate and
their ratios over plain subprocess.run; the pytest-benchmark version is
benchmarks/test_bench_view.py)."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time

import volt_enforce
from volt_enforce import IsolationConfig, Sandbox, SeccompProfile, server_policy

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.join(HERE, os.pardir, "tests")]
from test_bench_view import _bwrap_args  # noqa: E402

TRUE = ["/bin/true"]


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    cfg = IsolationConfig(landlock=server_policy("/"), seccomp=SeccompProfile.DEFAULT)
    bw = _bwrap_args()
    with Sandbox(cfg) as sb, Sandbox(cfg, contain=False) as nc:
        fns = {
            "subprocess.run": lambda: subprocess.run(TRUE),
            "contained Sandbox(cfg).run": lambda: sb.run(TRUE),
            "contained run(isolation=cfg)": lambda: volt_enforce.run(TRUE, isolation=cfg),
            "Sandbox(cfg, contain=False).run": lambda: nc.run(TRUE),
        }
        if bw is not None:
            fns["bubblewrap equivalent"] = lambda: subprocess.run(bw)
        samples: dict[str, list[float]] = {k: [] for k in fns}
        for f in fns.values():
            f()
        for i in range(rounds):
            items = list(fns.items())
            for name, f in (items if i % 2 else items[::-1]):
                t0 = time.perf_counter()
                f()
                samples[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in samples.items()}
    p10 = {k: sorted(v)[len(v) // 10] for k, v in samples.items()}
    base_m, base_p = med["subprocess.run"], p10["subprocess.run"]
    for k in fns:
        print(f"{k:34s} median {med[k] * 1e6:8.0f} us ({med[k] / base_m:5.2f}x)   "
              f"p10 {p10[k] * 1e6:8.0f} us ({p10[k] / base_p:5.2f}x)")


if __name__ == "__main__":
    main()
