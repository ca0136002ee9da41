"""Each migration holds (or loads from its own frozen files in versions/sql/) the full SQL it applies:
no revision imports another one, patches SQL text by string replacement, or loads a frozen file that
belongs to another revision, and no frozen file is left that no revision applies. Read from the
sources with ``ast``; the current definitions live in backend/sql (test_sql_files_match_database).
"""

from __future__ import annotations

import ast
import re

import pytest

from scripts.harness import REPO_ROOT

VERSIONS = REPO_ROOT / "backend" / "alembic" / "versions"
# What a revision may import: Alembic and SQLAlchemy, the standard library's typing helpers, and the
# application's stable helpers (role names, DDL helpers, sealing). Not importlib, not another revision.
REVISION_FILE = re.compile(r"\d{4}_\w+\.py")  # how a helper would load another revision
IMPORTABLE = {"__future__", "alembic", "sqlalchemy", "typing", "uuid", "app"}


def revision_sources() -> dict[str, str]:
    return {path.name: path.read_text(encoding="utf-8") for path in sorted(VERSIONS.glob("[0-9]*.py"))}


def frozen_files() -> set[str]:
    return {path.name for path in (VERSIONS / "sql").glob("*.sql")}


def problems(filename: str, source: str, frozen: set[str]) -> list[str]:
    """What in one revision's source breaks the rule."""
    number = filename.split("_", 1)[0]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import | ast.ImportFrom):
            modules = [alias.name for alias in node.names] if isinstance(node, ast.Import) else [node.module or "."]
            found += [f"{filename}: imports {m}" for m in modules if m.split(".")[0] not in IMPORTABLE]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "replace":
            found.append(f"{filename}:{node.lineno}: edits text with .replace()")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and REVISION_FILE.match(node.value):
            found.append(f"{filename}: refers to the revision {node.value}")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.endswith(".sql"):
            if node.value not in frozen:
                found.append(f"{filename}: applies {node.value}, which is not in versions/sql")
            elif not node.value.startswith(f"{number}_"):
                found.append(f"{filename}: applies {node.value}, another revision's frozen file")
    return found


def orphans(sources: dict[str, str], frozen: set[str]) -> list[str]:
    named = {
        node.value
        for source in sources.values()
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    }
    return sorted(f"versions/sql/{name}: no revision applies it" for name in frozen - named)


def test_every_revision_holds_the_sql_it_applies() -> None:
    sources, frozen = revision_sources(), frozen_files()
    assert len(sources) >= 20 and frozen, "the check must see the revisions and their frozen files"
    found = [line for name, source in sources.items() for line in problems(name, source, frozen)]
    assert found + orphans(sources, frozen) == []


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        pytest.param(
            "import importlib.util\nFIRST = importlib.util.spec_from_file_location('r', '0009.py')\n",
            "0015_x.py: imports importlib.util",
            id="loads-another-revision",
        ),
        pytest.param(
            "FIRST = revision_module('0009_llm_boundary_functions.py')\n",
            "0015_x.py: refers to the revision 0009_llm_boundary_functions.py",
            id="a-helper-loads-another-revision",
        ),
        pytest.param("from scripts.harness import REPO_ROOT\n", "0015_x.py: imports scripts.harness", id="imports"),
        pytest.param(
            "ADMIT = 'CREATE FUNCTION f()'\nSCOPED = ADMIT.replace('f()', 'g()')\n",
            "0015_x.py:2: edits text with .replace()",
            id="patches-sql",
        ),
        pytest.param(
            "op.execute(frozen_sql(__file__, '0015_missing.sql'))\n",
            "0015_x.py: applies 0015_missing.sql, which is not in versions/sql",
            id="missing-frozen-file",
        ),
        pytest.param(
            "op.execute(frozen_sql(__file__, '0010_webhook_intake_event.sql'))\n",
            "0015_x.py: applies 0010_webhook_intake_event.sql, another revision's frozen file",
            id="another-revisions-file",
        ),
    ],
)
def test_each_breach_is_found(source: str, expected: str) -> None:
    assert problems("0015_x.py", source, frozen_files()) == [expected]


def test_an_unused_frozen_file_is_found() -> None:
    found = orphans(revision_sources(), frozen_files() | {"0015_forgotten.sql"})
    assert found == ["versions/sql/0015_forgotten.sql: no revision applies it"]
