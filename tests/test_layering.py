"""The package's shape: one installed namespace, and imports that flow one way (README "Layout").

Both are properties a refactoring breaks silently: a module that imports upward works until someone imports the
lower package alone, and a circle works until the import order changes. The graph is read from the source with
`ast` (every `import`/`from ... import` anywhere in a module, lazy ones inside functions included), so the test
sees what a reader sees, without importing anything.
"""
import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Lowest first: a package may import only packages listed before it (and itself).
LAYERS = ["ref", "data", "fast", "limits", "options", "report", "train", "filetool", "api", "conformance", "analysis",
          "cli", "__main__", "__init__"]
SOURCE_FOLDERS = ["ref", "data", "fast", "report", "train", "filetool", "conformance", "analysis"]
ROOT_MODULES = ["limits", "options", "api", "cli", "__main__", "__init__"]


def module_files():
    """{dotted module name inside equalinfo: path} for every module of the package."""
    modules = {}
    for folder in SOURCE_FOLDERS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    for name in ROOT_MODULES:
        modules[name] = ROOT / f"{name}.py"
    return modules


def imported_modules(path, known):
    """The modules of ours that a file imports, resolved to the longest known dotted name."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            targets = [f"{node.module}.{alias.name}" for alias in node.names]  # a module, or a name in one
        elif isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            continue
        for target in targets:
            if target.startswith("equalinfo."):
                name = target[len("equalinfo."):]
                while name and name not in known:
                    name = name.rpartition(".")[0]
                found.add(name or "__init__")  # `from equalinfo import NAME` of a name that is not a module
    return found


def import_graph():
    modules = module_files()
    return {name: imported_modules(path, modules) - {name} for name, path in modules.items()}


def layer_of(module):
    return LAYERS.index(module.split(".")[0])


def test_every_module_belongs_to_a_layer():
    assert {name.split(".")[0] for name in import_graph()} <= set(LAYERS)


def test_no_old_top_level_imports_remain():
    """Nothing imports `ref`, `fast`, `train`, `data` or `analysis` as top-level packages any more."""
    offenders = []
    for path in list(module_files().values()) + sorted((ROOT / "tests").glob("*.py")) + sorted(
            (ROOT / "bench").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = ([node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module
                     else [alias.name for alias in node.names] if isinstance(node, ast.Import) else [])
            offenders += [f"{path.relative_to(ROOT)}: {name}" for name in names
                          if name.split(".")[0] in ("ref", "fast", "train", "data", "analysis")]
    assert not offenders


def test_imports_flow_one_way():
    upward = [f"{module} -> {target}" for module, targets in import_graph().items() for target in targets
              if layer_of(target) > layer_of(module)]
    assert not upward, "imports against the layering (README 'Layout'):\n" + "\n".join(sorted(upward))


def find_cycle(graph):
    """One cycle of the graph as a list of nodes, or None (iterative depth-first search)."""
    state = {}
    for start in graph:
        if start in state:
            continue
        stack = [(start, iter(sorted(graph[start])))]
        path = [start]
        state[start] = "open"
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                state[node] = "done"
                stack.pop()
                path.pop()
            elif state.get(child) == "open":
                return path[path.index(child):] + [child]
            elif child not in state:
                state[child] = "open"
                stack.append((child, iter(sorted(graph.get(child, ())))))
                path.append(child)
    return None


def test_find_cycle_finds_a_planted_cycle():
    """The checker itself can fail: a planted circle is found, a chain is not."""
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_no_import_circles_between_modules():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import circle: " + " -> ".join(cycle)


def test_installed_namespace_is_equalinfo_alone(tmp_path):
    """Outside the checkout, `data`, `train`, `ref`, ... are not ours; `equalinfo` and its subpackages are."""
    code = ("import importlib.util as u, json\n"
            "spec = lambda name: (u.find_spec(name) or None) and u.find_spec(name).origin\n"
            "print(json.dumps({name: spec(name) for name in ('data', 'train', 'ref', 'fast', 'analysis', 'report',"
            " 'filetool', 'conformance', 'cli', 'limits', 'options')}))\n"
            "import equalinfo.ref.ac\n"
            "print(equalinfo.ref.ac.__file__)\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    import json
    found, ours = result.stdout.splitlines()
    for name, origin in json.loads(found).items():
        assert origin is None or not Path(origin).resolve().is_relative_to(ROOT), f"`import {name}` finds ours"
    assert Path(ours).resolve() == ROOT / "ref" / "ac.py"
