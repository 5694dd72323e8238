"""Seccomp profiles of the containers ecosystem (containers/common's dialect, as
podman, buildah and CRI-O ship it): errno names beside the numbers, names of
other architectures skipped and listed; decisions equal to libseccomp's."""

from __future__ import annotations

import copy
import errno
import json
import os
import subprocess
import sys

import pytest

from volt_enforce import PolicyError, seccomp
from volt_enforce.seccomp import bpf, oci
from volt_enforce.seccomp.policy import Action, Policy
from volt_enforce.seccomp.tables import ARCHES, native_arch

HERE = os.path.dirname(os.path.abspath(__file__))
PROFILE = os.path.join(HERE, "data", "containers-dialect.json")
VOLT = os.path.join(os.path.dirname(sys.executable), "volt-enforce")
#: A container's capabilities: none of the excludes' (CAP_SYS_ADMIN ...), so every
#: conditional rule of the profile applies; and all of them, so none does.
NO_CAPS: list[str] = []
ALL_CAPS = ["SYS_ADMIN", "AUDIT_WRITE", "SYS_CHROOT"]


def doc() -> dict:
    with open(PROFILE) as f:
        return json.load(f)


def rule_for(d: dict, name: str) -> dict:
    return next(r for r in d["syscalls"] if name in r["names"])


@pytest.fixture(scope="module")
def filt():
    return seccomp.compile(PROFILE, caps=NO_CAPS, arch="x86_64")


def test_the_profile_imports(filt):
    assert filt.policy.default_action == Action.errno(errno.ENOSYS)
    assert filt.simulate("getpid") == seccomp.ALLOW
    assert filt.simulate("swapon") == Action.errno(errno.EPERM)  # errno and errnoRet
    assert filt.simulate("unshare") == Action.errno(errno.EACCES)  # errno name alone
    assert filt.simulate("clone3") == Action.errno(errno.ENOSYS)
    assert filt.simulate("socket", (16, 3, 9)) == Action.errno(errno.EINVAL)
    assert filt.simulate("socket", (2, 1, 0)) == seccomp.ALLOW
    assert filt.simulate("reboot") == Action.errno(errno.ENOSYS)  # the default


def test_names_of_other_architectures_are_skipped_and_listed(filt):
    skipped = set(filt.skipped_names)
    assert {"_llseek", "chown32", "socketcall", "s390_pci_mmio_read", "arm_fadvise64_64",
            "syscall", "mmap2"} <= skipped
    assert list(filt.skipped_names) == sorted(skipped)
    table = ARCHES["x86_64"]
    assert all(table.number(n) is None for n in skipped)
    assert filt.summary()["skipped_names"] == list(filt.skipped_names)
    # a rule excluded for this architecture is not evaluated, so its names are not listed
    assert "s390_sthyi" not in skipped
    # a compat ABI the filter covers uses its own names
    with_i386 = seccomp.compile(PROFILE, caps=NO_CAPS, arch="x86_64", subarches=("i386",))
    assert "_llseek" not in with_i386.skipped_names
    assert "chown32" not in with_i386.skipped_names
    assert "s390_pci_mmio_read" in with_i386.skipped_names
    assert with_i386.simulate("_llseek", arch="i386") == seccomp.ALLOW


def test_a_name_unknown_everywhere_is_still_an_error():
    d = doc()
    d["syscalls"][1]["names"].append("mkdri")
    with pytest.raises(PolicyError, match=r"syscalls\[1\]\.names\[\d+\]: 'mkdri' is not a known"):
        seccomp.compile(d, caps=NO_CAPS)


@pytest.mark.parametrize("change,field,words", [
    (lambda d: d.update(defaultErrno="EPERM"), "defaultErrno", "must agree"),
    (lambda d: rule_for(d, "swapon").update(errno="EACCES"), "syscalls[0].errno", "must agree"),
    (lambda d: rule_for(d, "swapon").update(errno="ENOTANERRNO"), "syscalls[0].errno",
     "not an errno name"),
    (lambda d: rule_for(d, "swapon").update(errno=1), "syscalls[0].errno", "not an errno name"),
    (lambda d: rule_for(d, "swapon").update(errno="errorcode"), "syscalls[0].errno",
     "not an errno name"),
    (lambda d: rule_for(d, "getpid").update(errno="EPERM"), "syscalls[1].errno",
     "only valid with SCMP_ACT_ERRNO"),
    (lambda d: d.update(defaultErrnoo="ENOSYS"), "defaultErrnoo", "not a field"),
    (lambda d: rule_for(d, "swapon").update(errnoName="EPERM"), "syscalls[0].errnoName",
     "not a field"),
])
def test_errno_fields_must_agree_and_be_known(change, field, words):
    d = doc()
    change(d)
    with pytest.raises(PolicyError) as ei:
        seccomp.compile(d, caps=NO_CAPS)
    assert ei.value.field == field, str(ei.value)
    assert words in str(ei.value)


def test_errno_name_alone_and_number_alone():
    d = {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrno": "EACCES", "syscalls": [
        {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errno": "EROFS"},
        {"names": ["rmdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 30},
        {"names": ["getpid"], "action": "SCMP_ACT_ALLOW"}]}
    f = seccomp.compile(d, caps=NO_CAPS)
    assert f.simulate("mkdir") == f.simulate("rmdir") == Action.errno(errno.EROFS)
    assert f.simulate("chdir") == Action.errno(errno.EACCES)
    assert "skipped_names" not in f.summary()  # nothing skipped, nothing listed


def test_the_profile_of_containers_common_as_published_has_its_shape():
    # the dialect's fields, as containers/common's pkg/seccomp/seccomp.json uses them
    d = doc()
    assert "defaultErrno" in d and "defaultErrnoRet" in d
    assert all({"errno", "errnoRet"} & set(r) for r in d["syscalls"]
               if r["action"] == "SCMP_ACT_ERRNO")
    policy, skipped = oci.parse_profile(d, arch="x86_64", caps=NO_CAPS)
    names = {n for r in policy.rules for n in r.names}
    # skipped for x86_64; kept in the policy only when a compat ABI (i386) has it
    assert {"socketcall", "s390_pci_mmio_read"} <= set(skipped)
    assert "socketcall" in names and "s390_pci_mmio_read" not in names


# ---- against libseccomp -----------------------------------------------------------------

#: Argument vectors around the profile's values, every 32-bit value with its high
#: bits clear (libseccomp and we differ by design above them on 32-bit arguments).
VECTORS = [(), (0,), (1,), (8,), (16,), (16, 3, 9), (16, 3, 8), (2, 1, 9), (16, 0, 0),
           (0x7E020000,), (0x00020000,), (0x10000000,), (0x11,), (0x01200011,),
           (0xFFFFFFFF,), (0, 0, 9), (9, 9, 9)]


def _for_libseccomp(policy: Policy) -> Policy:
    """libseccomp refuses a rule whose action is the default (EACCES); one that no
    other rule's syscall shares decides nothing, so it is left out."""
    others = lambda i: {n for j, r in enumerate(policy.rules) if j != i for n in r.names}  # noqa: E731
    rules = [r for i, r in enumerate(policy.rules)
             if r.action != policy.default_action or set(r.names) & others(i)]
    return Policy(policy.name, policy.default_action, tuple(rules), policy.flags,
                  policy.unknown_action, policy.subarches)


@pytest.mark.parametrize("caps", [NO_CAPS, ALL_CAPS], ids=["no-caps", "all-caps"])
def test_same_decisions_as_libseccomp(caps):
    from test_seccomp_libseccomp import libseccomp

    arch = native_arch()
    policy, _ = oci.parse_profile(doc(), arch=arch, caps=caps)
    ours = seccomp.compile(PROFILE, caps=caps)
    theirs, unknown = libseccomp().compile(_for_libseccomp(policy), optimize=2)
    table = ARCHES[arch]
    compared = 0
    for nr in range(table.max_nr + 16):
        name = table.by_number.get(nr)
        if name is not None and name in unknown:
            continue  # libseccomp cannot express a rule for it
        for args in VECTORS:
            full = tuple(args) + (0,) * (6 - len(args))
            got = ours.simulate(nr, full)
            want = Action.from_ret(bpf.run(theirs, bpf.SeccompData(nr=nr, arch=table.audit_arch,
                                                                  args=full)))
            if name is None:  # by design: numbers the table does not know get ENOSYS
                assert got == Action.errno(errno.ENOSYS), (nr, got)
            else:
                assert got == want, (name, nr, args, got, want)
                compared += 1
    assert compared > 300 * len(VECTORS)


# ---- the commands show what was skipped -----------------------------------------------------


def test_import_and_explain_list_the_skipped_names():
    cp = subprocess.run([VOLT, "seccomp", "import", PROFILE, "--json"], capture_output=True,
                        text=True, timeout=60)
    assert cp.returncode == 0, cp.stderr
    summary = json.loads(cp.stdout)
    assert {"_llseek", "chown32", "socketcall"} <= set(summary["skipped_names"])
    cp = subprocess.run([VOLT, "explain", "--profile", "none", "--seccomp", PROFILE, "--json"],
                        capture_output=True, text=True, timeout=60)
    assert cp.returncode == 0, cp.stderr
    assert "socketcall" in json.loads(cp.stdout)["seccomp"]["skipped_names"]
    text = subprocess.run([VOLT, "explain", "--profile", "none", "--seccomp", PROFILE],
                          capture_output=True, text=True, timeout=60).stdout
    assert "skipped_names: _llseek" in text


def test_copy_of_the_doc_is_not_changed_by_parsing():
    d = doc()
    before = copy.deepcopy(d)
    seccomp.compile(d, caps=NO_CAPS)
    assert d == before
