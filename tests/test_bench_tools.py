"""benchmarks/compare.py and benchmarks/plot.py on synthetic runs."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

import compare  # noqa: E402
import plot  # noqa: E402


def _bench(name, median, group="spawn", **info):
    return {"name": name, "group": group, "stats": {"median": median}, "extra_info": info}


def _run(tmp_path, fname, benches):
    p = tmp_path / fname
    p.write_text(json.dumps({"benchmarks": benches}))
    return str(p)


def test_ratios_from_baseline_and_extra_info():
    r = compare.ratios([
        _bench("plain", 1.0e-3),
        _bench("ours", 1.2e-3, baseline="plain"),
        _bench("inchild", 5e-6, group="landlock", library_over_c_floor=1.05, rules=16),
    ])
    assert r["plain"]["ratio"] is None
    assert r["ours"]["ratio"] == pytest.approx(1.2)
    assert r["inchild [library_over_c_floor]"]["ratio"] == 1.05
    assert "inchild [rules]" not in r  # only ratio keys are ratios


def test_compare_flags_regressions(tmp_path):
    base = _run(tmp_path, "base.json", [_bench("plain", 1e-3), _bench("ours", 1.1e-3, baseline="plain")])
    # the machine got slower overall: same ratio, no regression
    same = _run(tmp_path, "same.json", [_bench("plain", 2e-3), _bench("ours", 2.2e-3, baseline="plain")])
    worse = _run(tmp_path, "worse.json", [_bench("plain", 1e-3), _bench("ours", 1.5e-3, baseline="plain")])
    assert compare.main([base, same]) == 0
    assert compare.main([base, worse]) == 1
    assert compare.main([base, worse, "--threshold", "0.5"]) == 0
    out = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "compare.py"), base, worse],
                         capture_output=True, text=True)
    assert out.returncode == 1 and "REGRESSION" in out.stdout and "25%" in out.stdout


def test_table_lists_every_ratio(tmp_path):
    text = compare.table(compare.ratios([_bench("plain", 1e-3), _bench("ours", 1.25e-3, baseline="plain")]))
    assert "| spawn | ours | 1.25 ms | plain | 1.25x |" in text


def test_plot_renders_both_panels():
    med = {"ours": 1100.0, "baseline": 1000.0}
    benches = [
        _bench("ll 10", 2.1e-3, group="spawn vs landlock rules", x=10, median_us=med),
        _bench("ll 200", 2.3e-3, group="spawn vs landlock rules", x=200, median_us=med),
        _bench("sc 10", 2.2e-3, group="spawn vs seccomp rules", x=10, median_us=med),
    ]
    svg = plot.render(benches)
    assert svg.startswith("<svg") and svg.count("<path") == 2
    assert "subprocess.run" in svg and "no data" not in svg
