"""The command's start on a plan-cache hit, against `python -c pass` in the same rounds:
python benchmarks/cli_figures.py VENV [ROUNDS]  (VENV: the venv whose volt-enforce to run;
give the one the wheel is installed in: an editable install adds its finder's start-up
cost to every Python, the baseline's included, which flatters the ratio). Root only (the
cache is root's); the first rounds fill the cache. The pytest-benchmark version is
benchmarks/test_bench_cli.py."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time


def main() -> None:
    venv = sys.argv[1]
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 60
    py, ve = os.path.join(venv, "bin", "python"), os.path.join(venv, "bin", "volt-enforce")
    cmds = {
        "python -c pass": [py, "-c", "pass"],
        "volt-enforce run -- /bin/true": [ve, "run", "--", "/bin/true"],
        "volt-enforce exec -- /bin/true": [ve, "exec", "--", "/bin/true"],
    }
    for c in cmds.values():
        for _ in range(3):  # the first fills the cache
            subprocess.run(c, check=True)
    samples: dict[str, list[float]] = {k: [] for k in cmds}
    for i in range(rounds):
        items = list(cmds.items())
        for name, c in (items if i % 2 else items[::-1]):
            t0 = time.perf_counter()
            subprocess.run(c)
            samples[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in samples.items()}
    base = med["python -c pass"]
    for k in cmds:
        print(f"{k:34s} median {med[k] * 1e3:7.2f} ms ({med[k] / base:5.2f}x)")


if __name__ == "__main__":
    main()
