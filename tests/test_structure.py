"""The shape docs/architecture.md promises: no import cycles (function-local imports count;
imports under ``if TYPE_CHECKING:`` do not run and do not), no module far over 800 lines."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "seedlab"


def _modules() -> dict[str, Path]:
    mods = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(REPO).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = path
    return mods


def _runtime_imports(tree: ast.AST):
    """Every import node that can run (skips ``if TYPE_CHECKING:`` bodies)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            yield from (n for child in node.orelse for n in _runtime_imports(child))
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        yield from _runtime_imports(node)


def import_graph() -> dict[str, set[str]]:
    """module -> the seedlab modules it imports (``from pkg import sub`` counts as ``sub``)."""
    mods = _modules()

    def resolve(name: str) -> str | None:
        while name and name not in mods:
            name = name.rsplit(".", 1)[0] if "." in name else ""
        return name or None

    graph: dict[str, set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        package = mod if path.name == "__init__.py" else mod.rsplit(".", 1)[0]
        for node in _runtime_imports(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [resolve(a.name) for a in node.names]
            else:
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join(parts + ([base] if base else []))
                targets = [resolve(f"{base}.{a.name}") if f"{base}.{a.name}" in mods
                           else resolve(base) for a in node.names]
            graph[mod].update(t for t in targets if t and t != mod)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles():
    assert cycles(import_graph()) == []


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_module_is_far_over_800_lines():
    long = {str(p.relative_to(REPO)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 850}
    assert long == {}


# Private names of the standard library that its own documentation uses in annotations.
STDLIB_PRIVATE_OK = {"argparse._SubParsersAction"}


def _defined_names(tree: ast.AST) -> set[str]:
    """Every function, class, variable and attribute a module defines or assigns."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        targets = (node.targets if isinstance(node, ast.Assign)
                   else [node.target] if isinstance(node, ast.AnnAssign) else [])
        for target in targets:
            for n in ast.walk(target):
                if isinstance(n, ast.Name):
                    names.add(n.id)
                elif isinstance(n, ast.Attribute):
                    names.add(n.attr)
    return names


def private_uses(path: Path) -> list[str]:
    """Private names (one leading underscore) ``path`` takes from another module: imported
    by name, or read as an attribute of something other than ``self``/``cls`` while the
    module itself defines no such name."""
    tree = ast.parse(path.read_text())
    own = _defined_names(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            found += [f"{node.lineno}: from {node.module} import {a.name}" for a in node.names
                      if a.name.startswith("_") and not a.name.startswith("__")]
        elif (isinstance(node, ast.Attribute) and node.attr.startswith("_")
              and not node.attr.startswith("__") and node.attr not in own
              and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
              and ast.unparse(node) not in STDLIB_PRIVATE_OK):
            found.append(f"{node.lineno}: {ast.unparse(node)}")
    return found


def test_no_private_names_are_taken_across_modules():
    files = [*PACKAGE.rglob("*.py"), *(REPO / "pages").glob("*.py"), REPO / "app.py"]
    taken = {str(p.relative_to(REPO)): uses for p in files if (uses := private_uses(p))}
    assert taken == {}


def test_the_private_name_finder_finds_one(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("from a import _x\nimport b\n\n\ndef f(store):\n"
                      "    return store._catalog(), b._y, _x\n\n\nclass C:\n"
                      "    def _own(self):\n        return self._z\n\n\ndef g(c):\n"
                      "    return c._own()\n")
    assert sorted(private_uses(module)) == ["1: from a import _x", "6: b._y", "6: store._catalog"]
