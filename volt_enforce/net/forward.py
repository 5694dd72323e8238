"""Port forwards and outbound masquerading: nftables rules in a table of our own.

All rules live in ``table ip volt_enforce``, written as nftables JSON (the
interface podman's netavark uses) through libnftables in this process (the
library ``nft`` itself runs on: no process per change), or the ``nft -j``
binary where the library cannot be loaded. Each rule carries the comment
``volt <address>`` of the sandbox it serves and is removed with it. No other
table is read or written.

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

A sandbox reaching a forward through the gateway is routed back out by the
bridge: ``forwarding`` on our bridge (its own setting, like ``route_localnet``)
allows that. Then, and wherever the host itself forwards (``net.ipv4.ip_forward``),
a sandbox without ``outbound`` gets a ``forward`` rule that drops its packets
leaving by any other interface: only ``outbound`` lets traffic out of the host.

The host port is held by a socket bound to it (``PortHolder``) for the
sandbox's life: a port that is taken is refused before anything is made, and
no one else binds it meanwhile. A namespace pinned by ``net up`` has no process
to hold it; its rules are then the record, checked by every later forward.
"""

from __future__ import annotations

import ctypes
import errno
import functools
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


class _Lib:
    """libnftables (what ``nft`` runs on), called in this process: the same JSON
    commands without a process per call. None when it cannot be loaded."""

    JSON, HANDLE, ECHO = 1 << 4, 1 << 3, 1 << 5  # NFT_CTX_OUTPUT_*

    def __init__(self) -> None:
        lib = ctypes.CDLL("libnftables.so.1", use_errno=True)
        lib.nft_ctx_new.restype = ctypes.c_void_p
        lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
        lib.nft_ctx_free.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_output_set_flags.argtypes = [ctypes.c_void_p, ctypes.c_uint]
        for name in ("nft_ctx_buffer_output", "nft_ctx_buffer_error"):
            getattr(lib, name).argtypes = [ctypes.c_void_p]
        for name in ("nft_ctx_get_output_buffer", "nft_ctx_get_error_buffer"):
            getattr(lib, name).argtypes = [ctypes.c_void_p]
            getattr(lib, name).restype = ctypes.c_char_p
        lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        self.lib = lib

    def run(self, command: str) -> tuple[int, str, str]:
        lib = self.lib
        # a context per call: its netlink socket is in the calling thread's namespace
        ctx = lib.nft_ctx_new(0)
        if not ctx:
            return 1, "", "nft_ctx_new failed"
        try:
            lib.nft_ctx_output_set_flags(ctx, self.JSON | self.HANDLE | self.ECHO)
            lib.nft_ctx_buffer_output(ctx)
            lib.nft_ctx_buffer_error(ctx)
            rc = lib.nft_run_cmd_from_buffer(ctx, command.encode())
            out = lib.nft_ctx_get_output_buffer(ctx) or b""
            err = lib.nft_ctx_get_error_buffer(ctx) or b""
            return rc, out.decode(errors="replace"), err.decode(errors="replace")
        finally:
            lib.nft_ctx_free(ctx)


@functools.lru_cache(maxsize=1)
def _library() -> _Lib | None:
    try:
        return _Lib()
    except (OSError, AttributeError):
        return None


def _run(commands: list[dict[str, Any]] | None, *, listing: bool = False) -> Any:
    """Run JSON commands (or list our table) with handles echoed; the JSON output."""
    command = (f"list table {_FAMILY} {TABLE}" if listing
               else json.dumps({"nftables": commands}))
    lib = _library()
    if lib is not None:
        rc, out, err = lib.run(command)
        where = "libnftables"
    else:
        argv = [_nft(), "-j", "--echo", "--handle"] + (command.split() if listing else ["-f", "-"])
        cp = subprocess.run(argv, input=None if listing else command, capture_output=True,
                            text=True, check=False)
        rc, out, err = cp.returncode, cp.stdout, cp.stderr
        where = " ".join(argv)
    if rc != 0:
        if listing and "No such file or directory" in err:
            return None
        raise EnforcementError(errno.EINVAL, "nftables", f"{where}: {err.strip() or 'failed'}")
    return json.loads(out) if out.strip() else None


def _base() -> list[dict[str, Any]]:
    t = {"family": _FAMILY, "name": TABLE}
    out: list[dict[str, Any]] = [{"add": {"table": t}}]
    for name, kind, hook, prio in (("prerouting", "nat", "prerouting", -100),
                                   ("output", "nat", "output", -100),
                                   ("postrouting", "nat", "postrouting", 100),
                                   ("forward", "filter", "forward", 0)):
        out.append({"add": {"chain": {"family": _FAMILY, "table": TABLE, "name": name,
                                      "type": kind, "hook": hook, "prio": prio,
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
              forwards: Iterable[tuple[str, int, int]], outbound: bool, confine: bool = False) -> None:
    """The sandbox's rules, in one transaction (all or none). ``confine`` (for a
    sandbox without ``outbound`` where the host could route it): its packets never
    leave by another interface than the bridge, NATed or not."""
    tag, ip = _tag(address), str(address)
    cmds: list[dict[str, Any]] = []
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
    if confine and not outbound:
        cmds.append(_rule("forward", tag, [
            _match({"meta": {"key": "iifname"}}, bridge),
            _match({"payload": {"protocol": "ip", "field": "saddr"}}, ip),
            _match({"meta": {"key": "oifname"}}, bridge, op="!="), {"drop": None}]))
    if outbound:
        cmds.append(_rule("postrouting", tag, [
            _match({"payload": {"protocol": "ip", "field": "saddr"}}, ip),
            _match({"meta": {"key": "oifname"}}, bridge, op="!="), {"masquerade": None}]))
    try:
        # the table and its chains are there after the first sandbox: adding them again
        # costs the kernel a commit of its own (7 ms here), so only when missing
        _run(cmds)
    except EnforcementError as exc:
        if "No such file or directory" not in str(exc):
            raise
        _run(_base() + cmds)


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


def delete_rules(address: ipaddress.IPv4Address) -> int:
    """Remove the sandbox's rules; how many there were."""
    rules = rules_of(address)
    if not rules:
        return 0
    _run([{"delete": {"rule": {"family": _FAMILY, "table": TABLE, "chain": r["chain"],
                               "handle": r["handle"]}}} for r in rules])
    return len(rules)
