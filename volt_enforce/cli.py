"""The volt-enforce command (also ``python -m volt_enforce``).

Exit status: the command's own; 125 when volt-enforce itself fails (bad option,
bad policy, enforcement error); 126 when the command cannot be executed; 127
when it is not found; 128+N when it dies of signal N.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from . import cli_landlock
from .errors import EnforcementError, PolicyError, VoltEnforceError

# the model, the file output and subprocess are imported by the commands that use them:
# check, init-path and --help need none of them
if TYPE_CHECKING:
    import subprocess

    from .model import Compatibility, IsolationConfig

__all__ = [
    "EXIT_CANNOT_EXECUTE",
    "EXIT_FAILURE",
    "EXIT_NOT_FOUND",
    "build_parser",
    "config_from_args",
    "main",
]

EXIT_FAILURE = 125
EXIT_CANNOT_EXECUTE = 126
EXIT_NOT_FOUND = 127

EXIT_STATUS = """exit status:
  the command's own; 125 when volt-enforce itself fails (bad option, bad policy,
  enforcement error: nothing was run); 126 when the command cannot be executed;
  127 when it is not found; 128+N when it dies of signal N."""

EXAMPLES = {
    "run": """examples:
  volt-enforce run -- sh -c 'cat /etc/hostname; touch /usr/x'
      server profile + default seccomp: reading /etc works, writing /usr is denied
  volt-enforce run --profile none --rw /tmp/work --rox /usr --ro /etc -- ls /tmp/work
  volt-enforce run --network none --seccomp strict --pids 64 --memory 256M -- python3 app.py
  volt-enforce run --config isolation.json --report report.json -- /app/server""",
    "exec": """examples:
  volt-enforce exec --profile server -- /app/server
      restrict this process, then exec the server in place (same PID)""",
    "explain": """examples:
  volt-enforce explain --profile server --seccomp default
  volt-enforce explain --config isolation.json --json
  volt-enforce explain --seccomp strict --bpf""",
    "check": """examples:
  volt-enforce check
  volt-enforce check --json""",
    "seccomp": """examples:
  volt-enforce seccomp export default -o default.json
  volt-enforce seccomp import docker-default.json
  volt-enforce seccomp disasm strict""",
    "compile": """examples:
  volt-enforce compile --profile server --seccomp default --pids 64 -o /plan
  volt-init /plan -- /app/server
      the plan is compiled for this kernel and these cgroup paths; volt-init
      (C, no Python) applies it and execs; '$(volt-enforce init-path)' is its path""",
    "net": """examples:
  volt-enforce net up web --publish 8080:80 --dns 192.0.2.53
  volt-enforce compile --profile server --network private --netns web -o /plan
  volt-init /plan -- /app/server
  volt-enforce net down web""",
    "init-path": """examples:
  cp "$(volt-enforce init-path)" rootfs/sbin/volt-init""",
}
EXAMPLES["run"] += "\n\n" + EXIT_STATUS
EXAMPLES["exec"] += "\n\n" + EXIT_STATUS


class CLIError(Exception):
    """A bad option or argument: one line, exit 125."""


# ---- building the config from options ----------------------------------------------


def _add_policy_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("policy")
    g.add_argument("--config", metavar="FILE", type=_text, help="isolation config in the seed's JSON format")
    g.add_argument("--profile", choices=["server", "desktop", "none"],
                   help="Landlock preset (default: server, unless --config gives one)")
    g.add_argument("--rootfs", metavar="DIR", type=_text,
                   help="root of the preset's paths, which a contained child is pivoted "
                        "into (default: /, the host's)")
    g.add_argument("--ro", action="append", default=[], metavar="PATH", type=_text,
                   help="allow reading PATH (repeatable)")
    g.add_argument("--rw", action="append", default=[], metavar="PATH", type=_text,
                   help="allow reading and writing PATH (repeatable)")
    g.add_argument("--rox", action="append", default=[], metavar="PATH", type=_text,
                   help="allow reading and executing PATH (repeatable)")
    g.add_argument("--bind-tcp", action="append", default=None, type=_port, metavar="PORT",
                   help="allow binding TCP PORT; others are denied (repeatable)")
    g.add_argument("--connect-tcp", action="append", default=None, type=_port, metavar="PORT",
                   help="allow connecting to TCP PORT; others are denied (repeatable)")
    cli_landlock.add_options(g, _port, _text)
    g.add_argument("--seccomp", metavar="PROFILE", type=_text,
                   help="strict, default, unconfined or an OCI JSON file (default: default)")
    g.add_argument("--memory", metavar="SIZE", type=_text, help="hard memory limit (memory.max), e.g. 512M")
    g.add_argument("--memory-high", metavar="SIZE", type=_text, help="memory throttle limit (memory.high)")
    g.add_argument("--cpu-weight", type=_ranged(1, 10000), metavar="N",
                   help="CPU weight 1..10000 (default 100)")
    g.add_argument("--cpu-quota", metavar="PCT", type=_text, help="CPU time limit, e.g. 50%%")
    g.add_argument("--cpus", metavar="LIST", type=_text, help="CPUs to run on, e.g. 0-1")
    g.add_argument("--io-weight", type=_ranged(1, 10000), metavar="N",
                   help="IO weight 1..10000 (default 100)")
    g.add_argument("--pids", type=_ranged(1, (1 << 31) - 1), metavar="N",
                   help="maximum number of processes (and threads)")
    g.add_argument("--network", choices=["none", "host", "private"],
                   help="none: own namespace, loopback only, TCP denied; host: shared; "
                        "private: own namespace with eth0 on a bridge (an address leased from "
                        "its subnet, a default route via the bridge). Default: none for run "
                        "(and explain), the current network for exec and compile")
    g.add_argument("--bridge", metavar="NAME", type=_text,
                   help="private network: the bridge (default voltbr0, made when missing with "
                        "10.213.0.0/16, gateway 10.213.0.1)")
    g.add_argument("--publish", action="append", default=None, type=_publish,
                   metavar="HOST:CONTAINER[/udp]",
                   help="private network: forward host port HOST to the sandbox's port "
                        "CONTAINER, tcp (default) or udp (repeatable)")
    g.add_argument("--dns", action="append", default=None, type=_text, metavar="IP",
                   help="private network: a DNS server for the sandbox's /etc/resolv.conf "
                        "(repeatable)")
    g.add_argument("--outbound", action="store_true", default=None,
                   help="private network: masquerade the sandbox's traffic out of the host "
                        "(needs net.ipv4.ip_forward=1, never set here)")
    g.add_argument("--private-users", action="store_true",
                   help="run in a new user namespace: root inside is 65536 unprivileged "
                   "host ids (root's /etc/subuid range, else from 0x70000000)")
    g.add_argument("--read-only", action="store_true", help="no write access anywhere")
    g.add_argument("--no-contain", dest="contain", action="store_false",
                   help="trusted children only: no session, IPC or UTS namespace of their own, "
                        "and root keeps CAP_SETFCAP, CAP_SYS_ADMIN and (on the host's network) "
                        "CAP_NET_RAW")
    g.add_argument("--cap-add", action="append", default=[], metavar="CAP", type=_text,
                   help="keep CAP too (repeatable; ALL: every capability)")
    g.add_argument("--cap-drop", action="append", default=[], metavar="CAP", type=_text,
                   help="do not keep CAP (repeatable; ALL: none but those added)")
    compat = g.add_mutually_exclusive_group()
    compat.add_argument("--best-effort", action="store_true",
                        help="drop what the kernel lacks and report it")
    compat.add_argument("--hard-requirement", action="store_true",
                        help="fail if anything requested cannot be enforced (default: fail "
                             "only when a whole facility is missing, e.g. no Landlock at "
                             "all, and warn about a part dropped)")
    g.add_argument("--ignore-missing", action="store_true",
                   help="skip (and report) rules whose path does not exist")


def _publish(text: str) -> tuple[int, int, str]:
    """--publish HOST:CONTAINER[/udp|/tcp]."""
    spec, _, proto = text.partition("/")
    host, sep, container = spec.partition(":")
    try:
        if not sep or proto not in ("", "tcp", "udp"):
            raise ValueError
        h, c = int(host), int(container)
        if not (1 <= h <= 65535 and 1 <= c <= 65535):
            raise ValueError
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:CONTAINER[/udp] with ports "
                                         "1..65535") from None
    return h, c, proto or "tcp"


def _text(text: str) -> str:
    """An option's text value: never empty, since an empty path, size or profile
    would otherwise mean "the current directory", "no limit" or "no filter"."""
    if not text:
        raise argparse.ArgumentTypeError("an empty value is not allowed "
                                         "(leave the option out for its default)")
    return text


#: The options whose values are free text, by their dest (checked again in
#: config_from_args for a Namespace built without this parser).
_TEXT_OPTIONS = {"config": "--config", "rootfs": "--rootfs", "ro": "--ro", "rw": "--rw",
                 "rox": "--rox", "seccomp": "--seccomp", "memory": "--memory",
                 "memory_high": "--memory-high", "cpu_quota": "--cpu-quota", "cpus": "--cpus",
                 "cap_add": "--cap-add", "cap_drop": "--cap-drop",
                 "unix_socket": "--unix-socket", "audit_quiet": "--audit-quiet"}


def _check_text_options(args: argparse.Namespace) -> None:
    for dest, option in _TEXT_OPTIONS.items():
        value = getattr(args, dest, None)
        for v in value if isinstance(value, list) else [value]:
            if v is not None and (not isinstance(v, str) or not v):
                raise CLIError(f"argument {option}: {v!r} is not allowed "
                               "(leave the option out for its default)")


def _ranged(lo: int, hi: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            n = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not lo <= n <= hi:
            raise argparse.ArgumentTypeError(f"{n} is out of range ({lo}..{hi})")
        return n

    return parse


def _add_command_options(p: argparse.ArgumentParser,
                         func: Callable[[argparse.Namespace], int]) -> None:
    """What run and exec share: the policy, the report file, the command."""
    _add_policy_options(p)
    p.add_argument("--report", metavar="FILE", type=_text, help="write the enforcement report as JSON")
    p.add_argument("--no-auto-rules", dest="auto_rules", action="store_false",
                   help="add no rules for the program itself (its executable, ELF interpreter, "
                        "libraries, Python prefix); by default they are added and reported")
    p.add_argument("--no-warnings", dest="warnings", action="store_false",
                   help="do not print a line on stderr for each restriction dropped")
    p.add_argument("cmd", nargs=argparse.REMAINDER, metavar="-- CMD [ARGS...]")
    p.set_defaults(func=func)


def _port(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= n <= 65535:
        raise argparse.ArgumentTypeError(f"{n} is not a port (0..65535)")
    return n


def _read_config(path: str) -> IsolationConfig:
    from .model import IsolationConfig

    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise CLIError(f"--config {path}: {exc.strerror}") from None
    try:
        return IsolationConfig.from_json(data)
    except PolicyError as exc:
        if exc.field == "document":  # its value is the whole file: say why, not what
            raise CLIError(f"--config {path}: the document {exc.reason}") from None
        raise CLIError(f"--config {path}: {exc}") from None


def _rootfs(args: argparse.Namespace) -> str:
    if args.rootfs is None:
        return "/"
    if args.profile not in ("server", "desktop") and (args.profile == "none"
                                                      or args.config is not None):
        raise CLIError("--rootfs applies to --profile server or desktop, not to "
                       + ("--profile none" if args.profile == "none" else "the --config policy"))
    if not os.path.isdir(args.rootfs):
        raise CLIError(f"--rootfs {args.rootfs}: not a directory")
    return os.path.abspath(str(args.rootfs))


def _seccomp_value(text: str) -> str:
    if text in ("strict", "default", "unconfined"):
        return text
    if "/" in text or text.endswith(".json") or os.path.exists(text):
        return os.path.abspath(text)
    return text  # the model names the choices


def config_from_args(args: argparse.Namespace) -> IsolationConfig:
    """The IsolationConfig the options describe; options override the file."""
    from .autorules import FULL_WRITE
    from .model import (
        Compatibility,
        IsolationConfig,
        LandlockAccess,
        LandlockPolicy,
        LandlockRule,
        MissingPaths,
        NetworkConfig,
        NetworkMode,
        ResourceLimits,
        desktop_policy,
        server_policy,
    )

    _check_text_options(args)
    cfg = _read_config(args.config) if args.config is not None else IsolationConfig()
    rootfs = _rootfs(args)
    try:
        landlock = cfg.landlock
        if args.profile == "server":
            landlock = server_policy(rootfs)
        elif args.profile == "desktop":
            landlock = desktop_policy(rootfs)
        elif args.profile == "none":
            landlock = None
        elif args.config is None:
            landlock = server_policy(rootfs)
        extra = [(p, LandlockAccess.READ_ONLY) for p in args.ro]
        extra += [(p, FULL_WRITE) for p in args.rw]
        extra += [(p, LandlockAccess.READ_EXEC) for p in args.rox]
        if landlock is None and extra:
            landlock = LandlockPolicy()  # only the paths given
        elif landlock is None and (args.bind_tcp is not None or args.connect_tcp is not None
                                   or cli_landlock.wants_policy(args)):
            # ports alone: a policy always handles the filesystem, so allow all of it
            landlock = LandlockPolicy(rules=[LandlockRule("/", LandlockAccess.all())],
                                      runtime=False)
        if landlock is not None:
            for path, access in extra:
                landlock.rules.append(LandlockRule(path=os.path.abspath(path), access=access))
            if args.bind_tcp is not None:
                landlock.bind_tcp = sorted(set((landlock.bind_tcp or []) + args.bind_tcp))
            if args.connect_tcp is not None:
                landlock.connect_tcp = sorted(set((landlock.connect_tcp or []) + args.connect_tcp))
            cli_landlock.apply(args, landlock)
            if args.best_effort:
                landlock.compatibility = Compatibility.BEST_EFFORT
            if args.hard_requirement:
                landlock.compatibility = Compatibility.HARD_REQUIREMENT
            if args.ignore_missing:
                landlock.missing_paths = MissingPaths.SKIP
        cfg.landlock = landlock

        if args.seccomp is not None:
            cfg.seccomp = _seccomp_value(args.seccomp)
        elif args.config is None:
            cfg.seccomp = "default"

        limits = {
            "memory_hard": args.memory, "memory_soft": args.memory_high,
            "cpu_weight": args.cpu_weight, "cpu_set": args.cpus, "io_weight": args.io_weight,
            "pids_max": args.pids, "cpu_quota": args.cpu_quota,
        }
        given = {k: v for k, v in limits.items() if v is not None}
        if given:
            res = cfg.resources if cfg.resources is not None else ResourceLimits()
            for k, v in given.items():
                setattr(res, k, v)
            cfg.resources = res
        if args.network is not None:
            net = cfg.network if cfg.network is not None else NetworkConfig()
            net.mode = NetworkMode(args.network)
            cfg.network = net
        _private_network_options(args, cfg)
        command = getattr(args, "command", None)
        if cfg.network is None and args.config is None and command in ("run", "explain"):
            # run's default is its own network namespace, loopback only: a child shares the
            # host's network only when asked (--network host)
            cfg.network = NetworkConfig(mode=NetworkMode.NONE)
        if args.private_users:
            cfg.private_users = True
        if args.read_only:
            cfg.read_only_fs = True
        from .compile import capabilities_with

        cfg.capabilities = capabilities_with(cfg, getattr(args, "cap_add", None) or (),
                                             getattr(args, "cap_drop", None) or (),
                                             contain=getattr(args, "contain", True))
        cfg.validate()
    except PolicyError as exc:
        raise CLIError(str(exc)) from None
    return cfg


def _compatibility(args: argparse.Namespace, cfg: IsolationConfig) -> Compatibility:
    """The one level for every facility: an option, else the config's own, else the
    command's default (see compile.resolve_compatibility)."""
    from .compile import resolve_compatibility
    from .model import Compatibility

    override = (Compatibility.BEST_EFFORT if args.best_effort else
                Compatibility.HARD_REQUIREMENT if args.hard_requirement else None)
    return resolve_compatibility(cfg, override)


def _warn(args: argparse.Namespace, report: Any) -> None:
    if getattr(args, "warnings", True):
        for line in report.downgrades():
            _error(f"warning: {line}")


def _sandbox(args: argparse.Namespace, cfg: IsolationConfig) -> Any:
    from .sandbox import Sandbox

    return Sandbox(cfg, compatibility=_compatibility(args, cfg), contain=args.contain,
                   unix_sockets=cli_landlock.unix_sockets(args), **_view_options(args),
                   log_denials=bool(getattr(args, "why", False)))


def _view_options(args: argparse.Namespace) -> dict[str, Any]:
    """The host paths named writable (bound writable in the view; only --rw / makes the
    host root writable, never a rule on / alone) and the rootfs to pivot into."""
    named = tuple(os.path.abspath(p) for p in getattr(args, "rw", []))
    rootfs = _rootfs(args) if getattr(args, "rootfs", None) is not None else None
    return {"named_writable": named, "rootfs": rootfs}


def _why(args: argparse.Namespace, cfg: IsolationConfig) -> Any:
    """--why: the audit listener (volt_enforce.audit), and Landlock's logging after exec."""
    if not getattr(args, "why", False):
        return None
    from .audit import DenialWatch

    return DenialWatch.for_config(cfg)


def _command(args: argparse.Namespace) -> list[str]:
    cmd = list(args.cmd)
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    if not cmd:
        raise CLIError("no command given (put it after --)")
    return cmd


class _Report:
    """--report, opened before anything runs (see fileout.Output): a bad path runs
    nothing, and ``exec`` can still write it once Landlock forbids opening it.
    Nothing is left behind when nothing ran; an existing file stays as it was."""

    def __init__(self, path: str, in_place: bool) -> None:
        from .fileout import Output

        self.path = path
        try:
            self.out = Output(path, in_place=in_place)
        except OSError as exc:
            raise CLIError(f"--report {path}: {exc.strerror}") from None

    def write(self, report: dict[str, Any]) -> None:
        data = (json.dumps(report, indent=2, default=str) + "\n").encode()
        try:
            self.out.write(data)
        except OSError as exc:
            raise CLIError(f"--report {self.path}: {exc.strerror}") from None

    def discard(self) -> None:
        self.out.discard()


def _open_report(path: str | None, *, in_place: bool = False) -> _Report | None:
    return _Report(path, in_place) if path is not None else None


def _exit_status(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


def _resolve(name: str) -> tuple[str | None, int]:
    """The file ``name`` runs, or None and the exit status: 127 not found, 126 found
    but not executable (as a shell tells them apart)."""
    if "/" in name:
        if not os.path.exists(name):
            return None, EXIT_NOT_FOUND
        return name, 0
    import shutil

    found = shutil.which(name)
    if found is not None:
        return found, 0
    for d in os.environ.get("PATH", os.defpath).split(os.pathsep):
        if os.path.isfile(os.path.join(d or ".", name)):
            return None, EXIT_CANNOT_EXECUTE
    return None, EXIT_NOT_FOUND


def _not_run(name: str, status: int, why: str | None = None) -> int:
    if status == EXIT_NOT_FOUND:
        _error(f"{name}: command not found")
    else:
        _error(f"{name}: cannot execute: {why or 'Permission denied'}")
    return status


# ---- commands -------------------------------------------------------------------------


def _auto_rules(args: argparse.Namespace, cfg: IsolationConfig, cmd: list[str]) -> Any:
    """Add (and report on stderr) the rules the program needs; None with --no-auto-rules."""
    from .autorules import add_to_config

    if not getattr(args, "auto_rules", True):
        return None
    if getattr(args, "rootfs", None) is not None:
        return None  # the program is the rootfs's: host paths would be the wrong files
    path, _status = _resolve(cmd[0])
    found = add_to_config(cfg, path) if path is not None else None
    for r in found.rules if found is not None else ():
        _error(f"added {r.option} for {r.reason} (--no-auto-rules: none added)")
    return found


def _exec_failed(sb: Any, cmd: list[str], exc: OSError) -> int:
    """Why the exec failed, when the sandbox is why; else as a shell says it."""
    from .diagnose import diagnose_exec

    path, _status = _resolve(cmd[0])
    diag = diagnose_exec(sb.compiled, path) if path is not None else None
    # Landlock answers EACCES; a missing path is the view's doing or no one's
    if diag is not None and (isinstance(exc, PermissionError) or diag.denied_by == "view"):
        _error(diag.message())
        return EXIT_NOT_FOUND if diag.denied_by == "view" else EXIT_CANNOT_EXECUTE
    if isinstance(exc, FileNotFoundError):
        return _not_run(cmd[0], EXIT_NOT_FOUND)
    return _not_run(cmd[0], EXIT_CANNOT_EXECUTE, exc.strerror)


# ---- the plan cache (volt_enforce.plancache) ---------------------------------------------


def _cache_on() -> bool:
    if os.geteuid() != 0:  # root's alone: nobody else can keep a 0700 root directory
        return False
    from . import plancache

    return plancache.cache_dir() is not None


def _cache_request(args: argparse.Namespace) -> Any:
    """The cache request for this command line (its key computed now, before any input
    file is read), or None when the cache does not serve it."""
    if not _cache_on():
        return None
    from . import plancache

    req = plancache.Request.from_argv(getattr(args, "raw_argv", None) or [])
    if req is not None:
        req.digest()
    return req


def _cache_guard(args: argparse.Namespace, compiled: Any) -> bool:
    """Revoke the cache (entries and key) when this child may write it or its key;
    True then (a ``run`` revokes again after the child ended)."""
    if not _cache_on():
        return False
    from . import plancache

    named = _view_options(args)["named_writable"]
    if plancache.protected(plancache.writable_paths(compiled, named)):
        return False
    plancache.revoke()
    return True


def _cache_fill(req: Any, args: argparse.Namespace, cfg: IsolationConfig, compiled: Any,
                auto: Any, notes: list[str]) -> None:
    """Write the entry for ``req``: the plan volt-init applies on the next start. Never
    for what volt-init does not do as the library does (user namespace ranges, a private
    network, a rootfs, UNIX socket binds, --why), and never fails the command."""
    if req is None or cfg.private_users or cfg.rootfs or compiled.unix_sockets \
            or compiled.private_network or compiled.log_denials:
        return
    from . import plancache
    from .init_plan import compile_plan

    try:
        text = compile_plan(compiled, run=req.command == "run", kernel_check=True)
        named = _view_options(args)["named_writable"]
        plancache.store(req, text, notes, plancache.guards(compiled, req.program, auto),
                        plancache.writable_paths(compiled, named))
    except (OSError, VoltEnforceError):
        pass


def _cmd_cache(args: argparse.Namespace) -> int:
    from . import plancache

    n = plancache.clear()
    print(f"removed {n} cached plan{'s' if n != 1 else ''}"
          + (f" from {plancache.cache_dir()}" if plancache.cache_dir() else " (the cache is off)"))
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    cmd = _command(args)
    req = _cache_request(args)
    cfg = config_from_args(args)
    auto = _auto_rules(args, cfg, cmd)
    why = _why(args, cfg)
    report_file = _open_report(args.report)
    revoked = False
    try:
        with _sandbox(args, cfg) as sb, _Forwarder() as forwarder:
            _warn(args, sb.report)
            revoked = _cache_guard(args, sb.compiled)
            with why.watch() if why is not None else contextlib.nullcontext():
                try:
                    proc = sb.popen(cmd)
                except EnforcementError:
                    raise
                except OSError as exc:
                    return _exec_failed(sb, cmd, exc)
                if why is not None:
                    why.follow(proc.pid)
                outside = getattr(proc, "cwd_outside_view", None)
                cwd_note = (f"the view lacks the working directory {outside}: starting in /"
                            if outside is not None and getattr(args, "warnings", True) else None)
                if cwd_note is not None:
                    _error(cwd_note)
                if not revoked:  # it started: the next start may take the plan from the cache
                    # (whose hit says the cwd note before its child starts: the cwd is in the key)
                    _cache_fill(req, args, cfg, sb.compiled, auto, list(_printed))
                rc = forwarder.wait(proc)
            report = sb.report.to_dict()
            if outside is not None:
                report["notes"].append(f"the view lacks the working directory {outside}: "
                                       "started in /")
            report["returncode"] = rc
            if auto is not None:
                report["auto_rules"] = auto.to_dict()
            if why is not None:
                report["denials"] = why.finish(sb.compiled, _error)
                report["denials_notes"] = list(dict.fromkeys(why.notes))  # why it may be empty
            stats = sb.stats()
            if stats is not None:
                report["stats"] = stats.to_dict() if hasattr(stats, "to_dict") else stats
            if report_file is not None:
                report_file.write(report)
    finally:
        if report_file is not None:
            report_file.discard()  # nothing ran: no empty report left behind
        if revoked:  # again: whatever the child wrote there meanwhile is gone too
            from . import plancache

            plancache.revoke()
    return _exit_status(rc)


class _Forwarder:
    """Passes SIGINT, SIGTERM, SIGHUP and SIGQUIT on to the child (a contained child
    has a session of its own: the terminal's signals reach only us). Installed
    before the spawn; a signal that arrives before the child exists is passed on
    as soon as it does."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)

    def __init__(self) -> None:
        self.proc: subprocess.Popen[Any] | None = None
        self.pending: list[int] = []
        self.old: dict[int, Any] = {}

    def _forward(self, signum: int, frame: Any) -> None:
        if self.proc is None:
            self.pending.append(signum)
            return
        with contextlib.suppress(OSError):
            self.proc.send_signal(signum)

    def __enter__(self) -> _Forwarder:
        for sig in self.SIGNALS:
            self.old[sig] = signal.signal(sig, self._forward)
        return self

    def wait(self, proc: subprocess.Popen[Any]) -> int:
        self.proc = proc
        for signum in self.pending:
            self._forward(signum, None)
        return proc.wait()

    def __exit__(self, *exc: object) -> None:
        for sig, h in self.old.items():
            signal.signal(sig, h)


def _cmd_exec(args: argparse.Namespace) -> int:
    from .sandbox import apply_self

    cmd = _command(args)
    req = _cache_request(args)
    cfg = config_from_args(args)
    # resolved before restricting, so "not found" is told apart from a denial
    path, status = _resolve(cmd[0])
    if path is None:
        return _not_run(cmd[0], status)
    auto = _auto_rules(args, cfg, cmd)
    # imported now: once this process is restricted it may not read the module
    from .diagnose import diagnose_exec

    # compiled once: for the cache (before restricting: it is never writable from inside)
    # and for apply_self, which adopts it
    compiled = _exec_cache(args, cfg, req, auto, path) if _cache_on() else None
    # written after this process restricted itself, where a rename may be denied
    report_file = _open_report(args.report, in_place=True)
    before = os.getcwd()
    try:
        report = apply_self(cfg, compatibility=_compatibility(args, cfg), contain=args.contain,
                            unix_sockets=cli_landlock.unix_sockets(args), _compiled=compiled,
                            **_view_options(args))
    except BaseException:
        if report_file is not None:
            report_file.discard()
        raise
    _warn(args, report)
    if report.view is not None and before != "/" and os.getcwd() == "/" \
            and getattr(args, "warnings", True):  # ve_view_enter went to / for want of it
        _error(f"the view lacks the working directory {before}: starting in /")
    if report_file is not None:
        written = report.to_dict()
        if auto is not None:
            written["auto_rules"] = auto.to_dict()
        report_file.write(written)
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execv(path, cmd)
    except OSError as exc:
        diag = diagnose_exec(report, path)
        if diag is not None and (isinstance(exc, PermissionError) or diag.denied_by == "view"):
            _error(diag.message())
            return EXIT_CANNOT_EXECUTE
        status = EXIT_NOT_FOUND if isinstance(exc, FileNotFoundError) else EXIT_CANNOT_EXECUTE
        return _not_run(cmd[0], status, exc.strerror)
    return EXIT_FAILURE  # unreachable: execv returned without raising


def _exec_cache(args: argparse.Namespace, cfg: IsolationConfig, req: Any, auto: Any,
                path: str) -> Any:
    """exec's plan, compiled as apply_self compiles it (which then adopts it: returned),
    for the cache: kept only when the exec will not be denied (the diagnosis on a miss
    has no twin on a hit); or the cache revoked, when this process may write it once
    restricted."""
    from .compile import compile_config
    from .diagnose import diagnose_exec
    from .report import EnforcementReport

    c = compile_config(cfg, compatibility=_compatibility(args, cfg), contain=args.contain,
                       unix_sockets=cli_landlock.unix_sockets(args), **_view_options(args))
    try:
        if _cache_guard(args, c) or req is None or diagnose_exec(c, path) is not None:
            return c
        warned = ([f"volt-enforce: warning: {ln}" for ln in EnforcementReport.of(c).downgrades()]
                  if getattr(args, "warnings", True) else [])
        _cache_fill(req, args, cfg, c, auto, list(_printed) + warned)
    except BaseException:
        c.close()
        raise
    return c


def _cmd_check(args: argparse.Namespace) -> int:
    from .kernel import probe

    p = probe()
    if args.json:
        print(json.dumps(p.to_dict(), indent=2))
    else:
        print(p.format())
    return 0


def _cmd_explain(args: argparse.Namespace) -> int:
    from .explain import explain, format_explanation

    cfg = config_from_args(args)
    if args.path:
        return _explain_paths(args, cfg)
    # the sandbox run would make with the same options
    info = explain(cfg, best_effort=bool(args.best_effort), bpf=args.bpf,
                   unix_sockets=cli_landlock.unix_sockets(args), contain=args.contain,
                   **_view_options(args))
    if args.json:
        print(json.dumps(info, indent=2, default=str))
    else:
        print(format_explanation(info))
    return 0


def _explain_paths(args: argparse.Namespace, cfg: IsolationConfig) -> int:
    from .compile import compiled
    from .diagnose import explain_path, format_path_explanation

    # the sandbox run would make with the same options, as for explain without --path
    with compiled(cfg, best_effort=True, contain=args.contain,
                  unix_sockets=cli_landlock.unix_sockets(args), **_view_options(args)) as c:
        infos = [explain_path(c, p) for p in args.path]
    if args.json:
        print(json.dumps(infos if len(infos) > 1 else infos[0], indent=2))
    else:
        print("\n".join(format_path_explanation(i) for i in infos))
    return 0


def _cmd_seccomp(args: argparse.Namespace) -> int:
    from . import seccomp

    if args.output is not None and args.action == "disasm":
        raise CLIError("-o/--output applies to export (OCI JSON) and import (raw BPF)")
    if args.json and args.action != "import":
        raise CLIError("--json applies to import")
    try:
        filt = seccomp.compile(_seccomp_value(args.profile))
    except PolicyError as exc:
        raise CLIError(str(exc)) from None
    if args.action == "export":
        _emit(args.output, (json.dumps(filt.to_oci(), indent=2) + "\n").encode())
    elif args.action == "import":
        summary = filt.summary()
        if args.output is not None:  # struct sock_filter[], as bwrap --seccomp FD reads it
            _emit(args.output, bytes(filt.bpf))
        width = max(map(len, summary)) + 2
        print(json.dumps(summary, indent=2, default=str) if args.json else
              "\n".join(f"{k:<{width}}{' '.join(map(str, v)) if isinstance(v, list) else v}"
                        for k, v in summary.items()))
    else:
        print(filt.disassemble())
    return 0


def _emit(path: str | None, data: bytes) -> None:
    from .fileout import write_bytes

    if path is None:
        sys.stdout.buffer.write(data)
        return
    try:
        write_bytes(path, data)
    except OSError as exc:
        raise CLIError(f"--output {path}: {exc.strerror}") from None


def _cmd_compile(args: argparse.Namespace) -> int:
    from .compile import compile_config
    from .fileout import Output
    from .init_plan import compile_plan
    from .report import EnforcementReport

    cfg = config_from_args(args)
    # opened before compiling: a bad path is told before the work, and nothing is
    # left behind when compiling fails
    try:
        out = Output(args.output)
    except OSError as exc:
        raise CLIError(f"--output {args.output}: {exc.strerror}") from None
    with out, compile_config(cfg, compatibility=_compatibility(args, cfg),
                             contain=args.contain,
                             unix_sockets=cli_landlock.unix_sockets(args)) as compiled:
        _warn(args, EnforcementReport.of(compiled))
        text = compile_plan(compiled, netns=args.netns)
        try:
            out.write(text.encode())
        except OSError as exc:
            raise CLIError(f"--output {args.output}: {exc.strerror}") from None
    return 0


def _cmd_net(args: argparse.Namespace) -> int:
    from . import net
    from .model import NetworkConfig, NetworkMode

    if args.action == "down":
        if not net.net_down(args.name):
            _error(f"network {args.name!r} was not up")
            return EXIT_FAILURE
        return 0
    cfg = config_from_args(args)
    network = cfg.network if cfg.network is not None else NetworkConfig(mode=NetworkMode.PRIVATE)
    if network.effective_mode != NetworkMode.PRIVATE:
        raise CLIError(f"net up: only a private network is pinned, not {network.effective_mode.value}")
    up = net.net_up(args.name, network)
    rep = up.report()
    print(json.dumps(rep, indent=2) if args.json else
          f"{args.name}: {rep['interface']} {rep['address']} via {rep['gateway']} on {rep['bridge']}")
    return 0


def _cmd_init_path(args: argparse.Namespace) -> int:
    from .init_plan import volt_init_path

    print(volt_init_path())
    return 0


# ---- parser -----------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit 125
        self.exit(EXIT_FAILURE, f"{self.prog}: {message}\n")


def _private_network_options(args: argparse.Namespace, cfg: IsolationConfig) -> None:
    """--bridge, --publish, --dns, --outbound: options of a private network."""
    from .model import NetworkConfig, NetworkMode, PortForward

    given: dict[str, Any] = {
        "--bridge": getattr(args, "bridge", None), "--publish": getattr(args, "publish", None),
        "--dns": getattr(args, "dns", None), "--outbound": getattr(args, "outbound", None)}
    given = {k: v for k, v in given.items() if v is not None}
    if not given:
        return
    net = cfg.network if cfg.network is not None else NetworkConfig(mode=NetworkMode.PRIVATE)
    if net.effective_mode != NetworkMode.PRIVATE:
        raise CLIError(f"{', '.join(given)}: only with a private network (--network private), "
                       f"not {net.effective_mode.value}")
    if "--bridge" in given:
        net.bridge = given["--bridge"]
    for h, c, proto in given.get("--publish", ()):
        net.port_forwards.append(PortForward(host_port=h, container_port=c, protocol=proto))
    if "--dns" in given:
        net.dns = list(given["--dns"])
    if given.get("--outbound"):
        net.outbound = True
    cfg.network = net


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    fmt = argparse.RawDescriptionHelpFormatter
    parser = _Parser(
        prog="volt-enforce",
        description="Run commands under the Volt isolation model: Landlock, seccomp, cgroups, "
                    "namespaces.",
        epilog="Run 'volt-enforce COMMAND --help' for a command's options and examples.\n\n"
               "examples:\n"
               "  volt-enforce run --profile server --pids 64 -- /app/server\n"
               "  volt-enforce explain --config isolation.json\n"
               "  volt-enforce check\n\n" + EXIT_STATUS,
        formatter_class=fmt,
    )
    parser.add_argument("--version", action="version", version=f"volt-enforce {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                parser_class=_Parser)

    run = sub.add_parser("run", help="run a command sandboxed and exit with its status",
                         description="Run CMD sandboxed and exit with its status. Without "
                                     "--config or --profile: the server profile and the "
                                     "default seccomp filter.",
                         epilog=EXAMPLES["run"], formatter_class=fmt)
    _add_command_options(run, _cmd_run)
    run.add_argument("--why", action="store_true",
                     help="have the kernel log denials (Landlock, seccomp) and print one line per "
                          "distinct denial with the option that allows it (needs audit)")

    ex = sub.add_parser("exec", help="restrict this process and exec a command in place",
                        description="Restrict this process, then exec CMD in place (same PID): "
                                    "for container entrypoints. A cgroup made for limits "
                                    "stays after CMD exits.",
                        epilog=EXAMPLES["exec"], formatter_class=fmt)
    _add_command_options(ex, _cmd_exec)

    check = sub.add_parser("check", help="what this kernel and process offer",
                           epilog=EXAMPLES["check"], formatter_class=fmt)
    check.add_argument("--json", action="store_true", help="print JSON")
    check.set_defaults(func=_cmd_check)

    explain = sub.add_parser("explain", help="what a policy enforces here, without running",
                             epilog=EXAMPLES["explain"], formatter_class=fmt)
    _add_policy_options(explain)
    explain.add_argument("--json", action="store_true", help="print JSON")
    explain.add_argument("--bpf", action="store_true", help="include the seccomp listing")
    explain.add_argument("--path", action="append", default=None, metavar="PATH", type=_text,
                         help="what the sandbox lets a child do with PATH, and why (repeatable)")
    explain.set_defaults(func=_cmd_explain)

    sc = sub.add_parser("seccomp", help="seccomp profiles: export, import, disasm",
                        description="export: a profile as OCI JSON; import: compile an OCI "
                                    "JSON profile and summarize it (-o: the raw BPF); disasm: "
                                    "the BPF listing.",
                        epilog=EXAMPLES["seccomp"], formatter_class=fmt)
    sc.add_argument("action", choices=["export", "import", "disasm"])
    sc.add_argument("profile", type=_text, help="strict, default, unconfined or an OCI JSON file")
    sc.add_argument("-o", "--output", metavar="FILE", type=_text,
                    help="export: the OCI JSON; import: the BPF program (struct sock_filter[])")
    sc.add_argument("--json", action="store_true", help="import: print the summary as JSON")
    sc.set_defaults(func=_cmd_seccomp)

    comp = sub.add_parser("compile", help="write a compiled plan for volt-init",
                          description="Write a plan that volt-init (C, no Python) applies "
                                      "before exec'ing a command: the Landlock rules masked "
                                      "to this kernel, the seccomp BPF, the cgroup "
                                      "directories and limits, namespaces, capabilities.",
                          epilog=EXAMPLES["compile"], formatter_class=fmt)
    _add_policy_options(comp)
    comp.add_argument("-o", "--output", required=True, metavar="FILE", type=_text,
                      help="the plan file")
    comp.add_argument("--netns", metavar="NAME", type=_text,
                      help="private network: the one 'volt-enforce net up NAME' made, which "
                           "volt-init joins")
    comp.add_argument("--no-warnings", dest="warnings", action="store_false",
                      help="do not print a line on stderr for each restriction dropped")
    comp.set_defaults(func=_cmd_compile)

    net = sub.add_parser("net", help="private networks for volt-init: up NAME, down NAME",
                         description="up: make the private network NAME (namespace, veth on the "
                                     "bridge, leased address, forwards, resolv.conf) and pin it "
                                     "on /run/volt-enforce/netns/NAME for volt-init to join "
                                     "(compile --netns NAME); down: remove all of it.",
                         epilog=EXAMPLES["net"], formatter_class=fmt)
    net.add_argument("action", choices=["up", "down"])
    net.add_argument("name", type=_text, help="the network's name")
    _add_policy_options(net)
    net.add_argument("--json", action="store_true", help="up: print the network as JSON")
    net.set_defaults(func=_cmd_net)

    cache = sub.add_parser("cache", help="the plan cache of run and exec: clear",
                           description="clear: remove every cached plan (the next run and "
                                       "exec compile again). The cache is root's, in "
                                       "VOLT_ENFORCE_PLAN_CACHE (default .plan-cache in the "
                                       "installed package; off: no cache).")
    cache.add_argument("action", choices=["clear"])
    cache.set_defaults(func=_cmd_cache)

    ip = sub.add_parser("init-path", help="print where the volt-init executable is",
                        epilog=EXAMPLES["init-path"], formatter_class=fmt)
    ip.set_defaults(func=_cmd_init_path)
    return parser


#: the lines this command printed on stderr: a plan cache entry keeps them, for each hit
#: to print them again (volt_enforce.plancache)
_printed: list[str] = []


def _error(msg: str) -> None:
    line = f"volt-enforce: {msg}"
    _printed.append(line)
    sys.stderr.write(line + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    raw = list(argv) if argv is not None else sys.argv[1:]
    args = parser.parse_args(raw)
    args.raw_argv = raw
    _printed.clear()
    try:
        rc: int = args.func(args)
        return rc
    except CLIError as exc:
        _error(str(exc))
    except EnforcementError as exc:
        _error(f"enforcement failed: {exc}")
    except (VoltEnforceError, ValueError) as exc:
        _error(str(exc))
    except BrokenPipeError:
        # the reader went away (| head): no traceback, and none at exit's flush
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:
        _error(f"{exc.filename + ': ' if exc.filename else ''}{exc.strerror or exc}")
    except KeyboardInterrupt:
        return 128 + signal.SIGINT
    except Exception as exc:  # noqa: BLE001 (a bug: still one line and 125, as promised)
        _error(f"internal error: {type(exc).__name__}: {exc}")
    return EXIT_FAILURE
