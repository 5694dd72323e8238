"""Compiled plans cached by content, for the command's fast start (``volt_enforce._launch``).

``volt-enforce run`` and ``exec`` compile their policy on every start; with the cache,
a second start of the same command with the same inputs execs volt-init on the plan
the first one wrote, and imports neither the model nor the compiler.

Where: entries in ``VOLT_ENFORCE_PLAN_CACHE`` (default ``.plan-cache/`` in the installed
package; ``off`` turns the cache off), one file per key, MAC'd (HMAC-SHA256) with a
32-byte secret in ``VOLT_ENFORCE_PLAN_KEY`` (default ``.plan-cache.key`` in the package):
whoever can write an entry there can already replace volt-init itself, and a sandbox
that can read the key (a system install under /usr, which the presets let children
read) has nowhere to put a forged entry. Elsewhere the directory must be one no
sandbox may write while the key is one no sandbox may read: the check on each use
knows only the plan at hand (the default was /run/volt-enforce/plans, which the
server preset lets a ``contain=False`` child write). Only root uses the cache.
On each use the directory (0700), the key and each entry (0600) must be root's,
their ancestors writable by root alone, and the paths the plan makes writable must
cover neither the directory nor the key: a sandboxed child never gets to write what
the next run applies. A run whose policy does cover them is never cached, and
revokes the cache (entries and key) before its child starts and, for a ``run``,
again after it ended.

The key covers the library (its version and the size and mtime of its files), the
kernel (release, build, boot id: the Landlock ABI and errata are fixed for a boot, and
the plan records them for volt-init to check), this process's credentials,
capabilities, no_new_privs, seccomp and cgroup (with the cgroup mounts), the working
directory, PATH and HOME, the loader's, Python's and this library's environment
variables (``LD_*``, ``PYTHON*``, ``VOLT_ENFORCE_*``), the command, each option
token, the bytes of every input file (``--config``, a seccomp profile file) and the
program run. Each entry also holds guards checked on a hit: the program's and the ELF
loader cache's stat, and the identity (or absence) of every path a rule names.

Clear it with ``volt-enforce cache clear`` (or ``clear()``).

This module is imported by the launcher before anything else: the standard library's
``os``, ``sys`` and ``stat`` only, until an entry is written.
"""

from __future__ import annotations

import os
import stat
import sys

from ._paths import PACKAGE_DIR, executable, path_under

TYPE_CHECKING = False  # typing is not imported: type checkers take this as true
if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from hashlib import sha256

    from .compile import Compiled
else:
    try:  # the builtin hash: hashlib would load OpenSSL (milliseconds) on every start
        from _sha256 import sha256
    except ImportError:  # 3.12+ names it _sha2
        try:
            from _sha2 import sha256
        except ImportError:
            from hashlib import sha256

__all__ = ["DEFAULT_DIR", "Entry", "Request", "cache_dir", "clear", "covers", "key_path",
           "lookup", "revoke", "store", "writable_paths"]

FORMAT = b"volt-plan-cache 1"
#: beside the default key, in the package: as hard to write as volt-init itself
DEFAULT_DIR = os.path.join(os.path.realpath(PACKAGE_DIR), ".plan-cache")
KEY_BYTES = 32
MAX_ENTRIES = 1024

#: run and exec options a cached plan may have: (takes a value, the values allowed or None)
_OPTIONS: dict[str, tuple[bool, tuple[str, ...] | None]] = {
    "--config": (True, None), "--profile": (True, ("server", "desktop", "none")),
    "--ro": (True, None), "--rw": (True, None), "--rox": (True, None),
    "--bind-tcp": (True, None), "--connect-tcp": (True, None),
    "--bind-udp": (True, None), "--connect-udp": (True, None),
    "--audit-quiet": (True, None), "--seccomp": (True, None),
    "--memory": (True, None), "--memory-high": (True, None), "--cpu-weight": (True, None),
    "--cpu-quota": (True, None), "--cpus": (True, None), "--io-weight": (True, None),
    "--pids": (True, None), "--network": (True, ("none", "host")),
    "--cap-add": (True, None), "--cap-drop": (True, None),
    "--read-only": (False, None), "--no-contain": (False, None),
    "--best-effort": (False, None), "--hard-requirement": (False, None),
    "--ignore-missing": (False, None), "--no-auto-rules": (False, None),
    "--no-warnings": (False, None),
}

_STATUS_FIELDS = (b"Uid:", b"Gid:", b"Groups:", b"CapInh:", b"CapPrm:", b"CapEff:",
                  b"CapBnd:", b"CapAmb:", b"NoNewPrivs:", b"Seccomp:")


def cache_dir() -> str | None:
    """The entries' directory, or None when the cache is off."""
    d = os.environ.get("VOLT_ENFORCE_PLAN_CACHE", DEFAULT_DIR)
    return None if d in ("", "off") else _resolved_parent(d)


def key_path() -> str:
    """The MAC secret's file."""
    k = os.environ.get("VOLT_ENFORCE_PLAN_KEY")
    if k:
        return _resolved_parent(k)
    return os.path.join(os.path.dirname(DEFAULT_DIR), ".plan-cache.key")


def _resolved_parent(path: str) -> str:
    """``path`` with its directory resolved (once: every later step uses this string,
    whatever a link is changed to); the last part is never followed (checked by lstat)."""
    path = os.path.abspath(path)
    return os.path.join(os.path.realpath(os.path.dirname(path)), os.path.basename(path))


# ---- trust checks -------------------------------------------------------------------


def _trusted_ancestors(path: str) -> bool:
    """Every directory above ``path`` (resolved) is root's and writable by root alone,
    or sticky (/tmp): nobody else can rename ``path`` away and put another there."""
    d = os.path.dirname(path)
    while True:
        try:
            st = os.lstat(d)
        except OSError:
            return False
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != 0:
            return False
        if st.st_mode & 0o022 and not st.st_mode & stat.S_ISVTX:
            return False
        if d == "/":
            return True
        d = os.path.dirname(d)


def _trusted_dir(d: str) -> bool:
    try:
        st = os.lstat(d)
    except OSError:
        return False
    return (stat.S_ISDIR(st.st_mode) and st.st_uid == 0 and stat.S_IMODE(st.st_mode) == 0o700
            and os.path.realpath(d) == d and _trusted_ancestors(d))


def _trusted_file(st: os.stat_result) -> bool:
    return (stat.S_ISREG(st.st_mode) and st.st_uid == 0 and stat.S_IMODE(st.st_mode) == 0o600
            and st.st_nlink == 1)


def _read_trusted(path: str, limit: int) -> bytes | None:
    """The bytes of a root-owned 0600 regular file (not a link), or None."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not _trusted_file(st) or st.st_size > limit:
            return None
        chunks = []
        while True:
            b = os.read(fd, 1 << 20)
            if not b:
                break
            chunks.append(b)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _secret(create: bool = False) -> bytes | None:
    path = key_path()
    if os.path.realpath(path) != path or not _trusted_ancestors(path):
        return None
    data = _read_trusted(path, KEY_BYTES)
    if data is not None and len(data) == KEY_BYTES:
        return data
    if not create or data is not None:
        return None
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, os.urandom(KEY_BYTES))
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)  # never replaces a key another process made meanwhile
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
    except OSError:
        return None
    return _secret(create=False)


def _mac(secret: bytes, body: bytes) -> bytes:
    """HMAC-SHA256 (RFC 2104) with the builtin hash."""
    k = secret.ljust(64, b"\0")
    inner = sha256(bytes(b ^ 0x36 for b in k) + body).digest()
    return sha256(bytes(b ^ 0x5C for b in k) + inner).digest()


def _same(a: bytes, b: bytes) -> bool:
    try:
        from _operator import _compare_digest
    except ImportError:  # pragma: no cover
        return a == b
    return bool(_compare_digest(a, b))


def covers(writable: Iterable[str], target: str) -> bool:
    """Whether a writable path (resolved) is ``target`` or one of its ancestors."""
    return any(path_under(target, w) for w in writable)


def _targets() -> list[str]:
    d = cache_dir()
    return [p for p in (d, key_path()) if p is not None]


def protected(writable: Iterable[str]) -> bool:
    """Whether a plan that makes ``writable`` writable leaves the cache and its key alone."""
    w = list(writable)
    return not any(covers(w, os.path.realpath(t)) for t in _targets())


# ---- the request: what the key covers -----------------------------------------------


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return b""


def _library_stamp() -> bytes:
    """The package's files, by name, size and mtime: an edited source is another key."""
    root = os.path.dirname(os.path.abspath(__file__))
    out = []
    stack = [root]
    while stack:
        d = stack.pop()
        try:
            entries = sorted(os.scandir(d), key=lambda e: e.name)
        except OSError:
            continue
        for e in entries:
            if e.name.startswith(".") or e.name == "__pycache__":
                continue
            if e.is_dir(follow_symlinks=False):
                stack.append(e.path)
                continue
            st = e.stat(follow_symlinks=False)
            out.append(f"{e.path[len(root):]} {st.st_size} {st.st_mtime_ns}")
    return "\n".join(out).encode()


def _which(name: str, path_env: str) -> str | None:
    """The file ``name`` runs (the CLI's own resolution: a name with a slash as given)."""
    if "/" in name:
        return name if os.path.exists(name) else None
    for d in path_env.split(os.pathsep):
        p = os.path.join(d or ".", name)
        if os.path.isfile(p) and os.access(p, os.X_OK):
            return p
    return None


def _stat_sig(path: str, full: bool) -> str:
    """A path's identity (device, inode, type), with size and times when ``full``;
    ``-`` when absent. Both the link and what it points to."""
    parts = []
    for fn in (os.lstat, os.stat):
        try:
            st = fn(path)
        except OSError:
            parts.append("-")
            continue
        s = f"{st.st_dev:x}:{st.st_ino:x}:{stat.S_IFMT(st.st_mode):o}"
        if full:
            s += f":{stat.S_IMODE(st.st_mode):o}:{st.st_size:x}:{st.st_mtime_ns:x}:{st.st_ctime_ns:x}"
        parts.append(s)
    return ",".join(parts)


class Request:
    """A run or exec command line, when the cache may serve it: its key and its parts."""

    def __init__(self, command: str, tokens: list[str], cmd: list[str], program: str,
                 files: list[str], quiet: bool) -> None:
        self.command = command
        self.tokens = tokens
        self.cmd = cmd
        self.program = program  # resolved: what volt-init execs
        self.files = files      # the input files whose bytes the key covers
        self.quiet = quiet      # --no-warnings
        self._digest: str | None = None

    @classmethod
    def from_argv(cls, argv: Sequence[str]) -> Request | None:
        """``argv`` as after the program name (``run ... -- CMD``); None when an option is
        not one a cached plan may have (the CLI then runs it, and caches nothing)."""
        if len(argv) < 3 or argv[0] not in ("run", "exec") or os.geteuid() != 0:
            return None
        try:
            sep = list(argv).index("--", 1)
        except ValueError:
            return None
        tokens, cmd = list(argv[1:sep]), list(argv[sep + 1:])
        if not cmd or not cmd[0]:
            return None
        files: list[str] = []
        i = 0
        while i < len(tokens):
            tok = tokens[i]
            name, eq, value = tok.partition("=")
            spec = _OPTIONS.get(name)
            if spec is None:
                return None
            takes, allowed = spec
            if not takes:
                if eq:
                    return None
                i += 1
                continue
            if not eq:
                if i + 1 >= len(tokens):
                    return None
                value = tokens[i + 1]
                i += 1
            i += 1
            if not value or (allowed is not None and value not in allowed):
                return None
            if name == "--config" or (name == "--seccomp" and value not in
                                      ("strict", "default", "unconfined")):
                files.append(os.path.abspath(value))
        program = _which(cmd[0], os.environ.get("PATH", os.defpath))
        if program is None:
            return None
        return cls(argv[0], tokens, cmd, program, files, "--no-warnings" in tokens)

    def digest(self) -> str:
        """The key: a hash of everything the plan depends on (see the module's doc)."""
        if self._digest is not None:
            return self._digest
        from . import __version__

        u = os.uname()
        status = b"\n".join(ln for ln in _read("/proc/self/status").splitlines()
                            if ln.startswith(_STATUS_FIELDS))
        mounts = b"\n".join(ln for ln in _read("/proc/self/mountinfo").splitlines()
                            if b" - cgroup" in ln)
        parts = [FORMAT, __version__.encode(), _library_stamp(),
                 u.release.encode(), u.version.encode(),
                 _read("/proc/sys/kernel/random/boot_id"), status,
                 _read("/proc/self/cgroup"), mounts,
                 os.fsencode(os.getcwd()),
                 os.fsencode(os.environ.get("PATH", os.defpath)),
                 os.fsencode(os.environ.get("HOME", "")),
                 # what the program's rules are found by (the loader's and Python's
                 # search paths) and the library's own settings
                 b"\0".join(os.fsencode(f"{k}={v}") for k, v in sorted(os.environ.items())
                            if k.startswith(("LD_", "PYTHON", "VOLT_ENFORCE_"))),
                 os.fsencode(cache_dir() or ""), os.fsencode(key_path()),
                 self.command.encode(), b"%d" % len(self.tokens)]
        parts += [os.fsencode(t) for t in self.tokens]
        parts += [os.fsencode(self.cmd[0]), os.fsencode(self.program),
                  _stat_sig(self.program, True).encode()]
        for f in self.files:
            data = _read(f)
            parts += [os.fsencode(f), sha256(data).hexdigest().encode(), b"%d" % len(data)]
        h = sha256()
        for p in parts:
            h.update(b"%d:" % len(p) + p)
        self._digest = h.hexdigest()
        return self._digest


# ---- entries ------------------------------------------------------------------------


class Entry:
    """A verified entry: the plan, the stderr lines its first run printed, its mode."""

    def __init__(self, mode: str, plan: bytes, notes: list[str]) -> None:
        self.mode = mode
        self.plan = plan
        self.notes = notes


def _entry_path(d: str, digest: str) -> str:
    return os.path.join(d, digest)


def lookup(req: Request) -> Entry | None:
    """The entry for ``req``, verified: the directory's, the key's and the entry's owner
    and mode, the MAC, the key, every guard, and that the plan writes neither the cache
    nor its key. None on any doubt (a miss)."""
    d = cache_dir()
    if d is None or not _trusted_dir(d):
        return None
    digest = req.digest()
    data = _read_trusted(_entry_path(d, digest), 16 << 20)
    if data is None:
        return None
    secret = _secret()
    if secret is None:
        return None
    head, sep, body = data.partition(b"\n")
    if not sep or not head.startswith(b"mac "):
        return None
    try:
        mac = bytes.fromhex(head[4:].decode())
    except ValueError:
        return None
    if not _same(mac, _mac(secret, body)):
        return None
    meta, sep, plan = body.partition(b"\nplan\n")
    if not sep:
        return None
    lines = meta.decode("ascii", "replace").split("\n")
    if lines[0] != FORMAT.decode() or len(lines) < 3:
        return None
    if lines[1] != f"key {digest}" or not lines[2].startswith("mode "):
        return None
    mode = lines[2][5:]
    if mode != req.command:
        return None
    notes: list[str] = []
    writable: list[str] = []
    for ln in lines[3:]:
        kind, _, rest = ln.partition(" ")
        if kind == "note":
            notes.append(os.fsdecode(bytes.fromhex(rest)))
        elif kind == "writable":
            writable.append(os.fsdecode(bytes.fromhex(rest)))
        elif kind in ("node", "file"):
            hexpath, _, sig = rest.partition(" ")
            if _stat_sig(os.fsdecode(bytes.fromhex(hexpath)), kind == "file") != sig:
                return None
        else:
            return None  # a record this version does not know
    if not protected(writable):
        return None
    return Entry(mode, plan, notes)


def writable_paths(compiled: Compiled, named_writable: Sequence[str]) -> list[str]:
    """The host paths a child under ``compiled`` may write (resolved). With a filesystem
    view only the binds named writable reach the host; without one, every Landlock rule
    with a write right, or "/" when the ruleset handles no write at all."""
    if compiled.view is not None:
        return sorted({os.path.realpath(p) for p in named_writable})
    from .model import LandlockAccess as A

    ruleset = compiled.ruleset
    if ruleset is None or ruleset.fd < 0:
        return ["/"]
    rep = ruleset.report
    writes = int(A.WRITE_FILE | A.MAKE_REG | A.REMOVE_FILE | A.REMOVE_DIR | A.MAKE_DIR
                 | A.MAKE_SYM | A.MAKE_CHAR | A.MAKE_BLOCK | A.MAKE_FIFO | A.MAKE_SOCK)
    core = int(A.WRITE_FILE | A.MAKE_REG | A.REMOVE_FILE)
    if int(rep.handled_fs) & core != core:
        return ["/"]  # a write right the kernel does not handle is allowed everywhere
    return sorted({os.path.realpath(r.path) for r in rep.rules if int(r.access) & writes})


def guards(compiled: Compiled, program: str, auto: object | None) -> list[tuple[str, str, str]]:
    """(kind, path, signature) records a hit checks: the program, the ELF loader's cache
    and the rules' paths ("node": identity; "file": also size and times)."""
    out: list[tuple[str, str, str]] = []
    full = {program, os.path.realpath(program), "/etc/ld.so.cache"}
    for r in getattr(auto, "rules", ()):
        full.add(r.path)
    nodes: set[str] = set()
    for p, _why in getattr(auto, "skipped", ()):
        nodes.add(p)
    ruleset = compiled.ruleset
    if ruleset is not None:
        nodes.update(r.path for r in ruleset.report.rules)
        nodes.update(s.path for s in ruleset.report.skipped)
    for p in sorted(full):
        out.append(("file", p, _stat_sig(p, True)))
    for p in sorted(nodes - full):
        out.append(("node", p, _stat_sig(p, False)))
    return out


def _ensure_dir(d: str) -> bool:
    if _trusted_dir(d):
        return True
    if os.path.lexists(d):
        return False  # someone else's, or the wrong mode: never taken over
    try:
        os.makedirs(os.path.dirname(d), mode=0o755, exist_ok=True)
        if not _trusted_ancestors(d):
            return False
        os.mkdir(d, 0o700)
        os.chmod(d, 0o700)  # the umask may have taken bits
    except OSError:
        return False
    return _trusted_dir(d)


def store(req: Request, plan: str, notes: Sequence[str], guard_records: Sequence[tuple[str, str, str]],
          writable: Sequence[str]) -> bool:
    """Write the entry for ``req``; False (nothing written) when the cache is off or not
    trustworthy, or the plan writes the cache or its key."""
    d = cache_dir()
    if d is None or os.geteuid() != 0 or not protected(writable) or not _ensure_dir(d):
        return False
    if len(os.listdir(d)) >= MAX_ENTRIES:  # a bound on what the directory holds
        clear()
    secret = _secret(create=True)
    if secret is None:
        return False
    lines = [FORMAT.decode(), f"key {req.digest()}", f"mode {req.command}"]
    lines += [f"note {os.fsencode(n).hex()}" for n in notes]
    lines += [f"writable {os.fsencode(w).hex()}" for w in writable]
    lines += [f"{kind} {os.fsencode(p).hex()} {sig}" for kind, p, sig in guard_records]
    body = ("\n".join(lines) + "\nplan\n").encode() + plan.encode()
    data = b"mac " + _mac(secret, body).hex().encode() + b"\n" + body
    path = _entry_path(d, req.digest())
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
        os.rename(tmp, path)
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        return False
    return True


def clear() -> int:
    """Remove every entry; returns how many. The key stays."""
    d = cache_dir()
    if d is None or not os.path.isdir(d):
        return 0
    n = 0
    for e in os.scandir(d):
        try:
            os.unlink(e.path)
            n += 1
        except IsADirectoryError:
            pass
        except OSError:
            pass
    return n


def revoke() -> None:
    """Remove every entry and the key: what a child may have written is never trusted
    (a new key is made by the next entry written)."""
    clear()
    try:
        os.unlink(key_path())
    except OSError:
        pass


def plan_memfd(plan: bytes) -> int:
    """A sealed memfd holding ``plan``, inheritable, for volt-init: nothing can change the
    bytes between the check and volt-init's read."""
    import fcntl

    fd = os.memfd_create("volt-plan", os.MFD_ALLOW_SEALING)
    view = memoryview(plan)
    while view:
        view = view[os.write(fd, view):]
    os.lseek(fd, 0, os.SEEK_SET)
    fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_WRITE | fcntl.F_SEAL_GROW
                | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_SEAL)
    return fd


def launch(req: Request, entry: Entry) -> None:
    """Exec volt-init on the entry's plan (``run`` supervises, ``exec`` execs in place),
    after printing the lines the first run printed. Returns only if the exec failed."""
    for n in entry.notes:
        sys.stderr.write(n + "\n")
    sys.stderr.flush()
    init = executable("volt-init")
    fd = plan_memfd(entry.plan)
    argv = [init] + (["run"] if req.command == "run" else [])
    argv += ["--plan-fd", str(fd), "--prog", "volt-enforce", "--exec", req.program]
    # run: the entry's notes already said it, before the child could write a line
    argv += ["--quiet"] if req.quiet or req.command == "run" else []
    argv += ["--", *req.cmd]
    try:
        os.execv(init, argv)
    finally:
        os.close(fd)
