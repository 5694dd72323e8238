"""Port forwards and outbound masquerading: nftables rules in a table of our own.

All rules live in ``table ip volt_enforce`` (``nft -j``, the JSON interface, as
podman's netavark uses it); each carries the comment ``volt <address>`` of the
sandbox it serves and is removed with it. No other table is read or written.

A forward ``host port -> container port`` is DNAT in kernel:

* ``prerouting``: packets that arrive for a local address of the host (another
  machine or namespace, another sandbox through the gateway);
* ``output``: packets the host sends itself to one of its local addresses: its
  own addresses, the bridge gateway, and 127.0.0.1. A loopback source may leave
  by the bridge only with ``route_localnet`` on it (a setting of our bridge);
  ``postrouting`` then masquerades it to the gateway, and does the same for a
  sandbox reaching a forward through the gateway (hairpin), so that replies
  come back through the host.

Why DNAT and not a userspace proxy: the kernel carries the traffic with no
process of ours in the path (volt-init has none, and a proxy would have to live
as long as the sandbox), UDP works the same as TCP, and the sandbox sees the
real source of outside clients. The price is ``route_localnet`` on our bridge
for the 127.0.0.1 case, the same choice as Docker's without its userland proxy.

The host port is held by a socket bound to it (``PortHolder``) for the
sandbox's life: a port that is taken is refused before anything is made, and
no one else binds it meanwhile. A namespace pinned by ``net up`` has no process
to hold it; its rules are then the record, checked by every later forward.
"""

from __future__ import annotations

import errno
import ipaddress
import json
import shutil
import socket
import subprocess
from collections.abc import Iterable, Sequence
from typing import Any

from ..errors import EnforcementError, InstallationError

__all__ = ["TABLE", "PortHolder", "add_rules", "delete_rules", "rules_of", "forward_key"]

TABLE = "volt_enforce"
_FAMILY = "ip"


def forward_key(proto: str, host_port: int) -> str:
    return f"{host_port}/{proto}"


class PortHolder:
    """Sockets bound to the forwarded host ports, closed by ``close``."""

    def __init__(self, forwards: Sequence[tuple[str, int, int]]) -> None:
        self.sockets: list[socket.socket] = []
        try:
            for proto, host_port, _ in forwards:
                kind = socket.SOCK_DGRAM if proto == "udp" else socket.SOCK_STREAM
                s = socket.socket(socket.AF_INET, kind)
                self.sockets.append(s)
                try:
                    s.bind(("0.0.0.0", host_port))
                except OSError as exc:
                    raise EnforcementError(
                        exc.errno or errno.EADDRINUSE, "port_forward",
                        f"host port {forward_key(proto, host_port)} is already bound or forwarded",
                    ) from None
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        for s in self.sockets:
            s.close()
        self.sockets = []


def _nft() -> str:
    path = shutil.which("nft") or next((p for p in ("/usr/sbin/nft", "/sbin/nft")
                                        if shutil.which(p)), None)
    if path is None:
        raise InstallationError("nft (nftables), needed for port forwards and outbound traffic",
                                "nft", "install the nftables package")
    return path


def _run(commands: list[dict[str, Any]] | None, *, listing: bool = False) -> Any:
    argv = [_nft(), "-j"] + (["list", "table", _FAMILY, TABLE] if listing else ["-f", "-"])
    data = None if listing else json.dumps({"nftables": commands})
    cp = subprocess.run(argv, input=data, capture_output=True, text=True, check=False)
    if cp.returncode != 0:
        if listing and "No such file or directory" in cp.stderr:
            return None
        raise EnforcementError(errno.EINVAL, "nftables",
                               f"{' '.join(argv)}: {cp.stderr.strip() or 'failed'}")
    return json.loads(cp.stdout) if listing and cp.stdout.strip() else None


def _base() -> list[dict[str, Any]]:
    t = {"family": _FAMILY, "name": TABLE}
    out: list[dict[str, Any]] = [{"add": {"table": t}}]
    for name, hook, prio in (("prerouting", "prerouting", -100), ("output", "output", -100),
                             ("postrouting", "postrouting", 100)):
        out.append({"add": {"chain": {"family": _FAMILY, "table": TABLE, "name": name,
                                      "type": "nat", "hook": hook, "prio": prio,
                                      "policy": "accept"}}})
    return out


def _match(left: Any, right: Any, op: str = "==") -> dict[str, Any]:
    return {"match": {"op": op, "left": left, "right": right}}


def _rule(chain: str, tag: str, expr: list[dict[str, Any]]) -> dict[str, Any]:
    return {"add": {"rule": {"family": _FAMILY, "table": TABLE, "chain": chain,
                             "comment": tag, "expr": expr}}}


def _tag(address: ipaddress.IPv4Address) -> str:
    return f"volt {address}"


def add_rules(address: ipaddress.IPv4Address, bridge: str, subnet: ipaddress.IPv4Network,
              forwards: Iterable[tuple[str, int, int]], outbound: bool) -> None:
    """The sandbox's rules, in one transaction (all or none)."""
    tag, ip = _tag(address), str(address)
    cmds = _base()
    local = _match({"fib": {"result": "type", "flags": ["daddr"]}}, "local")
    forwards = list(forwards)
    for proto, host_port, container_port in forwards:
        dport = _match({"payload": {"protocol": proto, "field": "dport"}}, host_port)
        dnat = {"dnat": {"addr": ip, "port": container_port}}
        for chain in ("prerouting", "output"):
            cmds.append(_rule(chain, tag, [local, dport, dnat]))
    if forwards:
        to_us = [_match({"meta": {"key": "oifname"}}, bridge),
                 _match({"payload": {"protocol": "ip", "field": "daddr"}}, ip)]
        # 127.0.0.1 clients (route_localnet lets them out by the bridge)
        cmds.append(_rule("postrouting", tag, to_us + [
            _match({"payload": {"protocol": "ip", "field": "saddr"}},
                   {"prefix": {"addr": "127.0.0.0", "len": 8}}), {"masquerade": None}]))
        # sandboxes reaching a forward through the gateway
        cmds.append(_rule("postrouting", tag, to_us + [
            _match({"payload": {"protocol": "ip", "field": "saddr"}},
                   {"prefix": {"addr": str(subnet.network_address), "len": subnet.prefixlen}}),
            _match({"ct": {"key": "status"}}, "dnat", op="in"), {"masquerade": None}]))
    if outbound:
        cmds.append(_rule("postrouting", tag, [
            _match({"payload": {"protocol": "ip", "field": "saddr"}}, ip),
            _match({"meta": {"key": "oifname"}}, bridge, op="!="), {"masquerade": None}]))
    _run(cmds)


def rules_of(address: ipaddress.IPv4Address | None = None) -> list[dict[str, Any]]:
    """The rules in our table (of one sandbox, when ``address`` is given)."""
    doc = _run(None, listing=True)
    if doc is None:
        return []
    tag = None if address is None else _tag(address)
    out = []
    for item in doc.get("nftables", []):
        rule = item.get("rule")
        if rule is not None and (tag is None or rule.get("comment") == tag):
            out.append(rule)
    return out


def forwarded_ports() -> set[str]:
    """``port/proto`` of every forward in our table (a pinned namespace's too)."""
    ports = set()
    for rule in rules_of():
        for e in rule.get("expr", []):
            m = e.get("match")
            if m and isinstance(m.get("left"), dict) and "payload" in m["left"]:
                p = m["left"]["payload"]
                if p.get("field") == "dport" and rule.get("chain") == "prerouting":
                    ports.add(forward_key(p.get("protocol"), m["right"]))
    return ports


def delete_rules(address: ipaddress.IPv4Address) -> int:
    """Remove the sandbox's rules; how many there were."""
    rules = rules_of(address)
    if not rules:
        return 0
    _run([{"delete": {"rule": {"family": _FAMILY, "table": TABLE, "chain": r["chain"],
                               "handle": r["handle"]}}} for r in rules])
    return len(rules)
