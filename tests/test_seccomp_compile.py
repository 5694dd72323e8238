"""compile(): profiles, OCI import/export, errors naming the entry, decisions by simulation."""

from __future__ import annotations

import copy
import dataclasses
import errno
import json

import pytest

from volt_enforce import DOCKER_DEFAULT_CAPABILITIES, PolicyError, SeccompProfile, seccomp
from volt_enforce._core import lib
from volt_enforce.seccomp import compiler, oci, profiles
from volt_enforce.seccomp.policy import Action, ActionKind, Arg, Op, Policy, Rule
from volt_enforce.seccomp.tables import ARCHES

EPERM = Action.errno(errno.EPERM)
ENOSYS = Action.errno(errno.ENOSYS)
ALLOW = seccomp.ALLOW
KILL = seccomp.KILL_PROCESS
X32 = lib.VE_X32_SYSCALL_BIT


def docker() -> dict:
    return copy.deepcopy(profiles.docker_profile())


@pytest.fixture(scope="module")
def default():
    return seccomp.compile("default", arch="x86_64")


# ---- the built-in profiles ------------------------------------------------------------

def test_builtins_are_cached_and_immutable():
    a = seccomp.compile("default")
    assert seccomp.compile(SeccompProfile.DEFAULT) is a
    assert seccomp.compile("strict") is seccomp.compile(SeccompProfile.STRICT)
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.bpf = b""  # type: ignore[misc]
    assert isinstance(a.bpf, bytes) and len(a.bpf) == 8 * a.instructions


def test_unconfined():
    f = seccomp.compile("unconfined")
    assert (f.bpf, f.instructions, f.name) == (b"", 0, "unconfined")
    assert f.simulate("mount") == ALLOW
    assert f.to_oci() == {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": []}
    assert f.summary()["instructions"] == 0
    assert f.disassemble() == "(no filter)"


@pytest.mark.parametrize("name,args,expect", [
    ("getpid", (), ALLOW), ("read", (), ALLOW), ("execve", (), ALLOW),
    ("mount", (), EPERM), ("umount2", (), EPERM), ("reboot", (), EPERM),
    ("kexec_load", (), EPERM), ("init_module", (), EPERM), ("unshare", (), EPERM),
    ("setns", (), EPERM), ("bpf", (), EPERM), ("keyctl", (), EPERM), ("swapon", (), EPERM),
    ("ptrace", (), ALLOW),  # Docker allows it from kernel 4.8
    ("clone3", (), ENOSYS),
    ("clone", (0x11,), ALLOW), ("clone", (lib.CLONE_NEWUSER | 0x11,), EPERM),
    ("clone", (lib.CLONE_NEWNS,), EPERM), ("clone", (1 << 40,), ALLOW),
    ("socket", (lib.AF_INET,), ALLOW), ("socket", (lib.AF_ALG,), EPERM),
    ("socket", (39,), ALLOW), ("socket", (lib.AF_VSOCK,), EPERM), ("socket", (41,), ALLOW),
    ("socket", (1 << 32 | lib.AF_INET,), ALLOW),  # the kernel reads AF_INET
    ("socket", (1 << 32 | lib.AF_VSOCK,), EPERM), ("socket", (1 << 32 | lib.AF_ALG,), EPERM),
    ("personality", (lib.PER_LINUX,), ALLOW), ("personality", (lib.UNAME26,), ALLOW),
    ("personality", (lib.VE_PER_QUERY,), ALLOW), ("personality", (0x0400000,), EPERM),
    ("personality", (1 << 32,), ALLOW),  # an unsigned int: the kernel reads PER_LINUX
    ("personality", (1 << 32 | 0x0400000,), EPERM), ("personality", (2**64 - 1,), ALLOW),
    ("arch_prctl", (), ALLOW), ("modify_ldt", (), ALLOW),
    ("open_by_handle_at", (), EPERM), ("chroot", (), ALLOW), ("iopl", (), EPERM),
    ("cachestat", (), ALLOW), ("mseal", (), ALLOW), ("file_getattr", (), EPERM),
    # 6.19 .. 7.3: Docker's profile names none of them, so its default (EPERM)
    ("listns", (), EPERM), ("rseq_slice_yield", (), EPERM), ("fchroot", (), EPERM),
])
def test_default_decisions(default, name, args, expect):
    assert default.simulate(name, args) == expect


def test_default_numbers_and_arches(default):
    assert default.simulate(473) == ENOSYS
    assert default.simulate(400) == ENOSYS  # a hole in the x86_64 table
    assert default.simulate(0x3FFFFFFF) == ENOSYS
    assert default.simulate(X32 | 39) == EPERM  # x32 getpid
    assert default.simulate("getpid", arch="x32") == EPERM
    assert default.simulate(0xFFFFFFFF) == EPERM
    assert default.simulate("getpid", arch="i386") == EPERM
    assert default.simulate(39, arch="aarch64") == KILL
    assert default.simulate(39, arch=0x12345) == KILL


def test_default_is_small_and_cacheable(default):
    assert default.instructions <= 120
    unconditional = {name for name, nr in ARCHES["x86_64"].syscalls.items()
                     if compiler.decisions(default.policy, ARCHES["x86_64"])[nr] == ((), ALLOW)}
    assert default.cacheable == unconditional
    assert {"read", "write", "getpid", "futex", "mmap"} <= default.cacheable
    assert not {"socket", "personality", "clone", "mount"} & default.cacheable
    assert len(default.cacheable) > 280


def test_default_for_aarch64():
    f = seccomp.compile("default", arch="arm64")
    assert f.arch == "aarch64"
    assert f.simulate("getpid") == ALLOW and f.simulate(172) == ALLOW
    assert f.simulate("mount") == EPERM
    assert f.simulate("clone", (lib.CLONE_NEWNET,)) == EPERM
    assert f.simulate("getpid", arch="arm") == EPERM
    assert f.simulate(39, arch="x86_64") == KILL
    assert f.simulate(473) == ENOSYS
    assert "arch_prctl" not in ARCHES["aarch64"].syscalls


def test_subarches_cover_compat_abis():
    f = seccomp.compile("default", arch="x86_64", subarches=("i386", "x32"))
    assert f.simulate("getpid", arch="i386") == ALLOW
    assert f.simulate("socketcall", arch="i386") == ALLOW
    assert f.simulate("mount", arch="i386") == EPERM
    assert f.simulate("personality", (0x0400000,), arch="i386") == EPERM
    assert f.simulate("personality", (1 << 32,), arch="i386") == ALLOW  # 32-bit: low word only
    assert f.simulate(500, arch="i386") == ENOSYS
    assert f.simulate("getpid", arch="x32") == ALLOW
    assert f.simulate("rt_sigaction", arch="x32") == ALLOW  # x32's own number, 512
    assert f.simulate(X32 | 13) == ENOSYS  # x86_64's rt_sigaction number is not x32's
    assert f.simulate(39, arch="aarch64") == KILL
    with pytest.raises(PolicyError, match="subarches"):
        seccomp.compile("default", arch="x86_64", subarches=("arm",))


@pytest.mark.parametrize("name,args,expect", [
    ("getpid", (), ALLOW), ("openat", (), ALLOW), ("ptrace", (), EPERM),
    ("process_vm_readv", (), EPERM), ("mount", (), EPERM), ("pivot_root", (), EPERM),
    ("unshare", (), EPERM), ("setns", (), EPERM), ("io_uring_setup", (), EPERM),
    ("bpf", (), EPERM), ("perf_event_open", (), EPERM), ("keyctl", (), EPERM),
    ("add_key", (), EPERM), ("userfaultfd", (), EPERM), ("settimeofday", (), EPERM),
    ("clock_settime", (), EPERM), ("adjtimex", (), EPERM), ("reboot", (), EPERM),
    ("init_module", (), KILL), ("finit_module", (), KILL), ("kexec_load", (), KILL),
    ("kexec_file_load", (), KILL), ("delete_module", (), KILL),
    ("clone3", (), ENOSYS), ("clone", (0x11,), ALLOW), ("clone", (lib.CLONE_NEWPID,), EPERM),
    ("socket", (lib.AF_UNIX,), ALLOW), ("socket", (lib.AF_INET6,), ALLOW),
    ("socket", (lib.AF_NETLINK,), ALLOW), ("socket", (17,), EPERM),  # AF_PACKET
    ("socket", (lib.AF_VSOCK,), EPERM), ("socket", (1 << 32 | lib.AF_INET,), ALLOW),
    ("socket", (1 << 32 | 17,), EPERM),
    ("personality", (lib.PER_LINUX32,), ALLOW), ("personality", (0x0400000,), EPERM),
    # 6.19 .. 7.3: namespace listing as namespace creation and listmount; fchroot as chroot
    ("listns", (), EPERM), ("listmount", (), EPERM), ("fchroot", (), EPERM),
    ("chroot", (), EPERM), ("rseq_slice_yield", (), ALLOW), ("rseq", (), ALLOW),
])
def test_strict_decisions(name, args, expect):
    assert seccomp.compile("strict").simulate(name, args) == expect


def test_strict_only_names_known_syscalls():
    for name in profiles.STRICT_ALLOWED:
        assert seccomp.tables.is_known_syscall(name), name
    assert seccomp.compile("strict").instructions < 150


# ---- OCI import ---------------------------------------------------------------------------

def test_import_from_path_and_dict(tmp_path):
    path = tmp_path / "docker.json"
    path.write_text(json.dumps(docker()))
    caps = DOCKER_DEFAULT_CAPABILITIES
    from_path = seccomp.compile(str(path), caps=caps)
    assert from_path.name == "docker.json"
    assert from_path.bpf == seccomp.compile(docker(), caps=caps).bpf
    # Docker's file is Docker's decisions; "default" adds the containment rules
    assert from_path.bpf == seccomp.compile(profiles.docker_policy(from_path.arch)).bpf
    assert from_path.bpf != seccomp.compile("default").bpf


def test_capabilities_of_a_docker_container_by_default():
    """Never the caller's: a root caller's CAP_SYS_BOOT would let reboot through."""
    by_default = seccomp.compile(docker())
    assert by_default.bpf == seccomp.compile(docker(), caps=DOCKER_DEFAULT_CAPABILITIES).bpf
    if "SYS_BOOT" in oci.effective_capabilities():
        assert by_default.bpf != seccomp.compile(docker(), caps=oci.effective_capabilities()).bpf
    for name in ("reboot", "settimeofday", "sethostname", "bpf", "perf_event_open"):
        assert by_default.simulate(name) == EPERM, name
    admin = seccomp.compile(docker(), caps=("CAP_SYS_ADMIN", "CAP_SYS_PTRACE"))
    assert admin.simulate("mount") == ALLOW
    assert admin.simulate("clone", (lib.CLONE_NEWUSER,)) == ALLOW
    assert admin.simulate("clone3") == ALLOW
    assert admin.simulate("kcmp") == ALLOW
    none = seccomp.compile(docker(), caps=())
    assert none.simulate("mount") == EPERM and none.simulate("chroot") == EPERM


def test_min_kernel():
    assert seccomp.compile(docker(), caps=(), kernel=(4, 7)).simulate("ptrace") == EPERM
    assert seccomp.compile(docker(), caps=(), kernel=(4, 8)).simulate("ptrace") == ALLOW
    assert oci.running_kernel() >= (4, 8)


def test_arch_includes_and_excludes():
    doc = {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
        {"names": ["getpid"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["arm64"]}},
        {"names": ["getppid"], "action": "SCMP_ACT_ALLOW", "excludes": {"arches": ["amd64"]}},
        {"names": ["gettid"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["amd64"]}},
    ]}
    x86 = seccomp.compile(doc, arch="x86_64", caps=())
    arm = seccomp.compile(doc, arch="aarch64", caps=())
    assert [x86.simulate(n) for n in ("getpid", "getppid", "gettid")] == [EPERM, EPERM, ALLOW]
    assert [arm.simulate(n) for n in ("getpid", "getppid", "gettid")] == [ALLOW, ALLOW, EPERM]


def test_oci_runtime_spec_form():
    doc = {"defaultAction": "SCMP_ACT_KILL_PROCESS",
           "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
           "flags": ["SECCOMP_FILTER_FLAG_LOG"],
           "syscalls": [{"names": ["write"], "action": "SCMP_ACT_ERRNO"},
                        {"names": ["read"], "action": "SCMP_ACT_ALLOW",
                         "args": [{"index": 0, "value": 0xF0, "valueTwo": 0x10,
                                   "op": "SCMP_CMP_MASKED_EQ"}]},
                        {"name": "getpid", "action": "SCMP_ACT_LOG"}]}
    f = seccomp.compile(doc, caps=())
    assert f.flags == lib.SECCOMP_FILTER_FLAG_LOG
    assert f.simulate("write") == EPERM  # a rule's errno defaults to EPERM, not defaultErrnoRet
    assert f.simulate("read", (0x1F,)) == ALLOW and f.simulate("read", (0x20,)) == KILL
    assert f.simulate("getpid") == seccomp.LOG
    assert f.simulate(473) == ENOSYS
    allow_all = seccomp.compile({"defaultAction": "SCMP_ACT_ALLOW"}, caps=())
    assert allow_all.simulate(473) == ALLOW  # a denylist lets unknown numbers through
    assert allow_all.simulate("getpid", arch="i386") == KILL  # ... but not the compat ABI


# ---- export --------------------------------------------------------------------------------

@pytest.mark.parametrize("profile", ["default", "strict"])
def test_export_round_trip(profile):
    f = seccomp.compile(profile)
    doc = f.to_oci()
    assert doc["architectures"] == ["SCMP_ARCH_X86_64"] or f.arch != "x86_64"
    assert json.loads(json.dumps(doc)) == doc
    assert seccomp.compile(doc, caps=()).bpf == f.bpf


def test_export_shape(default):
    doc = default.to_oci()
    assert doc["defaultAction"] == "SCMP_ACT_ERRNO" and doc["defaultErrnoRet"] == 1
    socket_rules = [s for s in doc["syscalls"] if s["names"] == ["socket"]]
    assert [r["args"][0]["op"] for r in socket_rules] == ["SCMP_CMP_LT", "SCMP_CMP_EQ",
                                                          "SCMP_CMP_GT"]
    clone3 = [s for s in doc["syscalls"] if s["names"] == ["clone3"]]
    assert clone3 == [{"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}]


def test_summary_and_listing(default):
    s = default.summary()
    assert s == {"profile": "default", "arch": "x86_64", "instructions": default.instructions,
                 "rules": len(default.policy.rules), "default_action": "ERRNO(1)",
                 "cacheable": len(default.cacheable)}
    text = default.disassemble()
    lines = text.splitlines()
    assert len(lines) == default.instructions
    assert lines[0].split() == ["0:", "ld", "arch"] and "; x86_64" in lines[1]
    assert any(line.endswith("ret ALLOW") for line in lines)
    assert any("args[0].lo" in line for line in lines)


# ---- policies built in Python ---------------------------------------------------------------

def test_policy_precedence_most_severe_wins():
    p = Policy("p", ALLOW, (
        Rule(("getppid",), Action.errno(5), (Arg(0, Op.GE, 10),)),
        Rule(("getppid",), KILL, (Arg(0, Op.EQ, 12),)),
        Rule(("getppid",), Action.errno(6), (Arg(0, Op.GE, 10),)),
        Rule(("gettid",), seccomp.LOG),
        Rule(("gettid",), seccomp.TRAP, (Arg(1, Op.NE, 0),)),
    ))
    f = seccomp.compile(p)
    assert [f.simulate("getppid", (v,)) for v in (9, 10, 12)] == [ALLOW, Action.errno(5), KILL]
    assert f.simulate("gettid", (0, 0)) == seccomp.LOG
    assert f.simulate("gettid", (0, 1)) == seccomp.TRAP


def test_action_values():
    assert Action.errno(38).ret == lib.SECCOMP_RET_ERRNO | 38
    assert Action.from_ret(lib.SECCOMP_RET_ERRNO | 38) == Action.errno(38)
    assert Action.from_ret(lib.SECCOMP_RET_KILL_THREAD) == seccomp.KILL_THREAD
    assert Action.from_ret(lib.SECCOMP_RET_TRACE | 7) == Action(ActionKind.TRACE, 7)
    assert Action.from_ret(0x12340000) == KILL  # unknown actions kill, as in the kernel
    assert str(Action.errno(1)) == "ERRNO(1)" and str(ALLOW) == "ALLOW"


# ---- errors name the entry; nothing is compiled ------------------------------------------------

def _bad(mutate):
    doc = {"defaultAction": "SCMP_ACT_ERRNO",
           "syscalls": [{"names": ["read", "write"], "action": "SCMP_ACT_ALLOW",
                         "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}],
                         "includes": {}, "excludes": {}}]}
    mutate(doc)
    return doc


def _set(path, value):
    def mutate(doc):
        target = doc
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return mutate


@pytest.mark.parametrize("mutate,field,reason", [
    (_set(("syscalls", 0, "names", 1), "foo"), "syscalls[0].names[1]", "is not a known syscall"),
    (_set(("syscalls", 0, "names"), []), "syscalls[0].names", "is empty"),
    (_set(("syscalls", 0, "names"), "read"), "syscalls[0].names", "is not a list"),
    (_set(("syscalls", 0, "name"), "read"), "syscalls[0].name", "together with names"),
    (_set(("syscalls", 0, "action"), "SCMP_ACT_FOO"), "syscalls[0].action", "is not an action"),
    (_set(("syscalls", 0, "action"), "SCMP_ACT_TRACE"), "syscalls[0].action", "not supported"),
    (_set(("syscalls", 0, "action"), "SCMP_ACT_NOTIFY"), "syscalls[0].action", "not supported"),
    (_set(("syscalls", 0, "errnoRet"), 5), "syscalls[0].errnoRet", "only valid with"),
    (_set(("syscalls", 0, "args", 0, "op"), "SCMP_CMP_FOO"), "syscalls[0].args[0].op",
     "is not a comparison"),
    (_set(("syscalls", 0, "args", 0, "index"), 6), "syscalls[0].args[0].index", "index from 0"),
    (_set(("syscalls", 0, "args", 0, "value"), -1), "syscalls[0].args[0].value", "unsigned 64"),
    (_set(("syscalls", 0, "args", 0, "value"), 1 << 64), "syscalls[0].args[0].value",
     "unsigned 64"),
    (_set(("syscalls", 0, "args", 0, "value"), "1"), "syscalls[0].args[0].value", "unsigned"),
    (_set(("syscalls", 0, "args", 0, "valu"), 1), "syscalls[0].args[0].valu", "not a field"),
    (_set(("syscalls", 0, "arg"), []), "syscalls[0].arg", "not a field"),
    (_set(("syscalls", 0, "includes"), {"caps": ["CAP_FOO"]}), "syscalls[0].includes.caps[0]",
     "not a known capability"),
    (_set(("syscalls", 0, "excludes"), {"arches": ["amd46"]}), "syscalls[0].excludes.arches[0]",
     "not an architecture"),
    (_set(("syscalls", 0, "includes"), {"minKernel": "four"}), "syscalls[0].includes.minKernel",
     "kernel version"),
    (_set(("syscalls", 0, "includes"), {"kernel": "4.8"}), "syscalls[0].includes.kernel",
     "not a field"),
    (_set(("defaultAction",), "SCMP_ACT_BOGUS"), "defaultAction", "is not an action"),
    (_set(("defaultErrnoRet",), 4096), "defaultErrnoRet", "errno from 0 to 4095"),
    (_set(("architectures",), ["SCMP_ARCH_VAX"]), "architectures[0]", "libseccomp architecture"),
    (_set(("listenerPath",), "/run/x.sock"), "listenerPath", "not supported"),
    (_set(("flags",), ["SECCOMP_FILTER_FLAG_NEW_LISTENER"]), "flags[0]", "not supported"),
    (_set(("syscall",), []), "syscall", "not a field"),
    (_set(("syscalls",), {}), "syscalls", "is not a list"),
    (lambda d: d.pop("defaultAction"), "defaultAction", "is missing"),
    (lambda d: d["syscalls"][0].pop("action"), "syscalls[0].action", "is missing"),
])
def test_malformed_profiles_name_the_entry(mutate, field, reason):
    with pytest.raises(PolicyError) as e:
        seccomp.compile(_bad(mutate), caps=())
    assert e.value.field == field and reason in e.value.reason


def test_errno_ret_needs_errno():
    with pytest.raises(PolicyError, match="defaultErrnoRet"):
        seccomp.compile({"defaultAction": "SCMP_ACT_ALLOW", "defaultErrnoRet": 5})


def test_unknown_name_message_matches_the_entry():
    doc = docker()
    doc["syscalls"][12]["names"] = ["arch_prctl", "a", "b", "foo"]
    with pytest.raises(PolicyError, match=r"^syscalls\[12\]\.names\[1\]: 'a' is not a known syscall$"):
        seccomp.compile(doc)
    doc["syscalls"][12]["names"] = ["arch_prctl", "read", "write", "foo"]
    with pytest.raises(PolicyError, match=r"^syscalls\[12\]\.names\[3\]: 'foo' is not a known syscall$"):
        seccomp.compile(doc)


@pytest.mark.parametrize("kwargs,field", [
    ({"arch": "sparc64"}, "arch"), ({"arch": "x32"}, "arch"), ({"arch": 5}, "arch"),
    ({"caps": ("CAP_WHAT",)}, "caps[0]"),
])
def test_bad_arguments(kwargs, field):
    with pytest.raises(PolicyError) as e:
        seccomp.compile(docker(), **kwargs)
    assert e.value.field == field


def test_bad_profile_arguments(tmp_path):
    with pytest.raises(PolicyError, match="is not a profile name"):
        seccomp.compile(42)
    with pytest.raises(PolicyError, match="cannot be read"):
        seccomp.compile(str(tmp_path / "missing.json"))
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(PolicyError, match="not valid JSON"):
        seccomp.compile(str(bad))
    with pytest.raises(PolicyError, match="do not apply"):
        seccomp.compile("default", caps=())
    with pytest.raises(PolicyError, match="has no number"):
        seccomp.compile("default").simulate("arm_fadvise64_64")
    with pytest.raises(PolicyError, match="six unsigned"):
        seccomp.compile("default").simulate("read", (-1,))


def test_too_long_for_the_kernel():
    table = ARCHES["x86_64"]
    rules = tuple(Rule((name,), ALLOW, (Arg(0, Op.EQ, i << 33 | v), Arg(1, Op.GT, v)))
                  for i, name in enumerate(list(table.syscalls)[:300]) for v in range(6))
    with pytest.raises(PolicyError, match="at most 4096"):
        seccomp.compile(Policy("huge", EPERM, rules))


def test_python_model_validation():
    with pytest.raises(PolicyError, match="names"):
        Rule(("nope",), ALLOW)
    with pytest.raises(PolicyError, match="index"):
        Arg(7, Op.EQ, 1)
    with pytest.raises(PolicyError, match="comparison"):
        Arg(0, "SCMP_CMP_XX", 1)  # type: ignore[arg-type]
    with pytest.raises(PolicyError, match="errno"):
        Action.errno(5000)
    with pytest.raises(PolicyError, match="not supported"):
        Rule(("read",), Action(ActionKind.TRACE, 1))
    with pytest.raises(PolicyError, match="flags"):
        Policy("p", ALLOW, flags=("SECCOMP_FILTER_FLAG_BOGUS",))


def test_argument_width_per_abi():
    """i386 passes 32-bit arguments (the low word decides); x32 whole 64-bit registers."""
    p = Policy("w", EPERM, (Rule(("getppid",), ALLOW, (Arg(0, Op.EQ, 5),)),))
    f = seccomp.compile(p, arch="x86_64", subarches=("i386", "x32"))
    for arch, wide in (("x86_64", EPERM), ("x32", EPERM), ("i386", ALLOW)):
        assert f.simulate("getppid", (5,), arch=arch) == ALLOW, arch
        assert f.simulate("getppid", (5 | 1 << 32,), arch=arch) == wide, arch
