"""The package's shape: data flows one way (no import cycles, the model imports
nothing above it) and ``import volt_enforce`` loads nothing until a name is used."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import volt_enforce

PKG = Path(volt_enforce.__file__).resolve().parent


def _module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Every volt_enforce module ``path`` imports, at module level or inside a
    function; imports under ``if TYPE_CHECKING:`` do not run and are left out."""
    mod = _module_name(path)
    package = mod if path.name == "__init__.py" else mod.rsplit(".", 1)[0]
    tree = ast.parse(path.read_text())
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for n in ast.walk(node))
    out: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("volt_enforce"):
                out.add(target)
                for alias in node.names:  # "from . import landlock" names a module
                    if (PKG.parent / (target + "." + alias.name).replace(".", "/")).with_suffix(
                            ".py").exists() or (PKG.parent / (target + "." + alias.name).replace(
                            ".", "/") / "__init__.py").exists():
                        out.add(f"{target}.{alias.name}")
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("volt_enforce"))
    out.discard(mod)
    return {m for m in out if m != "volt_enforce._core"}


def _graph() -> dict[str, set[str]]:
    graph = {_module_name(p): _imports(p) for p in PKG.rglob("*.py")}
    # a package's __init__ re-exporting its own submodules is not a cycle through it
    for mod, deps in graph.items():
        graph[mod] = {d for d in deps if not (mod.startswith(d + ".") and d != "volt_enforce")}
    graph.pop("volt_enforce", None)  # its lazy __getattr__ imports on first use only
    return graph


def test_no_import_cycles():
    graph = _graph()
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for d in sorted(graph.get(m, ())):
            if d not in graph:
                continue
            if state.get(d) == 1:
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(d):] + [d]))
            if d not in state:
                visit(d)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)


def test_the_model_imports_nothing_above_it():
    assert _graph()["volt_enforce.model"] <= {"volt_enforce.errors"}


def test_import_loads_no_submodule():
    code = ("import sys, volt_enforce; "
            "print(sorted(m for m in sys.modules if m.startswith('volt_enforce.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_every_export_resolves():
    for name in volt_enforce.__all__:
        assert getattr(volt_enforce, name) is not None, name


def test_the_typing_imports_match_the_lazy_exports():
    """The TYPE_CHECKING imports of __init__ (what type checkers see) name exactly the
    lazy exports (what __getattr__ serves), each from the module the table says."""
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(volt_enforce))
    (block,) = [n for n in tree.body if isinstance(n, ast.If)
                and getattr(n.test, "id", None) == "TYPE_CHECKING"]
    typed = {a.name: node.module for node in block.body if isinstance(node, ast.ImportFrom)
             for a in node.names}
    assert typed == volt_enforce._EXPORTS


def test_core_stub_matches_the_cdefs_and_the_extension():
    root = PKG.parent
    gen = subprocess.run([sys.executable, str(root / "tools" / "gen_core_pyi.py"), "--check"],
                         capture_output=True, text=True)
    assert gen.returncode == 0, gen.stderr
    from volt_enforce._core import lib

    stub = (PKG / "_core.pyi").read_text()
    names = {ln.split(":")[0].strip() for ln in stub.splitlines() if ln.startswith("    ") and ":" in ln
             and not ln.strip().startswith("def ")}
    names |= {ln.split("def ")[1].split("(")[0] for ln in stub.splitlines() if " def " in ln}
    assert names == set(dir(lib))
