"""Raw C floors of a sandboxed spawn (csrc/test/spawn_floor.c), each timed in the same
rounds as plain subprocess.run and as the library's path it is the floor of.

Group "floors". The floors do the kernel work of a path the plainest way, with the
same policy (the server Landlock preset's ruleset, the default seccomp filter, the
capability set the library keeps), so that

* ``floor / subprocess.run`` is what the kernel charges here for that isolation,
  whatever a library does, and
* ``ours / floor`` is what this library adds on top.

Floors:

* the contained default: PID, mount, IPC and UTS namespaces with proc, tmpfs and
  devpts mounts, a session, capabilities, no_new_privs, Landlock and seccomp, and the
  init exec'd (volt-pidinit). The read-only view of the host is left out, so no
  implementation of the contained default can go below it;
* the spawner's design: a helper restricted once, one byte of request and the pid
  back, the target cloned with CLONE_PARENT into a Landlock domain of its own (the
  spawner's child layer).
"""

from __future__ import annotations

import pytest
from _volt_testcore import ffi as testffi, lib as testlib  # test-only (tests/build_testcore.py)
from kernelreq import need_landlock, need_seccomp
from pairs import paired
from spawnbench import TRUE, plain, server_default

from volt_enforce import Sandbox
from volt_enforce.pidns import init_memfd
from volt_enforce.spawner import _child_layer


@pytest.fixture(scope="module", autouse=True)
def _kernel():
    need_landlock(6)
    need_seccomp()


@pytest.fixture(scope="module")
def floor():
    """The floor's policy: the contain=False sandbox's ruleset, filter and capabilities."""
    with Sandbox(server_default(), contain=False) as sb:
        c = sb.plan.c
        keep = testffi.new("char[]", TRUE[0].encode())
        f = testffi.new("struct ve_bench_floor *")
        f.target, f.init_fd = keep, init_memfd()
        f.ruleset_fd = c.landlock_fd
        f.bpf = testffi.cast("void *", c.bpf)
        f.n_insns = c.bpf_len
        f.drop_caps, f.cap_last, f.cap_keep = c.drop_caps, c.cap_last, c.cap_keep
        f.child_scopes, f.child_fs, _ = _child_layer(sb.compiled)
        assert f.ruleset_fd >= 0 and f.n_insns > 0 and f.drop_caps
        yield f, keep


def _checked(ns: int) -> None:
    if ns < 0:
        raise OSError(f"floor failed: {ns}")


def _go(benchmark, fn, baseline, name: str, key: str) -> None:
    benchmark.group = "floors"
    benchmark.name = name
    paired(benchmark, fn, baseline, key=key)


def _contained_floor(floor):
    f = floor[0]
    return lambda: _checked(testlib.ve_bench_contained_floor(f))


def test_contained_floor_over_plain(benchmark, floor):
    _go(benchmark, _contained_floor(floor), plain,
        "raw C floor of the contained default's kernel work", "ratio_over_subprocess_run")


def test_contained_over_its_floor(benchmark, floor):
    with Sandbox(server_default()) as sb:
        _go(benchmark, lambda: sb.run(TRUE), _contained_floor(floor),
            "contained Sandbox(cfg).run over its raw C floor", "ratio_over_c_floor")


@pytest.fixture()
def helper(floor):
    sock = testffi.new("int *")
    pid = testlib.ve_bench_helper_start(floor[0], sock)
    assert pid > 0, pid
    yield sock[0]
    assert testlib.ve_bench_helper_stop(sock[0], pid) == 0


def test_spawner_floor_over_plain(benchmark, helper):
    _go(benchmark, lambda: _checked(testlib.ve_bench_helper_spawn(helper)), plain,
        "raw C floor of the spawner's design", "ratio_over_subprocess_run")


def test_spawner_over_its_floor(benchmark, helper):
    with Sandbox(server_default(), contain=False, spawner=True) as sb:
        sb.run(TRUE)  # the spawner starts outside the rounds
        _go(benchmark, lambda: sb.run(TRUE),
            lambda: _checked(testlib.ve_bench_helper_spawn(helper)),
            "Sandbox(contain=False, spawner=True).run over its raw C floor", "ratio_over_c_floor")
