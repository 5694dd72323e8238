#!/usr/bin/env python3
"""Compare two benchmark runs by their same-run ratios; fail on a regression.

    python benchmarks/compare.py BASE.json CHANGE.json [--threshold 0.25]
    python benchmarks/compare.py RUN.json                 # just print the ratios

Ratios come two ways, both "ours over the baseline", so larger is worse:
a benchmark that names a baseline (``extra_info["baseline"]``, another
benchmark of the same group and run) gives its median over the baseline's;
and benchmarks that time several things in one loop (in-child measurements)
put their ratios in ``extra_info`` under keys that start with ``ratio`` or
contain ``_over_``. Absolute times move with the machine; ratios
measured in one run do not. A change regresses when a ratio grows by more than
the threshold (default 25%) over the base run's ratio; the exit status is then 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def _load(path: str) -> list[dict[str, Any]]:
    with open(path) as f:
        return json.load(f)["benchmarks"]


def _is_ratio_key(key: str) -> bool:
    return key.startswith("ratio") or "_over_" in key


def ratios(benchmarks: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """"benchmark [ratio]" -> {group, median, baseline, ratio} for every ratio."""
    by_name = {(b.get("group"), b["name"]): b for b in benchmarks}
    out: dict[str, dict[str, Any]] = {}
    for b in benchmarks:
        info = b.get("extra_info") or {}
        median = b["stats"]["median"]
        base_name = info.get("baseline")
        ratio = None
        if base_name:
            base = by_name.get((b.get("group"), base_name))
            if base is not None and base["stats"]["median"] > 0:
                ratio = median / base["stats"]["median"]
        out[b["name"]] = {"group": b.get("group"), "median": median, "baseline": base_name,
                          "ratio": ratio}
        for key, value in info.items():
            if _is_ratio_key(key) and isinstance(value, (int, float)):
                out[f"{b['name']} [{key}]"] = {"group": b.get("group"), "median": median,
                                               "baseline": key, "ratio": float(value)}
    return out


def _fmt_time(seconds: float) -> str:
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.1f} µs"


def table(r: dict[str, dict[str, Any]]) -> str:
    """A Markdown table of one run (the README's)."""
    lines = ["| group | benchmark | median | baseline | ratio |", "|---|---|---:|---|---:|"]
    for name, v in sorted(r.items(), key=lambda kv: (kv[1]["group"] or "", kv[0])):
        med = _fmt_time(v["median"])
        ratio = f"{v['ratio']:.2f}x" if v["ratio"] is not None else "baseline"
        lines.append(f"| {v['group']} | {name} | {med} | {v['baseline'] or ''} | {ratio} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("base")
    ap.add_argument("change", nargs="?")
    ap.add_argument("--threshold", type=float, default=0.25,
                    help="relative growth of a ratio that counts as a regression (0.25 = 25%%)")
    args = ap.parse_args(argv)
    base = ratios(_load(args.base))
    if args.change is None:
        print(table(base))
        return 0
    change = ratios(_load(args.change))
    print(f"threshold: a ratio may grow by at most {args.threshold:.0%}")
    print(f"{'benchmark':<70} {'base':>8} {'change':>8} {'delta':>8}")
    regressions = []
    for name, c in sorted(change.items()):
        b = base.get(name)
        if c["ratio"] is None or b is None or b["ratio"] is None:
            continue
        delta = c["ratio"] / b["ratio"] - 1
        flag = ""
        if delta > args.threshold:
            flag = "  REGRESSION"
            regressions.append(name)
        print(f"{name[:70]:<70} {b['ratio']:>7.2f}x {c['ratio']:>7.2f}x {delta:>+7.0%}{flag}")
    missing = sorted(set(base) - set(change))
    for name in missing:
        print(f"{name[:70]:<70} missing from the change run")
    if regressions:
        print(f"{len(regressions)} regression(s) over {args.threshold:.0%}")
        return 1
    print("no regression")
    return 0


if __name__ == "__main__":
    sys.exit(main())
