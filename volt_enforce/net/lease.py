"""Address leases on a bridge, shared by every process of this host.

The state lives in ``RUN_DIR/net/<host netns id>/<bridge>/``:

* ``lock``: taken with ``flock`` around every read-modify-write;
* ``leases.json``: ``{address: lease}``, a lease being what is needed to take
  everything down again: its veth, its forwards (for the nftables rules), its
  resolv.conf, and its owner: a process (pid and start time, so that a reused
  pid is not mistaken for it) or a pinned namespace (``volt-enforce net up``).

The host namespace's id (the inode of its nsfs file) keys the directory, so two
namespaces standing in for hosts never share leases. A lease whose owner is
gone is stale: the next user of the bridge takes its veth, rules and file down
and frees the address (``reclaim``).
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

__all__ = ["RUN_DIR", "LeaseBook", "Lease", "state_dir", "process_owner", "owner_alive",
           "is_pinned"]

#: Where the library keeps host-wide state (a tmpfs: gone at reboot, as the namespaces are).
RUN_DIR = "/run/volt-enforce"


def state_dir(netns_id: int, bridge: str) -> str:
    return os.path.join(RUN_DIR, "net", str(netns_id), bridge)


def _start_time(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    # the command name may hold spaces and parentheses: fields follow the last ')'
    return stat[stat.rindex(")") + 2:].split()[19]


def process_owner(pid: int | None = None) -> dict[str, Any]:
    pid = os.getpid() if pid is None else pid
    return {"pid": pid, "start": _start_time(pid)}


def is_pinned(path: str) -> bool:
    """Whether ``path`` is a namespace bind (another file system than its directory's)."""
    try:
        return os.stat(path).st_dev != os.stat(os.path.dirname(path)).st_dev
    except OSError:
        return False


def owner_alive(owner: dict[str, Any]) -> bool:
    """Whether a lease's owner is still there."""
    if "pin" in owner:
        return is_pinned(str(owner["pin"]))
    pid = owner.get("pid")
    return isinstance(pid, int) and pid > 0 and _start_time(pid) == owner.get("start")


@dataclass
class Lease:
    address: str
    veth: str
    owner: dict[str, Any]
    forwards: list[list[Any]] = field(default_factory=list)  # [proto, host port, container port]
    outbound: bool = False
    resolv: str = ""
    rules: bool = False  # it has nftables rules (forwards, outbound, or confinement)

    def to_dict(self) -> dict[str, Any]:
        return {"veth": self.veth, "owner": self.owner, "forwards": self.forwards,
                "outbound": self.outbound, "resolv": self.resolv, "rules": self.rules}

    @classmethod
    def from_dict(cls, address: str, d: dict[str, Any]) -> Lease:
        return cls(address=address, veth=str(d.get("veth", "")), owner=dict(d.get("owner") or {}),
                   forwards=list(d.get("forwards") or []), outbound=bool(d.get("outbound")),
                   resolv=str(d.get("resolv", "")), rules=bool(d.get("rules")))


class LeaseBook:
    """The leases of one bridge in one host namespace, read and written under its lock."""

    def __init__(self, netns_id: int, bridge: str) -> None:
        self.dir = state_dir(netns_id, bridge)
        self.path = os.path.join(self.dir, "leases.json")
        self.leases: dict[str, Lease] = {}

    @contextmanager
    def locked(self) -> Iterator[LeaseBook]:
        """Hold the lock, with ``leases`` loaded; written back on a clean exit."""
        os.makedirs(self.dir, mode=0o700, exist_ok=True)
        fd = os.open(os.path.join(self.dir, "lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self.leases = self._load()
            before = {a: lease.to_dict() for a, lease in self.leases.items()}
            yield self
            if {a: lease.to_dict() for a, lease in self.leases.items()} != before:
                self._save()
        finally:
            os.close(fd)  # releases the lock

    def read(self) -> dict[str, Lease]:
        """The leases now, without the lock (for explain: a snapshot, never written)."""
        return self._load()

    def _load(self) -> dict[str, Lease]:
        try:
            with open(self.path) as f:
                doc = json.load(f)
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            # a torn or foreign file: start over (its veths are found by name on reclaim)
            return {}
        if not isinstance(doc, dict):
            return {}
        return {a: Lease.from_dict(a, d) for a, d in doc.items() if isinstance(d, dict)}

    def _save(self) -> None:
        tmp = f"{self.path}.{os.getpid()}.tmp"
        with open(tmp, "w") as f:
            json.dump({a: lease.to_dict() for a, lease in sorted(self.leases.items())}, f)
        os.replace(tmp, self.path)

    def stale(self) -> list[Lease]:
        return [lease for lease in self.leases.values() if not owner_alive(lease.owner)]
