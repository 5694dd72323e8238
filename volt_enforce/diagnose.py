"""Say why: what the sandbox lets a child do with a path, and which option allows more.

No kernel help is needed: the rights a child has on a path are read off the compiled
ruleset (the rules as added, masked to this kernel) the way Landlock combines them,
a directory rule granting its rights to everything beneath it and a file rule to that
file. ``diagnose_exec`` follows what an exec opens (the file, a ``#!`` interpreter, the
ELF interpreter, the script its interpreter reads) and names the first right missing,
who denies it (the filesystem view, when the sandbox has one, or Landlock) and the
option that grants it. ``explain_path`` tells, for any path, each right and why.

The filesystem view (a mount namespace holding only what the policy grants) is asked
through ``Compiled.view`` when a sandbox has one: an object with ``visible(path) ->
bool``. A path absent from the view is reported as such; Landlock logs nothing there.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ._paths import path_under
from .autorules import read_elf, script_interpreter
from .model import LandlockAccess
from .rights import PolicyRights, access_names

if TYPE_CHECKING:
    from .compile import Compiled
    from .report import EnforcementReport

__all__ = [
    "Diagnosis",
    "PolicyRights",
    "access_names",
    "diagnose_exec",
    "explain_path",
    "format_path_explanation",
    "option_for",
]

_A = LandlockAccess
_SINGLE = [m for m in _A if m.value and m.value & (m.value - 1) == 0]


class View(Protocol):
    """What diagnosis asks of a sandbox's filesystem view."""

    def visible(self, path: str) -> bool: ...


# ---- the option that grants a right ---------------------------------------------------

#: Rights that no CLI option grants: a --config rule must name them.
_CONFIG_ONLY = _A.MAKE_CHAR | _A.MAKE_BLOCK | _A.IOCTL_DEV


def option_for(path: str, access: int) -> str:
    """The CLI option that grants ``access`` on ``path``: on its directory, since a
    program usually needs its neighbours too (``--rox /srv/x`` for /srv/x/run.sh)."""
    target = path if os.path.isdir(path) else os.path.dirname(path) or "/"
    if access & _CONFIG_ONLY:
        names = "|".join(n.upper() for n in access_names(access & _CONFIG_ONLY))
        return f"a --config rule granting {names} on {target} (no option grants it)"
    if access & _A.EXECUTE:
        return f"--rox {target}"
    if access & ~(_A.READ_FILE | _A.READ_DIR):
        return f"--rw {target}"
    return f"--ro {target}"


@dataclass(frozen=True)
class Diagnosis:
    """The first right an exec lacked: on ``path`` (what the kernel or the interpreter
    opens, ``role`` says which), ``access`` (a right's name), ``denied_by``
    ("view" or "landlock") and the ``option`` that grants it."""

    path: str
    role: str
    access: str
    denied_by: str
    option: str

    def message(self) -> str:
        if self.denied_by == "view":
            what = "not in the sandbox's view"
        else:
            what = f"Landlock denies {self.access} (no rule grants it)"
        role = "" if self.role == "the executable" else f" ({self.role})"
        real = os.path.realpath(self.path)
        shown = self.path if real == os.path.abspath(self.path) else f"{self.path} (-> {real})"
        return f"{shown}{role}: {what}; allow it with {self.option}"

    def to_dict(self) -> dict[str, str]:
        return {"path": self.path, "role": self.role, "access": self.access,
                "denied_by": self.denied_by, "option": self.option, "message": self.message()}


class _PlanView:
    """``visible`` for a view plan (volt_enforce.view's ViewPlan: ``binds`` of host
    paths, ``symlinks`` it makes, ``private`` view paths and ``home`` on tmpfs, ``root``
    "tmpfs" or a host directory): the most specific of them decides; the view's own
    /dev and /proc are there."""

    def __init__(self, plan: Any) -> None:
        self.plan = plan

    def visible(self, path: str) -> bool:
        plan = self.plan
        best, seen = -1, False
        for b in getattr(plan, "binds", ()):
            if path_under(path, b.host) and len(b.host) > best:
                best, seen = len(b.host), True
        view_path = plan.to_view(path) if hasattr(plan, "to_view") else path
        for link, _target in getattr(plan, "symlinks", ()):
            # the view's own links (/bin -> usr/bin): where they lead is asked on its own
            if path_under(view_path, link) and len(link) > best:
                best, seen = len(link), True
        hidden = list(getattr(plan, "private", None) or ())
        if getattr(plan, "home", None):
            hidden.append(plan.home)
        for d in hidden:
            if path_under(view_path, d) and len(d) > best:
                best, seen = len(d), False
        if best >= 0:
            return seen
        if path_under(view_path, "/dev") or path_under(view_path, "/proc"):
            return True
        root = getattr(plan, "root", "tmpfs")
        return root != "tmpfs" and path_under(path, root)


def _view(compiled: Any) -> View | None:
    view = getattr(compiled, "view", None)
    if view is None:
        return None
    if hasattr(view, "visible"):
        return view  # type: ignore[no-any-return]
    return _PlanView(view) if hasattr(view, "binds") else None


def _shebang(path: str) -> str | None:
    found = script_interpreter(path)
    return found[0] if found is not None else None


def diagnose_exec(compiled: Compiled | EnforcementReport, path: str) -> Diagnosis | None:
    """Why executing ``path`` in ``compiled``'s sandbox fails, if the sandbox is why.

    Follows what the exec opens, in the kernel's order: the file, a script's
    interpreter (up to four levels, as binfmt_script), the ELF interpreter, each opened
    for execution (Landlock checks EXECUTE and, since the kernel opens it for reading,
    READ_FILE), then the script itself, read by its interpreter. Returns the first
    right that neither the view nor Landlock gives, or None."""
    rights = PolicyRights.of_compiled(compiled)
    view = _view(compiled)
    steps: list[tuple[str, int, str]] = []
    scripts: list[str] = []
    current, role = path, "the executable"
    run = int(_A.EXECUTE | _A.READ_FILE)
    for _ in range(5):
        steps.append((current, run, role))
        interp = _shebang(current)
        if interp is not None:
            scripts.append(current)
            current, role = interp, f"the interpreter of {current}"
            continue
        elf = read_elf(current)
        if elf is not None and elf.interp:
            steps.append((elf.interp, run, f"the ELF interpreter of {current}"))
        break
    steps += [(s, int(_A.READ_FILE), "read by its interpreter") for s in reversed(scripts)]
    for p, need, why in steps:
        real = os.path.realpath(p)
        if not os.path.exists(real):
            return None  # not the sandbox's doing: the exec fails the same way outside
        if view is not None:
            # the child walks the path as given (a venv's bin/python) and where it leads
            for shown in dict.fromkeys((os.path.abspath(p), real)):
                if not view.visible(shown):
                    return Diagnosis(p, why, access_names(need)[0], "view", option_for(shown, need))
        missing = need & ~rights.granted(real)
        if missing:
            return Diagnosis(p, why, access_names(missing)[0], "landlock", option_for(real, missing))
    return None


# ---- explain --path ---------------------------------------------------------------------

def explain_path(compiled: Compiled | EnforcementReport, path: str) -> dict[str, Any]:
    """What the sandbox lets a child do with ``path``, right by right, and why: the rule
    that grants it, the view that hides the path, a right this kernel does not
    enforce, or no rule at all."""
    rights = PolicyRights.of_compiled(compiled)
    real = os.path.realpath(path)
    is_dir = os.path.isdir(real)
    view = _view(compiled)
    out: dict[str, Any] = {"path": path, "resolved": real, "exists": os.path.exists(real),
                           "kind": "directory" if is_dir else "file", "rights": []}
    if view is not None and not view.visible(real):
        out["view"] = "absent: the child sees no such path (ENOENT)"
    granting = rights.granting(real)
    dropped = dict(rights.dropped)
    for m in _SINGLE:
        bit = int(m)
        entry: dict[str, Any] = {"right": access_names(bit)[0]}
        dir_only = bit & int(_A.READ_DIR | _A.REMOVE_DIR | _A.REMOVE_FILE | _A.MAKE_CHAR
                             | _A.MAKE_DIR | _A.MAKE_REG | _A.MAKE_SOCK | _A.MAKE_FIFO
                             | _A.MAKE_BLOCK | _A.MAKE_SYM | _A.REFER)
        if dir_only and not is_dir:
            continue  # a directory's right: says nothing about a file
        by = [(p, s) for p, a, s in granting if a & bit]
        if "view" in out:
            entry.update(allowed=False, why="not in the sandbox's view",
                         option=option_for(real, bit))
        elif not rights.handled & bit:
            entry.update(allowed=True, why=dropped.get(bit, "not restricted by Landlock here"))
            if bit in dropped:
                entry["dropped"] = True
        elif by:
            p, s = by[0]
            entry.update(allowed=True, why=f"rule {p}" + ("" if s == "policy" else f" ({s})"))
        else:
            entry.update(allowed=False, why="no rule grants it", option=option_for(real, bit))
        out["rights"].append(entry)
    return out


def format_path_explanation(info: dict[str, Any]) -> str:
    """``explain_path``'s dict as lines for people."""
    head = info["path"] + (f" (-> {info['resolved']})" if info["resolved"] != info["path"] else "")
    lines = [f"{head}: {info['kind']}" + ("" if info["exists"] else ", does not exist")]
    if info.get("view"):
        lines.append(f"  view: {info['view']}")
    width = max((len(r["right"]) for r in info["rights"]), default=0)
    for r in info["rights"]:
        verdict = "allowed" if r["allowed"] else "denied "
        opt = f"; allow it with {r['option']}" if r.get("option") else ""
        lines.append(f"  {r['right']:<{width}}  {verdict}  {r['why']}{opt}")
    return "\n".join(lines)
