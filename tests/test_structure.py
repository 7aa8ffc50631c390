"""The package's structure: no import cycles between its modules (module-level imports and
those inside functions alike: a lazy import hides a cycle, it does not remove it)."""
import ast
import configparser
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def modules() -> dict[str, Path]:
    """Every module of the package, by its import name (setup.cfg maps the folders)."""
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    folders = dict(line.split("=") for line in cfg["options"]["package_dir"].strip().splitlines())
    out = {}
    for package, folder in folders.items():
        for f in (ROOT / folder.strip()).glob("*.py"):
            out[package.strip() if f.stem == "__init__" else f"{package.strip()}.{f.stem}"] = f
    return out


def import_graph() -> dict[str, set[str]]:
    """module -> the package modules it imports anywhere in its source (``from a import b``
    counts as ``a.b`` where that is a module, else as ``a``)."""
    mods = modules()
    graph = {}
    for name, path in mods.items():
        package = name if path.stem == "__init__" else name.rpartition(".")[0]
        edges = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                edges |= {a.name for a in node.names if a.name in mods}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[:len(package.split(".")) - node.level + 1]
                    base = ".".join(parts + ([node.module] if node.module else []))
                for a in node.names:
                    if f"{base}.{a.name}" in mods:
                        edges.add(f"{base}.{a.name}")
                    elif base in mods:
                        edges.add(base)
        graph[name] = edges - {name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index, low, stack, on, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while not comp or comp[-1] != v:
                comp.append(stack.pop())
                on.discard(comp[-1])
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_a_lazy_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_graph_reads_imports_inside_functions():
    graph = import_graph()
    assert len(graph) > 40
    # suite.read_suite imports config inside the function
    assert "switchbench.benchmark.config" in graph["switchbench.benchmark.suite"]
    assert "switchbench.benchmark.runner" in graph["switchbench"]          # switchbench.run, a lazy import


def test_the_package_has_no_import_cycles():
    graph = import_graph()
    found = cycles(graph)
    assert not found, "; ".join(" <-> ".join(c) + " (" + ", ".join(f"{m} imports {sorted(graph[m] & set(c))}"
                                                                        for m in c) + ")" for c in found)
