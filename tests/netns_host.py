"""A network namespace standing in for the host, for every test of the private network.

``in_stand_in_host(fn, *args)`` forks; the child unshares a network namespace
of its own (lo up), runs ``fn`` there and sends back its JSON-able result. So
the bridge, the veths and the nftables rules a test makes live in that
namespace and vanish with it: the machine's own network is never touched. After
``fn``, the child checks that nothing of ours is left (veths, leases, rules) and
removes the lease directory of its namespace (keyed by the namespace's id).
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
from collections.abc import Callable
from typing import Any

import pytest
from forked import json_reply

CLONE_NEWNET = 0x40000000


def enter_new_netns() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNET)")
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)


def _state_dir() -> str:
    from volt_enforce.net import lease, netns

    return os.path.join(lease.RUN_DIR, "net", str(netns.host_netns_id()))


def _body(fn: Callable[..., Any], args: tuple[Any, ...], leak_check: bool) -> Any:
    enter_new_netns()
    try:
        result = fn(*args)
        if leak_check:
            from volt_enforce import net

            left = {b: net.leaked(b) for b in _bridges()}
            left = {b: v for b, v in left.items() if any(v.values())}
            assert not left, f"left behind: {left}"
        return result
    finally:
        shutil.rmtree(_state_dir(), ignore_errors=True)


def _bridges() -> list[str]:
    d = _state_dir()
    names = os.listdir(d) if os.path.isdir(d) else []
    return sorted(set(names) | {"voltbr0"})


def in_stand_in_host(fn: Callable[..., Any], *args: Any, leak_check: bool = True) -> Any:
    """``fn(*args)`` in a fresh network namespace (see the module doc); its result.
    An exception in it fails the test with its traceback."""
    status, reply = json_reply(lambda: _body(fn, args, leak_check))
    if "raised" in reply:
        pytest.fail("in the stand-in host:\n" + reply["raised"], pytrace=False)
    assert "ok" in reply, f"the stand-in host died (wait status {status})"
    return reply["ok"]
