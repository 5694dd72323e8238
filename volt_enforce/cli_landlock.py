"""The CLI's options for Landlock ABI 9 and 10: UDP ports, named UNIX sockets, quiet paths.

* ``--bind-udp PORT`` / ``--connect-udp PORT`` (repeatable): the policy's ``bind_udp``
  and ``connect_udp`` lists (ABI 10), with the TCP options' meaning: given at all, UDP
  bind (or connect and send) is allowed on those ports only.
* ``--unix-socket PATH`` (repeatable): the sandbox may connect to the pathname UNIX
  socket PATH (RESOLVE_UNIX, ABI 9: one rule on the socket, best effort as the right
  itself). The list is on the compiled config (``Compiled.unix_sockets``): a
  filesystem view (a mount namespace of its own) binds those sockets into it.
* ``--audit-quiet PATH`` (repeatable): no audit record for a denial beneath PATH (a
  quiet rule that grants nothing, and every handled filesystem right made quiet:
  ``quiet_access_fs``, ABI 10). Denials elsewhere are still logged.

cli.py adds the options (``add_options``), applies them to the policy it builds
(``apply``), and hands the sockets to what it compiles (``unix_sockets``).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported by apply: building the parser needs no model
    from .model import LandlockPolicy

__all__ = ["add_options", "apply", "wants_policy", "unix_sockets"]


def add_options(group: Any, port: Callable[[str], int], text: Callable[[str], str]) -> None:
    """Add the options to ``group`` (an argparse group); ``port`` and ``text`` are the
    CLI's own argument types (ports 0..65535, text without NUL or surrogates)."""
    group.add_argument("--bind-udp", action="append", default=None, type=port, metavar="PORT",
                       help="allow binding UDP PORT; others are denied (repeatable; ABI 10)")
    group.add_argument("--connect-udp", action="append", default=None, type=port,
                       metavar="PORT",
                       help="allow connecting and sending to UDP PORT; others are denied "
                            "(repeatable; ABI 10)")
    group.add_argument("--unix-socket", action="append", default=[], type=text, metavar="PATH",
                       help="allow connecting to the UNIX socket PATH, such as the Docker or "
                            "a D-Bus socket (repeatable; ABI 9)")
    group.add_argument("--audit-quiet", action="append", default=[], type=text, metavar="PATH",
                       help="no audit record for denials beneath PATH (repeatable; ABI 10)")


def _get(args: argparse.Namespace) -> tuple[list[int] | None, list[int] | None, list[str]]:
    # a Namespace made without this parser (config_from_args's callers) may lack them
    return (getattr(args, "bind_udp", None), getattr(args, "connect_udp", None),
            list(getattr(args, "audit_quiet", None) or []))


def wants_policy(args: argparse.Namespace) -> bool:
    """Whether these options need a Landlock policy when the others give none."""
    bind, connect, quiet = _get(args)
    return bind is not None or connect is not None or bool(quiet)


def apply(args: argparse.Namespace, policy: LandlockPolicy) -> None:
    """Apply --bind-udp, --connect-udp and --audit-quiet to ``policy``."""
    from .model import LandlockAccess, LandlockRule

    bind, connect, quiet = _get(args)
    if bind is not None:
        policy.bind_udp = sorted(set((policy.bind_udp or []) + bind))
    if connect is not None:
        policy.connect_udp = sorted(set((policy.connect_udp or []) + connect))
    for path in quiet:
        policy.rules.append(LandlockRule(path=os.path.abspath(path), access=0, quiet=True))
    if quiet:
        # quiet only what is handled (the compile step intersects): every right
        policy.quiet_access_fs = LandlockAccess.all()


def unix_sockets(args: argparse.Namespace) -> list[str]:
    """The --unix-socket paths, absolute."""
    return [os.path.abspath(p) for p in getattr(args, "unix_socket", None) or []]
