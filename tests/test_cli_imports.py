"""What the command imports: only what the command needs (the structure issue's import
work, and the start-up part of "Restrict once, spawn many")."""

from __future__ import annotations

import subprocess
import sys


def _loaded_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code + "; import sys; print(' '.join(sys.modules))"],
                         capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_building_the_parser_imports_no_model_no_output_no_subprocess():
    mods = _loaded_after("from volt_enforce import cli; cli.build_parser()")
    assert "volt_enforce.cli" in mods  # the control: the code did run
    for m in ("volt_enforce.model", "volt_enforce.fileout", "volt_enforce.compile",
              "volt_enforce.sandbox", "subprocess"):  # shutil: argparse takes it
        assert m not in mods, m


def test_the_package_imports_no_typing():
    mods = _loaded_after("import volt_enforce")
    assert "volt_enforce" in mods
    assert "typing" not in mods


def test_run_imports_neither_the_network_nor_audit_nor_explain(tmp_path):
    code = ("import os, sys; from volt_enforce import cli; "
            "rc = cli.main(['run', '--no-warnings', '--', '/bin/true']); assert rc == 0, rc")
    mods = _loaded_after(code)
    assert "volt_enforce.sandbox" in mods  # the control: it ran through the library
    for m in ("volt_enforce.net", "volt_enforce.audit", "volt_enforce.explain",
              "volt_enforce.diagnose"):  # init_plan: the cache's fill
        assert m not in mods, m
