"""Every validation error names the field (in the seed's JSON spelling) and the value,
and bad input never yields a half-built object."""

from __future__ import annotations

import copy
import json

import pytest

import volt_enforce as ve
from volt_enforce import (
    IsolationConfig,
    LandlockPolicy,
    LandlockRule,
    NetworkConfig,
    PolicyError,
    PortForward,
    ResourceLimits,
)
from volt_enforce.model import parse_cpu_quota


def _doc(**parts):
    """A valid default document with some parts replaced (JSON-shaped)."""
    d = json.loads(ve.default_isolation("/srv/rootfs").to_json())
    for key, value in parts.items():
        d[key] = value
    return d


def _rules(*extra):
    rules = [{"Path": "/usr", "Access": 13}, {"Path": "/etc", "Access": 12}]
    return {"Rules": rules + list(extra)}


def _res(**kw):
    r = json.loads(ve.default_resource_limits().to_json())
    r.update(kw)
    return r


def _net(**kw):
    n = {"Mode": "private", "Bridge": "voltbr0", "PortForwards": None, "DNS": None}
    n.update(kw)
    return n


def res(**kw):
    return _doc(Resources=_res(**kw))


def rule(*extra):
    return _doc(Landlock=_rules(*extra))


def net(**kw):
    return _doc(Network=_net(**kw))


def ll(part):
    return _doc(Landlock=part)


top = _doc


_PF_OK = {"HostPort": 80, "ContainerPort": 8080, "Protocol": "tcp"}

# (id, document, field, value, words of the reason)
JSON_CASES = [
    # sizes
    ("size-12Q", res(MemoryHard="12Q"), "Resources.MemoryHard", "12Q", "is not a size"),
    ("size-decimal", res(MemorySoft="1.5G"), "Resources.MemorySoft", "1.5G", "is not a size"),
    ("size-negative", res(MemoryHard="-1"), "Resources.MemoryHard", "-1", "is not a size"),
    ("size-space", res(MemoryHard="1 G"), "Resources.MemoryHard", "1 G", "is not a size"),
    ("size-newline", res(MemoryHard="1G\n"), "Resources.MemoryHard", "1G\n", "is not a size"),
    ("size-unit-B", res(MemoryHard="1GB"), "Resources.MemoryHard", "1GB", "is not a size"),
    ("size-huge", res(MemoryHard="8589934592G"),
     "Resources.MemoryHard", "8589934592G", "too large"),
    ("size-swap", res(MemorySwap="lots"), "Resources.MemorySwap", "lots", "is not a size"),
    ("size-int", res(MemoryHard=512), "Resources.MemoryHard", 512, "is not a string"),
    # weights
    ("cpu-weight-high", res(CPUWeight=10001),
     "Resources.CPUWeight", 10001, "out of range (0..10000)"),
    ("cpu-weight-neg", res(CPUWeight=-1), "Resources.CPUWeight", -1, "out of range"),
    ("io-weight-high", res(IOWeight=10001), "Resources.IOWeight", 10001, "out of range"),
    ("io-weight-neg", res(IOWeight=-5), "Resources.IOWeight", -5, "out of range"),
    ("cpu-weight-bool", res(CPUWeight=True), "Resources.CPUWeight", True, "is not an integer"),
    ("cpu-weight-float", res(CPUWeight=100.0), "Resources.CPUWeight", 100.0, "is not an integer"),
    ("cpu-weight-str", res(CPUWeight="100"), "Resources.CPUWeight", "100", "is not an integer"),
    # cpusets
    ("cpuset-reversed", res(CPUSet="3-1"), "Resources.CPUSet", "3-1", "reversed range '3-1'"),
    ("cpuset-reversed-late", res(CPUSet="0,5-4"),
     "Resources.CPUSet", "0,5-4", "reversed range '5-4'"),
    ("cpuset-open", res(CPUSet="0-"), "Resources.CPUSet", "0-", "is not a CPU list"),
    ("cpuset-letters", res(CPUSet="all"), "Resources.CPUSet", "all", "is not a CPU list"),
    ("cpuset-space", res(CPUSet="0, 1"), "Resources.CPUSet", "0, 1", "is not a CPU list"),
    ("cpuset-double-comma", res(CPUSet="0,,1"), "Resources.CPUSet", "0,,1", "is not a CPU list"),
    ("cpuset-newline", res(CPUSet="0-3\n"), "Resources.CPUSet", "0-3\n", "is not a CPU list"),
    ("cpuset-too-big", res(CPUSet="0-8192"), "Resources.CPUSet", "0-8192", "CPU 8192"),
    # pids
    ("pids-negative", res(PIDsMax=-1), "Resources.PIDsMax", -1, "out of range (0.."),
    ("pids-huge", res(PIDsMax=2**31), "Resources.PIDsMax", 2**31, "out of range"),
    ("pids-bool", res(PIDsMax=False), "Resources.PIDsMax", False, "is not an integer"),
    ("cpu-quota", res(CPUQuota="50"), "Resources.CPUQuota", "50", "percentage"),
    ("cpu-quota-zero", res(CPUQuota="0%"), "Resources.CPUQuota", "0%", "positive"),
    # paths and access
    ("path-relative", rule({"Path": "srv/app", "Access": 13}),
     "Landlock.Rules[2].Path", "srv/app", "is not an absolute path"),
    ("path-empty", rule({"Path": "", "Access": 13}),
     "Landlock.Rules[2].Path", "", "is not an absolute path"),
    ("path-nul", rule({"Path": "/srv/a\0b", "Access": 13}),
     "Landlock.Rules[2].Path", "/srv/a\0b", "NUL"),
    ("path-surrogate", rule({"Path": "/srv/\ud800", "Access": 13}),
     "Landlock.Rules[2].Path", "/srv/\ud800", "cannot be encoded"),
    ("path-number", rule({"Path": 5, "Access": 13}),
     "Landlock.Rules[2].Path", 5, "is not a string"),
    ("path-missing", rule({"Access": 13}), "Landlock.Rules[2].Path", None, "is required"),
    ("access-missing", rule({"Path": "/x"}), "Landlock.Rules[2].Access", None, "is required"),
    ("access-unknown-bit", rule({"Path": "/x", "Access": 1 << 17}),
     "Landlock.Rules[2].Access", 1 << 17, "unknown access bits 0x20000"),
    ("access-net-bit", rule({"Path": "/x", "Access": (1 << 20) | 1}),
     "Landlock.Rules[2].Access", (1 << 20) | 1, "unknown access bits 0x100000"),
    ("access-zero", rule({"Path": "/x", "Access": 0}),
     "Landlock.Rules[2].Access", 0, "grants no access"),
    ("access-negative", rule({"Path": "/x", "Access": -1}),
     "Landlock.Rules[2].Access", -1, "is negative"),
    ("access-bool", rule({"Path": "/x", "Access": True}),
     "Landlock.Rules[2].Access", True, "is not an access mask"),
    ("access-string", rule({"Path": "/x", "Access": "13"}),
     "Landlock.Rules[2].Access", "13", "is not an access mask"),
    ("rule-optional-int", rule({"Path": "/x", "Access": 1, "Optional": 1}),
     "Landlock.Rules[2].Optional", 1, "is not a boolean"),
    ("rule-not-object", rule("/x"), "Landlock.Rules[2]", "/x", "is not a JSON object"),
    ("rules-not-list", ll({"Rules": {"Path": "/x"}}),
     "Landlock.Rules", {"Path": "/x"}, "is not a list"),
    ("bind-port", ll({"Rules": None, "BindTCP": [80, 65536]}),
     "Landlock.BindTCP[1]", 65536, "out of range"),
    ("connect-not-list", ll({"ConnectTCP": 443}),
     "Landlock.ConnectTCP", 443, "is not a list of ports"),
    ("connect-port-bool", ll({"ConnectTCP": [True]}),
     "Landlock.ConnectTCP[0]", True, "is not an integer"),
    ("scope-name", ll({"Scopes": ["signal", "ptrace"]}),
     "Landlock.Scopes[1]", "ptrace", "is not one of"),
    ("scope-bits", ll({"Scopes": 4}), "Landlock.Scopes", 4, "unknown bits"),
    ("logging-name", ll({"Logging": ["loud"]}), "Landlock.Logging[0]", "loud", "is not one of"),
    ("compat", ll({"Compatibility": "strict"}),
     "Landlock.Compatibility", "strict", "is not one of"),
    ("missing-paths", ll({"MissingPaths": "ignore"}),
     "Landlock.MissingPaths", "ignore", "is not one of"),
    ("runtime", ll({"Runtime": "yes"}), "Landlock.Runtime", "yes", "is not a boolean"),
    # network
    ("host-port-zero", net(PortForwards=[_PF_OK, {"HostPort": 0, "ContainerPort": 80}]),
     "Network.PortForwards[1].HostPort", 0, "out of range (1..65535)"),
    ("host-port-high", net(PortForwards=[{"HostPort": 65536, "ContainerPort": 80}]),
     "Network.PortForwards[0].HostPort", 65536, "out of range"),
    ("host-port-missing", net(PortForwards=[{"ContainerPort": 80}]),
     "Network.PortForwards[0].HostPort", 0, "out of range"),
    ("container-port", net(PortForwards=[{"HostPort": 80, "ContainerPort": -80}]),
     "Network.PortForwards[0].ContainerPort", -80, "out of range"),
    ("port-string", net(PortForwards=[{"HostPort": "80", "ContainerPort": 80}]),
     "Network.PortForwards[0].HostPort", "80", "is not an integer"),
    ("protocol",
     net(PortForwards=[_PF_OK, {"HostPort": 1, "ContainerPort": 1, "Protocol": "sctp"}]),
     "Network.PortForwards[1].Protocol", "sctp", "is not 'tcp' or 'udp'"),
    ("protocol-upper", net(PortForwards=[{"HostPort": 1, "ContainerPort": 1, "Protocol": "TCP"}]),
     "Network.PortForwards[0].Protocol", "TCP", "is not 'tcp' or 'udp'"),
    ("forward-unknown-key", net(PortForwards=[{"HostPort": 1, "ContainerPort": 1, "Proto": "udp"}]),
     "Network.PortForwards[0].Proto", "udp", "is not a known field"),
    ("forwards-not-list", net(PortForwards={"HostPort": 1}),
     "Network.PortForwards", {"HostPort": 1}, "is not a list"),
    ("mode", net(Mode="bridge"),
     "Network.Mode", "bridge", "is not one of 'private', 'host', 'none'"),
    ("mode-case", net(Mode="Private"), "Network.Mode", "Private", "is not one of"),
    ("mode-type", net(Mode=1), "Network.Mode", 1, "is not a string"),
    ("bridge-long", net(Bridge="a" * 16), "Network.Bridge", "a" * 16, "interface name"),
    ("bridge-slash", net(Bridge="br/0"), "Network.Bridge", "br/0", "interface name"),
    ("bridge-newline", net(Bridge="br0\n"), "Network.Bridge", "br0\n", "interface name"),
    ("bridge-dot", net(Bridge=".."), "Network.Bridge", "..", "interface name"),
    ("dns", net(DNS=["1.1.1.1", "one.one"]), "Network.DNS[1]", "one.one", "is not an IP address"),
    ("dns-not-list", net(DNS="1.1.1.1"), "Network.DNS", "1.1.1.1", "is not a list"),
    ("dns-number", net(DNS=[16843009]), "Network.DNS[0]", 16843009, "is not a string"),
    # profiles and top level
    ("profile", top(Seccomp="paranoid"),
     "Seccomp", "paranoid", "is not 'strict', 'default', 'unconfined'"),
    ("profile-case", top(Seccomp="Strict"), "Seccomp", "Strict", "is not 'strict'"),
    ("profile-relative-file", top(Seccomp="profiles/x.json"),
     "Seccomp", "profiles/x.json", "absolute path"),
    ("profile-type", top(Seccomp=2), "Seccomp", 2, "is not a string"),
    ("private-users-int", top(PrivateUsers=1), "PrivateUsers", 1, "is not a boolean"),
    ("read-only-str", top(ReadOnlyFS="false"), "ReadOnlyFS", "false", "is not a boolean"),
    ("caps-name", top(Capabilities=["CAP_CHOWN", "CAP_FLY"]),
     "Capabilities[1]", "CAP_FLY", "is not a capability name"),
    ("caps-string", top(Capabilities="CAP_CHOWN"),
     "Capabilities", "CAP_CHOWN", "is not a list of capability names"),
    ("caps-number", top(Capabilities=[0]), "Capabilities[0]", 0, "is not a string"),
    # unknown keys and wrong shapes
    ("unknown-top", top(Hostname="web"), "Hostname", "web", "is not a known field"),
    ("unknown-resources", res(MemoryMax="1G"), "Resources.MemoryMax", "1G", "is not a known field"),
    ("unknown-landlock", ll({"Rules": None, "Rulez": []}),
     "Landlock.Rulez", [], "is not a known field"),
    ("unknown-rule", rule({"Path": "/x", "Access": 1, "Mode": "ro"}),
     "Landlock.Rules[2].Mode", "ro", "is not a known field"),
    ("part-not-object", top(Resources=["2G"]), "Resources", ["2G"], "is not a JSON object"),
    ("landlock-string", ll("server"), "Landlock", "server", "is not a JSON object"),
]


@pytest.mark.parametrize("doc,field,value,reason", [c[1:] for c in JSON_CASES],
                         ids=[c[0] for c in JSON_CASES])
def test_json_validation_error_names_field_and_value(doc, field, value, reason):
    before = copy.deepcopy(doc)
    with pytest.raises(PolicyError) as ei:
        IsolationConfig.from_dict(doc)
    err = ei.value
    assert err.field == field
    assert err.value == value and type(err.value) is type(value)
    assert reason in err.reason
    assert str(err).startswith(f"{field}: {value!r} ")
    assert isinstance(err, ValueError)
    assert doc == before  # the input is untouched
    # the same through the text form
    with pytest.raises(PolicyError) as ei:
        IsolationConfig.from_json(json.dumps(doc))
    assert ei.value.field == field


def test_the_issues_example_message():
    with pytest.raises(PolicyError) as ei:
        ResourceLimits(memory_hard="12Q")
    assert str(ei.value).startswith("Resources.MemoryHard: '12Q' is not a size")


def test_invalid_json_text():
    for text in ('{"Seccomp":', "", "{'Seccomp': 'strict'}", b"\xff{}", "NaN"):
        with pytest.raises(PolicyError) as ei:
            IsolationConfig.from_json(text)
        assert ei.value.field == "document"
    for text in ("[]", '"x"', "5", "true"):
        with pytest.raises(PolicyError) as ei:
            IsolationConfig.from_json(text)
        assert ei.value.field == "document" and "JSON object" in ei.value.reason


# (id, constructor, field, value) for the Python API
CTOR_CASES = [
    ("rule-relative", lambda: LandlockRule(path="usr", access=1), "LandlockRule.Path", "usr"),
    ("rule-bytes", lambda: LandlockRule(path=b"/usr", access=1), "LandlockRule.Path", b"/usr"),
    ("rule-access-float", lambda: LandlockRule(path="/u", access=1.0), "LandlockRule.Access", 1.0),
    ("rule-access-zero", lambda: LandlockRule(path="/u", access=ve.LandlockAccess(0)),
     "LandlockRule.Access", 0),
    ("policy-rules-int", lambda: LandlockPolicy(rules=5), "Landlock.Rules", 5),
    ("policy-rule-dict", lambda: LandlockPolicy(rules=[{"Path": "/u", "Access": 1}]),
     "Landlock.Rules[0]", {"Path": "/u", "Access": 1}),
    ("policy-compat", lambda: LandlockPolicy(compatibility="maybe"),
     "Landlock.Compatibility", "maybe"),
    ("limits-weight", lambda: ResourceLimits(cpu_weight=20000), "Resources.CPUWeight", 20000),
    ("limits-size-none", lambda: ResourceLimits(memory_hard=None), "Resources.MemoryHard", None),
    ("limits-cpuset-int", lambda: ResourceLimits(cpu_set=3), "Resources.CPUSet", 3),
    ("forward", lambda: PortForward(host_port=80, container_port=0),
     "PortForward.ContainerPort", 0),
    ("forward-proto", lambda: PortForward(host_port=80, container_port=80, protocol=None),
     "PortForward.Protocol", None),
    ("network-mode", lambda: NetworkConfig(mode="bridge"), "Network.Mode", "bridge"),
    ("network-dns-str", lambda: NetworkConfig(dns="1.1.1.1"), "Network.DNS", "1.1.1.1"),
    ("network-forwards-int", lambda: NetworkConfig(port_forwards=1), "Network.PortForwards", 1),
    ("network-forward-tuple", lambda: NetworkConfig(port_forwards=[(80, 80)]),
     "Network.PortForwards[0]", (80, 80)),
    ("iso-landlock-dict", lambda: IsolationConfig(landlock={"Rules": []}),
     "Landlock", {"Rules": []}),
    ("iso-resources", lambda: IsolationConfig(resources="2G"), "Resources", "2G"),
    ("iso-network", lambda: IsolationConfig(network="host"), "Network", "host"),
    ("iso-seccomp", lambda: IsolationConfig(seccomp="loose"), "Seccomp", "loose"),
    ("iso-private-users", lambda: IsolationConfig(private_users="yes"), "PrivateUsers", "yes"),
    ("iso-caps", lambda: IsolationConfig(capabilities=["SYS_ADMIN", "sys_fly"]),
     "Capabilities[1]", "sys_fly"),
    ("preset-relative", lambda: ve.server_policy("srv"), "rootfs", "srv"),
    ("preset-nul", lambda: ve.desktop_policy("/srv\0"), "rootfs", "/srv\0"),
    ("default-isolation", lambda: ve.default_isolation("rootfs"), "rootfs", "rootfs"),
    ("parse-size", lambda: ve.parse_size("1P"), "size", "1P"),
    ("parse-size-field", lambda: ve.parse_size("x", "Resources.MemoryHard"),
     "Resources.MemoryHard", "x"),
    ("parse-cpuset", lambda: ve.parse_cpuset("2-1"), "cpuset", "2-1"),
    ("parse-quota", lambda: parse_cpu_quota("50.123%"), "CPUQuota", "50.123%"),
]


@pytest.mark.parametrize("make,field,value", [c[1:] for c in CTOR_CASES],
                         ids=[c[0] for c in CTOR_CASES])
def test_constructor_validation_error_names_field_and_value(make, field, value):
    with pytest.raises(PolicyError) as ei:
        make()
    assert ei.value.field == field
    assert ei.value.value == value and type(ei.value.value) is type(value)


def test_valid_edges_are_accepted():
    ResourceLimits(cpu_weight=1, io_weight=10000, pids_max=0, cpu_set="0", memory_hard="0",
                   memory_soft="max", memory_swap="infinity")
    ResourceLimits(cpu_weight=10000, io_weight=1, pids_max=2**31 - 1, cpu_set="0-8191")
    PortForward(host_port=1, container_port=65535, protocol="udp")
    LandlockRule(path="/", access=ve.LandlockAccess.all())
    LandlockPolicy(bind_tcp=[0, 65535], connect_tcp=[])
    NetworkConfig(mode="host", bridge="a" * 15, dns=["::1", "fe80::1%eth0", "10.0.0.1"])
    IsolationConfig(seccomp="/etc/volt/profile.json", capabilities=["cap_chown", "CHOWN", "Kill"])
    caps = IsolationConfig(capabilities=["cap_chown", "CHOWN", "Kill"]).capabilities
    assert caps == ["CHOWN", "KILL"]
    assert IsolationConfig(capabilities=[]).capabilities == []


# ── nothing half-built ───────────────────────────────────────────────────────


def _state(obj):
    return copy.deepcopy(vars(obj))


MUTATIONS = [
    ("seccomp", lambda c: setattr(c, "seccomp", "paranoid"), "Seccomp"),
    ("weight", lambda c: setattr(c.resources, "cpu_weight", -3), "Resources.CPUWeight"),
    ("size", lambda c: setattr(c.resources, "memory_soft", "12Q"), "Resources.MemorySoft"),
    ("third-rule", lambda c: setattr(c.landlock.rules[2], "path", "lib64"),
     "Landlock.Rules[2].Path"),
    ("rule-appended", lambda c: c.landlock.rules.append("/opt"), "Landlock.Rules[10]"),
    ("scopes", lambda c: setattr(c.landlock, "scopes", ["everything"]), "Landlock.Scopes[0]"),
    ("compat", lambda c: setattr(c.landlock, "compatibility", "never"), "Landlock.Compatibility"),
    ("mode", lambda c: setattr(c.network, "mode", "bridged"), "Network.Mode"),
    ("forward", lambda c: c.network.port_forwards.append(PortForward(1, 1)) or
     setattr(c.network.port_forwards[0], "protocol", "icmp"), "Network.PortForwards[0].Protocol"),
    ("dns", lambda c: c.network.dns.append("dns.google"), "Network.DNS[2]"),
    ("caps", lambda c: setattr(c, "capabilities", ["NOPE"]), "Capabilities[0]"),
]


@pytest.mark.parametrize("mutate,field", [m[1:] for m in MUTATIONS], ids=[m[0] for m in MUTATIONS])
def test_validate_after_a_bad_change_names_it_and_changes_nothing_else(mutate, field):
    cfg = ve.default_isolation("/srv/rootfs")
    # normalizable fields given in their plain spelling must stay as given
    cfg.network.mode = "private"
    cfg.landlock.compatibility = "best_effort"
    mutate(cfg)
    before = {name: _state(part) for name, part in
              (("cfg", cfg), ("landlock", cfg.landlock), ("network", cfg.network),
               ("resources", cfg.resources))}
    with pytest.raises(PolicyError) as ei:
        cfg.validate()
    assert ei.value.field == field
    after = {name: _state(part) for name, part in
             (("cfg", cfg), ("landlock", cfg.landlock), ("network", cfg.network),
              ("resources", cfg.resources))}
    # equal values: a part checked before the bad one may only have been
    # normalized ("private" -> NetworkMode.PRIVATE, which compares equal)
    assert after == before


def test_failed_from_json_returns_nothing_and_a_good_one_is_complete():
    good = _doc()
    bad = _doc(Network=_net(PortForwards=[_PF_OK, {"HostPort": 0, "ContainerPort": 1}]))
    result = None
    with pytest.raises(PolicyError):
        result = IsolationConfig.from_dict(bad)
    assert result is None
    cfg = IsolationConfig.from_dict(good)
    assert cfg.landlock is not None and cfg.network is not None and cfg.resources is not None
