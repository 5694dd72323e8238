"""The ``volt-enforce`` command (scripts/volt-enforce): the plan cache first, the CLI on a miss.

On a hit (``volt_enforce.plancache``) ``run`` and ``exec`` exec volt-init on the
cached plan without importing the CLI, the model or the compiler; anything else,
and any doubt about an entry, goes to ``volt_enforce.cli.main``, which fills the
cache for the next start.
"""

import os
import sys


def main() -> None:
    argv = sys.argv[1:]
    if argv[:1] in (["run"], ["exec"]) and os.environ.get("VOLT_ENFORCE_PLAN_CACHE") != "off":
        try:
            from . import plancache

            req = plancache.Request.from_argv(argv)
            entry = plancache.lookup(req) if req is not None else None
            if req is not None and entry is not None:
                plancache.launch(req, entry)  # returns only if volt-init could not be exec'd
        except Exception:  # noqa: BLE001 (the cache is an optimization: the CLI decides)
            pass
    from .cli import main as cli_main

    sys.exit(cli_main(argv))
