"""The shape of a package's code: lines per module, the longest functions, and import cycles.

    python tools/code_metrics.py [PACKAGE_DIR] [--longest N]

An import cycle here counts every import of one module of the package by another, wherever it
stands: at the top, or inside a function (where it hides a cycle from Python, not from a reader).
`from . import x` counts as an import of module `x` when there is one, else of the package; an
import of `a.b.c` from outside package `a.b` counts as an import of `a.b` too (its `__init__`
runs first). Exits 1 if the package has a cycle.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path


def modules(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package at `root`."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports(known: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the package's modules it imports (at any depth of its code)."""
    graph: dict[str, set[str]] = {name: set() for name in known}
    for name, path in known.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(name, is_package, node)
                # `from . import x` imports module x when there is one, else a name of the package.
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
            for target in targets:
                # Importing a.b.c from outside package a.b runs a.b's __init__ first.
                parts = target.split(".")
                for depth in range(2, len(parts) + 1):
                    module = ".".join(parts[:depth])
                    inside = name == module or name.startswith(module + ".")
                    if module in known and module != name and (module == target or not inside):
                        graph[name].add(module)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def longest_functions(known: dict[str, Path], count: int) -> list[tuple[int, str]]:
    lengths = []
    for name, path in known.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lengths.append((node.end_lineno - node.lineno + 1, f"{name}.{node.name} (line {node.lineno})"))
    return sorted(lengths, reverse=True)[:count]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("package", type=Path, nargs="?", default=Path("oracles"))
    parser.add_argument("--longest", type=int, default=10)
    args = parser.parse_args(argv)
    known = modules(args.package.resolve())
    print("| module | lines |\n| --- | ---: |")
    for name, path in sorted(known.items(), key=lambda item: -len(item[1].read_text().splitlines())):
        print(f"| {name} | {len(path.read_text().splitlines())} |")
    print(f"\n{len(known)} modules, {sum(len(p.read_text().splitlines()) for p in known.values())} lines\n")
    print("| function | lines |\n| --- | ---: |")
    for length, where in longest_functions(known, args.longest):
        print(f"| {where} | {length} |")
    found = cycles(imports(known))
    print(f"\nimport cycles (function-level imports counted): {len(found)}")
    for component in found:
        print("- " + " <-> ".join(component))
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
