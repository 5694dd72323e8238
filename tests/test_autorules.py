"""Rules that follow the program: the ELF reader and the ld.so cache reader against
vectors built here, library resolution against binaries gcc builds (RUNPATH
$ORIGIN/../lib and a library of the test's own), and the rules a sandboxed child
then really needs: run with them, refused without them."""

from __future__ import annotations

import io
import os
import shutil
import struct
import subprocess
import sys
from collections.abc import Iterator

import pytest
from hypothesis import given, settings, strategies as st
from kernelreq import need_landlock
from outside import outside_dir

from volt_enforce.autorules import (
    FULL_WRITE,
    CacheEntry,
    ElfError,
    parse_elf,
    parse_ld_so_cache,
    python_paths,
    read_elf,
    resolve_libraries,
    rules_for,
)
from volt_enforce.model import (
    IsolationConfig,
    LandlockAccess,
    LandlockPolicy,
    LandlockRule,
)

A = LandlockAccess
SYSTEM_RX = [LandlockRule(p, A.READ_EXEC) for p in ("/usr", "/lib", "/lib64", "/bin")
             if os.path.exists(p)]


# ---- an ELF writer for the vectors ------------------------------------------------------

def build_elf(bits: int = 64, little: bool = True, machine: int = 62, interp: str | None = None,
              needed: tuple[str, ...] = (), runpath: str | None = None, rpath: str | None = None,
              soname: str | None = None, flags_1: int = 0, vaddr: int = 0x400000) -> bytes:
    """A minimal ELF file: one PT_LOAD over the whole file, PT_INTERP, PT_DYNAMIC."""
    e = "<" if little else ">"
    ehsize, phentsize = (64, 56) if bits == 64 else (52, 32)
    strtab = b"\0"
    offsets = {}
    for s in (*needed, runpath, rpath, soname):
        if s is not None and s not in offsets:
            offsets[s] = len(strtab)
            strtab += s.encode() + b"\0"
    nph = 3 if interp is not None else 2
    interp_off = ehsize + nph * phentsize
    interp_b = (interp.encode() + b"\0") if interp is not None else b""
    str_off = interp_off + len(interp_b)
    dyn_off = (str_off + len(strtab) + 7) & ~7
    dyn = [(1, offsets[n]) for n in needed]
    if runpath is not None:
        dyn.append((29, offsets[runpath]))
    if rpath is not None:
        dyn.append((15, offsets[rpath]))
    if soname is not None:
        dyn.append((14, offsets[soname]))
    if flags_1:
        dyn.append((0x6FFFFFFB, flags_1))
    dyn += [(5, vaddr + str_off), (10, len(strtab)), (0, 0)]
    dyn_fmt = e + ("qQ" if bits == 64 else "iI")
    dyn_b = b"".join(struct.pack(dyn_fmt, t, v) for t, v in dyn)
    total = dyn_off + len(dyn_b)
    ident = b"\x7fELF" + bytes([2 if bits == 64 else 1, 1 if little else 2, 1]) + bytes(9)
    if bits == 64:
        hdr = ident + struct.pack(e + "HHIQQQIHHHHHH", 3, machine, 1, 0, ehsize, 0, 0, ehsize,
                                  phentsize, nph, 64, 0, 0)
        ph_fmt = e + "IIQQQQQQ"

        def ph(t: int, off: int, size: int) -> bytes:
            return struct.pack(ph_fmt, t, 4, off, vaddr + off, vaddr + off, size, size, 8)
    else:
        hdr = ident + struct.pack(e + "HHIIIIIHHHHHH", 3, machine, 1, 0, ehsize, 0, 0, ehsize,
                                  phentsize, nph, 40, 0, 0)
        ph_fmt = e + "IIIIIIII"

        def ph(t: int, off: int, size: int) -> bytes:
            return struct.pack(ph_fmt, t, off, vaddr + off, vaddr + off, size, size, 4, 4)
    phdrs = ph(1, 0, total)
    if interp is not None:
        phdrs += ph(3, interp_off, len(interp_b))
    phdrs += ph(2, dyn_off, len(dyn_b))
    body = hdr + phdrs + interp_b + strtab
    return body + bytes(dyn_off - len(body)) + dyn_b


@pytest.mark.parametrize("bits", [64, 32])
@pytest.mark.parametrize("little", [True, False])
def test_elf_vectors_read_interp_needed_runpath_rpath_soname(bits, little):
    data = build_elf(bits, little, interp="/lib/ld-test.so.1", needed=("liba.so.1", "libb.so.2"),
                     runpath="$ORIGIN/../lib:/opt/x", rpath="/r1", soname="libself.so.3",
                     flags_1=0x800)
    info = parse_elf(io.BytesIO(data))
    assert info is not None
    assert (info.bits, info.little_endian, info.machine) == (bits, little, 62)
    assert info.interp == "/lib/ld-test.so.1"
    assert info.needed == ("liba.so.1", "libb.so.2")
    assert info.runpath == ("$ORIGIN/../lib", "/opt/x")
    assert info.rpath == ("/r1",)
    assert info.soname == "libself.so.3"
    assert info.nodeflib


def test_elf_vectors_static_and_not_elf():
    assert parse_elf(io.BytesIO(b"#!/bin/sh\n")) is None
    assert parse_elf(io.BytesIO(b"")) is None
    info = parse_elf(io.BytesIO(build_elf()))
    assert info is not None and info.interp is None and info.needed == () and not info.nodeflib


@pytest.mark.parametrize("mangle, message", [
    (lambda d: d[:4] + b"\x07" + d[5:], "EI_CLASS"),
    (lambda d: d[:5] + b"\x09" + d[6:], "EI_DATA"),
    (lambda d: d[:40], "ELF header"),  # the header is cut short
    (lambda d: d[:0x50], "program header"),
])
def test_elf_vectors_malformed_raise_elf_error(mangle, message):
    data = mangle(build_elf(needed=("liba.so",)))
    with pytest.raises(ElfError, match=message):
        parse_elf(io.BytesIO(data))


def test_elf_strtab_outside_every_load_segment_is_an_error():
    data = build_elf(needed=("liba.so",), vaddr=0x400000)
    # DT_STRTAB of a file whose PT_LOAD was moved away
    bad = bytearray(data)
    struct.pack_into("<Q", bad, 64 + 16, 0x900000)  # PT_LOAD p_vaddr
    with pytest.raises(ElfError, match="DT_STRTAB"):
        parse_elf(io.BytesIO(bytes(bad)))


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_elf_parser_never_fails_but_with_elf_error(data):
    """Whatever a corrupted file holds, the reader answers or raises ElfError."""
    blob = bytearray(build_elf(data.draw(st.sampled_from([32, 64])), interp="/l",
                               needed=("a.so",), runpath="$ORIGIN"))
    for _ in range(data.draw(st.integers(1, 8))):
        i = data.draw(st.integers(0, len(blob) - 1))
        blob[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(blob)))
    try:
        parse_elf(io.BytesIO(bytes(blob[:cut])))
    except ElfError:
        pass


def test_elf_reader_agrees_with_readelf_on_this_python():
    exe = os.path.realpath(sys.executable)
    info = read_elf(exe)
    assert info is not None
    readelf = shutil.which("readelf")
    if readelf is None:
        pytest.skip("no readelf to compare with (binutils)")  # not a kernel feature, but no oracle
    out = subprocess.run([readelf, "-lWd", exe], capture_output=True, text=True, check=True).stdout
    needed = [ln.split("[", 1)[1].rstrip("]") for ln in out.splitlines() if "(NEEDED)" in ln]
    assert list(info.needed) == needed
    interp = [ln.split(": ", 1)[1].rstrip("]") for ln in out.splitlines() if "interpreter:" in ln]
    assert [info.interp] == interp


# ---- the ld.so cache ----------------------------------------------------------------------

def build_cache_new(entries: list[tuple[str, str, int, int]], big: bool = False) -> bytes:
    e = ">" if big else "<"
    n = len(entries)
    strings = b""
    offs = []
    base = 48 + 24 * n
    for name, path, _f, _h in entries:
        k = base + len(strings)
        strings += name.encode() + b"\0"
        v = base + len(strings)
        strings += path.encode() + b"\0"
        offs.append((k, v))
    hdr = b"glibc-ld.so.cache" + b"1.1" + struct.pack(e + "II", n, len(strings))
    hdr += bytes([3 if big else 2, 0, 0, 0]) + struct.pack(e + "IIII", 0, 0, 0, 0)
    body = b"".join(struct.pack(e + "iIIIQ", f, k, v, 0, h)
                    for (_n, _p, f, h), (k, v) in zip(entries, offs, strict=True))
    return hdr + body + strings


def build_cache_old(entries: list[tuple[str, str, int]], then_new: bytes | None = None) -> bytes:
    n = len(entries)
    strings = b""
    offs = []
    for name, path, _f in entries:
        k = len(strings)
        strings += name.encode() + b"\0"
        v = len(strings)
        strings += path.encode() + b"\0"
        offs.append((k, v))
    out = b"ld.so-1.7.0\0" + struct.pack("<I", n)
    out += b"".join(struct.pack("<iII", f, k, v) for (_n, _p, f), (k, v) in zip(entries, offs, strict=True))
    if then_new is not None:
        out += bytes(((len(out) + 7) & ~7) - len(out))
        return out + then_new
    return out + strings


def test_ld_so_cache_vectors_new_format_both_byte_orders():
    entries = [("libz.so.1", "/lib/x86_64-linux-gnu/libz.so.1", 0x303, 0),
               ("libc.so.6", "/lib/x86_64-linux-gnu/glibc-hwcaps/x86-64-v3/libc.so.6", 0x303,
                (1 << 62) | 1),
               ("libc.so.6", "/lib/x86_64-linux-gnu/libc.so.6", 0x303, 0)]
    for big in (False, True):
        got = parse_ld_so_cache(build_cache_new(entries, big))
        assert got == [CacheEntry(n, p, f, h) for n, p, f, h in entries]


def test_ld_so_cache_vectors_old_format_alone_and_with_the_new_appended():
    old = [("libold.so", "/lib/libold.so", 0x303)]
    assert parse_ld_so_cache(build_cache_old(old)) == [CacheEntry("libold.so", "/lib/libold.so", 0x303)]
    new = build_cache_new([("libnew.so.2", "/usr/lib/libnew.so.2", 0x303, 0)])
    got = parse_ld_so_cache(build_cache_old(old, then_new=new))
    assert got == [CacheEntry("libnew.so.2", "/usr/lib/libnew.so.2", 0x303, 0)]


@pytest.mark.parametrize("data, message", [
    (b"not a cache", "magic"),
    (b"glibc-ld.so.cache1.1" + bytes(10), "truncated"),
    (b"glibc-ld.so.cache9.9" + bytes(40), "version"),
    (b"glibc-ld.so.cache1.1" + struct.pack("<II", 1000, 0) + bytes(24), "do not fit"),
])
def test_ld_so_cache_malformed_raises_value_error_naming_why(data, message):
    with pytest.raises(ValueError, match=message):
        parse_ld_so_cache(data)


def test_ld_so_cache_of_this_machine_has_libc():
    with open("/etc/ld.so.cache", "rb") as f:
        entries = parse_ld_so_cache(f.read())
    libc = [e.path for e in entries if e.name == "libc.so.6"]
    assert libc and all(os.path.exists(p) for p in libc)


# ---- resolving and rules, on binaries gcc builds -------------------------------------------

@pytest.fixture(scope="module")
def gcc() -> str:
    cc = shutil.which("gcc") or shutil.which("cc")
    assert cc is not None, "the test suite needs a C compiler (the C core is built with one)"
    return cc


def _build_origin_app(root: str, cc: str) -> tuple[str, str]:
    """root/bin/app needs root/lib/libvoltdemo.so through RUNPATH $ORIGIN/../lib."""
    src = os.path.join(root, "src")
    os.makedirs(src)
    os.makedirs(os.path.join(root, "bin"))
    os.makedirs(os.path.join(root, "lib"))
    with open(os.path.join(src, "demo.c"), "w") as f:
        f.write('int volt_demo(void) { return 42; }\n')
    with open(os.path.join(src, "app.c"), "w") as f:
        f.write('#include <stdio.h>\nint volt_demo(void);\n'
                'int main(void) { printf("demo %d\\n", volt_demo()); return 0; }\n')
    lib = os.path.join(root, "lib", "libvoltdemo.so")
    app = os.path.join(root, "bin", "app")
    subprocess.run([cc, "-shared", "-fPIC", "-Wl,-soname,libvoltdemo.so", "-o", lib,
                    os.path.join(src, "demo.c")], check=True)
    subprocess.run([cc, "-o", app, os.path.join(src, "app.c"), "-L" + os.path.dirname(lib),
                    "-lvoltdemo", "-Wl,--enable-new-dtags,-rpath,$ORIGIN/../lib"], check=True)
    return app, lib


@pytest.fixture
def outside() -> Iterator[str]:
    with outside_dir() as d:
        yield d


def test_resolve_runpath_origin_finds_the_programs_own_library(outside, gcc):
    app, lib = _build_origin_app(outside, gcc)
    info, libs, missing = resolve_libraries(app, env={})
    assert info is not None and info.runpath == ("$ORIGIN/../lib",)
    by_name = {lib_.name: lib_ for lib_ in libs}
    assert os.path.realpath(by_name["libvoltdemo.so"].path) == os.path.realpath(lib)
    assert by_name["libvoltdemo.so"].found_by == "runpath"
    assert by_name["libc.so.6"].found_by == "ld.so.cache"
    assert missing == []
    # the libraries as ld.so itself reports them (the oracle: LD_TRACE_LOADED_OBJECTS)
    traced = subprocess.run([app], env={"LD_TRACE_LOADED_OBJECTS": "1"}, capture_output=True,
                            text=True, check=True).stdout
    for line in traced.splitlines():
        if "=>" in line and "libvoltdemo" in line:
            assert os.path.realpath(line.split("=>")[1].split("(")[0].strip()) == os.path.realpath(lib)


def test_rules_for_go_on_the_resolved_files_never_on_the_runpath_directory(outside, gcc):
    app, lib = _build_origin_app(outside, gcc)
    policy = LandlockPolicy(rules=list(SYSTEM_RX))
    found = rules_for(app, policy, env={})
    paths = {r.path: r for r in found.rules}
    assert os.path.realpath(app) in paths and os.path.realpath(lib) in paths
    assert paths[os.path.realpath(lib)].access == A.READ_FILE | A.EXECUTE
    assert os.path.join(outside, "lib") not in paths, "a RUNPATH directory got a rule"
    assert "/etc/ld.so.cache" in paths  # /etc is not in this policy
    assert all(not r.path.startswith("/usr/") for r in found.rules), "covered already"


@pytest.fixture
def sandboxed_run():
    need_landlock()
    import volt_enforce

    def run(argv, policy):
        cfg = IsolationConfig(landlock=policy)
        return volt_enforce.run(argv, isolation=cfg, capture_output=True, text=True, timeout=60)

    return run


def test_the_added_rules_let_the_program_run_and_it_fails_without_them(outside, gcc, sandboxed_run):
    app, _lib = _build_origin_app(outside, gcc)
    assert subprocess.run([app], capture_output=True, text=True).stdout == "demo 42\n"  # control
    bare = LandlockPolicy(rules=list(SYSTEM_RX))
    # Landlock refuses it (EACCES), or a filesystem view, where there is one, lacks it
    with pytest.raises((PermissionError, FileNotFoundError)):
        sandboxed_run([app], bare)
    policy = LandlockPolicy(rules=list(SYSTEM_RX))
    found = rules_for(app, policy, env={})
    policy.rules += [r.rule() for r in found.rules]
    assert sandboxed_run([app], policy).stdout == "demo 42\n"
    # the executable alone is not enough: the library is what the extra rule gives
    only_exe = LandlockPolicy(rules=list(SYSTEM_RX) + [
        r.rule() for r in found.rules if r.path != os.path.realpath(_lib)])
    r = sandboxed_run([app], only_exe)
    assert r.returncode == 127 and "libvoltdemo.so" in r.stderr


def test_a_program_inside_a_writable_path_is_never_made_executable(tmp_path, gcc):
    app, lib = _build_origin_app(str(tmp_path), gcc)
    policy = LandlockPolicy(rules=list(SYSTEM_RX) + [LandlockRule(str(tmp_path), A.READ_WRITE)])
    found = rules_for(app, policy, env={})
    assert not [r for r in found.rules if r.path.startswith(os.path.realpath(str(tmp_path)))]
    assert any(p == os.path.realpath(app) and "writable" in why for p, why in found.skipped)


def test_no_policy_needs_no_rules():
    assert rules_for("/bin/sh", None).rules == []


def test_python_paths_of_a_venv_and_of_its_base():
    venv = python_paths(sys.executable)
    assert venv is not None
    assert os.path.realpath(venv["prefix"]) == os.path.realpath(sys.prefix)
    assert os.path.realpath(venv["base_prefix"]) == os.path.realpath(sys.base_prefix)
    import sysconfig

    assert os.path.realpath(venv["site_packages"]) == os.path.realpath(sysconfig.get_path("purelib"))
    assert python_paths("/bin/sh") is None


def test_cli_rw_gets_links_fifos_sockets_renames_and_the_presets_keep_the_seeds_values():
    from volt_enforce.cli import build_parser, config_from_args

    args = build_parser().parse_args(["run", "--rw", "/srv/work", "--", "true"])
    cfg = config_from_args(args)
    rules = {r.path: r.access for r in cfg.landlock.rules}
    assert rules["/srv/work"] == FULL_WRITE
    assert FULL_WRITE & A.MAKE_SYM and FULL_WRITE & A.MAKE_FIFO and not FULL_WRITE & A.EXECUTE
    assert rules["/tmp"] == A.READ_WRITE  # a filesystem view knows the presets by their values



def test_expand_dst_vectors():
    from volt_enforce.autorules import ElfInfo, expand_dst

    e64, e32 = ElfInfo(64, True, 62), ElfInfo(32, True, 3)
    assert expand_dst("$ORIGIN/../lib", "/opt/app/bin", e64) == "/opt/app/bin/../lib"
    assert expand_dst("${ORIGIN}/x:", "/o", e64) == "/o/x:"
    assert expand_dst("/usr/$LIB", "/o", e64) == "/usr/lib64"
    assert expand_dst("/usr/$LIB", "/o", e32) == "/usr/lib"
    assert expand_dst("/p/$PLATFORM", "/o", e64) == "/p/" + os.uname().machine
    assert expand_dst("$ORIGINAL", "/o", e64) == "$ORIGINAL"  # not a token
    assert expand_dst("", "/o", e64) == "."


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_ld_so_cache_parser_never_fails_but_with_value_error(data):
    blob = bytearray(build_cache_new([("liba.so.1", "/lib/liba.so.1", 0x303, 0),
                                      ("libb.so.2", "/lib/libb.so.2", 0x303, 0)]))
    for _ in range(data.draw(st.integers(1, 8))):
        i = data.draw(st.integers(0, len(blob) - 1))
        blob[i] = data.draw(st.integers(0, 255))
    try:
        parse_ld_so_cache(bytes(blob[:data.draw(st.integers(0, len(blob)))]))
    except ValueError:
        pass


@pytest.mark.parametrize("tags, inherited", [("--disable-new-dtags", True),
                                             ("--enable-new-dtags", False)])
def test_rpath_is_inherited_by_the_libraries_and_runpath_is_not_as_ld_so_does(
        tmp_path, gcc, tags, inherited):
    """app (RPATH or RUNPATH $ORIGIN/../lib) needs liba, which needs libb, both in ../lib:
    only an RPATH of the executable serves liba's search for libb."""
    lib, bindir = tmp_path / "lib", tmp_path / "bin"
    lib.mkdir()
    bindir.mkdir()
    (tmp_path / "b.c").write_text("int b(void) { return 2; }\n")
    (tmp_path / "a.c").write_text("int b(void); int a(void) { return b() + 1; }\n")
    (tmp_path / "m.c").write_text("int a(void); int main(void) { return a() == 3 ? 0 : 1; }\n")
    subprocess.run([gcc, "-shared", "-fPIC", "-o", lib / "libb.so", tmp_path / "b.c"], check=True)
    subprocess.run([gcc, "-shared", "-fPIC", "-o", lib / "liba.so", tmp_path / "a.c",
                    f"-L{lib}", "-lb"], check=True)
    app = bindir / "app"
    subprocess.run([gcc, "-o", app, tmp_path / "m.c", f"-L{lib}", "-la",
                    "-Wl,-rpath-link," + str(lib), f"-Wl,{tags},-rpath,$ORIGIN/../lib"], check=True)
    _info, libs, missing = resolve_libraries(str(app), env={})
    names = {x.name: x.found_by for x in libs}
    traced = subprocess.run([str(app)], env={"LD_TRACE_LOADED_OBJECTS": "1"},
                            capture_output=True, text=True).stdout
    if inherited:
        assert names["liba.so"] == "rpath" and names["libb.so"] == "rpath" and missing == []
        assert "not found" not in traced
    else:
        assert names["liba.so"] == "runpath" and missing == ["libb.so"]
        assert "libb.so => not found" in traced  # ld.so agrees


def test_a_python_prefix_that_is_a_home_or_top_directory_is_never_added(tmp_path, monkeypatch):
    """A Python built with --prefix=$HOME would otherwise open the whole home."""
    import volt_enforce.autorules as ar

    home = tmp_path / "home" / "user"
    (home / "bin").mkdir(parents=True)
    (home / "lib" / "python3.99").mkdir(parents=True)
    (home / "lib" / "python3.99" / "os.py").write_text("")
    exe = home / "bin" / "python3.99"
    shutil.copy(os.path.realpath("/bin/true"), exe)
    monkeypatch.setenv("HOME", str(home))
    assert python_paths(str(exe))["prefix"] == str(home)
    found = rules_for(str(exe), LandlockPolicy(rules=list(SYSTEM_RX)), env={})
    assert not [r for r in found.rules if r.path == os.path.realpath(str(home))]
    assert any(p == str(home) and "whole home" in why for p, why in found.skipped)
    assert ar._too_broad("/") and ar._too_broad("/opt") and not ar._too_broad("/opt/python")
