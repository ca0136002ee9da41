"""Only the boundary reaches a provider: no module outside backend/app/llm/ imports the provider
client or an LLM SDK, names the chat-completions API, uses the client class, or reaches into the
boundary for its client. The boundary makes its client itself and keeps it private, and nothing in
app.llm hands one out. A planted violation of each kind is caught.
"""

from __future__ import annotations

import ast
import inspect
import re
import types
import typing
from pathlib import Path
from typing import Any

from app.llm import boundary, config, router, synthesis
from app.llm.boundary import Boundary
from app.llm.providers import ChatProvider
from scripts.bench.llm_calls import mock_config
from scripts.harness import REPO_ROOT

SCANNED = (REPO_ROOT / "backend" / "app", REPO_ROOT / "scripts")
BOUNDARY = REPO_ROOT / "backend" / "app" / "llm"
FORBIDDEN_IMPORTS = ("app.llm.providers", "openai", "anthropic", "litellm", "google.generativeai")
FORBIDDEN_TEXT = ("/v1/chat/completions", "/v1/completions", "/v1/messages")
PROVIDER_CLASSES = frozenset({"ChatProvider"})
# The boundary's own attribute and any private variant of it; mangled names end the same way.
PRIVATE_PROVIDER = re.compile(r"^_\w*provider$", re.IGNORECASE)
# Modules of the boundary package that code outside it may import: none may hand out a client.
PUBLIC_LLM_MODULES = (boundary, config, router, synthesis)
# The one exception, by file and by import: the peer benchmark times LiteLLM's SDK against the mock
# provider (nox -s bench_peers, its own virtualenv). It may import litellm and nothing else listed.
PEER_SDK_IMPORTS: dict[Path, tuple[str, ...]] = {REPO_ROOT / "scripts" / "bench" / "peer_litellm.py": ("litellm",)}


def imported_names(node: ast.AST) -> list[str]:
    """Dotted names an import binds, including ``from app.llm import providers`` as app.llm.providers."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom) and node.module:
        return [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
    return []


def reaches_for_a_client(node: ast.AST, parent: ast.AST | None) -> str | None:
    """What this node does to get hold of a provider client, if anything.

    A ``.provider`` is flagged where it is used as an object (called, or read from); read as a value
    it is a database row's or a config's provider name (the breaker metric reads ``row.provider``).
    """
    if isinstance(node, ast.Attribute) and PRIVATE_PROVIDER.match(node.attr):
        return f"reads .{node.attr}"
    if isinstance(node, ast.Attribute) and node.attr == "provider":
        receiver = isinstance(parent, ast.Attribute | ast.Subscript) and parent.value is node
        if receiver or (isinstance(parent, ast.Call) and parent.func is node):
            return "uses .provider as an object"
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and PRIVATE_PROVIDER.match(node.value):
        return f"names {node.value!r}"  # getattr(gate, "_provider"), vars(gate)["_provider"]
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "getattr"
        and len(node.args) >= 2
        and isinstance(node.args[1], ast.Constant)
        and node.args[1].value == "provider"
    ):
        return "getattr .provider"
    if isinstance(node, ast.Name) and node.id in PROVIDER_CLASSES:
        return f"uses {node.id}"
    if isinstance(node, ast.Attribute) and node.attr in PROVIDER_CLASSES:
        return f"uses {node.attr}"
    if isinstance(node, ast.alias) and node.name in PROVIDER_CLASSES:
        return f"imports {node.name}"
    return None


def violations(
    roots: tuple[Path, ...], boundary: Path, allowed: dict[Path, tuple[str, ...]] = PEER_SDK_IMPORTS
) -> list[str]:
    found = []
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            if boundary in path.parents:
                continue
            source = path.read_text()
            tree = ast.parse(source)
            parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
            forbidden = [bad for bad in FORBIDDEN_IMPORTS if bad not in allowed.get(path, ())]
            for node in ast.walk(tree):
                for name in imported_names(node):
                    if any(name == bad or name.startswith(bad + ".") for bad in forbidden):
                        found.append(f"{path}:{getattr(node, 'lineno', 0)}: imports {name}")
                        break  # one import statement, one finding
                reach = reaches_for_a_client(node, parents.get(node))
                if reach:
                    line = getattr(node, "lineno", None) or getattr(parents.get(node), "lineno", 0)
                    found.append(f"{path}:{line}: {reach}")
            found += [f"{path}: names {text}" for text in FORBIDDEN_TEXT if text in source]
    return found


def test_nothing_outside_the_boundary_reaches_a_provider() -> None:
    assert violations(SCANNED, BOUNDARY) == []


def test_the_scan_sees_the_boundary_itself() -> None:
    """Control: the boundary names the API, the client class and its private attribute, so a scan
    that skipped nothing would find them."""
    found = violations((BOUNDARY,), REPO_ROOT / "nowhere")
    assert any("names /v1/chat/completions" in f for f in found)
    assert any("reads ._provider" in f for f in found) and any("uses ChatProvider" in f for f in found)


def test_planted_violation_is_caught(tmp_path: Path) -> None:
    sneaky = tmp_path / "app" / "services"
    sneaky.mkdir(parents=True)
    (sneaky / "shortcut.py").write_text("import httpx\nfrom openai import OpenAI\nURL = '/v1/chat/completions'\n")
    (sneaky / "reuse.py").write_text("from app.llm.providers import ChatProvider\n")
    found = violations((tmp_path,), tmp_path / "app" / "llm")
    assert len(found) == 4  # the client import also names the class
    assert any("imports openai" in f for f in found) and any("imports app.llm.providers" in f for f in found)


def test_the_peer_sdk_exception_is_one_file_and_one_import(tmp_path: Path) -> None:
    """Control: the exemption lets the named file import litellm, and nothing else: litellm in any
    other file, or openai in the named one, is still caught."""
    (tmp_path / "peer.py").write_text("import litellm\n")
    (tmp_path / "elsewhere.py").write_text("import litellm\n")
    (tmp_path / "sneaky.py").write_text("import litellm\nimport openai\n")
    allowed: dict[Path, tuple[str, ...]] = {tmp_path / "peer.py": ("litellm",), tmp_path / "sneaky.py": ("litellm",)}
    found = violations((tmp_path,), tmp_path / "app" / "llm", allowed)
    assert [f.split("/")[-1] for f in found] == ["elsewhere.py:1: imports litellm", "sneaky.py:2: imports openai"]
    assert len(violations((tmp_path,), tmp_path / "app" / "llm", {})) == 4  # without it, every import


PLANTED_REACHES = {
    # what the benchmark did: the boundary's client, called directly
    "bench.py": ("gate.provider.complete(model, 'q', max_tokens=200, timeout_s=5)\n", "uses .provider as an object"),
    "private.py": ("gate._provider.complete(model, 'q', max_tokens=1, timeout_s=1)\n", "reads ._provider"),
    "mangled.py": ("client = gate._Boundary__provider\n", "reads ._Boundary__provider"),
    "by_name.py": ("client = getattr(gate, '_provider')\n", "names '_provider'"),
    "by_vars.py": ("client = vars(gate)['_provider']\n", "names '_provider'"),
    "public_name.py": ("client = getattr(gate, 'provider')\n", "getattr .provider"),
    "module.py": (
        "from app.llm import providers\nproviders.ChatProvider('x', 'http://h')\n",
        "imports app.llm.providers",
    ),
    "via_boundary.py": ("from app.llm.boundary import ChatProvider\n", "imports ChatProvider"),
    "made_here.py": ("client = ChatProvider('x', 'http://h')\n", "uses ChatProvider"),
}


def test_planted_attribute_reaches_are_caught(tmp_path: Path) -> None:
    """Control: each way past the boundary to its client, planted alone, is found with its reason."""
    for name, (source, reason) in PLANTED_REACHES.items():
        planted = tmp_path / name.removesuffix(".py")
        planted.mkdir()
        (planted / name).write_text(source)
        found = violations((planted,), tmp_path / "app" / "llm")
        assert any(reason in f for f in found), (name, found)


def test_a_provider_name_read_as_a_value_is_not_a_reach(tmp_path: Path) -> None:
    """The rule's other side: the breaker metric reads a row's provider column; that must stay legal."""
    (tmp_path / "metrics.py").write_text(
        "breaker.add_metric([row.provider, row.model], 1)\nlabel = f'{config.provider}'\n"
    )
    assert violations((tmp_path,), tmp_path / "app" / "llm") == []


def exposed_clients(obj: object) -> list[str]:
    """Public attributes of an object that hold a provider client."""
    return [name for name, value in vars(obj).items() if not name.startswith("_") and isinstance(value, ChatProvider)]


def client_handouts(modules: tuple[types.ModuleType, ...]) -> list[str]:
    """Public functions, methods and properties defined in these modules whose return type is a client."""
    found = []
    for module in modules:
        for name, member in vars(module).items():
            if name.startswith("_") or getattr(member, "__module__", None) != module.__name__:
                continue
            callables: list[tuple[str, Any]] = []
            if inspect.isclass(member):
                for attr, value in vars(member).items():
                    if not attr.startswith("_"):
                        target = value.fget if isinstance(value, property) else getattr(value, "__func__", value)
                        callables.append((f"{name}.{attr}", target))
            elif callable(member):
                callables.append((name, inspect.unwrap(member)))
            for qualified, target in callables:
                if not inspect.isfunction(target):
                    continue
                returned = typing.get_type_hints(target).get("return")
                if ChatProvider in {returned, *typing.get_args(returned)}:
                    found.append(f"{module.__name__}.{qualified}")
    return found


def test_the_boundary_keeps_its_client_private() -> None:
    gate = Boundary(mock_config(), "http://127.0.0.1:9")
    assert not hasattr(gate, "provider") and exposed_clients(gate) == []
    assert client_handouts(PUBLIC_LLM_MODULES) == []


def test_an_exposed_client_is_caught() -> None:
    """Control: a boundary that publishes its client, and a module that hands one out, are both seen."""

    class Leaky(Boundary):
        def __init__(self) -> None:
            super().__init__(mock_config(), "http://127.0.0.1:9")
            self.provider = self._provider

    leaky_module = types.ModuleType("leaky")

    def client() -> ChatProvider | None:
        return None

    class Holder:
        @property
        def client(self) -> ChatProvider:
            raise NotImplementedError

    for member in (client, Holder):
        member.__module__ = "leaky"
        setattr(leaky_module, member.__name__, member)
    assert exposed_clients(Leaky()) == ["provider"]
    assert client_handouts((leaky_module,)) == ["leaky.client", "leaky.Holder.client"]
