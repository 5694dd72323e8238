"""The volt-enforce command."""

from __future__ import annotations

import argparse
import json
import sys

from .kernel import probe


def _cmd_check(args: argparse.Namespace) -> int:
    p = probe()
    if args.json:
        print(json.dumps(p.to_dict(), indent=2))
    else:
        print(p.format())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="volt-enforce",
        description="Enforce the Volt isolation model: Landlock, seccomp, cgroups.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="what this kernel and process offer")
    check.add_argument("--json", action="store_true", help="print JSON")
    check.set_defaults(func=_cmd_check)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return args.func(args)
