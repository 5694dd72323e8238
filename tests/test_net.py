"""The private network (volt_enforce.net): a namespace prepared in the parent, a veth
on the bridge, leases, port forwards, DNS, and cleanup on every path.

Every test runs in a network namespace standing in for the host (netns_host):
the bridge, veths and rules are made there, never on the machine's network.
"""

from __future__ import annotations

import errno
import hashlib
import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import pytest
from hypothesis import given, strategies as st
from kernelreq import need_private_network, need_userns
from netns_host import in_stand_in_host

import volt_enforce as ve
from volt_enforce import EnforcementError, IsolationConfig, NetworkConfig, NetworkMode, PortForward

PY = "/usr/bin/python3"


@pytest.fixture(autouse=True)
def _needs():
    need_private_network()


def private(*forwards: PortForward, dns: list[str] | None = None, users: bool = False,
            **net: object) -> IsolationConfig:
    return IsolationConfig(network=NetworkConfig(mode=NetworkMode.PRIVATE, port_forwards=list(forwards),
                                                 dns=dns or [], **net), private_users=users)


def _wait_port(host: str, port: int, deadline: float = 10.0) -> None:
    end = time.monotonic() + deadline
    while True:
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            if time.monotonic() > end:
                raise
            time.sleep(0.05)


def _ip(cmd: str) -> str:
    return subprocess.run(["sh", "-c", cmd], capture_output=True, text=True, check=True).stdout


# ── the namespace ────────────────────────────────────────────────────────────


def _address_and_route():
    r = ve.run(["sh", "-c", "ip -4 -o addr show; ip route; ip -6 -o addr show dev eth0; echo v6done"],
               isolation=private(), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    none = ve.run(["sh", "-c", "ip -4 -o addr show; ip route"],
                  isolation=IsolationConfig(network=NetworkConfig(mode=NetworkMode.NONE)),
                  capture_output=True, text=True)
    return r.stdout, r.report.network, none.stdout


def test_child_has_address_and_default_route():
    out, netrep, control = in_stand_in_host(_address_and_route)
    assert netrep["address"].startswith("10.213.0.") and netrep["gateway"] == "10.213.0.1"
    assert f"eth0    inet {netrep['address']}" in out.replace("  ", " ").replace(" inet", "    inet") \
        or f"inet {netrep['address']}" in out
    assert "default via 10.213.0.1 dev eth0" in out
    assert "inet6" not in out and "v6done" in out  # IPv4 only: no IPv6 address on eth0
    assert netrep["routes"][0] == "default via 10.213.0.1 dev eth0"
    # the loopback-only mode, as a control: no eth0, no route
    assert "eth0" not in control and "default" not in control


def _reach_host_server():
    with ve.Sandbox(private()) as sb:
        gw = sb.network.report()["gateway"]
        srv = socket.create_server((gw, 0))
        port = srv.getsockname()[1]
        code = (f"import socket; s = socket.create_connection(({gw!r}, {port}), timeout=5); "
                "print(s.recv(5).decode())")
        p = sb.popen([PY, "-c", code], stdout=subprocess.PIPE, text=True)
        conn, peer = srv.accept()
        conn.sendall(b"hello")
        conn.close()
        out = p.communicate(timeout=20)[0]
        srv.close()
        return out, peer[0], sb.network.report()["address"]


def test_reaches_a_server_in_the_host():
    out, peer, address = in_stand_in_host(_reach_host_server)
    assert out.strip() == "hello"
    assert peer == address.split("/")[0]  # it came from the sandbox's own address


def _unreachable_without_bridge():
    cfg = IsolationConfig(network=NetworkConfig(mode=NetworkMode.NONE))
    # UDP: network none also denies TCP connects through Landlock
    r = ve.run([PY, "-c", "import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM)"
                ".connect(('10.213.0.1', 9))"],
               isolation=cfg, capture_output=True, text=True)
    return r.returncode, r.stderr


def test_control_loopback_only_reaches_nothing():
    rc, err = in_stand_in_host(_unreachable_without_bridge)
    assert rc != 0 and "Network is unreachable" in err


def _dns():
    before = hashlib.sha256(open("/etc/resolv.conf", "rb").read()).hexdigest()
    r = ve.run(["cat", "/etc/resolv.conf"], isolation=private(dns=["192.0.2.53", "2001:db8::53"]),
               capture_output=True, text=True)
    w = ve.run(["sh", "-c", "echo nameserver 6.6.6.6 > /etc/resolv.conf"],
               isolation=private(dns=["192.0.2.53"]), capture_output=True, text=True)
    plain = ve.run(["cat", "/etc/resolv.conf"], isolation=private(), capture_output=True, text=True)
    # not contained: still a mount namespace just for that file
    loose = ve.run(["cat", "/etc/resolv.conf"], isolation=private(dns=["192.0.2.54"]), contain=False,
                   capture_output=True, text=True)
    assert loose.stdout.endswith("nameserver 192.0.2.54\n"), loose.stderr
    after = hashlib.sha256(open("/etc/resolv.conf", "rb").read()).hexdigest()
    return r.stdout, w.returncode, w.stderr, plain.stdout, before == after, open("/etc/resolv.conf").read()


def test_child_reads_the_configured_dns_servers():
    out, wrc, werr, plain, unchanged, host = in_stand_in_host(_dns)
    assert "nameserver 192.0.2.53\nnameserver 2001:db8::53\n" in out
    assert wrc != 0 and "Read-only file system" in werr  # bound read-only
    assert unchanged  # the host's file was never written
    assert plain == host  # the control: no DNS configured, the host's file


def _resolv_mounts(users: bool) -> list[tuple[int, str]]:
    """How many mounts lie on the resolv.conf bind target in the child's mountinfo, and
    what the child reads there: contained, and not (its own bind without a view)."""
    from volt_enforce.net import dns

    target = dns.bind_target()
    out = []
    for contain in (True, False):
        r = ve.run(["sh", "-c", "cat /proc/self/mountinfo; echo ===; cat /etc/resolv.conf"],
                   isolation=private(dns=["192.0.2.55"], users=users), contain=contain,
                   capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        mountinfo, _, conf = r.stdout.partition("===\n")
        points = [ln.split()[4] for ln in mountinfo.splitlines()]
        out.append((points.count(target), conf))
    return out


@pytest.mark.parametrize("users", [False, True], ids=["root", "private-users"])
def test_resolv_conf_is_bound_once(users):
    """The private network's resolv.conf is one mount in the child: the view's bind when
    contained, the child's own without a view (Sandbox._resolv feeds both, never both)."""
    if users:
        need_userns()
    for count, conf in in_stand_in_host(_resolv_mounts, users):
        assert count == 1 and conf.endswith("nameserver 192.0.2.55\n"), (count, conf)


def _two_sandboxes():
    with ve.Sandbox(private()) as a, ve.Sandbox(private()) as b:
        got = [ve.run(["ip", "-4", "-o", "addr", "show", "eth0"], sandbox=s, capture_output=True,
                      text=True).stdout for s in (a, b)]
        return [a.network.report()["address"], b.network.report()["address"]], got


def test_two_sandboxes_get_different_addresses():
    (a, b), got = in_stand_in_host(_two_sandboxes)
    assert a != b
    assert a in got[0] and b in got[1]


def _worker(n: int, barrier_dir: str) -> None:
    """In a forked process: hold ``n`` sandboxes at once, print their addresses."""
    boxes = [ve.Sandbox(private()) for _ in range(n)]
    seen = []
    for sb in boxes:
        r = ve.run(["ip", "-4", "-o", "addr", "show", "eth0"], sandbox=sb, capture_output=True, text=True)
        seen.append(r.stdout.split()[3])
    open(os.path.join(barrier_dir, str(os.getpid())), "w").write(json.dumps(seen))
    while len(os.listdir(barrier_dir)) < 4:  # all alive at once before anyone lets go
        time.sleep(0.02)
    for sb in boxes:
        sb.close()


def _concurrent(tmp: str):
    pids = []
    for n in (13, 13, 12, 12):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                _worker(n, tmp)
                code = 0
            finally:
                os._exit(code)
        pids.append(pid)
    codes = [os.waitstatus_to_exitcode(os.waitpid(p, 0)[1]) for p in pids]
    return codes, [json.loads(open(os.path.join(tmp, f)).read()) for f in os.listdir(tmp)]


def test_fifty_concurrent_spawns_from_four_processes_never_collide(tmp_path):
    codes, seen = in_stand_in_host(_concurrent, str(tmp_path))
    assert codes == [0, 0, 0, 0]
    flat = [a for per in seen for a in per]
    assert len(flat) == 50 and len(set(flat)) == 50


# ── port forwards ────────────────────────────────────────────────────────────


def _server(body: str, *args: str) -> list[str]:
    """http.server on port 80 serving ``body`` as index.html from the child's own /tmp
    (a contained child's view has a private /tmp; the host's is not there)."""
    code = ("import os, runpy, sys, tempfile\n"
            "d = tempfile.mkdtemp()\n"
            f"open(os.path.join(d, 'index.html'), 'w').write({body!r})\n"
            f"sys.argv = ['http.server', '80', *{list(args)!r}, '--directory', d]\n"
            "runpy.run_module('http.server', run_name='__main__')\n")
    return [PY, "-c", code]


def _http(tmp: str, users: bool):
    # an address of the stand-in host's own, besides the gateway and 127.0.0.1
    _ip("ip addr add 10.214.0.1/32 dev lo")
    before = _refused("127.0.0.1", 8080)
    cfg = private(PortForward(8080, 80), users=users)
    with ve.Sandbox(cfg) as sb:
        gw = sb.network.report()["gateway"]
        p = sb.popen(_server("served from the sandbox\n", "--bind", "0.0.0.0"),
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            _wait_port("127.0.0.1", 8080)
            got = {host: urllib.request.urlopen(f"http://{host}:8080/index.html", timeout=5).read().decode()
                   for host in (gw, "127.0.0.1", "10.214.0.1")}
        finally:
            p.kill()
            p.wait()
    return before, got, _refused("127.0.0.1", 8080)


def _refused(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=2).close()
        return False
    except ConnectionRefusedError:
        return True


@pytest.mark.parametrize("users", [False, True], ids=["host-root", "private-users"])
def test_http_server_on_port_80_answers_through_its_forward(tmp_path, users):
    served = str(tmp_path)
    if users:
        need_userns()
        # the user namespace's root is an unprivileged host uid: it cannot read below
        # tmp_path's 0700 parents, so it serves a directory it can reach
        served = tempfile.mkdtemp(prefix="volt-http-", dir="/tmp")
        os.chmod(served, 0o755)
    try:
        before, got, after = in_stand_in_host(_http, served, users)
    finally:
        if served != str(tmp_path):
            shutil.rmtree(served)
    assert before and after  # the control: nothing answers without the forward
    assert set(got.values()) == {"served from the sandbox\n"}, got


def _udp():
    echo = ("import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('0.0.0.0', 53)); "
            "print('up', flush=True)\nwhile True:\n d, a = s.recvfrom(100); s.sendto(b'echo ' + d, a)")
    with ve.Sandbox(private(PortForward(5353, 53, "udp"))) as sb:
        gw = sb.network.report()["gateway"]
        p = sb.popen([PY, "-c", echo], stdout=subprocess.PIPE, text=True)
        try:
            assert p.stdout.readline() == "up\n"
            got = {}
            for host in (gw, "127.0.0.1"):
                c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                c.settimeout(5)
                c.sendto(b"ping", (host, 5353))
                got[host] = c.recvfrom(100)[0].decode()
                c.close()
        finally:
            p.kill()
            p.wait()
    # the control: with the sandbox gone, nothing answers
    c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    c.settimeout(1)
    c.sendto(b"ping", ("127.0.0.1", 5353))
    try:
        c.recvfrom(100)
        gone = False
    except OSError:
        gone = True
    return got, gone


def test_udp_forward():
    got, gone = in_stand_in_host(_udp)
    assert set(got.values()) == {"echo ping"} and len(got) == 2
    assert gone


def _hairpin(tmp: str):
    with ve.Sandbox(private(PortForward(8080, 80))) as b, ve.Sandbox(private()) as a:
        gw = b.network.report()["gateway"]
        p = b.popen(_server("from b\n"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            _wait_port("127.0.0.1", 8080)
            code = f"import urllib.request; print(urllib.request.urlopen('http://{gw}:8080/index.html', timeout=5).read().decode(), end='')"
            r = a.run([PY, "-c", code], capture_output=True, text=True)
            # the server itself, through the gateway: its own forward comes back to it
            r2 = b.run([PY, "-c", code], capture_output=True, text=True)
        finally:
            p.kill()
            p.wait()
    return r.stdout, r.stderr, r2.stdout, r2.stderr


def test_a_sandbox_reaches_a_forward_through_the_gateway(tmp_path):
    out, err, own, own_err = in_stand_in_host(_hairpin, str(tmp_path))
    assert out == "from b\n", err
    assert own == "from b\n", own_err


def _marked(tmp: str, *forwards: PortForward) -> IsolationConfig:
    """private(), with the marker's directory bound writable: a contained child's view
    is the host's root read-only, so a marker elsewhere could never show it ran."""
    cfg = private(*forwards)
    cfg.landlock = ve.LandlockPolicy(rules=[ve.LandlockRule("/", ve.LandlockAccess.READ_EXEC),
                                            ve.LandlockRule(tmp, ve.LandlockAccess.READ_WRITE)])
    return cfg


def _taken(tmp: str):
    marker = os.path.join(tmp, "ran")
    blocker = socket.create_server(("127.0.0.1", 8080))
    errors = []
    try:
        ve.run(["touch", marker], isolation=_marked(tmp, PortForward(8080, 80)))
    except EnforcementError as exc:
        errors.append(str(exc))
    blocker.close()
    # forwarded already by another sandbox (udp: another protocol, another port)
    with ve.Sandbox(private(PortForward(8080, 80), PortForward(8080, 81, "udp"))):
        try:
            ve.run(["touch", marker], isolation=_marked(tmp, PortForward(8080, 80)))
        except EnforcementError as exc:
            errors.append(str(exc))
    # the control: free again, the same config runs
    rc = ve.run(["touch", marker], isolation=_marked(tmp, PortForward(8080, 80))).returncode
    return errors, rc


def test_taken_port_is_an_error_naming_it_and_nothing_runs(tmp_path):
    errors, rc = in_stand_in_host(_taken, str(tmp_path))
    assert len(errors) == 2
    assert all("8080/tcp" in e and "already" in e for e in errors), errors
    assert rc == 0 and os.path.exists(tmp_path / "ran")


def test_duplicate_forward_in_one_config_is_a_policy_error():
    from volt_enforce.net import _forwards

    with pytest.raises(ve.PolicyError, match=r"PortForwards\[1\].*8080/tcp"):
        _forwards(NetworkConfig(port_forwards=[PortForward(8080, 80), PortForward(8080, 81)]))
    assert _forwards(NetworkConfig(port_forwards=[PortForward(8080, 80), PortForward(8080, 80, "udp")]))


# ── the bridge ───────────────────────────────────────────────────────────────


def _overlap():
    _ip("ip link add lan0 type veth peer name lan0p && ip addr add 10.200.0.1/8 dev lan0 "
        "&& ip link set lan0 up")
    try:
        ve.run(["true"], isolation=private())
    except EnforcementError as exc:
        return str(exc), _ip("ip -br link")
    return None, ""


def test_default_subnet_overlapping_a_route_is_refused_naming_both():
    msg, links = in_stand_in_host(_overlap)
    assert msg is not None and "10.213.0.0/16" in msg and "10.0.0.0/8 dev lan0" in msg
    assert "voltbr0" not in links


def _existing_bridge():
    _ip("ip link add br-test type bridge && ip addr add 10.77.0.1/24 dev br-test && ip link set br-test up")
    r = ve.run(["ip", "route"], isolation=private(bridge="br-test"), capture_output=True, text=True)
    return r.report.network, r.stdout, _ip("ip -4 -o addr show br-test")


def test_existing_bridge_keeps_its_addresses():
    rep, routes, addrs = in_stand_in_host(_existing_bridge)
    assert rep["gateway"] == "10.77.0.1" and rep["address"] == "10.77.0.2/24"
    assert rep["bridge_created"] is False
    assert "default via 10.77.0.1" in routes and "10.77.0.1/24" in addrs


def _outside_host():
    """A namespace beyond the stand-in host (10.250.0.2, routed back via 10.250.0.1)
    with a UDP socket listening there; returns the socket (it keeps its namespace)."""
    from volt_enforce.net import bridge, netns

    fd = netns.new_netns()
    with bridge.open_ipr() as ipr:
        ipr.link("add", ifname="up0", kind="veth", peer={"ifname": "up1", "net_ns_fd": fd})
        idx = ipr.link_lookup(ifname="up0")[0]
        ipr.addr("add", index=idx, address="10.250.0.1", prefixlen=24)
        ipr.link("set", index=idx, state="up")

    def inside():
        with bridge.open_ipr() as ipr:
            lo, up1 = ipr.link_lookup(ifname="lo")[0], ipr.link_lookup(ifname="up1")[0]
            ipr.link("set", index=lo, state="up")
            ipr.addr("add", index=up1, address="10.250.0.2", prefixlen=24)
            ipr.link("set", index=up1, state="up")
            ipr.route("add", dst="0.0.0.0/0", gateway="10.250.0.1")
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("10.250.0.2", 9999))
        s.settimeout(2)
        return s

    sock = netns.inside(fd, inside)
    os.close(fd)
    return sock


def _send_out(sb) -> None:
    code = ("import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
            "[s.sendto(b'out', ('10.250.0.2', 9999)) for _ in range(3)]")
    assert sb.run([PY, "-c", code]).returncode == 0


def _received(sock):
    """The sources of what arrived within the socket's timeout (drained), or None."""
    got = set()
    while True:
        try:
            got.add(sock.recvfrom(100)[1][0])
        except OSError:
            return ",".join(sorted(got)) or None


def _outbound():
    from volt_enforce.net import forward

    out = {}
    try:
        ve.run(["true"], isolation=private(outbound=True))
    except EnforcementError as exc:
        out["off"] = str(exc)
    outside = _outside_host()
    # the stand-in host forwards (its namespace's setting, not the machine's)
    with open("/proc/sys/net/ipv4/ip_forward", "w") as f:
        f.write("1")
    with ve.Sandbox(private(outbound=True)) as sb:
        out["rules"] = [json.dumps(r["expr"]) for r in forward.rules_of()]
        out["report"] = sb.report.network["outbound"]
        out["note"] = sb.report.notes[-1]
        _send_out(sb)
        out["outbound_from"] = _received(outside)  # masqueraded: the host's address
    with ve.Sandbox(private()) as sb:
        out["plain_rules"] = [json.dumps(r["expr"]) for r in forward.rules_of()]
        _send_out(sb)
        out["plain_from"] = _received(outside)  # confined: nothing leaves
        # the control: without its drop rule, the host would route it out unmasqueraded
        forward.delete_rules(ipaddress.IPv4Address(sb.network.address.ip))
        _send_out(sb)
        out["unconfined_from"] = _received(outside)
        out["address"] = str(sb.network.address.ip)
    return out


def test_outbound_is_masqueraded_only_when_asked_and_needs_ip_forward():
    out = in_stand_in_host(_outbound)
    assert "net.ipv4.ip_forward" in out["off"]
    assert any("masquerade" in r and "!=" in r for r in out["rules"])
    assert out["report"] is True and "outbound masqueraded" in out["note"]
    assert out["outbound_from"] == "10.250.0.1"  # it left, with the host's address
    # not asked, while the host forwards: one rule, dropping what would leave
    assert len(out["plain_rules"]) == 1 and '"drop"' in out["plain_rules"][0]
    assert out["plain_from"] is None
    assert out["unconfined_from"] == out["address"]


# ── user namespaces ──────────────────────────────────────────────────────────

NS_GET_USERNS = 0xB701


def _owned_by_userns():
    import fcntl

    from volt_enforce.net import netns

    holder = subprocess.Popen(["unshare", "-U", "-r", "sleep", "60"])
    try:
        for _ in range(200):
            if os.readlink(f"/proc/{holder.pid}/ns/user") != os.readlink("/proc/self/ns/user"):
                break
            time.sleep(0.01)
        ufd = os.open(f"/proc/{holder.pid}/ns/user", os.O_RDONLY)
        owned, plain = netns.new_netns(ufd), netns.new_netns()
        result = {}
        for name, fd in (("owned", owned), ("plain", plain)):
            owner = fcntl.ioctl(fd, NS_GET_USERNS)
            result[name + "_owner"] = os.fstat(owner).st_ino == os.fstat(ufd).st_ino
            os.close(owner)
            # root of the user namespace binds port 80 in a namespace it owns only
            r = subprocess.run(["nsenter", f"--user=/proc/{holder.pid}/ns/user",
                                f"--net=/proc/{os.getpid()}/fd/{fd}", PY, "-c",
                                "import socket; socket.socket().bind(('0.0.0.0', 80))"],
                               capture_output=True, text=True)
            result[name + "_bind80"] = r.returncode == 0
            os.close(fd)
        # a Sandbox given the user namespace: its network belongs to it, and a child joins it
        with ve.Sandbox(private(), userns_fd=ufd) as sb:
            owner = fcntl.ioctl(sb.network.netns_fd, NS_GET_USERNS)
            result["sandbox_owner"] = os.fstat(owner).st_ino == os.fstat(ufd).st_ino
            os.close(owner)
            r = sb.run(["ip", "-4", "-o", "addr", "show", "eth0"], capture_output=True, text=True)
            result["sandbox_child"] = sb.network.report()["address"] in r.stdout
        os.close(ufd)
        return result
    finally:
        holder.kill()
        holder.wait()


def test_netns_owned_by_a_given_user_namespace():
    need_userns()
    got = in_stand_in_host(_owned_by_userns)
    assert got == {"owned_owner": True, "owned_bind80": True, "plain_owner": False, "plain_bind80": False,
                   "sandbox_owner": True, "sandbox_child": True}


# ── cleanup on every path ────────────────────────────────────────────────────


def _many_runs(n: int):
    from volt_enforce import net

    cfg = private(PortForward(8080, 80), PortForward(8081, 81, "udp"), dns=["192.0.2.1"])
    ve.run(["true"], isolation=cfg)  # imports and caches settle first
    fds = len(os.listdir("/proc/self/fd"))
    for _ in range(n):
        assert ve.run(["true"], isolation=cfg).returncode == 0
    assert len(os.listdir("/proc/self/fd")) == fds, "fds leaked"
    # Popen(isolation=...) owns its sandbox: the network lives until the child is waited for
    p = ve.Popen(["sleep", "0.3"], isolation=cfg)
    during = net.leaked()
    p.wait()
    assert len(during["leases"]) == 1 and len(during["veths"]) == 1 and during["rules"]
    return net.leaked(), os.listdir(os.path.join("/run/volt-enforce/net",
                                                 str(os.stat("/proc/self/ns/net").st_ino), "voltbr0"))


def test_two_hundred_runs_leave_no_veth_lease_or_rule():
    left, files = in_stand_in_host(_many_runs, 200)
    assert left == {"veths": [], "leases": [], "rules": []}
    assert sorted(files) == ["leases.json", "lock"]  # no resolv.conf left


def _spawn_failures():
    from volt_enforce import net

    out = []
    try:
        ve.run(["/nonexistent/binary"], isolation=private(PortForward(8080, 80)))
    except FileNotFoundError:
        out.append(net.leaked())
    with ve.Sandbox(private(PortForward(8080, 80))) as sb:
        sb.plan._inject_failure("seccomp")
        try:
            sb.run(["true"])
        except EnforcementError as exc:
            out.append(exc.step)
        out.append(bool(net.leaked()["veths"]))  # still up while the sandbox is open
    out.append(net.leaked())
    # a failure while building the network itself (the nftables step)
    from volt_enforce.net import forward

    real = forward.add_rules

    def broken(*a, **k):
        raise EnforcementError(errno.EIO, "nftables", "injected by the test")

    forward.add_rules = broken
    try:
        ve.Sandbox(private(PortForward(8080, 80)))
    except EnforcementError as exc:
        out.append(str(exc))
    finally:
        forward.add_rules = real
    out.append(net.leaked())
    s = socket.create_server(("0.0.0.0", 8080))  # the port was let go too
    s.close()
    return out


def _forked_close():
    from volt_enforce import net

    with ve.Sandbox(private()) as sb:
        pid = os.fork()
        if pid == 0:
            sb.close()  # a forked copy closing: the parent's network stays
            os._exit(0)
        os.waitpid(pid, 0)
        alive = net.leaked()
        r = sb.run(["ip", "-4", "-o", "addr", "show", "eth0"], capture_output=True, text=True)
    return alive, r.stdout


def test_a_forked_copy_never_takes_the_network_down():
    alive, out = in_stand_in_host(_forked_close)
    assert len(alive["leases"]) == 1 and len(alive["veths"]) == 1
    assert "10.213.0.2/16" in out


def test_spawn_failures_and_close_leave_nothing():
    empty = {"veths": [], "leases": [], "rules": []}
    got = in_stand_in_host(_spawn_failures)
    assert got[0] == empty
    assert got[1] == "seccomp" and got[2] is True and got[3] == empty
    assert "injected" in got[4] and got[5] == empty


_CRASHER = """
import sys, time, volt_enforce as ve
from volt_enforce import IsolationConfig, NetworkConfig, NetworkMode, PortForward
# contain=False: a contained child would die with this process (its init watches it)
sb = ve.Sandbox(IsolationConfig(network=NetworkConfig(mode=NetworkMode.PRIVATE, dns=["192.0.2.1"],
                port_forwards=[PortForward(8080, 80)])), contain=False)
child = sb.popen(["sleep", "60"])  # keeps the namespace, so its veth, alive
print(sb.network.report()["address"], child.pid, flush=True)
time.sleep(60)
"""


def _killed_parent():
    from volt_enforce import net

    p = subprocess.Popen([sys.executable, "-c", _CRASHER], stdout=subprocess.PIPE, text=True)
    address, orphan = p.stdout.readline().split()
    p.send_signal(signal.SIGKILL)
    p.wait()
    after_kill = net.leaked()
    # the next user reclaims the stale lease: its veth, rules, file and address
    with ve.Sandbox(private(PortForward(8080, 80))) as sb:
        during = net.leaked()
        mine = sb.network.report()["address"]
    os.kill(int(orphan), signal.SIGKILL)
    return address, after_kill, during, mine


def test_killed_parent_is_reclaimed_on_next_use():
    address, after_kill, during, mine = in_stand_in_host(_killed_parent)
    ip = address.split("/")[0]
    assert after_kill["leases"] == [ip] and after_kill["veths"] and after_kill["rules"]
    assert during["leases"] == [mine.split("/")[0]] and len(during["veths"]) == 1
    assert mine == address  # the stale address was freed and leased again


def _stale_lease_of_a_reused_pid():
    from volt_enforce.net import lease

    me = lease.process_owner()
    return lease.owner_alive(me), lease.owner_alive({**me, "start": "1"}), \
        lease.owner_alive({"pid": 2 ** 22 + 1, "start": "5"})


def test_lease_owner_identity():
    assert _stale_lease_of_a_reused_pid() == (True, False, False)


# ── the seed's defaults ──────────────────────────────────────────────────────


def _default_isolation_service(tmp: str):
    with open(os.path.join(tmp, "index.html"), "w") as f:
        f.write("seed service\n")
    cfg = ve.default_isolation("/")
    cfg.landlock.rules.append(ve.LandlockRule(path=tmp, access=ve.LandlockAccess.READ_ONLY))
    cfg.network.port_forwards.append(PortForward(8080, 80))
    with ve.Sandbox(cfg) as sb:
        p = sb.popen([PY, "-m", "http.server", "80", "--directory", tmp],
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            _wait_port("127.0.0.1", 8080)
            body = urllib.request.urlopen("http://127.0.0.1:8080/index.html", timeout=5).read().decode()
        finally:
            p.kill()
            p.wait()
        resolv = sb.run(["cat", "/etc/resolv.conf"], capture_output=True, text=True).stdout
        return body, resolv, sb.report.namespaces


def test_default_isolation_service_is_reachable_through_its_forward(tmp_path):
    need_userns()
    # the user namespace's root is an unprivileged host uid: it cannot read below
    # tmp_path's 0700 parents, so it serves a directory it can reach
    served = tempfile.mkdtemp(prefix="volt-http-", dir="/tmp")
    os.chmod(served, 0o755)
    try:
        body, resolv, namespaces = in_stand_in_host(_default_isolation_service, served)
    finally:
        shutil.rmtree(served)
    assert body == "seed service\n"
    assert "nameserver 1.1.1.1\nnameserver 1.0.0.1\n" in resolv  # the seed's DNS servers
    assert "user" in namespaces and "network" in namespaces


# ── pyroute2 only when used ──────────────────────────────────────────────────


def _imports():
    code = ("import sys, volt_enforce as ve\n"
            "a = 'pyroute2' in sys.modules\n"
            "ve.run(['true'], isolation=ve.IsolationConfig(network=ve.NetworkConfig(mode=ve.NetworkMode.NONE)))\n"
            "b = 'pyroute2' in sys.modules\n"
            "ve.run(['true'], isolation=ve.IsolationConfig(network=ve.NetworkConfig()))\n"
            "print(a, b, 'pyroute2' in sys.modules)")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout


def test_pyroute2_is_imported_only_for_a_private_network():
    assert in_stand_in_host(_imports).split() == ["False", "False", "True"]


# ── pure logic ───────────────────────────────────────────────────────────────


@pytest.mark.parametrize("address,name", [("10.213.0.2", "vz0ad50002"), ("192.168.255.254", "vzc0a8fffe")])
def test_veth_names(address, name):
    from volt_enforce.net.bridge import veth_name

    assert veth_name(ipaddress.IPv4Address(address)) == name and len(name) <= 15


def test_outbound_json_is_written_only_when_true():
    net = NetworkConfig(mode="private")
    assert "Outbound" not in net.to_dict()
    on = NetworkConfig.from_json('{"Mode": "private", "Outbound": true}')
    assert on.outbound is True and on.to_dict()["Outbound"] is True
    with pytest.raises(ve.PolicyError, match="Network.Outbound"):
        NetworkConfig.from_json('{"Outbound": "yes"}')


def test_resolv_bind_target_follows_a_symlink(tmp_path, monkeypatch):
    from volt_enforce.net import dns

    target = tmp_path / "run" / "stub-resolv.conf"
    target.parent.mkdir()
    target.write_text("nameserver 127.0.0.53\n")
    link = tmp_path / "resolv.conf"
    link.symlink_to(target)
    monkeypatch.setattr(dns, "HOST_RESOLV_CONF", str(link))
    assert dns.bind_target() == str(target)  # the bind goes over the target, as in /run
    target.unlink()  # dangling: an error naming both
    with pytest.raises(EnforcementError, match="resolv.conf.*stub-resolv.conf"):
        dns.bind_target()


def test_resolv_conf_text():
    from volt_enforce.net import dns

    assert dns.resolv_conf_text(["192.0.2.1", "2001:db8::1"]).splitlines()[1:] == [
        "nameserver 192.0.2.1", "nameserver 2001:db8::1"]


@pytest.mark.parametrize("text,parsed", [("8080:80", (8080, 80, "tcp")), ("53:5353/udp", (53, 5353, "udp")),
                                         ("1:65535/tcp", (1, 65535, "tcp"))])
def test_publish_option_vectors(text, parsed):
    from volt_enforce.cli import _publish

    assert _publish(text) == parsed


@pytest.mark.parametrize("text", ["80", "0:80", "80:0", "65536:80", "a:b", "80:80/sctp", ":80", "80:"])
def test_publish_option_refuses(text):
    import argparse

    from volt_enforce.cli import _publish

    with pytest.raises(argparse.ArgumentTypeError, match="HOST:CONTAINER"):
        _publish(text)



@given(st.ip_addresses(v=4), st.ip_addresses(v=4))
def test_veth_names_are_unique_per_address(a, b):
    from volt_enforce.net.bridge import veth_name

    assert (veth_name(a) == veth_name(b)) == (a == b)
    assert len(veth_name(a)) <= 15


@given(st.builds(lambda pid, start, fw, out, rules: {
    "veth": "vz0ad50002", "owner": {"pid": pid, "start": start},
    "forwards": [[p, h, c] for p, h, c in fw], "outbound": out, "resolv": "", "rules": rules},
    st.integers(1, 2 ** 22), st.text("0123456789", min_size=1, max_size=12),
    st.lists(st.tuples(st.sampled_from(["tcp", "udp"]), st.integers(1, 65535), st.integers(1, 65535)),
             max_size=4), st.booleans(), st.booleans()))
def test_lease_records_round_trip(doc):
    from volt_enforce.net.lease import Lease

    assert Lease.from_dict("10.213.0.2", doc).to_dict() == doc
