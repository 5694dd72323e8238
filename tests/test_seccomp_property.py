"""Property tests: random rule sets compiled by us agree with a naive evaluation
of the same rules, on 64-bit and 32-bit ABIs; long programs stay correct."""

from __future__ import annotations

import errno

from hypothesis import HealthCheck, given, settings, strategies as st

from volt_enforce import seccomp
from volt_enforce.seccomp import bpf
from volt_enforce.seccomp.policy import Action, ActionKind, Arg, Op, Policy, Rule
from volt_enforce.seccomp.tables import ARCHES, arg_bits

U64 = (1 << 64) - 1
SEVERITY = list(ActionKind)

#: A few syscalls per table, spread over the number space (first, low, middle, high).
NAMES = ["read", "write", "getpid", "socket", "personality", "clone", "ioctl", "openat",
         "mmap", "futex", "close", "kill", "prctl", "fchmodat2", "file_setattr"]


_BY_NR: dict[str, dict[int, set[str]]] = {}
for _arch, _table in ARCHES.items():
    for _name, _nr in _table.syscalls.items():
        _BY_NR.setdefault(_arch, {}).setdefault(_nr, set()).add(_name)


def reference(policy: Policy, arch: str, nr: int, args: tuple[int, ...]) -> Action:
    """What the policy means for (arch, nr, args), evaluated rule by rule; each
    argument compared on the bits the kernel reads of it for that syscall."""
    table = ARCHES[arch]
    names = _BY_NR[arch].get(nr, set())
    if not names:
        d = policy.default_action
        return Action.errno(errno.ENOSYS) if d.denies else d
    best = None
    for i, rule in enumerate(policy.rules):
        if any(all(a.matches(args[a.index], arg_bits(name, a.index, table.bits)) for a in rule.args)
               for name in names & set(rule.names)):
            key = (SEVERITY.index(rule.action.kind), i)
            if best is None or key < best[0]:
                best = (key, rule.action)
    return best[1] if best else policy.default_action


EDGES = [0, 1, 2, 7, 0xFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFE, 0xFFFFFFFF, 1 << 32,
         (1 << 32) + 1, 0xFFFFFFFF_00000000, 0x80000000_00000000, U64 - 1, U64]
values = st.one_of(st.sampled_from(EDGES), st.integers(0, 300), st.integers(0, U64))
actions = st.one_of(
    st.sampled_from([seccomp.ALLOW, seccomp.LOG, seccomp.TRAP, seccomp.KILL_PROCESS,
                     seccomp.KILL_THREAD]),
    st.integers(0, 4095).map(Action.errno))


@st.composite
def args_(draw):
    op = draw(st.sampled_from(list(Op)))
    return Arg(draw(st.integers(0, 5)), op, draw(values),
               draw(values) if op == Op.MASKED_EQ else 0)


rules = st.builds(Rule, st.lists(st.sampled_from(NAMES), min_size=1, max_size=3).map(tuple),
                  actions, st.lists(args_(), max_size=3).map(tuple))
policies = st.builds(lambda d, r: Policy("prop", d, tuple(r)), actions,
                     st.lists(rules, max_size=8))


def near(v: int) -> list[int]:
    """Values that tell comparisons with v apart: v, its neighbours, its other half."""
    out = {v, (v + 1) & U64, (v - 1) & U64, v & 0xFFFFFFFF, v ^ (1 << 32), v | (1 << 63), 0, U64}
    return sorted(out)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policy=policies, arch=st.sampled_from(["x86_64", "aarch64", "i386", "arm"]),
       data=st.data())
def test_compiled_matches_reference(policy, arch, data):
    filt = seccomp.compile(policy, arch=arch)
    bpf.validate(filt.program)
    table = ARCHES[arch]
    probes = {v for rule in policy.rules for a in rule.args for v in near(a.value)}
    probes |= {a.value_two for rule in policy.rules for a in rule.args}
    probes = sorted(probes) or [0]
    picks = iter(data.draw(st.lists(st.integers(0, 1 << 16), min_size=6 * 4 * len(NAMES),
                                    max_size=6 * 4 * len(NAMES))))
    for name in NAMES:
        nr = table.number(name)
        if nr is None:
            continue
        for _ in range(4):
            args = tuple(probes[next(picks) % len(probes)] for _ in range(6))
            assert filt.simulate(nr, args) == reference(policy, arch, nr, args), (name, args)
    for nr in (table.max_nr + 1, table.max_nr + 1000):
        assert filt.simulate(nr) == reference(policy, arch, nr, (0,) * 6)
    # an unconditional ALLOW reads only nr and arch: the kernel caches it
    for name in NAMES:
        nr = table.number(name)
        if nr is None:
            continue
        all_allow = reference(policy, arch, nr, (0,) * 6) == seccomp.ALLOW and not any(
            name in r.names and r.args and r.action != seccomp.ALLOW for r in policy.rules)
        unconditional = any(name in r.names and not r.args and r.action == seccomp.ALLOW
                            for r in policy.rules) and all_allow
        if unconditional:
            assert name in filt.cacheable, name


@settings(max_examples=30, deadline=None)
@given(policy=policies)
def test_oci_round_trip_gives_the_same_program(policy):
    filt = seccomp.compile(policy, arch="x86_64")
    again = seccomp.compile(filt.to_oci(), arch="x86_64", caps=())
    assert again.bpf == filt.bpf


def test_long_jumps():
    """Hundreds of argument rules: jumps past 255 instructions need trampolines."""
    table = ARCHES["x86_64"]
    names = [n for n, nr in sorted(table.syscalls.items(), key=lambda kv: kv[1]) if nr < 300][:150]
    rules = []
    for i, name in enumerate(names):
        rules.append(Rule((name,), seccomp.ALLOW, (Arg(0, Op.EQ, i), Arg(1, Op.GT, i << 33))))
        rules.append(Rule((name,), Action.errno(i % 100 + 1), (Arg(2, Op.MASKED_EQ, 0xF0, 0x10),)))
    policy = Policy("long", seccomp.KILL_PROCESS, tuple(rules))
    filt = seccomp.compile(policy, arch="x86_64")
    assert filt.instructions > 1000
    insns = filt.program
    assert any(i.code == (bpf.ja(0).code) for i in insns)  # trampolines were needed
    bpf.validate(insns)
    for i, name in enumerate(names):
        for args in [(i, (i << 33) + 1, 0), (i, i << 33, 0x13), (i + 1, 1 << 40, 0x1F),
                     (i, U64, 0xF0)]:
            full = args + (0,) * 3
            assert filt.simulate(name, full) == reference(policy, "x86_64", table.number(name), full)
