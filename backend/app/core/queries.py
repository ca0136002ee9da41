"""Hot-path queries that live as SQL files (backend/sql/queries/<name>.sql), read once per process.

A file starts with ``--`` comment lines (what the query is for, who runs it, its binds); the text
handed to SQLAlchemy is what follows them, so a comment can never be taken for a bind parameter.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

QUERIES = Path(__file__).resolve().parents[2] / "sql" / "queries"


@cache
def query(name: str) -> str:
    """The SQL of ``backend/sql/queries/<name>.sql`` without its leading comment lines."""
    lines = (QUERIES / f"{name}.sql").read_text(encoding="utf-8").splitlines()
    while lines and (not lines[0].strip() or lines[0].lstrip().startswith("--")):
        lines.pop(0)
    if not lines:
        raise ValueError(f"{name}.sql holds no statement")
    return "\n".join(lines) + "\n"
