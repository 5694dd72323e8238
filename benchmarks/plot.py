#!/usr/bin/env python3
"""Plot spawn cost against policy size from a benchmark run, as SVG.

    python benchmarks/plot.py RUN.json docs/spawn-scale.svg

Two panels, from benchmarks/test_bench_scale.py: the median time of a
sandboxed spawn of /bin/true against the number of extra Landlock rules, and
against the number of seccomp rules, each with plain subprocess.run of the
same rounds (paired timing) as a dashed line. Plain SVG: no plotting library needed.
"""

from __future__ import annotations

import json
import sys
from typing import Any

W, H = 420, 280
LEFT, RIGHT, TOP, BOTTOM = 60, 20, 36, 44


def _series(benchmarks: list[dict[str, Any]], group: str) -> tuple[list[tuple[float, float]], float | None]:
    """(x, ms) points of a group and the mean of their paired subprocess.run medians."""
    points, bases = [], []
    for b in benchmarks:
        info = b.get("extra_info") or {}
        if b.get("group") != group or info.get("x") is None:
            continue
        med = info.get("median_us") or {}
        points.append((float(info["x"]), med.get("ours", b["stats"]["median"] * 1e6) / 1e3))
        if "baseline" in med:
            bases.append(med["baseline"] / 1e3)
    return sorted(points), (sum(bases) / len(bases) if bases else None)


def _panel(ox: int, title: str, xlabel: str, points: list[tuple[float, float]],
           base: float | None) -> list[str]:
    out = [f'<g transform="translate({ox},0)">',
           f'<text x="{W / 2}" y="20" text-anchor="middle" font-weight="bold">{title}</text>']
    if not points:
        out.append(f'<text x="{W / 2}" y="{H / 2}" text-anchor="middle">no data</text></g>')
        return out
    xs = [p[0] for p in points]
    ys = [p[1] for p in points] + ([base] if base else [])
    x0, x1 = 0.0, max(xs) * 1.05
    y0, y1 = 0.0, max(ys) * 1.2

    def sx(x: float) -> float:
        return LEFT + (x - x0) / (x1 - x0) * (W - LEFT - RIGHT)

    def sy(y: float) -> float:
        return H - BOTTOM - (y - y0) / (y1 - y0) * (H - TOP - BOTTOM)

    out.append(f'<line x1="{LEFT}" y1="{H - BOTTOM}" x2="{W - RIGHT}" y2="{H - BOTTOM}" stroke="black"/>')
    out.append(f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{H - BOTTOM}" stroke="black"/>')
    for i in range(5):
        y = y0 + (y1 - y0) * i / 4
        out.append(f'<text x="{LEFT - 6}" y="{sy(y) + 4:.1f}" text-anchor="end" font-size="11">{y:.2f}</text>')
    for x in xs:
        out.append(f'<text x="{sx(x):.1f}" y="{H - BOTTOM + 16}" text-anchor="middle" font-size="11">{x:g}</text>')
    out.append(f'<text x="{W / 2}" y="{H - 8}" text-anchor="middle" font-size="12">{xlabel}</text>')
    out.append(f'<text x="14" y="{H / 2}" text-anchor="middle" font-size="12" '
               f'transform="rotate(-90 14 {H / 2})">ms per spawn (median)</text>')
    path = " ".join(f"{'M' if i == 0 else 'L'}{sx(x):.1f},{sy(y):.1f}" for i, (x, y) in enumerate(points))
    out.append(f'<path d="{path}" fill="none" stroke="#1f77b4" stroke-width="2"/>')
    for x, y in points:
        out.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3" fill="#1f77b4"/>')
    if base:
        out.append(f'<line x1="{LEFT}" y1="{sy(base):.1f}" x2="{W - RIGHT}" y2="{sy(base):.1f}" '
                   'stroke="#d62728" stroke-dasharray="5,4"/>')
        out.append(f'<text x="{W - RIGHT}" y="{sy(base) - 5:.1f}" text-anchor="end" font-size="11" '
                   'fill="#d62728">subprocess.run</text>')
    out.append("</g>")
    return out


def render(benchmarks: list[dict[str, Any]]) -> str:
    ll, ll_base = _series(benchmarks, "spawn vs landlock rules")
    sc, sc_base = _series(benchmarks, "spawn vs seccomp rules")
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{2 * W}" height="{H}" '
             'font-family="sans-serif" font-size="12">',
             f'<rect width="{2 * W}" height="{H}" fill="white"/>']
    parts += _panel(0, "Spawn vs Landlock rules", "extra Landlock rules (+ server preset)", ll, ll_base)
    parts += _panel(W, "Spawn vs seccomp rules", "seccomp rules (one syscall each)", sc, sc_base)
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    with open(argv[1]) as f:
        benchmarks = json.load(f)["benchmarks"]
    with open(argv[2], "w") as f:
        f.write(render(benchmarks))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
