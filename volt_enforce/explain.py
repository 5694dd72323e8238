"""What a policy will enforce on this kernel, without running anything.

``explain(config)`` compiles each part as a sandbox would (the Landlock ruleset
is built and closed again; nothing is created in the cgroup tree) and returns a
JSON-able dict; ``format_explanation`` renders it for people.
"""

from __future__ import annotations

from typing import Any

from .model import IsolationConfig, NetworkMode

__all__ = ["explain", "format_explanation"]


def _cgroup_part(config: IsolationConfig, best_effort: bool) -> dict[str, Any] | None:
    from . import cgroups

    if config.resources is None or config.resources.is_empty():
        return None
    layout = cgroups.detect()
    writes = []
    for w in cgroups.limit_writes(config.resources, cgroups.controller_versions(layout)):
        if not w.file:
            continue
        entry = {
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
        writes.append(entry)
    placement = "clone3 CLONE_INTO_CGROUP" if layout.v2 is not None else "write to cgroup.procs"
    return {"layout": layout.kind, "placement": placement, "files": writes}


def explain(config: IsolationConfig, *, best_effort: bool = False, bpf: bool = False) -> dict[str, Any]:
    """Describe what ``config`` enforces here: Landlock after masking, the
    seccomp filter, cgroup files and values, namespaces, capabilities."""
    from . import landlock, seccomp
    from .kernel import probe
    from .sandbox import _kept_capabilities

    config.validate()
    out: dict[str, Any] = {}
    ruleset = landlock.compile_for(config)
    if ruleset is not None:
        with ruleset:
            out["landlock"] = ruleset.report.to_dict()
            out["landlock_text"] = ruleset.report.format()
    else:
        out["landlock"] = None
    if config.seccomp is not None:
        filt = seccomp.compile(config.seccomp)
        out["seccomp"] = filt.summary()
        if bpf:
            out["seccomp_bpf"] = filt.disassemble()
    else:
        out["seccomp"] = None
    out["cgroup"] = _cgroup_part(config, best_effort)
    p = probe()
    ns = []
    if config.private_users:
        ns.append({"namespace": "user", "available": p.user_namespaces,
                   "detail": "root inside maps to the caller"})
    mode = config.network.effective_mode if config.network is not None else None
    if mode in (NetworkMode.NONE, NetworkMode.PRIVATE):
        detail = "loopback only"
        if mode == NetworkMode.PRIVATE:
            detail += "; no veth is attached to the bridge"
        ns.append({"namespace": "network", "available": p.network_namespaces, "detail": detail})
    out["namespaces"] = ns
    keep = _kept_capabilities(config)
    out["capabilities"] = {"reduced": keep is not None, "keep": keep}
    out["no_new_privs"] = True
    out["best_effort"] = best_effort
    return out


def format_explanation(info: dict[str, Any]) -> str:
    """``explain``'s dict as lines for people."""
    lines: list[str] = []
    if info.get("landlock_text"):
        lines += ["Landlock", *("  " + ln for ln in info["landlock_text"].splitlines())]
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
    caps = info["capabilities"]
    if caps["reduced"]:
        lines.append("capabilities kept: " + (", ".join(caps["keep"]) or "none"))
    else:
        lines.append("capabilities: not reduced")
    lines.append("no_new_privs: set")
    return "\n".join(lines)
