"""The private network from the CLI (--network private, --bridge, --publish, --dns,
--outbound), explain, and volt-init's pinned networks (net up / net down), each
in a network namespace standing in for the host (netns_host)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from kernelreq import need_private_network
from netns_host import in_stand_in_host

from volt_enforce.init_plan import volt_init_path

VE = [sys.executable, "-m", "volt_enforce"]


@pytest.fixture(autouse=True)
def _needs():
    need_private_network()


def ve(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*VE, *args], capture_output=True, text=True)


def _cli_run():
    r = ve("run", "--network", "private", "--publish", "8080:80", "--publish", "5353:53/udp",
           "--dns", "192.0.2.9", "--dns", "192.0.2.10", "--", "sh", "-c",
           "cat /etc/resolv.conf; ip -4 -o addr show eth0; ip route")
    bad = [ve("run", "--network", "host", "--dns", "192.0.2.9", "--", "true"),
           ve("run", "--publish", "80", "--", "true"),
           ve("run", "--publish", "8080:80/sctp", "--", "true"),
           ve("run", "--dns", "not-an-ip", "--", "true")]
    return r.returncode, r.stdout, r.stderr, [(b.returncode, b.stderr) for b in bad]


def test_run_with_a_private_network():
    rc, out, err, bad = in_stand_in_host(_cli_run)
    assert rc == 0, err
    assert "nameserver 192.0.2.9\nnameserver 192.0.2.10\n" in out
    assert "inet 10.213.0.2/16" in out and "default via 10.213.0.1 dev eth0" in out
    (h, herr), (p, perr), (s, serr), (d, derr) = bad
    assert h == 125 and "--dns" in herr and "private" in herr
    assert p == 125 and "--publish" in perr and "'80'" in perr
    assert s == 125 and "8080:80/sctp" in serr
    assert d == 125 and "Network.DNS[0]" in derr and "not-an-ip" in derr


def _explain():
    text = ve("explain", "--network", "private", "--publish", "8080:80", "--dns", "192.0.2.1")
    js = ve("explain", "--json", "--network", "private", "--bridge", "br-x", "--outbound")
    links = subprocess.run(["ip", "-br", "link"], capture_output=True, text=True).stdout
    return text.stdout, text.stderr, json.loads(js.stdout), links


def test_explain_shows_address_routes_and_forwards_and_makes_nothing():
    text, err, js, links = in_stand_in_host(_explain)
    assert "address: eth0 10.213.0.2/16" in text, err
    assert "route: default via 10.213.0.1 dev eth0" in text
    assert "forward: host port 8080/tcp -> 80" in text and "dns: 192.0.2.1" in text
    net = js["network"]
    assert net["bridge"] == "br-x" and net["bridge_exists"] is False and net["outbound"] is True
    assert "net.ipv4.ip_forward" in net["outbound_error"]  # the stand-in host does not forward
    assert "voltbr0" not in links and "br-x" not in links  # explaining made nothing


def _volt_init(tmp: str):
    plan = os.path.join(tmp, "plan")
    name = f"t{os.getpid()}"
    up = ve("net", "up", name, "--publish", "8080:80", "--dns", "192.0.2.7", "--json")
    again = ve("net", "up", name)
    comp = ve("compile", "--profile", "none", "--network", "private", "--dns", "192.0.2.7",
              "--netns", name, "-o", plan)
    unnamed = ve("compile", "--profile", "none", "--network", "private", "-o", plan + "2")
    r = subprocess.run([volt_init_path(), plan, "--", "sh", "-c",
                        "cat /etc/resolv.conf; ip -4 -o addr show eth0"], capture_output=True, text=True)
    from volt_enforce import net

    during = net.leaked()
    down = ve("net", "down", name)
    twice = ve("net", "down", name)
    missing = subprocess.run([volt_init_path(), plan, "--", "true"], capture_output=True, text=True)
    return (up.returncode, up.stdout, up.stderr, again.returncode, again.stderr, comp.returncode,
            comp.stderr, unnamed.returncode, unnamed.stderr, r.returncode, r.stdout, r.stderr, during,
            down.returncode, twice.returncode, twice.stderr, missing.returncode, missing.stderr,
            os.path.exists(f"/run/volt-enforce/netns/{name}"))


def test_net_up_volt_init_joins_net_down_removes(tmp_path):
    (up, upout, uperr, again, againerr, comp, comperr, unnamed, unnamederr, rc, out, err, during,
     down, twice, twiceerr, missing, missingerr, pin_left) = in_stand_in_host(_volt_init, str(tmp_path))
    assert up == 0, uperr
    address = json.loads(upout)["address"]
    assert again == 125 and "is up" in againerr
    assert comp == 0, comperr
    assert unnamed == 125 and "net up NAME" in unnamederr  # never a plan that would skip it
    assert rc == 0, err
    assert "nameserver 192.0.2.7" in out and f"inet {address}" in out
    assert during["leases"] == [address.split("/")[0]] and len(during["veths"]) == 1
    assert down == 0 and twice == 125 and "was not up" in twiceerr
    assert missing == 125 and "pinned namespace" in missingerr  # down: volt-init cannot join
    assert not pin_left


def _exec_in_place():
    from volt_enforce import net

    r = ve("exec", "--network", "private", "--", "ip", "-4", "-o", "addr", "show", "eth0")
    left = net.leaked()  # the process that joined it is gone: its lease is stale now
    again = ve("run", "--network", "private", "--", "true")  # reclaims it
    return r.returncode, r.stdout, r.stderr, left["leases"], again.returncode


def test_exec_joins_in_place_and_its_lease_is_reclaimed_after_it():
    rc, out, err, left, again = in_stand_in_host(_exec_in_place)
    assert rc == 0, err
    assert "inet 10.213.0.2/16" in out
    assert left == ["10.213.0.2"] and again == 0  # the stand-in's leak check: nothing left
