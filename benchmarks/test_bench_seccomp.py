"""seccomp benchmarks: ours against libseccomp on Docker's default profile.

Run: pytest benchmarks/test_bench_seccomp.py --benchmark-enable --benchmark-json=out.json
The figures that matter are in each benchmark's ``extra_info``, measured in the same
run for ours and the baselines (interleaved), with their ratios: medians for compile
and load time, the minimum over rounds (and the median) for per-call cost. Load time
and per-call cost are measured inside a fresh child, in C (clock_gettime around the
call), and reported through a pipe.
"""

from __future__ import annotations

import ctypes
import os
import statistics
import time

import pytest
from _volt_testcore import ffi as testffi, lib as testlib  # test-only (tests/build_testcore.py)
from kernelreq import need_seccomp  # tests/ is on sys.path (benchmarks/conftest.py)
from test_seccomp_libseccomp import libseccomp

from volt_enforce import DOCKER_DEFAULT_CAPABILITIES, seccomp
from volt_enforce._core import ffi, lib
from volt_enforce.seccomp import bpf, profiles
from volt_enforce.seccomp.tables import ARCHES, native_arch


def _rounds(benchmark, enabled: int, disabled: int = 2) -> int:
    return disabled if benchmark.disabled else enabled


def _in_child(fn) -> float:
    """Run fn in a fresh child; its number comes back through a pipe."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.write(w, repr(fn()).encode())
        finally:
            os._exit(0)
    os.close(w)
    out = os.read(r, 64)
    os.close(r)
    os.waitpid(pid, 0)
    value = float(out)
    assert value >= 0, f"the child failed: {value}"
    return value


@pytest.fixture(scope="module")
def docker():
    need_seccomp()
    ls = libseccomp()
    policy = profiles.docker_policy(native_arch())  # Docker's decisions alone
    ours = seccomp.compile(policy)
    theirs_opt2, _ = ls.compile(policy, optimize=2)
    theirs_opt1, _ = ls.compile(policy, optimize=1)
    return ls, policy, ours, bpf.pack(theirs_opt2), bpf.pack(theirs_opt1)


def test_compile_docker_profile(benchmark, docker):
    ls, policy, ours, theirs2, theirs1 = docker
    doc = profiles.docker_profile()
    caps = DOCKER_DEFAULT_CAPABILITIES

    def ours_compile():
        return seccomp.compile(doc, caps=caps)

    def theirs_compile():
        ls.compile(policy, optimize=2)

    result = benchmark(ours_compile)
    assert result.bpf == ours.bpf
    # the baseline, timed in the same run
    n = _rounds(benchmark, 30)
    ours_t = statistics.median(_timed(ours_compile) for _ in range(n))
    theirs_t = statistics.median(_timed(theirs_compile) for _ in range(n))
    i2, i1 = len(theirs2) // 8, len(theirs1) // 8
    benchmark.extra_info.update({
        "instructions_ours": ours.instructions,
        "instructions_libseccomp_bintree": i2,
        "instructions_libseccomp_linear": i1,
        "instruction_ratio_vs_bintree": round(ours.instructions / i2, 3),
        "instruction_ratio_vs_linear": round(ours.instructions / i1, 3),
        "compile_ms_ours": round(ours_t * 1e3, 3),
        "compile_ms_libseccomp_build_export": round(theirs_t * 1e3, 3),
        "compile_ratio": round(ours_t / theirs_t, 2),
        "cacheable_ours": len(ours.cacheable),
        "cacheable_libseccomp_bintree": sum(
            bpf.const_allow(bpf.unpack(theirs2), ARCHES[ours.arch].audit_arch, nr)
            for nr in ARCHES[ours.arch].syscalls.values()),
    })
    assert ours.instructions * 2 <= min(i1, i2)


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def test_load_in_fresh_child(benchmark, docker):
    """seccomp load time measured inside the child: ours, libseccomp's seccomp_load
    (which generates its BPF at load), and libseccomp's exported BPF with our loader."""
    ls, policy, ours, theirs2, _ = docker
    ctx, _ = ls.build(policy, optimize=2)
    seccomp_load = testffi.cast("int (*)(void *)", ctypes.cast(ls.lib.seccomp_load, ctypes.c_void_p).value)
    ctx_ptr = testffi.cast("void *", ctx)
    ours_buf, theirs_buf = testffi.from_buffer(ours.bpf), testffi.from_buffer(theirs2)
    variants = {
        "ours": lambda: testlib.ve_bench_load_ns(ours_buf, ours.instructions, 0),
        "libseccomp_seccomp_load": lambda: testlib.ve_bench_call_ns(seccomp_load, ctx_ptr),
        "libseccomp_bpf_our_loader": lambda: testlib.ve_bench_load_ns(theirs_buf, len(theirs2) // 8, 0),
    }
    try:
        benchmark.pedantic(lambda: _in_child(variants["ours"]), rounds=_rounds(benchmark, 50, 1),
                           iterations=1)
        samples: dict[str, list[float]] = {k: [] for k in variants}
        for _ in range(_rounds(benchmark, 60)):
            for name, fn in variants.items():  # interleaved: drift hits all alike
                samples[name].append(_in_child(fn))
    finally:
        ls.release(ctx)
    med = {k: statistics.median(v) / 1e3 for k, v in samples.items()}
    benchmark.extra_info.update({f"load_us_{k}": round(v, 2) for k, v in med.items()})
    benchmark.extra_info["ratio_vs_seccomp_load"] = round(med["ours"] / med["libseccomp_seccomp_load"], 3)
    benchmark.extra_info["ratio_vs_libseccomp_bpf"] = round(med["ours"] / med["libseccomp_bpf_our_loader"], 3)


@pytest.mark.parametrize("call", ["getpid", "personality_query", "socket_checked"])
def test_syscall_cost(benchmark, docker, call):
    """Per-call cost in a child with no filter, ours, libseccomp's (bintree), and two
    floors: a one-instruction ALLOW-everything filter (what any filter costs when the
    action cache answers) and ours with getpid made uncacheable (an argument test)."""
    _, _, ours, theirs2, _ = docker
    table = ARCHES[ours.arch]
    nr, a0, a1 = {
        "getpid": (table.number("getpid"), 0, 0),
        # allowed after an argument check in both filters
        "personality_query": (table.number("personality"), lib.VE_PER_QUERY, 0),
        # socket(AF_INET, bad type): allowed after the argument check, then a cheap EINVAL
        "socket_checked": (table.number("socket"), lib.AF_INET, 0xFFFF),
    }[call]
    iters = 200_000 if not benchmark.disabled else 1_000
    allow_all = bpf.pack([bpf.ret(lib.SECCOMP_RET_ALLOW)])
    getpid_checked = seccomp.compile(seccomp.Policy("uncached", seccomp.ALLOW, (seccomp.Rule(
        ("getpid",), seccomp.Action.errno(1), (seccomp.Arg(5, seccomp.Op.EQ, 12345),)),)))
    keep = []

    def measure(program: bytes | None):
        buf = ffi.from_buffer(program) if program else None
        keep.append(buf)

        def run():
            if buf is not None:
                if lib.ve_seccomp_set_no_new_privs() or lib.ve_seccomp_load(buf, len(program) // 8, 0):
                    return -1
            testlib.ve_bench_syscall_ns(nr, a0, a1, 1000)  # warm up
            return testlib.ve_bench_syscall_ns(nr, a0, a1, iters) / iters
        return run

    variants = {"none": measure(None), "ours": measure(ours.bpf), "libseccomp": measure(theirs2),
                "allow_all_1insn": measure(allow_all)}
    if call == "getpid":
        variants["getpid_uncacheable"] = measure(getpid_checked.bpf)
    benchmark.pedantic(lambda: _in_child(variants["ours"]), rounds=_rounds(benchmark, 5, 1),
                       iterations=1)
    samples: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(_rounds(benchmark, 15, 1)):
        for name, fn in variants.items():
            samples[name].append(_in_child(fn))
    # the minimum over rounds: the least disturbed by other work on the machine
    med = {k: min(v) for k, v in samples.items()}
    benchmark.extra_info.update({f"ns_per_call_{k}": round(v, 1) for k, v in med.items()})
    benchmark.extra_info.update({f"ns_per_call_median_{k}": round(statistics.median(v), 1)
                                 for k, v in samples.items()})
    benchmark.extra_info["ratio_ours_vs_none"] = round(med["ours"] / med["none"], 3)
    benchmark.extra_info["ratio_ours_vs_allow_all"] = round(med["ours"] / med["allow_all_1insn"], 3)
    benchmark.extra_info["ratio_ours_vs_libseccomp"] = round(med["ours"] / med["libseccomp"], 3)
