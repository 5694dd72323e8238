"""The shipped syscall tables against the kernel headers installed on this machine."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from volt_enforce._core import lib
from volt_enforce.seccomp import profiles, tables
from volt_enforce.seccomp.tables import ARCHES

X86_ASM = Path("/usr/include/x86_64-linux-gnu/asm")
GENERIC = Path("/usr/include/asm-generic/unistd.h")
CROSS = {
    "aarch64": Path("/usr/aarch64-linux-gnu/include/asm-generic/unistd.h"),
    "arm": Path("/usr/arm-linux-gnueabihf/include/asm/unistd-eabi.h"),
}


def header_numbers(path: Path) -> dict[str, int]:
    """``#define __NR_name <number>`` (and the x32/arm base forms) in one header."""
    out = {}
    for m in re.finditer(r"^#define __NR_(\w+)\s+(.+?)\s*$", path.read_text(), re.M):
        name, body = m.groups()
        body = body.replace("__X32_SYSCALL_BIT", str(lib.VE_X32_SYSCALL_BIT))
        body = body.replace("__NR_SYSCALL_BASE", "0")
        if re.fullmatch(r"\(?\s*(\d+\s*\+\s*)?\d+\s*\)?", body):
            out[name] = sum(int(p) for p in re.findall(r"\d+", body))
    return out


@pytest.mark.parametrize("arch,header", [
    ("x86_64", "unistd_64.h"), ("i386", "unistd_32.h"), ("x32", "unistd_x32.h")])
def test_x86_tables_match_installed_headers(arch, header):
    path = X86_ASM / header
    assert path.exists(), f"{path}: linux-libc-dev provides it"
    want = header_numbers(path)
    assert len(want) > 300
    got = ARCHES[arch].syscalls
    assert {n: got.get(n) for n in want} == want
    # and nothing else, but the syscalls newer than the 6.1 headers
    extra = {n for n in got if n not in want}
    assert all(got[n] & ~lib.VE_X32_SYSCALL_BIT > 450 or n in ("uretprobe", "uprobe")
               for n in extra), extra


def test_aarch64_table_matches_asm_generic():
    """arm64 is asm-generic: every name the generic header numbers directly agrees,
    and every syscall of our table that the header has agrees too."""
    want = header_numbers(GENERIC)
    got = ARCHES["aarch64"].syscalls
    shared = {n for n in got if n in want}
    assert len(shared) > 250
    assert {n: got[n] for n in shared} == {n: want[n] for n in shared}
    for path in CROSS.values():  # the cross headers the generator read, where installed
        if path.exists():
            cross = header_numbers(path)
            table = ARCHES["aarch64" if "aarch64" in str(path) else "arm"].syscalls
            common = {n for n in table if n in cross}
            assert len(common) > 250
            assert {n: table[n] for n in common} == {n: cross[n] for n in common}


def test_newer_syscalls_through_7_3():
    """The calls the 6.1 headers lack, as the kernel numbers them up to 7.3 (its
    syscall tables, and Debian's linux-libc-dev 7.3~rc7-1~exp1 for 6.19 .. 7.3)."""
    newer = ["cachestat", "fchmodat2", "map_shadow_stack", "futex_wake", "futex_wait",
             "futex_requeue", "statmount", "listmount", "lsm_get_self_attr",
             "lsm_set_self_attr", "lsm_list_modules", "mseal", "setxattrat", "getxattrat",
             "listxattrat", "removexattrat", "open_tree_attr", "file_getattr", "file_setattr",
             "listns", "rseq_slice_yield", "fchroot"]
    for arch in ("x86_64", "i386", "aarch64", "arm"):
        assert [ARCHES[arch].syscalls[n] for n in newer] == list(range(451, 473)), arch
        assert ARCHES[arch].max_nr == (0x0F0006 if arch == "arm" else 472), arch  # arm: get_tls
    assert tables.TABLE_KERNEL == "7.3"
    assert ARCHES["x86_64"].syscalls["uretprobe"] == 335
    assert ARCHES["x32"].syscalls["fchroot"] == lib.VE_X32_SYSCALL_BIT | 472
    assert "map_shadow_stack" not in ARCHES["x32"].syscalls


def test_argument_widths_of_the_newer_syscalls():
    """listns' flags and fchroot's fd and flags are 32-bit (int, unsigned int)."""
    widths = json.loads((Path(tables.__file__).parent / "syscall_args.json").read_text())
    assert widths["kernel"] == "7.3"
    args = widths["args"]
    assert args["listns"] == [64, 64, 64, 32]
    assert args["fchroot"] == [32, 32]
    assert args["rseq_slice_yield"] == []


def test_arm_private_calls_and_audit_arches():
    arm = ARCHES["arm"].syscalls
    assert arm["breakpoint"] == 0x0F0001 and arm["set_tls"] == 0x0F0005
    assert arm["sync_file_range2"] == arm["arm_sync_file_range"]
    assert ARCHES["x86_64"].audit_arch == lib.AUDIT_ARCH_X86_64
    assert ARCHES["x32"].audit_arch == lib.AUDIT_ARCH_X86_64
    assert ARCHES["i386"].audit_arch == lib.AUDIT_ARCH_I386
    assert ARCHES["aarch64"].audit_arch == lib.AUDIT_ARCH_AARCH64
    assert ARCHES["arm"].audit_arch == lib.AUDIT_ARCH_ARM
    assert [ARCHES[a].bits for a in ("x86_64", "x32", "i386", "aarch64", "arm")] == [64, 64, 32, 64, 32]


def test_known_names():
    assert tables.is_known_syscall("getpid")
    assert tables.is_known_syscall("_llseek")  # 32-bit only
    assert tables.is_known_syscall("s390_pci_mmio_read")  # another arch's
    assert not tables.is_known_syscall("getpidd")
    assert tables.canonical_arch("amd64") == "x86_64"
    assert tables.canonical_arch("SCMP_ARCH_AARCH64") == "aarch64"
    assert tables.native_arch() in ARCHES


def test_shipped_docker_profile_is_the_fixture():
    fixture = Path(__file__).resolve().parent / "data" / "moby-default.json"  # moby/profiles' (tests/data)
    assert json.loads(fixture.read_text()) == profiles.docker_profile()


def test_default_is_docker_plus_the_containment_rules():
    """``default`` is moby's default.json and exactly these additions."""
    import errno
    import stat
    import termios

    from volt_enforce.seccomp.policy import Action, Arg, Op, Rule

    docker = profiles.docker_policy("x86_64")
    default = profiles.default_policy("x86_64")
    assert default.rules[:len(docker.rules)] == docker.rules
    eperm, suid, sgid = Action.errno(errno.EPERM), stat.S_ISUID, stat.S_ISGID
    mode1 = ("chmod", "fchmod", "creat", "mkdir", "mknod")
    mode2 = ("fchmodat", "fchmodat2", "open", "mkdirat", "mknodat")
    assert default.rules[len(docker.rules):] == (
        Rule(("ioctl",), eperm, (Arg(1, Op.EQ, termios.TIOCSTI),)),
        Rule(("ioctl",), eperm, (Arg(1, Op.EQ, termios.TIOCLINUX),)),
        Rule(mode1, eperm, (Arg(1, Op.MASKED_EQ, suid, suid),)),
        Rule(mode1, eperm, (Arg(1, Op.MASKED_EQ, sgid, sgid),)),
        Rule(mode2, eperm, (Arg(2, Op.MASKED_EQ, suid, suid),)),
        Rule(mode2, eperm, (Arg(2, Op.MASKED_EQ, sgid, sgid),)),
        Rule(("openat",), eperm, (Arg(3, Op.MASKED_EQ, suid, suid),)),
        Rule(("openat",), eperm, (Arg(3, Op.MASKED_EQ, sgid, sgid),)),
        Rule(("openat2",), Action.errno(errno.ENOSYS)),
        Rule(("io_uring_setup", "io_uring_enter", "io_uring_register"), eperm),
    )
    # io_uring: Docker's profile already denies it (no rule allows it)
    assert not {"io_uring_setup", "io_uring_enter", "io_uring_register"} & set(docker.syscall_names())
