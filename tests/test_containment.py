"""A root child attacking the host, under the contained default (the CLI's and the
library's), against the same attack unsandboxed (the control, so that each test can
fail). Each attack targets a stand-in the test makes: a pty, a shared memory segment,
a file in tmp_path."""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import fcntl
import os
import socket
import subprocess
import sys
import termios

import pytest
from kernelreq import need_landlock, need_netns, need_seccomp, need_userns
from netns_host import in_stand_in_host

import volt_enforce
from volt_enforce import IsolationConfig, LandlockRule, SeccompProfile

VOLT = os.path.join(os.path.dirname(sys.executable), "volt-enforce")
PY = sys.executable

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the attacks are a root child's")


def _library_config(work: str) -> IsolationConfig:
    """The README's strongest library config: server preset, default seccomp,
    network none, plus the test's work directory and its Python."""
    cfg = volt_enforce.default_isolation("/")
    cfg.network = volt_enforce.NetworkConfig(mode=volt_enforce.NetworkMode.NONE)
    cfg.private_users = False
    cfg.resources = None
    cfg.seccomp = SeccompProfile.DEFAULT
    assert cfg.landlock is not None
    cfg.landlock.rules.append(LandlockRule(path=work, access=volt_enforce.LandlockAccess.READ_WRITE))
    cfg.landlock.rules.append(LandlockRule(path=sys.prefix,
                                           access=volt_enforce.LandlockAccess.READ_EXEC))
    cfg.landlock.rules.append(LandlockRule(path=sys.base_prefix,
                                           access=volt_enforce.LandlockAccess.READ_EXEC))
    return cfg


def _cli(*cmd: str, work: str, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([VOLT, "run", "--rw", work, "--rox", sys.prefix, "--rox",
                           sys.base_prefix, "--", *cmd], text=True, capture_output=True,
                          timeout=120, **kw)  # type: ignore[call-overload]


# ---- TIOCSTI: keystrokes pushed into the caller's terminal ----------------------------

_TIOCSTI = """
import fcntl, os, termios
for path in ("/dev/tty", None):
    try:
        fd = os.open(path, os.O_RDWR) if path else 0
        fcntl.ioctl(fd, termios.TIOCSTI, b"Z")
        print("injected")
        break
    except OSError as exc:
        print(path or "stdin", exc.errno)
"""


def _with_terminal(argv: list[str]) -> str:
    """Run argv with a fresh pty as its controlling terminal and stdin; return what
    reached the terminal's input queue (what the caller's shell would read)."""
    master, slave = os.openpty()
    name = os.ttyname(slave)

    def own_terminal() -> None:
        os.setsid()
        fd = os.open(name, os.O_RDWR)  # the session's controlling terminal now
        fcntl.ioctl(fd, termios.TIOCSCTTY, 0)
        os.close(fd)

    try:
        subprocess.run(argv, stdin=slave, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       preexec_fn=own_terminal, timeout=120)
        attr = termios.tcgetattr(slave)
        attr[3] &= ~termios.ICANON  # read what is queued without waiting for a newline
        attr[6][termios.VMIN], attr[6][termios.VTIME] = 0, 0
        termios.tcsetattr(slave, termios.TCSANOW, attr)
        return os.read(slave, 64).decode(errors="replace")
    finally:
        os.close(master)
        os.close(slave)


def test_tiocsti_control_reaches_the_terminal():
    assert "Z" in _with_terminal([PY, "-c", _TIOCSTI])


def test_tiocsti_from_the_cli_default(tmp_path):
    need_seccomp()
    assert "Z" not in _with_terminal([VOLT, "run", "--rox", sys.prefix, "--rox", sys.base_prefix,
                                      "--", PY, "-c", _TIOCSTI])


def test_tiocsti_from_the_library_default(tmp_path):
    need_landlock(1)
    cfg = _library_config(str(tmp_path))
    script = tmp_path / "attack.py"
    script.write_text(_TIOCSTI)
    runner = tmp_path / "runner.py"
    runner.write_text(
        "import sys, volt_enforce\n"
        f"cfg = volt_enforce.IsolationConfig.from_json({cfg.to_json()!r})\n"
        f"sys.exit(volt_enforce.run([{PY!r}, {str(script)!r}], isolation=cfg).returncode)\n")
    assert "Z" not in _with_terminal([PY, str(runner)])


# ---- SysV shared memory of the host ---------------------------------------------------

_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
_IPC_CREAT, _IPC_RMID = 0o1000, 0
_KEY = 0x766F6C74  # "volt"


def _shm_attack() -> str:
    return (f"import ctypes, ctypes.util\n"
            f"libc = ctypes.CDLL(ctypes.util.find_library('c'), use_errno=True)\n"
            f"shmid = libc.shmget({_KEY}, 0, 0)\n"
            f"print('found' if shmid >= 0 else 'absent', ctypes.get_errno())\n")


@pytest.fixture
def host_shm():
    shmid = _libc.shmget(_KEY, 4096, _IPC_CREAT | 0o600)
    assert shmid >= 0, os.strerror(ctypes.get_errno())
    yield shmid
    _libc.shmctl(shmid, _IPC_RMID, None)


def test_shm_control_finds_the_segment(host_shm):
    out = subprocess.run([PY, "-c", _shm_attack()], capture_output=True, text=True).stdout
    assert out.startswith("found")


def test_shm_from_the_cli_default(host_shm, tmp_path):
    need_seccomp()
    cp = _cli(PY, "-c", _shm_attack(), work=str(tmp_path))
    assert cp.stdout.startswith("absent"), (cp.stdout, cp.stderr)


def test_shm_from_the_library_default(host_shm, tmp_path):
    need_landlock(1)
    cp = volt_enforce.run([PY, "-c", _shm_attack()], isolation=_library_config(str(tmp_path)),
                          capture_output=True, text=True)
    assert cp.stdout.startswith("absent"), (cp.stdout, cp.stderr)


# ---- a file capability set on a host file ---------------------------------------------

# security.capability v2 for cap_net_raw+ep (linux/capability.h: VFS_CAP_REVISION_2)
_CAP_XATTR = (b"\x01\x00\x00\x02" + (1 << 13).to_bytes(4, "little") + bytes(4) + bytes(8))


def _setfcap_attack(target: str) -> str:
    return (f"import os\n"
            f"try:\n"
            f"    os.setxattr({target!r}, 'security.capability', {_CAP_XATTR!r})\n"
            f"    print('set')\n"
            f"except OSError as exc:\n"
            f"    print('refused', exc.errno)\n")


def _has_cap_xattr(path: str) -> bool:
    try:
        return bool(os.getxattr(path, "security.capability"))
    except OSError as exc:
        if exc.errno in (errno.ENODATA, errno.ENOTSUP):
            return False
        raise


@pytest.fixture
def target(tmp_path):
    d = tmp_path / "host"
    d.mkdir()
    t = d / "tool"
    t.write_bytes(b"#!/bin/sh\n")
    t.chmod(0o755)
    return str(t)


def test_setfcap_control_sets_the_capability(target):
    out = subprocess.run([PY, "-c", _setfcap_attack(target)], capture_output=True, text=True)
    if "refused" in out.stdout and str(errno.ENOTSUP) in out.stdout:
        pytest.skip("the test directory's filesystem stores no security.capability")
    assert out.stdout.startswith("set") and _has_cap_xattr(target)


def test_setfcap_from_the_cli_default(target, tmp_path):
    need_seccomp()
    # the target's directory is even writable: only the capability stops it
    cp = _cli(PY, "-c", _setfcap_attack(target), work=os.path.dirname(target))
    assert cp.stdout.startswith("refused"), (cp.stdout, cp.stderr)
    assert not _has_cap_xattr(target)


def test_setfcap_from_the_library_default(target):
    need_landlock(1)
    cfg = _library_config(os.path.dirname(target))
    cp = volt_enforce.run([PY, "-c", _setfcap_attack(target)], isolation=cfg,
                          capture_output=True, text=True)
    assert cp.stdout.startswith("refused"), (cp.stdout, cp.stderr)
    assert not _has_cap_xattr(target)
    # unconfined keeps every capability but these two
    cp = volt_enforce.run([PY, "-c", _setfcap_attack(target)],
                          isolation=IsolationConfig(seccomp=SeccompProfile.UNCONFINED),
                          capture_output=True, text=True)
    assert cp.stdout.startswith("refused"), (cp.stdout, cp.stderr)
    assert not _has_cap_xattr(target)


def test_mptcp_is_held_to_the_port_rules(tmp_path):
    """With port rules (network none denies every TCP port), a child cannot bind
    through IPPROTO_MPTCP, which Landlock's TCP rules do not see; the control without
    port rules creates the socket."""
    need_seccomp()
    attack = ("import socket\n"
              "try:\n"
              "    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, 262)\n"
              "    s.bind(('127.0.0.1', 0)); print('bound')\n"
              "except OSError as exc:\n"
              "    print('refused', exc.errno)\n")
    control = subprocess.run([PY, "-c", attack], capture_output=True, text=True).stdout
    if "refused" in control and str(errno.EPROTONOSUPPORT) in control:
        pytest.skip("the kernel has no MPTCP (IPPROTO_MPTCP: EPROTONOSUPPORT)")
    assert control.startswith("bound")
    cfg = IsolationConfig(seccomp=SeccompProfile.DEFAULT,
                          network=volt_enforce.NetworkConfig(mode=volt_enforce.NetworkMode.NONE))
    cp = volt_enforce.run([PY, "-c", attack], isolation=cfg, capture_output=True, text=True)
    assert cp.stdout.startswith("refused"), (cp.stdout, cp.stderr)
    assert any("MPTCP" in n for n in cp.report.notes)


# ---- AF_PACKET: sniffing the host's loopback --------------------------------------------

_MARK = b"volt-sniff-7c1e"
_SNIFF = f"""
import socket, sys
try:
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))  # ETH_P_ALL
    s.bind(("lo", 0))
except OSError as exc:
    print("refused", exc.errno, flush=True)
    sys.exit(0)
print("opened", flush=True)
sys.stdin.readline()  # the stand-in host has sent its packets: they are queued by now
s.setblocking(False)
seen = 0
try:
    while True:
        seen += {_MARK!r} in s.recv(65536)
except BlockingIOError:
    pass
print("seen", seen, flush=True)
"""


def _sniff_in_stand_in_host(argv: list[str],
                            cfg: IsolationConfig | None) -> tuple[str, str, list[str]]:
    """In the stand-in host's netns: start the sniffer (sandboxed by ``cfg``
    through the library, or as argv says), send it five UDP datagrams on this
    namespace's loopback once it listens, and return its output, stderr and the
    report's notes."""
    kw: dict[str, object] = dict(stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
    proc: subprocess.Popen[str]
    if cfg is None:
        proc = subprocess.Popen(argv, **kw)  # type: ignore[call-overload]
    else:
        proc = volt_enforce.Popen(argv, isolation=cfg, **kw)
    assert proc.stdout is not None and proc.stdin is not None
    first = proc.stdout.readline()
    if first.startswith("opened"):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink, \
                socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
            sink.bind(("127.0.0.1", 0))
            for _ in range(5):
                tx.sendto(_MARK, sink.getsockname())
        proc.stdin.write("sent\n")
        proc.stdin.flush()
    out, err = proc.communicate(timeout=120)
    report = getattr(proc, "report", None)
    return first + out, err, list(report.notes) if report is not None else []


def _seen(out: str) -> int:
    """How many of the stand-in host's datagrams the sniffer saw; -errno if refused."""
    words = out.split()
    if words[:1] == ["refused"]:
        return -int(words[1])
    assert words[:1] == ["opened"] and words[-2] == "seen", out
    return int(words[-1])


def _sniff_cli(*options: str, py: str = PY) -> tuple[str, str, list[str]]:
    argv = [VOLT, "run", *options, "--rox", sys.prefix, "--rox", sys.base_prefix, "--",
            py, "-c", _SNIFF]
    return _stand_in(argv, None)


def _sniff_library(cfg: IsolationConfig) -> tuple[str, str, list[str]]:
    return _stand_in([PY, "-c", _SNIFF], cfg)


def _stand_in(argv: list[str], cfg: IsolationConfig | None) -> tuple[str, str, list[str]]:
    # nothing of volt_enforce.net is made here: no leak check (it needs nftables)
    return in_stand_in_host(_sniff_in_stand_in_host, argv, cfg, leak_check=False)


def _host_network_config() -> IsolationConfig:
    cfg = _library_config(sys.prefix)
    cfg.network = volt_enforce.NetworkConfig(mode=volt_enforce.NetworkMode.HOST)
    return cfg


def test_sniff_control_sees_the_stand_in_hosts_loopback():
    need_netns()
    out, err, _ = _stand_in([PY, "-c", _SNIFF], None)
    if _seen(out) == -errno.EAFNOSUPPORT:
        pytest.skip("the kernel has no AF_PACKET (CONFIG_PACKET)")
    assert _seen(out) >= 5, (out, err)  # each datagram once out and once in on lo


def test_sniff_from_the_cli_default():
    need_netns()
    need_seccomp()
    out, err, _ = _sniff_cli()
    # its own network namespace: a loopback of its own, which the host's traffic never crosses
    assert _seen(out) in (0, -errno.EPERM), (out, err)


def test_sniff_from_the_library_default():
    need_netns()
    need_landlock(1)
    out, err, _ = _sniff_library(_library_config(sys.prefix))
    assert _seen(out) in (0, -errno.EPERM), (out, err)


def test_sniff_on_the_host_network_from_the_cli():
    """Sharing the host's network (--network host), a contained child that is host
    root without a user namespace loses CAP_NET_RAW."""
    need_netns()
    need_seccomp()
    out, err, _ = _sniff_cli("--network", "host")
    assert _seen(out) == -errno.EPERM, (out, err)
    # a --cap-drop of another capability lists the rest by name, but does not name NET_RAW
    out, err, _ = _sniff_cli("--network", "host", "--cap-drop", "CHOWN")
    assert _seen(out) == -errno.EPERM, (out, err)


def test_sniff_on_the_host_network_from_the_library():
    """The same through the library's contained config on the host's network; the
    report says CAP_NET_RAW was dropped."""
    need_netns()
    need_landlock(1)
    out, err, notes = _sniff_library(_host_network_config())
    assert _seen(out) == -errno.EPERM, (out, err)
    assert any("CAP_NET_RAW" in n and "host's network" in n for n in notes), notes


def test_sniff_on_the_host_network_in_a_user_namespace():
    """With private users, the child's capabilities are its own user namespace's,
    which does not own the host's network namespace."""
    need_netns()
    need_seccomp()
    need_userns()
    # the mapped root cannot reach this interpreter's prefix under /root: the system one
    py = "/usr/bin/python3" if not PY.startswith("/usr/") else PY
    out, err, _ = _sniff_cli("--network", "host", "--private-users", "--cap-add", "NET_RAW",
                             py=py)
    assert _seen(out) == -errno.EPERM, (out, err)


def test_sniff_on_the_host_network_with_net_raw_named():
    """CAP_NET_RAW named by the user is kept, and then the sniffer sees the host's
    traffic: the capability is what holds the contained child."""
    need_netns()
    need_seccomp()
    out, err, _ = _sniff_cli("--network", "host", "--cap-add", "NET_RAW")
    assert _seen(out) >= 5, (out, err)
    out, err, _ = _sniff_cli("--network", "host", "--no-contain")
    assert _seen(out) >= 5, (out, err)
    # --no-contain keeps CAP_NET_RAW also when a --cap-drop of another lists the rest by name
    out, err, _ = _sniff_cli("--network", "host", "--no-contain", "--cap-drop", "CHOWN")
    assert _seen(out) >= 5, (out, err)
