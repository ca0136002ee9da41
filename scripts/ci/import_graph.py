"""Import cycles among the project's own modules (app, mock_platform, scripts), found with ``ast``.

A cycle makes the import order matter: whichever module a process imports first decides which
half sees the other half-initialised. Every import statement counts, also one inside a function,
because a deferred import only hides the cycle; imports under ``if TYPE_CHECKING:`` do not count,
since they never run.

    python scripts/ci/import_graph.py          # prints each cycle; exit 1 if there is one
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

from scripts.harness import REPO_ROOT

PACKAGE_ROOTS = {
    "app": REPO_ROOT / "backend" / "app",
    "mock_platform": REPO_ROOT / "backend" / "mock_platform",
    "scripts": REPO_ROOT / "scripts",
}


def module_name(package: str, root: Path, path: Path) -> str:
    parts = [package, *path.relative_to(root).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> Iterable[ast.Import | ast.ImportFrom]:
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def _owner(name: str, modules: Mapping[str, object]) -> str | None:
    """The project module that ``name`` (a module, or a name inside one) lives in."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def dependencies(module: str, source: str, modules: Mapping[str, object], *, is_package: bool) -> set[str]:
    found: set[str] = set()
    for node in _imports(ast.parse(source)):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            base = node.module or ""
            if node.level:
                anchor = module.split(".") if is_package else module.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        found.update(owner for target in targets if (owner := _owner(target, modules)) is not None)
    found.discard(module)
    return found


def project_graph(roots: Mapping[str, Path] = PACKAGE_ROOTS) -> dict[str, set[str]]:
    files = {
        module_name(package, root, path): path for package, root in roots.items() for path in sorted(root.rglob("*.py"))
    }
    return {
        module: dependencies(module, path.read_text(), files, is_package=path.name == "__init__.py")
        for module, path in files.items()
    }


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in graph:
                    continue
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
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
    return found


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args(argv)
    found = cycles(project_graph())
    for component in found:
        print("import cycle: " + " -> ".join(component))
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
