"""What a policy will enforce on this kernel, without running anything.

``explain(config)`` compiles each part as a sandbox would (the Landlock ruleset
is built and closed again; nothing is created in the cgroup tree) and returns a
JSON-able dict; ``format_explanation`` renders it for people.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from . import landlock
from .compile import Compiled, Namespace, compile_config
from .model import IsolationConfig, NetworkMode

if TYPE_CHECKING:
    from .cgroups import LimitPlan

__all__ = ["explain", "format_explanation"]


def _cgroup_part(plan: LimitPlan | None, best_effort: bool) -> dict[str, Any] | None:
    if plan is None:
        return None
    entries = []
    for w in plan.entries:
        entry: dict[str, Any] = {
            "field": w.field,
            "controller": w.controller,
            "cgroup": {2: "v2", 1: "v1"}.get(w.version, "missing"),
            "file": w.file,
            "value": w.value if w.value is not None else "(the parent's cpuset.mems)",
            # which one is written depends on the files the cgroup has (the I/O scheduler's)
            "alternatives": [{"file": f, "value": v} for f, v in w.alternatives],
        }
        if w.version == 0:
            entry["note"] = ("skipped: no hierarchy here has the controller" if best_effort
                             else "fails: no hierarchy here has the controller "
                                  "(--best-effort skips it)")
        entries.append(entry)
    layout = plan.layout
    placement = "clone3 CLONE_INTO_CGROUP" if layout.v2 is not None else "write to cgroup.procs"
    return {"layout": layout.kind.value, "placement": placement, "files": entries}


def explain(config: IsolationConfig | Compiled, *, best_effort: bool = False,
            bpf: bool = False, unix_sockets: Sequence[str] | None = None,
            contain: bool = True, named_writable: tuple[str, ...] = (),
            rootfs: str | None = None) -> dict[str, Any]:
    """Describe what ``config`` (or its ``Compiled``) enforces here: Landlock after
    masking, the seccomp filter, cgroup files and values, namespaces, capabilities,
    the filesystem view. ``contain``, ``named_writable`` and ``rootfs`` are the
    Sandbox's options of the same names: the sandbox described is the one they make."""
    if isinstance(config, Compiled):
        return _explain(config, bpf)
    with compile_config(config, best_effort=True, unix_sockets=unix_sockets, contain=contain,
                        named_writable=named_writable, rootfs=rootfs) as compiled:
        # namespaces the kernel lacks are shown as unavailable, not raised
        info = _explain(compiled, bpf)
    info["best_effort"] = best_effort
    for w in (info["cgroup"] or {}).get("files", ()):
        if w["cgroup"] == "missing":
            w["note"] = ("skipped: no hierarchy here has the controller" if best_effort
                         else "fails: no hierarchy here has the controller (--best-effort skips it)")
    return info


def _explain(compiled: Compiled, bpf: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    config = compiled.config
    ruleset = compiled.ruleset
    if ruleset is not None:
        out["landlock"] = ruleset.report.to_dict()
        out["landlock_text"] = ruleset.report.format()
        out["landlock_features"] = landlock.features(ruleset.abi)
        out["unix_sockets"] = list(compiled.unix_sockets)
    else:
        out["landlock"] = None
    filt = compiled.seccomp
    if filt is not None:
        out["seccomp"] = filt.summary()
        if bpf:
            out["seccomp_bpf"] = filt.disassemble()
    else:
        out["seccomp"] = None
    out["cgroup"] = _cgroup_part(compiled.limits, compiled.best_effort)
    out["namespaces"] = _namespaces(compiled)
    if compiled.private_network and config.network is not None:
        from .net import preview

        out["network"] = preview(config.network)
    keep = compiled.capabilities
    out["capabilities"] = {"reduced": keep is not None, "keep": None if keep is None else list(keep)}
    out["no_new_privs"] = compiled.no_new_privs
    out["best_effort"] = compiled.best_effort
    out["view"] = compiled.view.to_dict() if compiled.view is not None else None
    return out


def _namespaces(compiled: Compiled) -> list[dict[str, Any]]:
    """The namespaces a child gets, each with whether this kernel has it."""
    config = compiled.config
    # (name, made for the child, detail); a contained child's mount, PID, IPC and UTS ones
    wanted: list[tuple[str, bool, str]] = []
    if config.private_users:
        wanted.append(("user", Namespace.USER in compiled.namespaces,
                       "root inside is an unprivileged range of host ids (users)"))
    if compiled.contain:
        wanted.append(("mount", compiled.view is not None,
                       "the filesystem view below; each child mounts its own /proc, /tmp, "
                       "/dev/shm and devpts"))
        wanted.append(("pid", compiled.pid_namespace,
                       "each child's own, with a sealed init as PID 1 that forwards signals "
                       "and reaps"))
        wanted.append(("ipc", Namespace.IPC in compiled.namespaces,
                       "each child's own SysV IPC and POSIX message queues"))
        wanted.append(("uts", Namespace.UTS in compiled.namespaces,
                       "each child's own hostname and domain name"))
    mode = config.network.effective_mode if config.network is not None else None
    if mode in (NetworkMode.NONE, NetworkMode.PRIVATE):
        detail = "loopback only"
        if mode == NetworkMode.PRIVATE:
            bridge = (config.network.bridge if config.network is not None else "") or "voltbr0"
            detail = f"prepared in the parent: lo, and eth0 on bridge {bridge}"
        wanted.append(("network", Namespace.NETWORK in compiled.namespaces, detail))
    return [{"namespace": name, "available": available, "detail": detail}
            for name, available, detail in wanted]


def _network_lines(net: dict[str, Any]) -> list[str]:
    if net.get("error"):
        return [f"network private on bridge {net['bridge']}: {net['error']}"]
    made = "" if net.get("bridge_exists") else " (made when missing)"
    lines = [f"network private: bridge {net['bridge']}{made}, subnet {net['subnet']}, "
             f"gateway {net['gateway']}",
             f"  address: {net['interface']} {net['address']} ({net['address_note']})"]
    lines += [f"  route: {r}" for r in net["routes"]]
    lines += [f"  forward: host port {f['host_port']}/{f['protocol']} -> {f['container_port']} "
              "(from the host's addresses, the gateway and 127.0.0.1)" for f in net["forwards"]]
    if not net["forwards"]:
        lines.append("  forwards: none")
    lines.append("  dns: " + (", ".join(net["dns"]) or "the host's /etc/resolv.conf"))
    lines.append("  outbound: " + ("masqueraded" if net["outbound"] else
                                   "no (the sandbox reaches the host only)"))
    if net.get("outbound_error"):
        lines.append(f"  [fails here: {net['outbound_error']}]")
    return lines


def format_explanation(info: dict[str, Any]) -> str:
    """``explain``'s dict as lines for people."""
    lines: list[str] = []
    if info.get("landlock_text"):
        lines += ["Landlock", *("  " + ln for ln in info["landlock_text"].splitlines())]
        if info.get("landlock_features"):
            lines += ["  " + ln for ln in landlock.format_features(info["landlock_features"])]
    else:
        lines.append("Landlock: not used")
    sc = info.get("seccomp")
    if sc:
        lines.append("seccomp")
        lines += [f"  {k}: {v}" for k, v in sc.items() if not isinstance(v, (list, dict))]
        for k, v in sc.items():
            if isinstance(v, list):
                shown = ", ".join(map(str, v[:12])) + (f", ... ({len(v)})" if len(v) > 12 else "")
                lines.append(f"  {k}: {shown}")
        if info.get("seccomp_bpf"):
            lines += ["  listing:", *("    " + ln for ln in info["seccomp_bpf"].splitlines())]
    else:
        lines.append("seccomp: no filter")
    cg = info.get("cgroup")
    if cg:
        lines.append(f"cgroup ({cg['layout']} host; placement by {cg['placement']})")
        for w in cg["files"]:
            alt = "".join(f" or {a['file']} {a['value']}" for a in w.get("alternatives", ()))
            note = f"  [{w['note']}]" if w.get("note") else ""
            lines.append(f"  {w['cgroup']:<7} {w['file']:<28} {w['value']}{alt}   "
                         f"({w['field']}){note}")
    else:
        lines.append("cgroup: no limits")
    if info["namespaces"]:
        for n in info["namespaces"]:
            avail = "" if n["available"] else "  [NOT AVAILABLE on this kernel]"
            lines.append(f"namespace {n['namespace']}: {n['detail']}{avail}")
    else:
        lines.append("namespaces: none")
    net = info.get("network")
    if net:
        lines += _network_lines(net)
    caps = info["capabilities"]
    if caps["reduced"]:
        lines.append("capabilities kept: " + (", ".join(caps["keep"]) or "none"))
    else:
        lines.append("capabilities: not reduced")
    lines.append("no_new_privs: set")
    view = info.get("view")
    if view:
        root = "a tmpfs" if view["root"] == "tmpfs" else view["root"]
        lines.append(f"filesystem view: root {root}"
                     + (" (read-only)" if view["root_read_only"] else ""))
        lines += [f"  bind {b['path']}: {'read-write' if b['writable'] else 'read-only'}"
                  f"{'' if b['exec'] else ', noexec'}" for b in view["binds"]]
        lines += [f"  link {ln['path']} -> {ln['target']}" for ln in view["symlinks"]]
        if view["private"]:
            lines.append("  private to each child: " + " ".join(view["private"]))
        lines += [f"  note: {n}" for n in view["notes"]]
    return "\n".join(lines)
