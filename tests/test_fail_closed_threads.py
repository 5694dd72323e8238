"""Fail closed: apply_self with other threads alive.

Seccomp is synchronized to every thread (TSYNC), but the capability sets, the
bounding set and namespaces are per thread, no_new_privs reaches the others only
through a synchronized filter, and Landlock only with its own TSYNC. Unless
``allow_threads=True``, apply_self refuses and applies nothing; with it, the
report lists each step that reached the calling thread only, and that is what the
other thread really has. Each case runs in a forked child (forked.json_reply)."""

from __future__ import annotations

import os
import threading

import pytest
from forked import json_reply
from kernelreq import need_seccomp

import volt_enforce
from volt_enforce import EnforcementError, IsolationConfig
from volt_enforce._core import lib
from volt_enforce.child import ChildPlan
from volt_enforce.sandbox import thread_coverage


@pytest.fixture(autouse=True)
def _kernel():
    need_seccomp()


def _status(path: str) -> dict[str, str]:
    with open(path) as f:
        return {k: v.strip() for k, _, v in (ln.partition(":") for ln in f)}


def _with_a_thread(fn):
    """Run ``fn(tid)`` in a forked child while another thread (``tid``) is alive."""
    def child():
        started, done = threading.Event(), threading.Event()
        tids = []

        def other():
            tids.append(threading.get_native_id())
            started.set()
            done.wait()

        t = threading.Thread(target=other, daemon=True)
        t.start()
        started.wait(5)
        try:
            return fn(tids[0])
        finally:
            done.set()

    status, reply = json_reply(child)
    assert "ok" in reply, reply
    return reply["ok"]


def _state(tid: int | None = None) -> dict[str, str]:
    st = _status(f"/proc/self/task/{tid}/status" if tid else "/proc/thread-self/status")
    return {k: st[k] for k in ("Seccomp", "NoNewPrivs", "CapEff", "CapBnd")}


CASES = {
    # no Landlock: the case of the issue (seccomp synchronized, capabilities not)
    "capabilities": (IsolationConfig(seccomp="default"), {"contain": False},
                     ["capabilities", "bounding set"]),
    # no filter: no_new_privs would reach the calling thread only
    "no_new_privs": (IsolationConfig(), {"contain": False}, ["no_new_privs"]),
    # namespaces are per thread
    # (contained: the filesystem view, which a threaded process cannot enter at all)
    "namespaces": (IsolationConfig(seccomp="unconfined"), {},
                   ["namespaces", "view", "capabilities", "bounding set", "no_new_privs"]),
}


@pytest.mark.parametrize("case", CASES)
def test_refused_and_nothing_applied(case):
    cfg, kwargs, partial = CASES[case]

    def fn(tid):
        before = _state()
        try:
            volt_enforce.apply_self(cfg, **kwargs)
            return "applied"
        except EnforcementError as exc:
            return {"error": str(exc), "step": exc.step, "unchanged": _state() == before}

    got = _with_a_thread(fn)
    assert got != "applied"
    assert got["unchanged"], got
    assert got["step"] == partial[0]
    assert "threads" in got["error"] and "allow_threads" in got["error"]
    for step in partial:
        assert step in got["error"], (step, got)


@pytest.mark.parametrize("case", CASES)
def test_allowed_threads_are_reported_as_they_are(case):
    cfg, kwargs, partial = CASES[case]

    def fn(tid):
        before = _state(tid)
        report = volt_enforce.apply_self(cfg, allow_threads=True, **kwargs)
        return {"thread_only": report.calling_thread_only, "lines": report.downgrades(),
                "self": _state(), "other": _state(tid), "before": before}

    got = _with_a_thread(fn)
    assert got["thread_only"] == partial
    assert len([ln for ln in got["lines"] if "calling thread only" in ln]) == len(partial)
    me, other, before = got["self"], got["other"], got["before"]
    # what the report says reached the calling thread only did not reach the other
    if "capabilities" in partial:
        assert me["CapEff"] != before["CapEff"] and other["CapEff"] == before["CapEff"]
        assert other["CapBnd"] == before["CapBnd"]
    if "no_new_privs" in partial:
        assert me["NoNewPrivs"] == "1" and other["NoNewPrivs"] == before["NoNewPrivs"]
    # and what it says covers every thread does
    if cfg.seccomp == "default":
        assert me["Seccomp"] == other["Seccomp"] == "2"
        assert other["NoNewPrivs"] == "1"


def test_a_single_thread_is_not_refused():
    def fn():
        report = volt_enforce.apply_self(IsolationConfig(seccomp="default"))
        return report.calling_thread_only

    status, reply = json_reply(fn)
    assert reply == {"ok": []}, reply
    assert os.waitstatus_to_exitcode(status) == 0


def test_thread_coverage_decides_per_step():
    plan = ChildPlan(cap_keep=(), no_new_privs=True, other_namespaces=lib.CLONE_NEWIPC,
                     bpf=b"\x06\x00\x00\x00\x00\x00\xff\x7f",
                     seccomp_flags=lib.SECCOMP_FILTER_FLAG_TSYNC, new_session=True)
    assert thread_coverage(plan) == {"namespaces": False, "session": True,
                                     "capabilities": False, "bounding set": False,
                                     "no_new_privs": True, "seccomp": True}
    # Landlock covers every thread only with its TSYNC flag (ABI 8)
    assert thread_coverage(ChildPlan(landlock_fd=3, no_new_privs=False)) == {"landlock": False}
    assert thread_coverage(ChildPlan(landlock_fd=3, no_new_privs=False,
                                     landlock_flags=lib.LANDLOCK_RESTRICT_SELF_TSYNC)) == {
        "landlock": True}
    # no_new_privs without a synchronized filter
    assert thread_coverage(ChildPlan(no_new_privs=True)) == {"no_new_privs": False}
    # joining a prepared private network is a setns: per thread
    assert thread_coverage(ChildPlan(net_fd=5, no_new_privs=False)) == {"namespaces": False}
