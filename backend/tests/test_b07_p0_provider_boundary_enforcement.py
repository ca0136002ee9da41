"""Only the boundary reaches a provider: no module outside backend/app/llm/ imports the provider
client or an LLM SDK, or names the chat-completions API. A planted violation is caught.
"""

from __future__ import annotations

import ast
from pathlib import Path

from scripts.harness import REPO_ROOT

SCANNED = (REPO_ROOT / "backend" / "app", REPO_ROOT / "scripts")
BOUNDARY = REPO_ROOT / "backend" / "app" / "llm"
FORBIDDEN_IMPORTS = ("app.llm.providers", "openai", "anthropic", "litellm", "google.generativeai")
FORBIDDEN_TEXT = ("/v1/chat/completions", "/v1/completions", "/v1/messages")


def violations(roots: tuple[Path, ...], boundary: Path) -> list[str]:
    found = []
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            if boundary in path.parents:
                continue
            source = path.read_text()
            for node in ast.walk(ast.parse(source)):
                names: list[str] = []
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module:
                    names = [node.module]
                for name in names:
                    if any(name == bad or name.startswith(bad + ".") for bad in FORBIDDEN_IMPORTS):
                        found.append(f"{path}:{node.lineno}: imports {name}")
            found += [f"{path}: names {text}" for text in FORBIDDEN_TEXT if text in source]
    return found


def test_nothing_outside_the_boundary_reaches_a_provider() -> None:
    assert violations(SCANNED, BOUNDARY) == []


def test_the_scan_sees_the_boundary_itself() -> None:
    """Control: the provider module does name the API, so a scan that skipped nothing would find it."""
    assert violations((BOUNDARY,), REPO_ROOT / "nowhere") != []


def test_planted_violation_is_caught(tmp_path: Path) -> None:
    sneaky = tmp_path / "app" / "services"
    sneaky.mkdir(parents=True)
    (sneaky / "shortcut.py").write_text("import httpx\nfrom openai import OpenAI\nURL = '/v1/chat/completions'\n")
    (sneaky / "reuse.py").write_text("from app.llm.providers import ChatProvider\n")
    found = violations((tmp_path,), tmp_path / "app" / "llm")
    assert len(found) == 3
    assert any("imports openai" in f for f in found) and any("imports app.llm.providers" in f for f in found)
