"""The bridge and the veth pairs on it (netlink, through pyroute2).

Only interfaces of ours are ever changed: the bridge when this module created
it (or its own per-interface settings such as ``route_localnet``), and the
veths named ``vz<address in hex>``. Other interfaces, routes and tables of the
host are read, never written.
"""

from __future__ import annotations

import errno
import ipaddress
from dataclasses import dataclass
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from ..errors import EnforcementError

__all__ = ["DEFAULT_BRIDGE", "DEFAULT_SUBNET", "Bridge", "ensure_bridge", "find_bridge",
           "add_veth", "delete_link", "configure_inside", "veth_name", "open_ipr"]

#: The bridge a private network joins unless the config names another.
DEFAULT_BRIDGE = "voltbr0"
#: The subnet of a bridge this library creates; the gateway (the bridge's own
#: address) is its first host address, 10.213.0.1.
DEFAULT_SUBNET = ipaddress.IPv4Network("10.213.0.0/16")
#: What the sandbox's end of the veth is called inside its namespace.
INSIDE_IFNAME = "eth0"


@dataclass(frozen=True)
class Bridge:
    name: str
    index: int
    gateway: ipaddress.IPv4Interface  # the bridge's address, with the subnet's prefix
    created: bool = False

    @property
    def subnet(self) -> ipaddress.IPv4Network:
        return self.gateway.network


def open_ipr() -> IPRoute:
    """A netlink socket in the calling thread's network namespace (no event groups)."""
    return IPRoute(groups=0)


def veth_name(address: ipaddress.IPv4Address) -> str:
    """The host end's name for a sandbox address: unique per address, 10 characters."""
    return "vz" + address.packed.hex()


def _link_index(ipr: IPRoute, name: str) -> int | None:
    found = ipr.link_lookup(ifname=name)
    return found[0] if found else None


def _ipv4_of(ipr: IPRoute, index: int) -> ipaddress.IPv4Interface | None:
    for a in ipr.get_addr(family=2, index=index):
        return ipaddress.IPv4Interface(f"{a.get('IFA_ADDRESS')}/{a['prefixlen']}")
    return None


def find_bridge(ipr: IPRoute, name: str) -> Bridge | None:
    """The existing bridge ``name`` with its first IPv4 address, or None if absent."""
    index = _link_index(ipr, name)
    if index is None:
        return None
    link = ipr.get_links(index)[0]
    kind = (link.get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND") or "")
    if kind != "bridge":
        raise EnforcementError(errno.EINVAL, "bridge", f"{name} exists and is a {kind or 'plain'} "
                               "interface, not a bridge")
    gw = _ipv4_of(ipr, index)
    if gw is None:
        raise EnforcementError(errno.EADDRNOTAVAIL, "bridge",
                               f"{name} has no IPv4 address to be the sandboxes' gateway")
    return Bridge(name, index, gw)


def _overlapping_route(ipr: IPRoute, subnet: ipaddress.IPv4Network) -> str | None:
    for r in ipr.get_routes(family=2, table=254) + ipr.get_routes(family=2, table=255):
        plen = r["dst_len"]
        if plen == 0:
            continue  # a default route covers everything: not a conflict
        dst = ipaddress.IPv4Network(f"{r.get('RTA_DST')}/{plen}", strict=False)
        if dst.overlaps(subnet):
            oif = r.get("RTA_OIF")
            dev = ""
            if oif:
                links = ipr.get_links(oif)
                dev = f" dev {links[0].get('IFLA_IFNAME')}" if links else ""
            return f"{dst}{dev}"
    return None


def ensure_bridge(ipr: IPRoute, name: str, subnet: ipaddress.IPv4Network = DEFAULT_SUBNET) -> Bridge:
    """The bridge ``name``; created with ``subnet`` (gateway: its first address)
    when it is missing, after checking no route of the host overlaps it. An
    existing bridge keeps its addresses. Call under the lease lock."""
    br = find_bridge(ipr, name)
    if br is not None:
        return br
    clash = _overlapping_route(ipr, subnet)
    if clash is not None:
        raise EnforcementError(errno.EADDRINUSE, "bridge",
                               f"the default subnet {subnet} of a new bridge {name} overlaps the "
                               f"host's route {clash}: create {name} yourself with a free subnet "
                               "(its first IPv4 address is the gateway), or name another bridge")
    gateway = ipaddress.IPv4Interface(f"{next(subnet.hosts())}/{subnet.prefixlen}")
    try:
        ipr.link("add", ifname=name, kind="bridge")
    except NetlinkError as exc:
        raise EnforcementError(exc.code, "bridge", f"creating bridge {name}") from None
    index = _link_index(ipr, name)
    assert index is not None
    try:
        ipr.addr("add", index=index, address=str(gateway.ip), prefixlen=subnet.prefixlen)
        ipr.link("set", index=index, state="up")
    except NetlinkError as exc:
        ipr.link("del", index=index)
        raise EnforcementError(exc.code, "bridge", f"configuring bridge {name}") from None
    return Bridge(name, index, gateway, created=True)


def add_veth(ipr: IPRoute, name: str, bridge: Bridge, netns_fd: int) -> None:
    """A veth pair: ``name`` on the bridge, up; its peer ``eth0`` in ``netns_fd``."""
    try:
        ipr.link("add", ifname=name, kind="veth",
                 peer={"ifname": INSIDE_IFNAME, "net_ns_fd": netns_fd})
    except NetlinkError as exc:
        raise EnforcementError(exc.code, "veth", f"creating {name} (peer {INSIDE_IFNAME} in the "
                               "sandbox's namespace)") from None
    try:
        index = _link_index(ipr, name)
        assert index is not None
        ipr.link("set", index=index, master=bridge.index, state="up")
        # hairpin: a sandbox reaching its own forward through the gateway gets the
        # frames back on the port they came from
        ipr.brport("set", index=index, mode=1)
    except NetlinkError as exc:
        delete_link(ipr, name)
        raise EnforcementError(exc.code, "veth", f"attaching {name} to bridge {bridge.name}") from None


def delete_link(ipr: IPRoute, name: str) -> bool:
    """Delete interface ``name`` if it exists (a veth takes its peer along)."""
    index = _link_index(ipr, name)
    if index is None:
        return False
    try:
        ipr.link("del", index=index)
    except NetlinkError as exc:
        if exc.code != errno.ENODEV:
            raise
        return False
    return True


def configure_inside(address: ipaddress.IPv4Interface, gateway: ipaddress.IPv4Address) -> None:
    """In the sandbox's namespace (run through ``netns.inside``): lo and eth0 up,
    the address on eth0, the default route via the gateway."""
    with open_ipr() as ipr:
        lo = _link_index(ipr, "lo")
        eth = _link_index(ipr, INSIDE_IFNAME)
        if lo is None or eth is None:
            raise EnforcementError(errno.ENODEV, "network", "lo or eth0 missing in the new namespace")
        try:
            ipr.link("set", index=lo, state="up")
            ipr.addr("add", index=eth, address=str(address.ip), prefixlen=address.network.prefixlen)
            ipr.link("set", index=eth, state="up")
            ipr.route("add", dst="0.0.0.0/0", gateway=str(gateway), oif=eth)
        except NetlinkError as exc:
            raise EnforcementError(exc.code, "network",
                                   f"configuring {INSIDE_IFNAME} {address} via {gateway}") from None


def describe_inside() -> dict[str, Any]:
    """The addresses and routes of the calling thread's namespace (tests, explain)."""
    with open_ipr() as ipr:
        names = {link["index"]: link.get("IFLA_IFNAME") for link in ipr.get_links()}
        addrs = [f"{names.get(a['index'])} {a.get('IFA_ADDRESS')}/{a['prefixlen']}"
                 for a in ipr.get_addr(family=2)]
        routes = [f"{r.get('RTA_DST') or 'default'}/{r['dst_len']} via {r.get('RTA_GATEWAY')}"
                  for r in ipr.get_routes(family=2, table=254)]
    return {"links": sorted(n for n in names.values() if n), "addresses": addrs, "routes": routes}
