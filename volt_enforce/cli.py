"""The volt-enforce command (also ``python -m volt_enforce``).

Exit status: the command's own; 125 when volt-enforce itself fails (bad option,
bad policy, enforcement error); 126 when the command cannot be executed; 127
when it is not found; 128+N when it dies of signal N.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
from typing import Any, NoReturn, Sequence

from .errors import EnforcementError, PolicyError, VoltEnforceError
from .kernel import probe
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

EXIT_FAILURE = 125
EXIT_CANNOT_EXECUTE = 126
EXIT_NOT_FOUND = 127

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
  volt-enforce compile --profile server --seccomp default -o /plan.bin
  volt-init /plan.bin -- /app/server""",
}


class CLIError(Exception):
    """A bad option or argument: one line, exit 125."""


# ---- building the config from options ----------------------------------------------


def _add_policy_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("policy")
    g.add_argument("--config", metavar="FILE", help="isolation config in the seed's JSON format")
    g.add_argument("--profile", choices=["server", "desktop", "none"],
                   help="Landlock preset (default: server, unless --config gives one)")
    g.add_argument("--rootfs", metavar="DIR", default="/",
                   help="root of the preset's paths (default: /)")
    g.add_argument("--ro", action="append", default=[], metavar="PATH",
                   help="allow reading PATH (repeatable)")
    g.add_argument("--rw", action="append", default=[], metavar="PATH",
                   help="allow reading and writing PATH (repeatable)")
    g.add_argument("--rox", action="append", default=[], metavar="PATH",
                   help="allow reading and executing PATH (repeatable)")
    g.add_argument("--bind-tcp", action="append", default=None, type=_port, metavar="PORT",
                   help="allow binding TCP PORT; others are denied (repeatable)")
    g.add_argument("--connect-tcp", action="append", default=None, type=_port, metavar="PORT",
                   help="allow connecting to TCP PORT; others are denied (repeatable)")
    g.add_argument("--seccomp", metavar="PROFILE",
                   help="strict, default, unconfined or an OCI JSON file (default: default)")
    g.add_argument("--memory", metavar="SIZE", help="hard memory limit (memory.max), e.g. 512M")
    g.add_argument("--memory-high", metavar="SIZE", help="memory throttle limit (memory.high)")
    g.add_argument("--cpu-weight", type=int, metavar="N", help="CPU weight 1..10000")
    g.add_argument("--cpu-quota", metavar="PCT", help="CPU time limit, e.g. 50%%")
    g.add_argument("--cpus", metavar="LIST", help="CPUs to run on, e.g. 0-1")
    g.add_argument("--io-weight", type=int, metavar="N", help="IO weight 1..10000")
    g.add_argument("--pids", type=int, metavar="N", help="maximum number of processes")
    g.add_argument("--network", choices=["none", "host", "private"],
                   help="none: own namespace, loopback only, TCP denied; host: shared")
    g.add_argument("--private-users", action="store_true",
                   help="run in a new user namespace (root inside maps to the caller)")
    g.add_argument("--read-only", action="store_true", help="no write access anywhere")
    compat = g.add_mutually_exclusive_group()
    compat.add_argument("--best-effort", action="store_true",
                        help="drop what the kernel lacks and report it")
    compat.add_argument("--hard-requirement", action="store_true",
                        help="fail if anything requested cannot be enforced")
    g.add_argument("--ignore-missing", action="store_true",
                   help="skip (and report) rules whose path does not exist")


def _port(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= n <= 65535:
        raise argparse.ArgumentTypeError(f"{n} is not a port (0..65535)")
    return n


def _read_config(path: str) -> IsolationConfig:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise CLIError(f"--config {path}: {exc.strerror}") from None
    try:
        return IsolationConfig.from_json(data)
    except PolicyError as exc:
        raise CLIError(f"--config {path}: {exc}") from None


def config_from_args(args: argparse.Namespace) -> IsolationConfig:
    """The IsolationConfig the options describe; options override the file."""
    cfg = _read_config(args.config) if args.config else IsolationConfig()
    try:
        landlock = cfg.landlock
        if args.profile == "server":
            landlock = server_policy(args.rootfs)
        elif args.profile == "desktop":
            landlock = desktop_policy(args.rootfs)
        elif args.profile == "none":
            landlock = None
        elif not args.config:
            landlock = server_policy(args.rootfs)
        extra = [(p, LandlockAccess.READ_ONLY) for p in args.ro]
        extra += [(p, LandlockAccess.READ_WRITE) for p in args.rw]
        extra += [(p, LandlockAccess.READ_EXEC) for p in args.rox]
        if extra or args.bind_tcp is not None or args.connect_tcp is not None:
            landlock = landlock if landlock is not None else LandlockPolicy()
        if landlock is not None:
            for path, access in extra:
                landlock.rules.append(LandlockRule(path=os.path.abspath(path), access=access))
            if args.bind_tcp is not None:
                landlock.bind_tcp = sorted(set((landlock.bind_tcp or []) + args.bind_tcp))
            if args.connect_tcp is not None:
                landlock.connect_tcp = sorted(set((landlock.connect_tcp or []) + args.connect_tcp))
            if args.best_effort:
                landlock.compatibility = Compatibility.BEST_EFFORT
            if args.hard_requirement:
                landlock.compatibility = Compatibility.HARD_REQUIREMENT
            if args.ignore_missing:
                landlock.missing_paths = MissingPaths.SKIP
        cfg.landlock = landlock

        if args.seccomp is not None:
            cfg.seccomp = os.path.abspath(args.seccomp) if args.seccomp.endswith(".json") \
                else args.seccomp
        elif not args.config:
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
        if args.private_users:
            cfg.private_users = True
        if args.read_only:
            cfg.read_only_fs = True
        cfg.validate()
    except PolicyError as exc:
        raise CLIError(str(exc)) from None
    return cfg


def _sandbox(args: argparse.Namespace, cfg: IsolationConfig):
    from .sandbox import Sandbox

    return Sandbox(cfg, best_effort=bool(args.best_effort))


def _command(args: argparse.Namespace) -> list[str]:
    cmd = list(args.cmd)
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    if not cmd:
        raise CLIError("no command given (put it after --)")
    return cmd


def _write_report(path: str | None, report: dict[str, Any]) -> None:
    if not path:
        return
    try:
        with open(path, "w") as f:
            json.dump(report, f, indent=2, default=str)
            f.write("\n")
    except OSError as exc:
        raise CLIError(f"--report {path}: {exc.strerror}") from None


def _exit_status(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


# ---- commands -------------------------------------------------------------------------


def _cmd_run(args: argparse.Namespace) -> int:
    cmd = _command(args)
    cfg = config_from_args(args)
    with _sandbox(args, cfg) as sb:
        try:
            proc = sb.popen(cmd)
        except FileNotFoundError:
            _error(f"{cmd[0]}: command not found")
            return EXIT_NOT_FOUND
        except PermissionError as exc:
            _error(f"{cmd[0]}: cannot execute: {exc.strerror}")
            return EXIT_CANNOT_EXECUTE
        except OSError as exc:
            if isinstance(exc, EnforcementError):
                raise
            _error(f"{cmd[0]}: cannot execute: {exc.strerror}")
            return EXIT_CANNOT_EXECUTE
        forward = _forward_signals(proc)
        try:
            while True:
                try:
                    rc = proc.wait()
                    break
                except KeyboardInterrupt:
                    continue  # the child got the SIGINT too; its status decides
        finally:
            forward()
        report = sb.report.to_dict()
        report["returncode"] = rc
        stats = sb.stats()
        if stats is not None:
            report["stats"] = stats.to_dict() if hasattr(stats, "to_dict") else stats
        _write_report(args.report, report)
    return _exit_status(rc)


def _forward_signals(proc: subprocess.Popen):
    old = {}

    def handler(signum: int, frame: Any) -> None:
        try:
            proc.send_signal(signum)
        except OSError:
            pass

    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
        old[sig] = signal.signal(sig, handler)

    def restore() -> None:
        for sig, h in old.items():
            signal.signal(sig, h)

    return restore


def _cmd_exec(args: argparse.Namespace) -> int:
    from .sandbox import apply_self
    import shutil

    cmd = _command(args)
    cfg = config_from_args(args)
    # resolve before restricting, so "not found" is told apart from a denial
    path = cmd[0] if "/" in cmd[0] else shutil.which(cmd[0])
    if path is None or not os.path.exists(path):
        _error(f"{cmd[0]}: command not found")
        return EXIT_NOT_FOUND
    report = apply_self(cfg, best_effort=bool(args.best_effort))
    _write_report(args.report, report.to_dict())
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execv(path, cmd)
    except OSError as exc:
        _error(f"{cmd[0]}: cannot execute: {exc.strerror}")
        return EXIT_NOT_FOUND if isinstance(exc, FileNotFoundError) else EXIT_CANNOT_EXECUTE
    return EXIT_FAILURE  # unreachable: execv returned without raising


def _cmd_check(args: argparse.Namespace) -> int:
    p = probe()
    if args.json:
        print(json.dumps(p.to_dict(), indent=2))
    else:
        print(p.format())
    return 0


def _cmd_explain(args: argparse.Namespace) -> int:
    from .explain import explain, format_explanation

    cfg = config_from_args(args)
    info = explain(cfg, best_effort=bool(args.best_effort), bpf=args.bpf)
    if args.json:
        print(json.dumps(info, indent=2, default=str))
    else:
        print(format_explanation(info))
    return 0


def _cmd_seccomp(args: argparse.Namespace) -> int:
    from . import seccomp

    try:
        filt = seccomp.compile(_seccomp_arg(args.profile))
    except PolicyError as exc:
        raise CLIError(str(exc)) from None
    if args.action == "export":
        text = json.dumps(filt.to_oci(), indent=2) + "\n"
        if args.output:
            with open(args.output, "w") as f:
                f.write(text)
        else:
            sys.stdout.write(text)
    elif args.action == "import":
        summary = filt.summary()
        print(json.dumps(summary, indent=2, default=str) if args.json else
              "\n".join(f"{k:<14}{v}" for k, v in summary.items()))
    else:
        print(filt.disassemble())
    return 0


def _seccomp_arg(text: str) -> str:
    if text in ("strict", "default", "unconfined"):
        return text
    if not os.path.exists(text):
        raise CLIError(f"{text}: no such profile or file")
    return os.path.abspath(text)


def _cmd_compile(args: argparse.Namespace) -> int:
    from .plan import write_plan

    cfg = config_from_args(args)
    write_plan(cfg, args.output, best_effort=bool(args.best_effort))
    return 0


# ---- parser -----------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit 125
        self.exit(EXIT_FAILURE, f"{self.prog}: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="volt-enforce",
        description="Run commands under the Volt isolation model: Landlock, seccomp, cgroups, "
                    "namespaces.",
        epilog="Run 'volt-enforce COMMAND --help' for a command's options and examples.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                parser_class=_Parser)
    fmt = argparse.RawDescriptionHelpFormatter

    run = sub.add_parser("run", help="run a command sandboxed and exit with its status",
                         epilog=EXAMPLES["run"], formatter_class=fmt)
    _add_policy_options(run)
    run.add_argument("--report", metavar="FILE", help="write the enforcement report as JSON")
    run.add_argument("cmd", nargs=argparse.REMAINDER, metavar="-- CMD [ARGS...]")
    run.set_defaults(func=_cmd_run)

    ex = sub.add_parser("exec", help="restrict this process and exec a command in place",
                        epilog=EXAMPLES["exec"], formatter_class=fmt)
    _add_policy_options(ex)
    ex.add_argument("--report", metavar="FILE", help="write the enforcement report as JSON")
    ex.add_argument("cmd", nargs=argparse.REMAINDER, metavar="-- CMD [ARGS...]")
    ex.set_defaults(func=_cmd_exec)

    check = sub.add_parser("check", help="what this kernel and process offer",
                           epilog=EXAMPLES["check"], formatter_class=fmt)
    check.add_argument("--json", action="store_true", help="print JSON")
    check.set_defaults(func=_cmd_check)

    explain = sub.add_parser("explain", help="what a policy enforces here, without running",
                             epilog=EXAMPLES["explain"], formatter_class=fmt)
    _add_policy_options(explain)
    explain.add_argument("--json", action="store_true", help="print JSON")
    explain.add_argument("--bpf", action="store_true", help="include the seccomp listing")
    explain.set_defaults(func=_cmd_explain)

    sc = sub.add_parser("seccomp", help="seccomp profiles: export, import, disasm",
                        epilog=EXAMPLES["seccomp"], formatter_class=fmt)
    sc.add_argument("action", choices=["export", "import", "disasm"])
    sc.add_argument("profile", help="strict, default, unconfined or an OCI JSON file")
    sc.add_argument("-o", "--output", metavar="FILE", help="export: write here")
    sc.add_argument("--json", action="store_true", help="import: print JSON")
    sc.set_defaults(func=_cmd_seccomp)

    comp = sub.add_parser("compile", help="write a compiled plan for volt-init",
                          epilog=EXAMPLES["compile"], formatter_class=fmt)
    _add_policy_options(comp)
    comp.add_argument("-o", "--output", required=True, metavar="FILE", help="the plan file")
    comp.set_defaults(func=_cmd_compile)
    return parser


def _error(msg: str) -> None:
    sys.stderr.write(f"volt-enforce: {msg}\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except CLIError as exc:
        _error(str(exc))
    except EnforcementError as exc:
        _error(f"enforcement failed: {exc}")
    except (VoltEnforceError, ValueError) as exc:
        _error(str(exc))
    except OSError as exc:
        _error(f"{exc.filename + ': ' if exc.filename else ''}{exc.strerror or exc}")
    return EXIT_FAILURE
