"""The private network: a namespace prepared in the parent, on a bridge.

``attach(config.network)`` makes everything a sandbox's children join with one
``setns`` (``ve_plan.net_fd``), and ``PrivateNetwork.close`` takes it all down:

* the namespace: ``lo`` up, ``eth0`` (the veth's inside end) with an address
  from the bridge's subnet and a default route via the gateway; owned by the
  sandbox's user namespace when one is given (so that its root may bind port
  80), else by ours (then, for a child in a user namespace of its own,
  ``net.ipv4.ip_unprivileged_port_start`` is 0 inside: that namespace's setting,
  never the host's);
* the bridge (default ``voltbr0``), created when missing with the subnet
  10.213.0.0/16 and the gateway 10.213.0.1 unless a route of the host overlaps
  that subnet; an existing bridge keeps its addresses (its first IPv4 address is
  the gateway); the veth's host end ``vz<address in hex>`` is its port;
* the lease of the address (volt_enforce.net.lease: under a lock in
  ``/run/volt-enforce/net/<host netns id>/<bridge>/``), released on close and
  reclaimed by the next user when its owner died;
* port forwards and, with ``outbound``, masquerading (volt_enforce.net.forward:
  nftables rules in ``table ip volt_enforce``); outbound traffic needs the
  host's ``net.ipv4.ip_forward`` to be 1, which is never changed here; without
  ``outbound``, wherever the kernel could route the sandbox's packets out
  (the host forwards, or our bridge does for a forward's hairpin), a rule drops
  them: only ``outbound`` lets traffic leave the host;
* DNS: a resolv.conf listing the configured servers (volt_enforce.net.dns).

IPv4 only: IPv6 is disabled on eth0 (``disable_ipv6``, a setting of the sandbox's
namespace), so no link-local address goes around the IPv4 rules; ``lo`` keeps ::1.
This package imports pyroute2 and is imported only for a private network.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import ipaddress
import json
import os
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import EnforcementError, PolicyError
from ..model import NetworkConfig
from . import bridge as _bridge, dns as _dns, forward as _forward, lease as _lease, netns as _netns
from .bridge import DEFAULT_BRIDGE, DEFAULT_SUBNET, INSIDE_IFNAME
from .lease import Lease, LeaseBook

if TYPE_CHECKING:
    from pyroute2 import IPRoute

__all__ = ["PrivateNetwork", "attach", "preview", "net_up", "net_down", "leaked",
           "DEFAULT_BRIDGE", "DEFAULT_SUBNET", "INSIDE_IFNAME"]

Forward = tuple[str, int, int]  # protocol, host port, container port


def _forwards(config: NetworkConfig) -> list[Forward]:
    out: list[Forward] = []
    seen: dict[str, int] = {}
    for i, pf in enumerate(config.port_forwards):
        fwd = (pf.protocol or "tcp", pf.host_port, pf.container_port)
        key = _forward.forward_key(fwd[0], fwd[1])
        if key in seen:
            raise PolicyError(f"Network.PortForwards[{i}]", pf,
                              f"forwards host port {key} again (PortForwards[{seen[key]}])")
        seen[key] = i
        out.append(fwd)
    return out


def _bridge_name(config: NetworkConfig) -> str:
    return config.bridge or DEFAULT_BRIDGE


@dataclass
class PrivateNetwork:
    """A sandbox's network, ready to be joined through ``netns_fd``."""

    bridge: str
    address: ipaddress.IPv4Interface
    gateway: ipaddress.IPv4Address
    veth: str
    forwards: list[Forward]
    dns: list[str]
    outbound: bool
    netns_fd: int
    resolv_conf: str = ""
    bridge_created: bool = False
    netns_id: int = 0
    confine: bool = False  # a drop rule keeps its packets in the host (see forward)
    creator: int = field(default_factory=os.getpid)
    _holder: _forward.PortHolder | None = field(default=None, repr=False)
    _closed: bool = False

    def report(self) -> dict[str, Any]:
        return {
            "bridge": self.bridge,
            "bridge_created": self.bridge_created,
            "interface": INSIDE_IFNAME,
            "address": str(self.address),
            "gateway": str(self.gateway),
            "routes": _routes(self.address, self.gateway),
            "veth": self.veth,
            "forwards": [{"protocol": p, "host_port": h, "container_port": c}
                         for p, h, c in self.forwards],
            "dns": list(self.dns),
            "resolv_conf": self.resolv_conf or None,
            "outbound": self.outbound,
            "ipv6": "disabled on eth0 (IPv4 only)",
        }

    def note(self) -> str:
        fw = ", ".join(f"{h}->{c}/{p}" for p, h, c in self.forwards) or "none"
        return (f"network private: {INSIDE_IFNAME} {self.address} on bridge {self.bridge} "
                f"(veth {self.veth}), default via {self.gateway}; forwards: {fw}; outbound "
                + ("masqueraded" if self.outbound else "not masqueraded (no route out of the host)"))

    def keep(self) -> None:
        """This process joined the network itself (apply_self) and goes on in it: its
        lease stays, owned by this pid, and is reclaimed once the process is gone."""
        self._closed = True

    def close(self) -> None:
        """Take the veth, the rules, the resolv.conf and the lease down (idempotent)."""
        if self._closed:
            return
        self._closed = True
        if os.getpid() != self.creator:
            # a forked copy (multiprocessing): the network is its parent's to take down
            if self.netns_fd >= 0:
                os.close(self.netns_fd)
                self.netns_fd = -1
            return
        try:
            if self._holder is not None:
                self._holder.close()
            if self.netns_fd >= 0:
                os.close(self.netns_fd)
                self.netns_fd = -1
        finally:
            book = LeaseBook(self.netns_id, self.bridge)
            with _bridge.open_ipr() as ipr, book.locked():
                lease = book.leases.get(str(self.address.ip))
                if lease is not None:
                    _take_down(lease, ipr)
                    del book.leases[lease.address]

    def __enter__(self) -> PrivateNetwork:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            if not self._closed:
                self.close()


def _routes(address: ipaddress.IPv4Interface, gateway: ipaddress.IPv4Address) -> list[str]:
    return [f"default via {gateway} dev {INSIDE_IFNAME}",
            f"{address.network} dev {INSIDE_IFNAME} src {address.ip}"]


def _take_down(lease: Lease, ipr: IPRoute) -> None:
    """Remove what a lease made (each part that is still there). The rules and the
    veth go at once: each removal waits in the kernel for an RCU grace period."""
    errors: list[BaseException] = []
    rules = None
    if lease.rules or lease.forwards or lease.outbound:
        def delete_rules() -> None:
            try:
                _forward.delete_rules(ipaddress.IPv4Address(lease.address))
            except BaseException as exc:  # raised below, after the veth went too
                errors.append(exc)

        rules = threading.Thread(target=delete_rules, name="volt-enforce-nft", daemon=True)
        rules.start()
    try:
        if lease.veth:
            _bridge.delete_link(ipr, lease.veth)
    finally:
        if rules is not None:
            rules.join()
    if lease.resolv:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(lease.resolv)
    if errors:
        raise errors[0]


def _reclaim(book: LeaseBook, ipr: IPRoute) -> list[str]:
    """Take the stale leases down (their owner died); the addresses freed."""
    freed = []
    for lease in book.stale():
        _take_down(lease, ipr)
        del book.leases[lease.address]
        freed.append(lease.address)
    return freed


def _forwards_in_use(netns_id: int, book: LeaseBook) -> dict[str, str]:
    """``port/proto`` -> who forwards it, over every bridge of this host namespace."""
    used: dict[str, str] = {}
    books = [book.leases]
    for path in glob.glob(os.path.join(_lease.RUN_DIR, "net", str(netns_id), "*", "leases.json")):
        if os.path.dirname(path) != book.dir:
            books.append(LeaseBook(netns_id, os.path.basename(os.path.dirname(path))).read())
    for leases in books:
        for lease in leases.values():
            if _lease.owner_alive(lease.owner):
                for proto, host_port, _ in lease.forwards:
                    used[_forward.forward_key(proto, host_port)] = lease.address
    return used


def _allocate(book: LeaseBook, br: _bridge.Bridge) -> ipaddress.IPv4Address:
    taken = {ipaddress.IPv4Address(a) for a in book.leases} | {br.gateway.ip}
    for host in br.subnet.hosts():
        if host not in taken:
            return host
    raise EnforcementError(errno.EADDRNOTAVAIL, "network",
                           f"no free address left in {br.subnet} on bridge {br.name}")


def _check_outbound() -> None:
    if _netns.read_sysctl("net.ipv4.ip_forward") != "1":
        raise EnforcementError(errno.EPERM, "outbound",
                               "net.ipv4.ip_forward is 0 on this host: outbound traffic from the "
                               "sandbox cannot be routed (this library never changes host-wide "
                               "settings; set it yourself, or run without outbound)")


def _set_bridge_conf(name: str, key: str, value: str) -> None:
    path = os.path.join("/proc/sys/net/ipv4/conf", name, key)
    try:
        with open(path) as f:
            if f.read().strip() == value:
                return
        with open(path, "w") as f:
            f.write(value)
    except OSError as exc:
        raise EnforcementError(exc.errno or 0, "bridge", f"setting {key}={value} on {name}") from None


def attach(config: NetworkConfig, *, userns_fd: int | None = None,
           unprivileged_ports: bool = False, pin: str | None = None) -> PrivateNetwork:
    """Prepare the private network of ``config`` (mode private); see the module doc.

    ``userns_fd`` owns the namespace; ``unprivileged_ports`` lets any user bind
    ports below 1024 inside (for a child in a user namespace of its own that
    does not own the namespace). ``pin``: a path for ``net up`` (the lease is
    owned by the pin instead of this process, and no socket holds the ports).
    On any error nothing stays: no veth, rule, file or lease.
    """
    forwards = _forwards(config)
    outbound = bool(getattr(config, "outbound", False))
    name = _bridge_name(config)
    if outbound:
        _check_outbound()
    holder = _forward.PortHolder(forwards)  # a taken port fails here, before anything is made
    if pin is not None:
        holder.close()  # checked free; the rules are the record from now on
    netns_id = _netns.host_netns_id()
    book = LeaseBook(netns_id, name)
    owner = {"pin": pin} if pin is not None else _lease.process_owner()
    try:
        with _bridge.open_ipr() as ipr:
            with book.locked():
                br = _bridge.ensure_bridge(ipr, name)
                if forwards:
                    _set_bridge_conf(name, "route_localnet", "1")
                    _set_bridge_conf(name, "forwarding", "1")  # hairpin through the gateway
                confine = not outbound and _routable(name)
                _reclaim(book, ipr)
                if forwards:
                    used = _forwards_in_use(netns_id, book)
                    for proto, host_port, _ in forwards:
                        key = _forward.forward_key(proto, host_port)
                        if key in used:
                            raise EnforcementError(errno.EADDRINUSE, "port_forward",
                                                   f"host port {key} is already forwarded "
                                                   f"(to {used[key]})")
                ip = _allocate(book, br)
                veth = _bridge.veth_name(ip)
                resolv = ""
                if config.dns:
                    resolv = (pin + ".resolv.conf" if pin is not None
                              else os.path.join(book.dir, f"resolv-{ip}.conf"))
                lease = Lease(address=str(ip), veth=veth, owner=owner,
                              forwards=[list(f) for f in forwards], outbound=outbound,
                              resolv=resolv, rules=bool(forwards or outbound or confine))
                book.leases[lease.address] = lease
                # a veth of that name left behind by a crash before its lease was written
                _bridge.delete_link(ipr, veth)
            net = PrivateNetwork(
                bridge=name, address=ipaddress.IPv4Interface(f"{ip}/{br.subnet.prefixlen}"),
                gateway=br.gateway.ip, veth=veth, forwards=forwards, dns=list(config.dns),
                outbound=outbound, netns_fd=-1, resolv_conf=resolv, bridge_created=br.created,
                netns_id=netns_id, confine=confine, _holder=holder)
            try:
                _build(net, ipr, br, userns_fd, unprivileged_ports)
            except BaseException:
                net.close()
                raise
    except BaseException:
        holder.close()
        raise
    return net


def _routable(bridge: str) -> bool:
    """Whether the kernel may forward packets from ``bridge`` out of the host."""
    if _netns.read_sysctl("net.ipv4.ip_forward") == "1":
        return True
    try:
        with open(os.path.join("/proc/sys/net/ipv4/conf", bridge, "forwarding")) as f:
            return f.read().strip() == "1"
    except OSError:
        return False


def _build(net: PrivateNetwork, ipr: IPRoute, br: _bridge.Bridge, userns_fd: int | None,
           unprivileged_ports: bool) -> None:
    net.netns_fd = _netns.new_netns(userns_fd)
    _bridge.add_veth(ipr, net.veth, br, net.netns_fd)

    def inside() -> None:
        # IPv4 only: no IPv6 on eth0 (not even link-local) to go around the IPv4 rules
        if os.path.exists(f"/proc/sys/net/ipv6/conf/{INSIDE_IFNAME}"):  # else no IPv6 at all
            _netns.write_sysctl(f"net.ipv6.conf.{INSIDE_IFNAME}.disable_ipv6", "1")
        _bridge.configure_inside(net.address, net.gateway)
        if unprivileged_ports:
            _netns.write_sysctl("net.ipv4.ip_unprivileged_port_start", "0")

    _netns.inside(net.netns_fd, inside)
    if net.forwards or net.outbound or net.confine:
        _forward.add_rules(net.address.ip, net.bridge, br.subnet, net.forwards, net.outbound,
                           confine=net.confine)
    if net.resolv_conf:
        os.makedirs(os.path.dirname(net.resolv_conf), mode=0o755, exist_ok=True)
        _dns.resolv_conf_file(net.dns, net.resolv_conf)


def preview(config: NetworkConfig) -> dict[str, Any]:
    """What ``attach`` would make now, changing nothing (for explain)."""
    name = _bridge_name(config)
    forwards = _forwards(config)
    out: dict[str, Any] = {"bridge": name, "interface": INSIDE_IFNAME,
                           "forwards": [{"protocol": p, "host_port": h, "container_port": c}
                                        for p, h, c in forwards],
                           "dns": list(config.dns), "outbound": bool(getattr(config, "outbound", False)),
                           "ipv6": "disabled on eth0 (IPv4 only)"}
    if out["outbound"]:
        try:
            _check_outbound()
        except EnforcementError as exc:
            out["outbound_error"] = str(exc)
    try:
        with _bridge.open_ipr() as ipr:
            br = _bridge.find_bridge(ipr, name)
    except EnforcementError as exc:
        out["error"] = str(exc)
        return out
    if br is None:
        gateway = ipaddress.IPv4Interface(f"{next(DEFAULT_SUBNET.hosts())}/{DEFAULT_SUBNET.prefixlen}")
        br = _bridge.Bridge(name, -1, gateway)
        out["bridge_exists"] = False
    else:
        out["bridge_exists"] = True
    book = LeaseBook(_netns.host_netns_id(), name)
    book.leases = {a: lease for a, lease in book.read().items() if _lease.owner_alive(lease.owner)}
    ip = _allocate(book, br)
    address = ipaddress.IPv4Interface(f"{ip}/{br.subnet.prefixlen}")
    out.update(subnet=str(br.subnet), gateway=str(br.gateway.ip), address=str(address),
               address_note="the next free address now; each sandbox leases its own",
               routes=_routes(address, br.gateway.ip))
    return out


# ---- volt-init: pinned namespaces ------------------------------------------------


def net_up(name: str, config: NetworkConfig) -> PrivateNetwork:
    """Make and pin the network ``name`` (see volt_enforce.net.pin)."""
    from . import pin as _pin

    path = _pin.pin_path(name)
    if os.path.lexists(path):
        raise EnforcementError(errno.EEXIST, "network",
                               f"{path} exists: network {name!r} is up (net down {name} first)")
    net = attach(config, pin=path)
    try:
        _pin.pin(net.netns_fd, path)
        meta = {"config": config.to_dict(), "outbound": net.outbound, **net.report()}
        with open(path + ".json", "w") as f:
            json.dump(meta, f)
    except BaseException:
        net.close()
        _pin.unpin(path)
        raise
    # the pin holds the namespace and owns the lease now
    os.close(net.netns_fd)
    net.netns_fd = -1
    net._closed = True
    return net


def net_down(name: str) -> bool:
    """Remove the pinned network ``name``: rules, veth, lease, pin. False if it was not up."""
    from . import pin as _pin

    path = _pin.pin_path(name)
    found = False
    netns_id = _netns.host_netns_id()
    with _bridge.open_ipr() as ipr:
        for lb in glob.glob(os.path.join(_lease.RUN_DIR, "net", str(netns_id), "*", "leases.json")):
            book = LeaseBook(netns_id, os.path.basename(os.path.dirname(lb)))
            with book.locked():
                for lease in list(book.leases.values()):
                    if lease.owner.get("pin") == path:
                        _take_down(lease, ipr)
                        del book.leases[lease.address]
                        found = True
    found = _pin.is_pinned(path) or found
    _pin.unpin(path)
    for extra in (path + ".json", path + ".resolv.conf"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(extra)
    return found


# ---- leak check --------------------------------------------------------------------


def leaked(bridge: str = DEFAULT_BRIDGE) -> dict[str, list[str]]:
    """What of ours is left in this host namespace: veths on ``bridge``, leases, rules."""
    netns_id = _netns.host_netns_id()
    with _bridge.open_ipr() as ipr:
        veths = sorted(str(link.get("IFLA_IFNAME")) for link in ipr.get_links()
                       if str(link.get("IFLA_IFNAME", "")).startswith("vz"))
    leases = sorted(LeaseBook(netns_id, bridge).read())
    try:
        rules = [r.get("comment", "") for r in _forward.rules_of()]
    except Exception as exc:  # no nft: no rules could have been made
        rules = [] if "nft" in str(exc) else [repr(exc)]
    return {"veths": veths, "leases": leases, "rules": rules}

