"""In-child cost of applying a compiled Landlock ruleset (server_policy("/") with the
runtime rules) in a freshly forked child, against baselines measured in the same run:

* the C floor: no_new_privs + landlock_restrict_self, inline, on a ruleset with the
  same rules built the plain way (csrc/landlock_bench.c);
* the PyPI ``landlock`` package applying the same rules in ``preexec_fn``.

Every figure is timed inside the child, so the cost of fork itself is left out:
the C helper ``ve_bench_fork_apply`` forks, times the apply and reports its own
elapsed ns through a pipe; ``preexec_fn`` bodies time themselves the same way.
``InChildClock`` hands those figures to pytest-benchmark as its timer, so the
stats in the JSON are in-child nanoseconds. Ratios go to ``extra_info``.

    pytest benchmarks/test_bench_landlock.py --benchmark-enable --benchmark-json=out.json
"""

from __future__ import annotations

import ctypes
import os
import statistics
import subprocess
import time
from collections.abc import Callable

import pytest
from _volt_testcore import ffi, lib  # the test-only extension (tests/build_testcore.py)
from kernelreq import need_landlock  # on sys.path through benchmarks/conftest.py

from volt_enforce import landlock as ll, server_policy
from volt_enforce.errors import check

ROUNDS_FORK = 400
ROUNDS_SPAWN = 150
WARMUP = 10


class InChildClock:
    """A pytest-benchmark timer that advances only by the time measured in the
    child: the benchmark's stats are then the in-child cost."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def add_ns(self, ns: int) -> None:
        self.now += ns / 1e9


CLOCK = InChildClock()
bench = pytest.mark.benchmark(timer=CLOCK, group="landlock in-child apply")


@pytest.fixture(scope="module")
def server() -> ll.CompiledRuleset:
    need_landlock(1)
    with ll.compile(server_policy("/")) as compiled:
        yield compiled


@pytest.fixture(scope="module")
def floor_fd(server: ll.CompiledRuleset) -> int:
    """The same rules, built the plain way, for the C floor."""
    rules = server.report.rules
    paths = [ffi.new("char[]", os.fsencode(r.path)) for r in rules]
    fd = check(lib.ve_bench_build_ruleset(int(server.report.handled_fs),
                                          ffi.new("const char *[]", paths),
                                          ffi.new("uint64_t[]", [int(r.access) for r in rules]),
                                          len(rules)), "ve_bench_build_ruleset")
    yield fd
    os.close(fd)


def c_apply(fd: int, flags: int, how: int) -> int:
    """One fresh child applying the ruleset; its own elapsed ns."""
    return check(lib.ve_bench_fork_apply(fd, flags, how), "ve_bench_fork_apply")


def preexec_apply(body: Callable[[], object]) -> int:
    """Spawn /bin/true with ``body`` timed inside preexec_fn; the elapsed ns."""
    r, w = os.pipe()
    try:
        def preexec() -> None:
            t0 = time.perf_counter_ns()
            body()
            t1 = time.perf_counter_ns()
            os.write(w, (t1 - t0).to_bytes(8, "little"))

        subprocess.run(["/bin/true"], preexec_fn=preexec, check=True)
        os.close(w)
        w = -1
        data = os.read(r, 8)
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)
    assert len(data) == 8, "preexec_fn did not report"
    return int.from_bytes(data, "little")


def median_us(samples: list[int]) -> float:
    return round(statistics.median(samples) / 1000, 2)


def record(benchmark, samples: dict[str, list[int]], ratios: dict[str, tuple[str, str]]) -> None:
    benchmark.extra_info["median_us"] = {k: median_us(v) for k, v in samples.items()}
    for name, (num, den) in ratios.items():
        benchmark.extra_info[name] = round(statistics.median(samples[num])
                                           / statistics.median(samples[den]), 2)


@bench
def test_bench_compiled_vs_c_floor(benchmark, server, floor_fd):
    """Target: the library's apply at most 2x the C floor."""
    samples: dict[str, list[int]] = {"library": [], "c_floor": []}
    turn = [0]

    def one() -> None:
        turn[0] += 1
        order = ("library", "c_floor") if turn[0] % 2 else ("c_floor", "library")
        for who in order:
            if who == "library":
                ns = c_apply(server.fd, server.restrict_flags, lib.VE_BENCH_APPLY_LIB)
                CLOCK.add_ns(ns)
            else:
                ns = c_apply(floor_fd, 0, lib.VE_BENCH_APPLY_RAW)
            samples[who].append(ns)

    benchmark.pedantic(one, rounds=ROUNDS_FORK, warmup_rounds=WARMUP)
    assert min(samples["library"]) > 0 and min(samples["c_floor"]) > 0
    benchmark.extra_info["rules"] = len(server.report.rules)
    benchmark.extra_info["abi"] = server.abi
    record(benchmark, samples, {"library_over_c_floor": ("library", "c_floor")})


@bench
def test_bench_compiled_preexec_fn(benchmark, server, floor_fd):
    """The Python path: ``restrict_self`` as preexec_fn of subprocess."""
    samples: dict[str, list[int]] = {"preexec_fn": [], "c_floor": []}

    def one() -> None:
        ns = preexec_apply(server.restrict_self)
        CLOCK.add_ns(ns)
        samples["preexec_fn"].append(ns)
        samples["c_floor"].append(c_apply(floor_fd, 0, lib.VE_BENCH_APPLY_RAW))

    benchmark.pedantic(one, rounds=ROUNDS_SPAWN, warmup_rounds=WARMUP)
    assert min(samples["preexec_fn"]) > 0
    record(benchmark, samples, {"preexec_fn_over_c_floor": ("preexec_fn", "c_floor")})


@pytest.fixture
def pypi_landlock():
    """The PyPI ``landlock`` package (a peer, not a kernel feature)."""
    try:
        import landlock
    except ImportError:
        pytest.skip("peer not installed")
    return landlock


@bench
def test_bench_pypi_landlock_preexec_fn(pypi_landlock, benchmark, server):
    """The peer: the PyPI ``landlock`` package building and applying the same rules
    in preexec_fn. Target: the library at least 30x faster."""
    landlock = pypi_landlock
    handled = landlock.FSAccess(int(server.report.handled_fs))
    rules = [(r.path, landlock.FSAccess(int(r.access))) for r in server.report.rules]

    def pypi() -> None:
        # the package reads ctypes' errno, not the result: a stale errno left by
        # any earlier ctypes call in this process would fail it spuriously
        ctypes.set_errno(0)
        ruleset = landlock.Ruleset(restrict_rules=handled)
        for path, access in rules:
            ruleset.allow(path, rules=access)
        ruleset.apply()

    samples: dict[str, list[int]] = {"pypi_landlock": [], "library_preexec_fn": [],
                                     "library_c": []}

    def one() -> None:
        ns = preexec_apply(pypi)
        CLOCK.add_ns(ns)
        samples["pypi_landlock"].append(ns)
        samples["library_preexec_fn"].append(preexec_apply(server.restrict_self))
        samples["library_c"].append(c_apply(server.fd, server.restrict_flags,
                                            lib.VE_BENCH_APPLY_LIB))

    benchmark.pedantic(one, rounds=ROUNDS_SPAWN, warmup_rounds=WARMUP)
    assert min(samples["pypi_landlock"]) > 0
    record(benchmark, samples, {
        # ours over the peer, as benchmarks/compare.py reads every ratio (larger is worse)
        "library_preexec_fn_over_pypi": ("library_preexec_fn", "pypi_landlock"),
        "library_c_over_pypi": ("library_c", "pypi_landlock"),
    })
