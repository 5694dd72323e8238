"""Rules that follow the program: what a target needs to start, found without running it.

``rules_for(path, policy)`` returns the Landlock rules a program needs beyond what
``policy`` grants already, each with the reason it is there:

* the executable itself (and a ``#!`` script's interpreter), read+execute, but only
  when it lies outside every writable path: a file the sandbox may rewrite is never
  made executable;
* its ELF interpreter (``PT_INTERP``), which the kernel opens for execution;
* the shared libraries it needs, resolved the way glibc's ld.so resolves them:
  ``DT_NEEDED`` names searched in ``DT_RPATH`` (of the object and its loaders, unless
  the object has ``DT_RUNPATH``), ``LD_LIBRARY_PATH``, ``DT_RUNPATH``, the ld.so cache
  (``/etc/ld.so.cache``, unless ``DF_1_NODEFLIB``) and the default directories, with
  ``$ORIGIN``, ``$LIB`` and ``$PLATFORM`` expanded. Rules go on the resolved files and
  on the cache, never on the directories a RUNPATH names (the binary controls those);
* for a Python interpreter (a venv's python, a pyenv or uv build): its prefix, its base
  prefix and its site-packages, read+execute, found from ``pyvenv.cfg`` and the
  ``lib/pythonX.Y/os.py`` landmark as Python's getpath does.

The ELF reader (``read_elf``: program headers, the dynamic section, 32- and 64-bit,
either byte order) and the ld.so cache reader (``parse_ld_so_cache``: the old
``ld.so-1.7.0`` and the new ``glibc-ld.so.cache1.1`` formats) are our own: nothing is
run, not even ``ldd``, so a hostile binary cannot act before it is sandboxed.
"""

from __future__ import annotations

import os
import re
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import BinaryIO

from .model import IsolationConfig, LandlockAccess, LandlockPolicy, LandlockRule

__all__ = [
    "AutoRule",
    "AutoRules",
    "CacheEntry",
    "ElfError",
    "ElfInfo",
    "FULL_WRITE",
    "add_rules",
    "add_to_config",
    "parse_elf",
    "parse_ld_so_cache",
    "python_paths",
    "read_elf",
    "resolve_libraries",
    "rules_for",
    "script_interpreter",
]

_A = LandlockAccess
#: What a file the program runs or maps needs (READ_DIR applies to directories only).
FILE_RX = _A.READ_FILE | _A.EXECUTE
DIR_RX = _A.READ_EXEC
LD_SO_CACHE = "/etc/ld.so.cache"
LD_SO_PRELOAD = "/etc/ld.so.preload"

# ---- ELF ---------------------------------------------------------------------------

PT_LOAD, PT_DYNAMIC, PT_INTERP = 1, 2, 3
DT_NULL, DT_NEEDED, DT_STRTAB, DT_STRSZ, DT_SONAME, DT_RPATH, DT_RUNPATH = 0, 1, 5, 10, 14, 15, 29
DT_FLAGS_1 = 0x6FFFFFFB
DF_1_NODEFLIB = 0x800
EM_386, EM_ARM, EM_X86_64, EM_AARCH64 = 3, 40, 62, 183
#: Bounds on what a hostile or broken file can make us read.
_MAX_PHNUM = 4096
_MAX_DYN = 1 << 16
_MAX_STR = 4096
_MAX_STRTAB = 1 << 24


class ElfError(ValueError):
    """A file that starts as ELF but whose headers are not well formed."""


@dataclass(frozen=True)
class ElfInfo:
    """What the loader reads from an ELF file's headers."""

    bits: int  # 32 or 64
    little_endian: bool
    machine: int
    interp: str | None = None
    needed: tuple[str, ...] = ()
    rpath: tuple[str, ...] = ()
    runpath: tuple[str, ...] = ()
    soname: str | None = None
    nodeflib: bool = False

    def compatible(self, other: ElfInfo) -> bool:
        """Whether ld.so would load ``other`` into this object's process."""
        return (self.bits, self.little_endian, self.machine) == (
            other.bits, other.little_endian, other.machine)


def _read_at(f: BinaryIO, offset: int, size: int, what: str) -> bytes:
    if offset < 0 or size < 0 or offset + size > 1 << 48:
        raise ElfError(f"{what}: offset {offset} or size {size} is out of range")
    f.seek(offset)
    data = f.read(size)
    if len(data) != size:
        raise ElfError(f"{what}: the file ends at {offset + len(data)}, before {offset + size}")
    return data


def _cstr(blob: bytes, offset: int, what: str) -> str:
    if not 0 <= offset < len(blob):
        raise ElfError(f"{what}: string offset {offset} is outside the string table")
    end = blob.find(b"\0", offset, offset + _MAX_STR)
    if end < 0:
        raise ElfError(f"{what}: string at {offset} is not terminated")
    return os.fsdecode(blob[offset:end])


def parse_elf(f: BinaryIO) -> ElfInfo | None:
    """The loader's view of the ELF file ``f`` (seekable), or None when it is not ELF.

    Raises ElfError for an ELF file whose headers point outside it or are malformed.
    """
    f.seek(0)
    ident = f.read(16)
    if len(ident) < 16 or ident[:4] != b"\x7fELF":
        return None
    cls, data = ident[4], ident[5]
    if cls not in (1, 2):
        raise ElfError(f"EI_CLASS {cls} is neither 32-bit (1) nor 64-bit (2)")
    if data not in (1, 2):
        raise ElfError(f"EI_DATA {data} is neither little (1) nor big endian (2)")
    bits = 64 if cls == 2 else 32
    e = "<" if data == 1 else ">"
    if bits == 64:
        hdr = struct.unpack(e + "HHIQQQIHHHHHH", _read_at(f, 16, 48, "ELF header"))
    else:
        hdr = struct.unpack(e + "HHIIIIIHHHHHH", _read_at(f, 16, 36, "ELF header"))
    machine, phoff, phentsize, phnum = hdr[1], hdr[4], hdr[8], hdr[9]
    ph_fmt = e + ("IIQQQQQQ" if bits == 64 else "IIIIIIII")
    ph_size = struct.calcsize(ph_fmt)
    if phnum and phentsize < ph_size:
        raise ElfError(f"e_phentsize {phentsize} is smaller than a program header ({ph_size})")
    if phnum > _MAX_PHNUM:
        raise ElfError(f"e_phnum {phnum} is beyond {_MAX_PHNUM}")
    loads: list[tuple[int, int, int]] = []  # vaddr, offset, filesz
    interp = None
    dynamic: tuple[int, int] | None = None
    for i in range(phnum):
        raw = struct.unpack(ph_fmt, _read_at(f, phoff + i * phentsize, ph_size, f"program header {i}"))
        if bits == 64:
            p_type, _flags, p_offset, p_vaddr, _pa, p_filesz = raw[:6]
        else:
            p_type, p_offset, p_vaddr, _pa, p_filesz = raw[:5]
        if p_type == PT_LOAD:
            loads.append((p_vaddr, p_offset, p_filesz))
        elif p_type == PT_INTERP:
            if p_filesz > _MAX_STR:
                raise ElfError(f"PT_INTERP is {p_filesz} bytes long")
            text = _read_at(f, p_offset, p_filesz, "PT_INTERP")
            interp = os.fsdecode(text.split(b"\0", 1)[0])
        elif p_type == PT_DYNAMIC:
            dynamic = (p_offset, p_filesz)
    if dynamic is None:
        return ElfInfo(bits, data == 1, machine, interp)
    dyn_fmt = e + ("qQ" if bits == 64 else "iI")
    dyn_size = struct.calcsize(dyn_fmt)
    count = min(dynamic[1] // dyn_size, _MAX_DYN)
    blob = _read_at(f, dynamic[0], count * dyn_size, "PT_DYNAMIC")
    entries: list[tuple[int, int]] = []
    for i in range(count):
        tag, val = struct.unpack_from(dyn_fmt, blob, i * dyn_size)
        if tag == DT_NULL:
            break
        entries.append((tag, val))
    tags: dict[int, int] = {}
    for tag, val in entries:
        tags.setdefault(tag, val)
    names = [(tag, val) for tag, val in entries if tag in (DT_NEEDED, DT_RPATH, DT_RUNPATH, DT_SONAME)]
    flags_1 = tags.get(DT_FLAGS_1, 0)
    if not names:
        return ElfInfo(bits, data == 1, machine, interp, nodeflib=bool(flags_1 & DF_1_NODEFLIB))
    if DT_STRTAB not in tags:
        raise ElfError("the dynamic section names libraries but has no DT_STRTAB")
    strtab = _vaddr_to_offset(tags[DT_STRTAB], loads)
    strsz = tags.get(DT_STRSZ, _MAX_STR)
    if strsz > _MAX_STRTAB:
        raise ElfError(f"DT_STRSZ {strsz} is beyond {_MAX_STRTAB}")
    if strtab > 1 << 48:
        raise ElfError(f"DT_STRTAB offset {strtab} is out of range")
    f.seek(strtab)
    strings = f.read(strsz)
    needed: list[str] = []
    rpath: list[str] = []
    runpath: list[str] = []
    soname = None
    for tag, val in names:
        name = _cstr(strings, val, {DT_NEEDED: "DT_NEEDED", DT_RPATH: "DT_RPATH",
                                    DT_RUNPATH: "DT_RUNPATH", DT_SONAME: "DT_SONAME"}[tag])
        if tag == DT_NEEDED:
            needed.append(name)
        elif tag == DT_RPATH:
            rpath += name.split(":")
        elif tag == DT_RUNPATH:
            runpath += name.split(":")
        else:
            soname = name
    return ElfInfo(bits, data == 1, machine, interp, tuple(needed), tuple(rpath), tuple(runpath),
                   soname, bool(flags_1 & DF_1_NODEFLIB))


def _vaddr_to_offset(vaddr: int, loads: list[tuple[int, int, int]]) -> int:
    for seg_vaddr, seg_offset, seg_filesz in loads:
        if seg_vaddr <= vaddr < seg_vaddr + seg_filesz:
            return vaddr - seg_vaddr + seg_offset
    raise ElfError(f"DT_STRTAB {vaddr:#x} is in no PT_LOAD segment")


def read_elf(path: str) -> ElfInfo | None:
    """``parse_elf`` of the file at ``path``; None when it is not ELF or not readable."""
    try:
        with open(path, "rb") as f:
            return parse_elf(f)
    except OSError:
        return None


# ---- the ld.so cache ----------------------------------------------------------------

_OLD_MAGIC = b"ld.so-1.7.0"
_NEW_MAGIC = b"glibc-ld.so.cache"
_NEW_VERSION = b"1.1"


@dataclass(frozen=True)
class CacheEntry:
    """One library of /etc/ld.so.cache: its name (the soname), its path, its flags
    (FLAG_ELF_LIBC6 and the architecture bits) and hwcap (non-zero for the
    glibc-hwcaps subdirectories' variants)."""

    name: str
    path: str
    flags: int
    hwcap: int = 0


def _cache_str(data: bytes, offset: int, what: str) -> str:
    if not 0 <= offset < len(data):
        raise ValueError(f"ld.so cache: {what} offset {offset} is outside the file ({len(data)} bytes)")
    end = data.find(b"\0", offset)
    if end < 0:
        raise ValueError(f"ld.so cache: {what} at {offset} is not terminated")
    return os.fsdecode(data[offset:end])


def parse_ld_so_cache(data: bytes) -> list[CacheEntry]:
    """The entries of an ld.so cache, in the file's order (which is ld.so's preference).

    Reads the new format (glibc 2.32+ writes it alone) and the old one, which older
    glibc wrote with the new one appended. Raises ValueError for anything else."""
    if data.startswith(_NEW_MAGIC):
        return _parse_new(data, 0)
    if not data.startswith(_OLD_MAGIC):
        raise ValueError("ld.so cache: no ld.so-1.7.0 or glibc-ld.so.cache magic")
    if len(data) < 16:
        raise ValueError("ld.so cache: truncated header")
    (nlibs,) = struct.unpack_from("<I", data, 12)
    entries_end = 16 + 12 * nlibs
    if entries_end > len(data):
        raise ValueError(f"ld.so cache: {nlibs} entries do not fit in {len(data)} bytes")
    new_at = (entries_end + 7) & ~7
    if data[new_at:new_at + len(_NEW_MAGIC)] == _NEW_MAGIC:
        return _parse_new(data, new_at)
    out = []
    for i in range(nlibs):
        flags, key, value = struct.unpack_from("<iII", data, 16 + 12 * i)
        out.append(CacheEntry(_cache_str(data, entries_end + key, "name"),
                              _cache_str(data, entries_end + value, "path"), flags))
    return out


def _parse_new(data: bytes, base: int) -> list[CacheEntry]:
    if len(data) < base + 48:
        raise ValueError("ld.so cache: truncated header")
    if data[base + 17:base + 20] != _NEW_VERSION:
        raise ValueError(f"ld.so cache: version {data[base + 17:base + 20]!r} is not 1.1")
    # flags bits 0-1: 2 little endian, 3 big endian (0: written before glibc said)
    e = ">" if data[base + 28] & 3 == 3 else "<"
    nlibs, _len_strings = struct.unpack_from(e + "II", data, base + 20)
    if base + 48 + 24 * nlibs > len(data):
        raise ValueError(f"ld.so cache: {nlibs} entries do not fit in {len(data)} bytes")
    out = []
    for i in range(nlibs):
        flags, key, value, _osv, hwcap = struct.unpack_from(e + "iIIIQ", data, base + 48 + 24 * i)
        # string offsets count from the new header
        out.append(CacheEntry(_cache_str(data, base + key, "name"),
                              _cache_str(data, base + value, "path"), flags, hwcap))
    return out


def _load_cache(path: str) -> dict[str, list[str]]:
    try:
        with open(path, "rb") as f:
            entries = parse_ld_so_cache(f.read())
    except (OSError, ValueError):
        return {}
    by_name: dict[str, list[str]] = {}
    for entry in entries:
        by_name.setdefault(entry.name, []).append(entry.path)
    return by_name


# ---- resolving libraries as ld.so does ------------------------------------------------

_TRIPLETS = {(EM_X86_64, 64): "x86_64-linux-gnu", (EM_X86_64, 32): "x86_64-linux-gnux32",
             (EM_386, 32): "i386-linux-gnu", (EM_AARCH64, 64): "aarch64-linux-gnu",
             (EM_ARM, 32): "arm-linux-gnueabihf"}


def default_dirs(elf: ElfInfo) -> list[str]:
    """ld.so's system search path for ``elf``'s kind (Debian's multiarch first)."""
    dirs = []
    triplet = _TRIPLETS.get((elf.machine, elf.bits))
    if triplet:
        dirs += [f"/lib/{triplet}", f"/usr/lib/{triplet}"]
    if elf.bits == 64:
        dirs += ["/lib64", "/usr/lib64"]
    return dirs + ["/lib", "/usr/lib"]


_DST = re.compile(r"\$(\{(ORIGIN|LIB|PLATFORM)\}|(ORIGIN|LIB|PLATFORM)(?![A-Za-z0-9_]))")


def expand_dst(entry: str, origin: str, elf: ElfInfo) -> str:
    """An RPATH/RUNPATH entry with $ORIGIN, $LIB and $PLATFORM replaced (as ld.so
    does; an empty entry is the current directory)."""
    values = {"ORIGIN": origin, "LIB": "lib64" if elf.bits == 64 else "lib",
              "PLATFORM": os.uname().machine}
    out = _DST.sub(lambda m: values[m.group(2) or m.group(3)], entry)
    return out or "."


@dataclass(frozen=True)
class Library:
    """A library the program loads: the name it is needed by, where ld.so finds it,
    and how (``rpath``, ``LD_LIBRARY_PATH``, ``runpath``, ``ld.so.cache``, ``default``,
    ``path`` for a name with a slash, ``preload``)."""

    name: str
    path: str
    found_by: str
    needed_by: str


@dataclass
class _Loader:
    env: Mapping[str, str]
    cache_path: str
    _cache: dict[str, list[str]] | None = None
    elves: dict[str, ElfInfo | None] = field(default_factory=dict)

    def cache(self) -> dict[str, list[str]]:
        if self._cache is None:
            self._cache = _load_cache(self.cache_path)
        return self._cache

    def elf(self, path: str) -> ElfInfo | None:
        if path not in self.elves:
            try:
                self.elves[path] = read_elf(path)
            except ElfError:
                self.elves[path] = None
        return self.elves[path]

    def match(self, path: str, want: ElfInfo) -> bool:
        if not os.path.isfile(path):
            return False
        got = self.elf(path)
        return got is not None and want.compatible(got)


def resolve_libraries(path: str, *, env: Mapping[str, str] | None = None,
                      cache: str = LD_SO_CACHE) -> tuple[ElfInfo | None, list[Library], list[str]]:
    """The ELF info of ``path``, the libraries ld.so loads for it (breadth first, each
    once), and the names it would not find (ld.so then fails to start the program).

    The ld.so cache may list one library several times (the glibc-hwcaps variants for
    each CPU level); all of those this machine has are returned, since which one
    ld.so takes depends on the CPU."""
    env = os.environ if env is None else env
    loader = _Loader(env, cache)
    main = loader.elf(path)
    if main is None:
        return None, [], []
    found: list[Library] = []
    missing: list[str] = []
    seen: set[str] = set()
    main_origin = os.path.dirname(os.path.realpath(path))
    # (object path, its info, its origin, the RPATHs of its loaders, itself first)
    queue: list[tuple[str, ElfInfo, str, list[tuple[tuple[str, ...], str]]]] = []
    chain = [(main.rpath, main_origin)] if not main.runpath else []
    queue.append((path, main, main_origin, chain))
    preload = _preloaded(env)
    for name in preload:
        lib = _find(loader, name, main, main_origin, [], main)
        if lib:
            for p in lib:
                found.append(Library(name, p, "preload", path))
    while queue:
        obj, info, origin, rpaths = queue.pop(0)
        for name in info.needed:
            if name in seen:
                continue
            seen.add(name)
            paths, how = _search(loader, name, info, origin, rpaths, main)
            if not paths:
                missing.append(name)
                continue
            for p in paths:
                found.append(Library(name, p, how, obj))
                lib_info = loader.elf(p)
                if lib_info is None:
                    continue
                lib_origin = os.path.dirname(os.path.abspath(p))
                # RPATH is inherited down the loading chain unless the object has RUNPATH
                sub = ([(lib_info.rpath, lib_origin)] + rpaths) if not lib_info.runpath else []
                queue.append((p, lib_info, lib_origin, sub))
    return main, found, missing


def _preloaded(env: Mapping[str, str]) -> list[str]:
    names = [n for n in re.split(r"[ :]", env.get("LD_PRELOAD", "")) if n]
    try:
        with open(LD_SO_PRELOAD, encoding="utf-8", errors="surrogateescape") as f:
            names += f.read().split()
    except OSError:
        pass
    return names


def _find(loader: _Loader, name: str, info: ElfInfo, origin: str,
          rpaths: list[tuple[tuple[str, ...], str]], main: ElfInfo) -> list[str]:
    return _search(loader, name, info, origin, rpaths, main)[0]


def _search(loader: _Loader, name: str, info: ElfInfo, origin: str,
            rpaths: list[tuple[tuple[str, ...], str]], main: ElfInfo) -> tuple[list[str], str]:
    if "/" in name:
        return ([name] if loader.match(name, main) else []), "path"

    def first(dirs: Iterable[str]) -> str | None:
        for d in dirs:
            candidate = os.path.join(d, name)
            if loader.match(candidate, main):
                return candidate
        return None

    if not info.runpath:
        for entries, rorigin in rpaths:
            hit = first(expand_dst(d, rorigin, info) for d in entries)
            if hit:
                return [hit], "rpath"
    llp = loader.env.get("LD_LIBRARY_PATH", "")
    if llp:
        hit = first(expand_dst(d, origin, info) for d in re.split(r"[:;]", llp))
        if hit:
            return [hit], "LD_LIBRARY_PATH"
    if info.runpath:
        hit = first(expand_dst(d, origin, info) for d in info.runpath)
        if hit:
            return [hit], "runpath"
    if not info.nodeflib:
        hits = [p for p in loader.cache().get(name, ()) if loader.match(p, main)]
        if hits:
            return list(dict.fromkeys(hits)), "ld.so.cache"
        hit = first(default_dirs(main))
        if hit:
            return [hit], "default"
    return [], ""


# ---- Python interpreters ------------------------------------------------------------

_PYTHON_NAME = re.compile(r"python[0-9.]*[a-z]?$")


def _py_version_dirs(prefix: str) -> list[str]:
    """The lib/pythonX.Y directories of ``prefix`` that hold os.py (getpath's landmark)."""
    out = []
    for libdir in ("lib", "lib64"):
        base = os.path.join(prefix, libdir)
        try:
            names = sorted(os.listdir(base))
        except OSError:
            continue
        for n in names:
            if re.fullmatch(r"python3\.[0-9]+t?", n) and os.path.isfile(os.path.join(base, n, "os.py")):
                out.append(os.path.join(base, n))
    return out


def _find_prefix(bindir: str) -> str | None:
    """The prefix above ``bindir`` that has Python's standard library, as getpath finds it."""
    d = os.path.abspath(bindir)
    for _ in range(4):
        parent = os.path.dirname(d)
        if _py_version_dirs(parent):
            return parent
        if parent == d:
            break
        d = parent
    return None


def _pyvenv_cfg(path: str) -> tuple[str, dict[str, str]] | None:
    bindir = os.path.dirname(os.path.abspath(path))
    for d in (os.path.dirname(bindir), bindir):
        cfg = os.path.join(d, "pyvenv.cfg")
        try:
            with open(cfg, encoding="utf-8", errors="replace") as f:
                text = f.read(1 << 16)
        except OSError:
            continue
        values = {}
        for line in text.splitlines():
            key, sep, value = line.partition("=")
            if sep:
                values[key.strip().lower()] = value.strip()
        return d, values
    return None


def python_paths(path: str) -> dict[str, str] | None:
    """For a Python interpreter: its ``prefix``, ``base_prefix`` and ``site_packages``
    (and ``base_site_packages`` when a venv includes the system's); None when ``path``
    is not a Python interpreter this recognizes. Found from the files, never by running it."""
    names = {os.path.basename(path), os.path.basename(os.path.realpath(path))}
    if not any(_PYTHON_NAME.fullmatch(n) for n in names):
        return None
    venv = _pyvenv_cfg(path)
    out: dict[str, str] = {}
    if venv is not None:
        prefix, cfg = venv
        home = cfg.get("home")
        base = _find_prefix(home) if home else None
        if base is None:
            base = _find_prefix(os.path.dirname(os.path.realpath(path)))
        if base is None:
            return None
        out["prefix"] = prefix
        out["base_prefix"] = base
        version = os.path.basename(_py_version_dirs(base)[0])
        vparts = cfg.get("version", cfg.get("version_info", "")).split(".")
        if len(vparts) >= 2 and vparts[0].isdigit() and vparts[1].isdigit():
            version = f"python{vparts[0]}.{vparts[1]}"
        out["site_packages"] = os.path.join(prefix, "lib", version, "site-packages")
        if cfg.get("include-system-site-packages", "false").lower() == "true":
            out["base_site_packages"] = os.path.join(_py_version_dirs(base)[0], "site-packages")
        return out
    own = _find_prefix(os.path.dirname(os.path.realpath(path)))
    if own is None:
        return None
    stdlib = _py_version_dirs(own)[0]
    return {"prefix": own, "base_prefix": own,
            "site_packages": os.path.join(stdlib, "site-packages")}


# ---- the rules ----------------------------------------------------------------------


@dataclass(frozen=True)
class AutoRule:
    """A rule added for the program, and why (``"the executable"``, ``"its ELF
    interpreter"``, ``"libfoo.so.1 (runpath)"``, ``"the Python prefix"``...)."""

    path: str
    access: LandlockAccess
    reason: str

    @property
    def option(self) -> str:
        """The CLI option that adds the same rule."""
        return ("--rox " if self.access & _A.EXECUTE else "--ro ") + self.path

    def to_dict(self) -> dict[str, object]:
        return {"path": self.path, "access": [n.lower() for n in _access_names(self.access)],
                "reason": self.reason}

    def rule(self) -> LandlockRule:
        return LandlockRule(path=self.path, access=self.access)


def _access_names(access: int) -> list[str]:
    from .rights import access_names

    return access_names(access)


@dataclass
class AutoRules:
    """``rules_for``'s answer: the rules to add, and what was looked at but left out."""

    rules: list[AutoRule] = field(default_factory=list)
    #: (path, why it was not added): inside a writable path, or not found
    skipped: list[tuple[str, str]] = field(default_factory=list)
    #: libraries ld.so would not find: the program will not start, sandboxed or not
    missing: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return {"rules": [r.to_dict() for r in self.rules],
                "skipped": [{"path": p, "reason": why} for p, why in self.skipped],
                "missing_libraries": list(self.missing)}


def script_interpreter(path: str) -> tuple[str, list[str]] | None:
    """A script's ``#!`` interpreter and the words after it."""
    try:
        with open(path, "rb") as f:
            head = f.read(256)
    except OSError:
        return None
    if not head.startswith(b"#!"):
        return None
    words = [os.fsdecode(w) for w in head[2:].split(b"\n", 1)[0].split()]
    return (words[0], words[1:]) if words else None


def _env_target(args: list[str], env: Mapping[str, str]) -> str | None:
    """What ``#!/usr/bin/env [-S] NAME`` runs: NAME found in the child's PATH."""
    import shutil

    words = [w for a in args for w in a.split()]  # -S splits the rest as env does
    name = next((w for w in words if not w.startswith("-") and "=" not in w), None)
    if name is None:
        return None
    return name if "/" in name else shutil.which(name, path=env.get("PATH", os.defpath))


def _too_broad(directory: str) -> bool:
    """A directory a Python prefix may be but that holds far more than Python: "/", a
    top-level directory, a home directory."""
    real = os.path.realpath(directory)
    homes = {os.path.realpath(os.path.expanduser("~")), "/root"}
    return real.count("/") <= 1 or real in homes or os.path.dirname(real) == "/home"


def rules_for(path: str, policy: LandlockPolicy | None, *, env: Mapping[str, str] | None = None,
              cache: str = LD_SO_CACHE) -> AutoRules:
    """The rules ``path`` (a program, as exec'd) needs beyond what ``policy`` grants.

    Without a policy nothing is restricted and nothing is needed. A file or directory
    inside a path the policy makes writable is never made executable: it is reported
    in ``skipped`` instead (reading it is granted already)."""
    from .rights import PolicyRights

    out = AutoRules()
    if policy is None:
        return out
    rights = PolicyRights.of_policy(policy)
    seen: set[str] = set()

    def want(p: str, access: int, reason: str) -> None:
        nonlocal rights
        real = os.path.realpath(p)
        if real in seen:
            return
        seen.add(real)
        if not os.path.exists(real):
            out.skipped.append((p, f"{reason}: not found"))
            return
        granted = rights.granted(real)
        if granted & access == access:
            return
        if rights.writable(real):
            if granted & access & ~_A.EXECUTE == access & ~_A.EXECUTE:
                if access & _A.EXECUTE:
                    out.skipped.append((real, f"{reason}: inside a writable path, never made "
                                              "executable"))
                return
            access &= ~_A.EXECUTE
        elif os.path.isdir(real) and rights.writable_beneath(real):
            out.skipped.append((real, f"{reason}: holds a writable path, never made executable"))
            return
        out.rules.append(AutoRule(real, _A(access), reason))
        # what is added covers what comes after (site-packages in its prefix)
        rights = PolicyRights(rights.handled, rights.rules + ((real, int(access), os.path.isdir(real),
                                                               "auto"),))

    def program(p: str, reason: str, depth: int) -> None:
        want(p, FILE_RX, reason)
        script = script_interpreter(p)
        if script is not None and depth < 4:  # the kernel allows a few levels too
            interp, args = script
            program(interp, f"the interpreter of {p}", depth + 1)
            target = _env_target(args, os.environ if env is None else env) \
                if os.path.basename(interp) == "env" else None
            if target is not None:  # env execs what it names: it needs the rules too
                python(target)
                program(target, f"what {interp} runs for {p}", depth + 1)
            return
        info, libs, missing = resolve_libraries(p, env=env, cache=cache)
        if info is None:
            return
        if info.interp:
            want(info.interp, FILE_RX, f"the ELF interpreter of {p}")
        if any(lib.found_by == "ld.so.cache" for lib in libs):
            want(cache, _A.READ_FILE, "the ld.so cache")
        for lib in libs:
            want(lib.path, FILE_RX, f"{lib.name} ({lib.found_by}), needed by {lib.needed_by}")
        out.missing += [m for m in missing if m not in out.missing]

    def python(p: str) -> None:
        py = python_paths(p)
        labels = {"prefix": "the Python prefix", "base_prefix": "the Python base prefix",
                  "site_packages": "the Python site-packages",
                  "base_site_packages": "the Python base site-packages"}
        for key, d in (py or {}).items():
            if _too_broad(d):
                out.skipped.append((d, f"{labels[key]}: a whole home or system directory, never "
                                       "added on its own (name it with --rox if that is meant)"))
            elif os.path.isdir(d):
                want(d, DIR_RX, labels[key])

    python(path)  # first: the directories cover the files inside them
    program(path, "the executable", 0)
    return out


def add_rules(policy: LandlockPolicy, found: AutoRules) -> None:
    """Append ``found``'s rules to ``policy``."""
    for r in found.rules:
        policy.rules.append(r.rule())


def add_to_config(config: IsolationConfig, path: str, *,
                  env: Mapping[str, str] | None = None) -> AutoRules:
    """``rules_for`` the program ``path`` under ``config``'s policy, added to it."""
    found = rules_for(path, config.landlock, env=env)
    if config.landlock is not None:
        add_rules(config.landlock, found)
    return found


#: What ``--rw DIR`` grants an ordinary program: files, directories, symlinks, fifos,
#: sockets, renames within it. The seed's READ_WRITE lacks MAKE_SYM, MAKE_FIFO,
#: MAKE_SOCK and REFER, so `ln -s`, `mkfifo`, `python -m venv` (its lib64 -> lib link)
#: and `mv` between two of its directories fail with EACCES or EXDEV. (The presets'
#: rules keep the seed's values: a filesystem view recognizes them by those.)
FULL_WRITE = _A.READ_WRITE | _A.MAKE_SYM | _A.MAKE_FIFO | _A.MAKE_SOCK | _A.REFER
