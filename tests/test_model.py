"""The Python model against the seed's Go model.

tests/golden/seed.json is what the seed's own code prints for a fixed set of
inputs (tools/seed_golden/main.go, regenerated with tools/seed_golden/generate.sh).
"""

from __future__ import annotations

import hashlib
import json
import os
import re

import pytest

import volt_enforce as ve
from volt_enforce import (
    IsolationConfig,
    LandlockAccess,
    NetworkConfig,
    NetworkMode,
    PolicyError,
    PortForward,
    ResourceLimits,
    SeccompProfile,
)
from volt_enforce.model import _go_clean, _go_join

HERE = os.path.dirname(os.path.abspath(__file__))
# the suite reads no file outside the repository: the seed's check is asked for by naming it
SEED = os.environ.get("VOLT_ENFORCE_SEED")  # the Go seed's isolation.go

with open(os.path.join(HERE, "golden", "seed.json"), encoding="utf-8") as _f:
    GOLDEN = json.load(_f)


def _ids(cases, key):
    return [str(c[key]) if c[key] != "" else "empty" for c in cases]


# ── the golden file itself ───────────────────────────────────────────────────


def test_golden_is_complete_and_from_this_seed():
    for section in ("presets", "resources", "network", "isolation", "documents", "decode"):
        assert len(GOLDEN[section]) >= 5, section
    assert re.fullmatch(r"go1\.\d+(\.\d+)?", GOLDEN["go_version"])
    assert re.fullmatch(r"[0-9a-f]{64}", GOLDEN["seed_sha256"])
    # given the seed, the golden must come from it
    if SEED:
        with open(SEED, "rb") as f:
            assert hashlib.sha256(f.read()).hexdigest() == GOLDEN["seed_sha256"], (
                "the seed changed: run tools/seed_golden/generate.sh"
            )


# ── enums and access bits ────────────────────────────────────────────────────


@pytest.mark.parametrize("name", sorted(GOLDEN["access"]))
def test_access_values_match_seed(name):
    assert int(LandlockAccess[name]) == GOLDEN["access"][name]


def test_access_has_every_kernel_right_through_ioctl_dev():
    singles = [m for m in LandlockAccess if m.value & (m.value - 1) == 0]
    assert sorted(m.value for m in singles) == [1 << i for i in range(17)]
    assert LandlockAccess.IOCTL_DEV == 1 << 15
    # RESOLVE_UNIX (ABI 9) is a right rules may grant, handled by enforcement on its own
    assert LandlockAccess.RESOLVE_UNIX == 1 << 16
    assert LandlockAccess.all() == (1 << 16) - 1


def test_enum_values_match_seed():
    assert [p.value for p in SeccompProfile] == GOLDEN["enums"]["seccomp"]
    assert [m.value for m in NetworkMode] == GOLDEN["enums"]["network"]
    assert str(SeccompProfile.STRICT) == "strict"
    assert str(NetworkMode.NONE) == "none"


# ── presets ──────────────────────────────────────────────────────────────────


def _rules(policy_doc):
    return [(r["Path"], r["Access"]) for r in policy_doc["Rules"]]


@pytest.mark.parametrize("case", GOLDEN["presets"], ids=_ids(GOLDEN["presets"], "rootfs"))
def test_presets_match_seed(case):
    rootfs = case["rootfs"]
    if not rootfs.startswith("/"):
        # The seed joins a relative rootfs into relative rule paths; Landlock
        # rules need absolute ones, so the Python presets refuse it up front.
        for preset in (ve.server_policy, ve.desktop_policy):
            with pytest.raises(PolicyError) as ei:
                preset(rootfs)
            assert ei.value.field == "rootfs" and ei.value.value == rootfs
        # ... while the path arithmetic itself still matches Go's
        assert [_go_join(rootfs, os.path.basename(p)) for p, _ in _rules(case["server"])] == [
            p for p, _ in _rules(case["server"])
        ]
        return
    for preset, key in ((ve.server_policy, "server"), (ve.desktop_policy, "desktop")):
        pol = preset(rootfs)
        assert [(r.path, int(r.access)) for r in pol.rules] == _rules(case[key])
        assert all(isinstance(r.access, LandlockAccess) for r in pol.rules)
        assert json.loads(pol.to_json()) == case[key]


def test_preset_rules_are_marked_but_not_serialized():
    pol = ve.server_policy("/srv/rootfs")
    assert all(r.preset for r in pol.rules)
    assert "preset" not in pol.to_json().lower()
    # a loaded copy is equal although it is no longer marked
    again = ve.LandlockPolicy.from_json(pol.to_json())
    assert again == pol and not any(r.preset for r in again.rules)


def test_presets_are_fresh_objects():
    a, b = ve.server_policy("/"), ve.server_policy("/")
    a.rules.pop()
    assert len(b.rules) == 10 and len(ve.server_policy("/").rules) == 10


# ── resource limits ──────────────────────────────────────────────────────────


@pytest.mark.parametrize("case", GOLDEN["resources"], ids=lambda c: c["json"])
def test_systemd_properties_match_seed(case):
    limits = ResourceLimits.from_dict(case["limits"])
    assert limits.systemd_properties() == case["properties"]
    assert limits.to_json() == case["json"]


def test_default_resource_limits_match_seed():
    assert ve.default_resource_limits().to_json() == GOLDEN["resources"][0]["json"]
    assert ve.default_resource_limits() == ResourceLimits(
        memory_hard="2G", memory_soft="1G", cpu_weight=100, io_weight=100, pids_max=4096
    )


def test_new_resource_fields_come_after_the_seeds_properties():
    limits = ResourceLimits(memory_hard="1G", pids_max=5, cpu_quota="50%", memory_swap="0")
    props = limits.systemd_properties()
    seed_part = ResourceLimits(memory_hard="1G", pids_max=5).systemd_properties()
    assert props[: len(seed_part)] == seed_part
    assert props[len(seed_part):] == ["CPUQuota=50%", "MemorySwapMax=0"]
    doc = json.loads(limits.to_json())
    assert doc["CPUQuota"] == "50%" and doc["MemorySwap"] == "0"
    assert ResourceLimits.from_json(limits.to_json()) == limits


def test_parsed_resource_views():
    limits = ResourceLimits(memory_hard="2G", memory_soft="max", cpu_set="0-2,5",
                            cpu_quota="150.5%", memory_swap="1k")
    assert limits.memory_hard_bytes == 2 << 30
    assert limits.memory_soft_bytes is None  # "max" is no limit
    assert limits.memory_swap_bytes == 1024
    assert limits.cpus == [0, 1, 2, 5]
    assert limits.cpu_quota_percent == 150.5
    assert ResourceLimits().is_empty() and not limits.is_empty()
    assert ResourceLimits().memory_hard_bytes is None and ResourceLimits().cpus == []


# ── network ──────────────────────────────────────────────────────────────────


@pytest.mark.parametrize("case", GOLDEN["network"], ids=lambda c: c["json"])
def test_nspawn_network_args_match_seed(case):
    net = NetworkConfig.from_dict(case["config"])
    # Go's nil slice is JSON null; the Python model returns an empty list
    assert net.nspawn_network_args() == (case["args"] or [])
    assert net.to_json() == case["json"]


def test_network_mode_zero_value_is_a_private_network_on_the_default_bridge():
    net = NetworkConfig()
    assert net.mode is None and net.effective_mode is NetworkMode.PRIVATE
    assert net.nspawn_network_args() == ["--network-bridge=voltbr0"]
    assert NetworkConfig(mode="").mode is None


def test_port_forward_protocol_defaults_to_tcp_only_in_args():
    pf = PortForward(host_port=80, container_port=8080)
    assert pf.protocol == ""  # kept as given, as in Go
    net = NetworkConfig(mode="private", bridge="br0", port_forwards=[pf])
    assert net.nspawn_network_args() == ["--network-bridge=br0", "--port=tcp:80:8080"]


def test_default_network_config_matches_seed():
    assert ve.default_network_config().to_json() == GOLDEN["network"][0]["json"]


# ── the isolation config ─────────────────────────────────────────────────────


def test_default_isolation_json_is_byte_identical_to_go():
    d = ve.default_isolation("/srv/rootfs")
    assert d.to_json() == GOLDEN["default_isolation"]["json"]
    assert d.to_json(indent=2) == GOLDEN["default_isolation"]["json_indent"]
    # and the issue's own example
    assert d.to_json().startswith(
        '{"Landlock":{"Rules":[{"Path":"/srv/rootfs/usr","Access":13},'
    )
    assert d.to_json().endswith('"PrivateUsers":true,"ReadOnlyFS":false}')


@pytest.mark.parametrize("case", GOLDEN["isolation"], ids=lambda c: c["name"])
def test_nspawn_args_match_seed_exactly(case):
    cfg = IsolationConfig.from_json(case["json"])
    assert cfg.nspawn_args() == case["nspawn_args"]


@pytest.mark.parametrize("case", GOLDEN["isolation"], ids=lambda c: c["name"])
def test_isolation_json_matches_seed(case):
    cfg = IsolationConfig.from_json(case["json"])
    assert cfg.to_json() == case["json"]
    assert cfg.to_json(indent=2) == case["json_indent"]


def _sections(text: str) -> dict[str, list[str]]:
    """An INI text as {section: [non-empty lines]}, in order."""
    out: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        if line.startswith("["):
            current = line
            assert current not in out, f"section {current} twice"
            out[current] = []
        elif line:
            assert current is not None, f"{line!r} outside any section"
            out[current].append(line)
    return out


@pytest.mark.parametrize("case", GOLDEN["isolation"], ids=lambda c: c["name"])
def test_config_block_is_the_seeds_without_resource_control(case):
    cfg = IsolationConfig.from_json(case["json"])
    seed = _sections(case["config_block"])
    ours_text = cfg.nspawn_config_block("web")
    ours = _sections(ours_text)
    resource_control = seed.pop("[ResourceControl]")
    if cfg.read_only_fs:
        # the seed passes --read-only on the command line only; the file says it too
        assert ours.pop("[Files]") == ["ReadOnly=yes"]
    assert ours == seed
    assert list(ours) == ["[Exec]", "[Network]"]
    # the limits the seed put in [ResourceControl] are in the service drop-in
    dropin = cfg.nspawn_service_dropin()
    assert _sections(dropin)["[Service]"] == cfg.resources.systemd_properties()
    assert set(resource_control) <= set(_sections(dropin)["[Service]"])
    # textually: ours is the seed's text up to where [ResourceControl] starts
    prefix = case["config_block"].split("\n[ResourceControl]\n")[0]
    assert ours_text.startswith(prefix.rstrip("\n") + "\n")


def test_config_block_only_uses_sections_and_keys_a_nspawn_file_has():
    # systemd.nspawn(5): these sections and keys exist; [ResourceControl] does not
    allowed = {"[Exec]": {"Boot", "PrivateUsers", "Environment"},
               "[Network]": {"Bridge", "Private"}, "[Files]": {"ReadOnly"}}
    for case in GOLDEN["isolation"]:
        cfg = IsolationConfig.from_json(case["json"])
        for section, lines in _sections(cfg.nspawn_config_block("web")).items():
            assert section in allowed
            assert {line.split("=", 1)[0] for line in lines} <= allowed[section]


def test_service_dropin_with_default_limits():
    text = ve.default_isolation("/").nspawn_service_dropin()
    assert text == ("[Service]\nDelegate=yes\nMemoryMax=2G\nMemoryHigh=1G\nCPUWeight=100\n"
                    "IOWeight=100\nTasksMax=4096\n")


def test_config_block_names_the_container():
    block = ve.default_isolation("/").nspawn_config_block("db-1")
    assert "Environment=VOLT_CONTAINER=db-1\n" in block
    for bad in ("", "a\nBoot=no", 5, "x\0y"):
        with pytest.raises(PolicyError) as ei:
            ve.default_isolation("/").nspawn_config_block(bad)
        assert ei.value.field == "name" and ei.value.value == bad


@pytest.mark.parametrize("case", GOLDEN["documents"], ids=lambda c: c["name"])
def test_methods_do_not_fail_on_parts_left_out(case):
    # the seed would dereference nil here; the Python model treats a missing
    # part as "nothing for that part"
    cfg = IsolationConfig.from_json(case["json"])
    args = cfg.nspawn_args()
    block = cfg.nspawn_config_block("web")
    dropin = cfg.nspawn_service_dropin()
    if cfg.resources is None:
        assert not any(a.startswith("--property=") for a in args)
        assert dropin == "[Service]\n"
    if cfg.network is None:
        assert not any(a.startswith(("--network", "--private-network", "--port")) for a in args)
        assert _sections(block)["[Network]"] == []
    assert ("--private-users=pick" in args) == cfg.private_users
    assert ("--read-only" in args) == cfg.read_only_fs


def test_empty_config_enforces_nothing():
    cfg = IsolationConfig()
    assert (cfg.landlock, cfg.seccomp, cfg.resources, cfg.network) == (None, None, None, None)
    assert cfg.nspawn_args() == []
    assert cfg.capabilities is None


def test_keyword_construction_with_go_field_names_in_snake_case():
    cfg = IsolationConfig(
        landlock=ve.LandlockPolicy(rules=[ve.LandlockRule(path="/usr", access=13)]),
        seccomp="strict",
        resources=ResourceLimits(memory_hard="1G", memory_soft="512M", cpu_weight=10,
                                 cpu_set="0", io_weight=10, pids_max=10),
        network=NetworkConfig(mode="none", bridge="", port_forwards=[], dns=["::1"]),
        private_users=True,
        read_only_fs=True,
    )
    assert cfg.seccomp is SeccompProfile.STRICT
    assert cfg.network.mode is NetworkMode.NONE
    assert cfg.landlock.rules[0].access == LandlockAccess.READ_EXEC
    assert cfg.replace(read_only_fs=False).read_only_fs is False and cfg.read_only_fs


def test_every_seed_name_is_exported():
    names = ["SeccompProfile", "LandlockAccess", "LandlockRule", "LandlockPolicy",
             "server_policy", "desktop_policy", "ResourceLimits", "default_resource_limits",
             "NetworkMode", "NetworkConfig", "PortForward", "default_network_config",
             "IsolationConfig", "default_isolation"]
    for name in names:
        assert name in ve.__all__ and getattr(ve, name) is getattr(ve.model, name)


# ── Go's path arithmetic ─────────────────────────────────────────────────────


@pytest.mark.parametrize("inp,out", GOLDEN["paths"]["clean"])
def test_go_clean_matches_go(inp, out):
    assert _go_clean(inp) == out


@pytest.mark.parametrize("case", GOLDEN["paths"]["join"], ids=lambda c: "+".join(c["elems"]))
def test_go_join_matches_go(case):
    assert _go_join(*case["elems"]) == case["result"]
