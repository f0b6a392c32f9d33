"""The package's shape: layers import only from the layers above them, no private name crosses a
module, and no function outgrows a screen."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "soseleto"
# each layer may import from itself and the layers before it (docs/development.md, "What is here")
LAYERS = ["soseleto.config", "soseleto.paths", "soseleto.validate", "soseleto.io", "soseleto.metrics", "soseleto.logs", "soseleto.core",
          "soseleto.methods", "soseleto.data", "soseleto.experiments", "soseleto.report", "soseleto.cost",
          "soseleto.cli", "soseleto.jobs"]
MAX_FUNCTION_LINES = 60


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        name = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
        yield name, ast.parse(path.read_text())


def _layer(module: str) -> int:
    for i, layer in enumerate(LAYERS):
        if module == layer or module.startswith(layer + "."):
            return i
    return -1  # soseleto itself (the version), __main__


MODULES = {".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
           for p in PACKAGE.rglob("*.py")}


def _imports(tree):
    """``(module, name)`` of every ``from soseleto... import name`` (a submodule imported by name counts as itself)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("soseleto"):
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                yield (sub, alias.name) if sub in MODULES else (node.module, alias.name)


def test_every_module_belongs_to_a_layer():
    assert [m for m, _ in _modules() if _layer(m) < 0] == ["soseleto", "soseleto.__main__"]


def test_layers_import_only_from_the_layers_above():
    wrong = [(m, target) for m, tree in _modules() if _layer(m) >= 0 for target, _ in _imports(tree)
             if _layer(target) > _layer(m)]
    assert not wrong


def test_no_private_name_is_imported_across_modules():
    assert not [(m, t, name) for m, tree in _modules() for t, name in _imports(tree)
                if name.startswith("_") and name != "__version__"]


def test_no_import_cycle():
    graph = {m: {t for t, _ in _imports(tree)} for m, tree in _modules()}

    def reach(start):
        seen, todo = set(), [start]
        while todo:
            for nxt in graph.get(todo.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    assert not [m for m in graph if m in reach(m)]


def test_no_function_is_longer_than_a_screen():
    long = [(m, f.name, f.end_lineno - f.lineno + 1) for m, tree in _modules() for f in ast.walk(tree)
            if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef)) and f.end_lineno - f.lineno + 1 > MAX_FUNCTION_LINES]
    assert not long
