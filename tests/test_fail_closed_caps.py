"""Fail closed: a Docker/OCI seccomp profile given as a file.

The child keeps the capabilities a container gets (Docker's default set, unless the
config's Capabilities or --cap-add/--cap-drop say otherwise), and the profile's
``includes``/``excludes`` ``caps`` are evaluated against those, never against the
caller's: a root caller's CAP_SYS_BOOT, CAP_SYS_TIME and CAP_SYS_ADMIN must not
let reboot, settimeofday, sethostname, bpf and perf_event_open through the filter.

Each call is made with arguments the kernel refuses harmlessly when it gets them
(bad magic, NULL pointers, an oversized length): had the filter let it through,
the child would see EINVAL, EFAULT or success, not the profile's errno."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys

import pytest
from kernelreq import need_seccomp

from volt_enforce import IsolationConfig, NetworkConfig, NetworkMode, compile_config
from volt_enforce.compile import capabilities_with, kept_capabilities
from volt_enforce.errors import PolicyError
from volt_enforce.model import CAPABILITIES, DOCKER_DEFAULT_CAPABILITIES
from volt_enforce.seccomp.policy import Action

VOLT = os.path.join(os.path.dirname(sys.executable), "volt-enforce")
PY_ROX = [a for p in sorted({sys.base_prefix, sys.prefix}) for a in ("--rox", p)]
PROFILE = os.path.join(os.path.dirname(__file__), "..", "volt_enforce", "seccomp",
                       "docker-default.json")
#: The profile's errno for what it denies, changed from EPERM to one no kernel path
#: here returns, so that a denial by the filter is told from the kernel's own.
FILTER_ERRNO = errno.EBADE

#: The calls whose Docker rules apply only with a capability, as syscall(2) numbers
#: and harmless arguments, and what the kernel says when it gets them with it.
ATTACKS = r'''
import ctypes, json, os
libc = ctypes.CDLL(None, use_errno=True)
def call(nr, *args):
    r = libc.syscall(nr, *args)
    return 0 if r >= 0 else ctypes.get_errno()
out = {
    "reboot": call(169, 0, 0, 0, None),           # bad magic: EINVAL
    "settimeofday": call(164, None, None),        # nothing to set: 0
    "sethostname": call(170, None, 65),           # longer than 64: EINVAL
    "bpf": call(321, 0x7fff, None, 0),            # no such command: EINVAL
    "perf_event_open": call(298, None, 0, -1, -1, 0),  # NULL attr: EFAULT
}
st = open("/proc/self/status").read()
out["CapEff"] = [l.split()[1] for l in st.splitlines() if l.startswith("CapEff:")][0]
print(json.dumps(out))
'''


@pytest.fixture(autouse=True)
def _kernel():
    need_seccomp()


@pytest.fixture
def profile(tmp_path):
    doc = json.load(open(PROFILE))
    doc["defaultErrnoRet"] = FILTER_ERRNO
    path = tmp_path / "docker.json"
    path.write_text(json.dumps(doc))
    return str(path)


def attack(profile: str, *options: str) -> dict:
    cp = subprocess.run([VOLT, "run", "--profile", "none", "--seccomp", profile, *options, "--",
                         sys.executable, "-S", "-c", ATTACKS],
                        capture_output=True, text=True, timeout=60, check=False)
    assert cp.returncode == 0, cp.stderr
    return json.loads(cp.stdout)


def mask(names) -> str:
    return f"{sum(1 << CAPABILITIES[c] for c in names):016x}"


def test_a_profile_file_keeps_dockers_capabilities_and_its_rules_follow(profile):
    got = attack(profile)
    # contained host root: never CAP_SETFCAP
    assert got.pop("CapEff") == mask(c for c in DOCKER_DEFAULT_CAPABILITIES if c != "SETFCAP")
    assert got == dict.fromkeys(got, FILTER_ERRNO), got


def test_control_with_the_capabilities_the_rules_ask_for(profile):
    """The same profile for a child that does keep every capability: the rules
    apply, so the calls reach the kernel (and it refuses their arguments)."""
    got = attack(profile, "--cap-add", "ALL")
    assert got.pop("CapEff") != mask(DOCKER_DEFAULT_CAPABILITIES)
    assert got == {"reboot": errno.EINVAL, "settimeofday": 0, "sethostname": errno.EINVAL,
                   "bpf": errno.EINVAL, "perf_event_open": errno.EFAULT}, got


def test_cap_drop_and_cap_add(profile):
    got = attack(profile, "--cap-drop", "ALL", "--cap-add", "SYS_TIME", "--cap-add", "kill")
    assert got.pop("CapEff") == mask(["KILL", "SYS_TIME"])
    # CAP_SYS_TIME is kept, so the profile lets settimeofday through; the rest stay out
    assert got.pop("settimeofday") == 0
    assert got == dict.fromkeys(got, FILTER_ERRNO), got


def test_config_capabilities_decide_for_a_profile_file(profile, tmp_path):
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"Seccomp": profile, "Capabilities": ["CHOWN"]}))
    cp = subprocess.run([VOLT, "run", "--config", str(cfg), "--profile", "none", "--",
                         "grep", "CapEff", "/proc/self/status"],
                        capture_output=True, text=True, timeout=60, check=False)
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout.split() == ["CapEff:", mask(["CHOWN"])]


def test_kept_capabilities_of_a_profile_file(profile):
    cfg = IsolationConfig(seccomp=profile)
    assert kept_capabilities(cfg) == DOCKER_DEFAULT_CAPABILITIES
    with compile_config(cfg, contain=False) as c:
        assert c.capabilities == DOCKER_DEFAULT_CAPABILITIES
        assert c.seccomp.simulate("reboot") == Action.errno(FILTER_ERRNO)
    assert kept_capabilities(IsolationConfig(seccomp="unconfined")) is None


def test_capabilities_with():
    default = IsolationConfig(seccomp="default")
    assert capabilities_with(default) is None
    assert capabilities_with(default, drop=["NET_RAW"]) == [
        c for c in DOCKER_DEFAULT_CAPABILITIES if c != "NET_RAW"]
    assert capabilities_with(default, add=["cap_sys_admin"])[-1] == "SYS_ADMIN"
    assert capabilities_with(IsolationConfig(), drop=["KILL"], contain=False) == [
        c for c in CAPABILITIES if c != "KILL"]
    assert capabilities_with(default, add=["ALL"], contain=False) == list(
        DOCKER_DEFAULT_CAPABILITIES) + [c for c in CAPABILITIES
                                        if c not in DOCKER_DEFAULT_CAPABILITIES]
    assert sorted(capabilities_with(default, add=["ALL"])) == sorted(CAPABILITIES)
    with pytest.raises(PolicyError, match="--cap-add"):
        capabilities_with(default, add=["NOT_A_CAP"])


def test_contained_drops_stay_unless_named():
    """Contained without a user namespace, CAP_SYS_ADMIN (and CAP_NET_RAW on the host's
    network) are kept only when named: a --cap-drop of something else does not name them."""
    host = IsolationConfig(seccomp="default")
    own = IsolationConfig(seccomp="default", network=NetworkConfig(mode=NetworkMode.NONE))
    assert "NET_RAW" not in kept_capabilities(host, contain=True)
    assert "NET_RAW" in kept_capabilities(own, contain=True)
    assert "NET_RAW" in kept_capabilities(host, contain=False)
    assert "NET_RAW" not in capabilities_with(host, drop=["CHOWN"])
    assert "NET_RAW" in capabilities_with(host, drop=["CHOWN"], contain=False)
    assert "NET_RAW" in capabilities_with(own, drop=["CHOWN"])
    assert "NET_RAW" in capabilities_with(host, add=["NET_RAW"], drop=["CHOWN"])
    unconfined = IsolationConfig(seccomp="unconfined")
    assert "SYS_ADMIN" not in capabilities_with(unconfined, drop=["KILL"])
    assert "SYS_ADMIN" in capabilities_with(unconfined, add=["SYS_ADMIN"], drop=["KILL"])
    users = IsolationConfig(seccomp="default", private_users=True)
    assert kept_capabilities(users, contain=True) == DOCKER_DEFAULT_CAPABILITIES


def test_a_bad_cap_option_runs_nothing(tmp_path):
    marker = tmp_path / "ran"
    cp = subprocess.run([VOLT, "run", "--cap-drop", "CAP_NOPE", "--", "touch", str(marker)],
                        capture_output=True, text=True, timeout=60, check=False)
    assert cp.returncode == 125 and not marker.exists()
    assert "--cap-drop" in cp.stderr and "CAP_NOPE" in cp.stderr
