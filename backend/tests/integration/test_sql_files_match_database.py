"""The SQL home (backend/sql/) holds the current definition of every server-side function and every
row-level security policy, and this test keeps it equal to what the migrations build.

Head is the live topology's database, migrated by ``alembic upgrade head``. The files are turned into
PostgreSQL's own rendering by applying them to a throwaway database (also migrated to head, so the
tables a policy names exist) inside a transaction that first drops every function and policy there:
``pg_get_functiondef`` renders each function's header canonically and keeps its body verbatim, and
``pg_policies`` deparses each policy's expressions. Bodies are compared line by line with indentation
and blank lines ignored; line breaks stay significant, because a ``--`` comment ends at one.

Drift is reported both ways: a function or policy in the database without a file, a file without a
database object, and a definition that differs. The controls below prove each kind turns it red.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest
from psycopg import sql
from psycopg.rows import TupleRow
from sqlalchemy.engine import make_url

from app.core.roles import OWNER_ROLE
from scripts.harness import REPO_ROOT
from scripts.topology import Topology

from .conftest import superuser_dsn

pytestmark = pytest.mark.integration

SQL_HOME = REPO_ROOT / "backend" / "sql"

# Every schema but PostgreSQL's own (pg_catalog, information_schema, pg_toast, pg_temp_N): an
# application schema added later is covered without a change here.
APPLICATION_SCHEMA = "n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%'"
FUNCTIONS = f"""
    SELECT p.oid::regprocedure::text, pg_get_functiondef(p.oid)
    FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
    WHERE {APPLICATION_SCHEMA} AND p.prokind <> 'a'
      AND NOT EXISTS (SELECT 1 FROM pg_depend d
                      WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')
"""
POLICIES = """
    SELECT p.tablename, p.policyname, p.permissive, p.roles::text[], p.cmd, p.qual, p.with_check
    FROM pg_policies p WHERE p.schemaname <> 'information_schema' AND p.schemaname NOT LIKE 'pg\\_%'
"""


@dataclass(frozen=True)
class Catalog:
    """Functions ({signature: definition}) and policies ({table.policy: what it says}) as PostgreSQL
    renders them, and what the files themselves got wrong (only when built from files)."""

    functions: dict[str, str]
    policies: dict[str, tuple[object, ...]]
    problems: tuple[str, ...] = ()


def read_catalog(conn: psycopg.Connection[TupleRow]) -> Catalog:
    functions = {str(signature): str(definition) for signature, definition in conn.execute(FUNCTIONS)}
    policies: dict[str, tuple[object, ...]] = {
        f"{table}.{name}": (permissive, tuple(sorted(roles)), cmd, qual, with_check)
        for table, name, permissive, roles, cmd, qual, with_check in conn.execute(POLICIES)
    }
    return Catalog(functions, policies)


def sql_files(kind: str) -> dict[str, str]:
    """{stem: text} of backend/sql/<kind>/*.sql."""
    return {path.stem: path.read_text(encoding="utf-8") for path in sorted((SQL_HOME / kind).glob("*.sql"))}


def normalised(definition: str) -> list[str]:
    """Lines without indentation, blank lines dropped."""
    return [line.strip() for line in definition.splitlines() if line.strip()]


def drift(head: Catalog, files: Catalog) -> list[str]:
    """Every difference between the database at head and the files, one line each."""
    found = list(files.problems)
    for kind, at_head, in_files in (
        ("function", head.functions, files.functions),
        ("policy", head.policies, files.policies),
    ):
        for name in sorted(at_head.keys() - in_files.keys()):
            found.append(f"{kind} {name}: in the database, no file in backend/sql")
        for name in sorted(in_files.keys() - at_head.keys()):
            found.append(f"{kind} {name}: in backend/sql, not in the database")
        for name in sorted(at_head.keys() & in_files.keys()):
            ours, theirs = at_head[name], in_files[name]
            if kind == "function":
                lines = [(a, b) for a, b in zip(normalised(str(ours)), normalised(str(theirs)), strict=False) if a != b]
                if lines or len(normalised(str(ours))) != len(normalised(str(theirs))):
                    first = lines[0] if lines else ("(line count)", "(line count)")
                    found.append(f"function {name}: differs from its file (database {first[0]!r}, file {first[1]!r})")
            elif ours != theirs:
                found.append(f"policy {name}: differs from its file (database {ours}, file {theirs})")
    return found


def apply_files(conn: psycopg.Connection[TupleRow], functions: dict[str, str], policies: dict[str, str]) -> Catalog:
    """The catalog the files alone build: in one transaction (rolled back), drop every function
    (with the policies and triggers that use them) and every policy, then apply each file. A file
    must create exactly what its name says: the function of that name, policies on that table."""
    problems: list[str] = []
    with conn.transaction(force_rollback=True):
        for signature in list(read_catalog(conn).functions):
            conn.execute(sql.SQL("DROP FUNCTION IF EXISTS {} CASCADE").format(sql.SQL(str(signature))))
        for table, name, *_ in conn.execute(POLICIES).fetchall():
            conn.execute(sql.SQL("DROP POLICY {} ON {}").format(sql.Identifier(str(name)), sql.Identifier(str(table))))
        conn.execute("SET LOCAL check_function_bodies = off")  # bodies name tables; only the text matters
        for kind, files in (("functions", functions), ("policies", policies)):
            for stem, text in files.items():
                before = read_catalog(conn)
                try:
                    with conn.transaction():
                        conn.execute(text.encode())
                except psycopg.Error as exc:
                    problems.append(f"backend/sql/{kind}/{stem}.sql does not apply: {str(exc).strip()}")
                    continue
                after = read_catalog(conn)
                made = (
                    [name.split("(", 1)[0] for name in after.functions.keys() - before.functions.keys()]
                    if kind == "functions"
                    else [name.split(".", 1)[0] for name in after.policies.keys() - before.policies.keys()]
                )
                expected = [stem] if kind == "functions" else [stem] * len(made)
                if not made or made != expected:
                    problems.append(f"backend/sql/{kind}/{stem}.sql creates {sorted(made)}, not {kind} of {stem}")
        built = read_catalog(conn)
    return Catalog(built.functions, built.policies, tuple(problems))


def alembic_upgrade(topology: Topology, migration_url: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "alembic", "upgrade", "head"],
        cwd=REPO_ROOT,
        env={**os.environ, **topology.operator_env, "MIGRATION_DATABASE_URL": migration_url},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.fixture(scope="module")
def head(topology: Topology) -> Catalog:
    with psycopg.connect(superuser_dsn(topology), autocommit=True) as conn:
        return read_catalog(conn)


@pytest.fixture(scope="module")
def scratch(topology: Topology) -> Iterator[psycopg.Connection[TupleRow]]:
    """A throwaway database at head, owned by the schema owner, as the superuser (it drops and
    creates functions owned by app_system and policies on the owner's tables)."""
    assert topology.dsns is not None
    name = f"{topology.database}_sql_files"
    with psycopg.connect(superuser_dsn(topology), autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        admin.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(OWNER_ROLE)))
        try:
            migration = make_url(topology.dsns.migration).set(database=name).render_as_string(hide_password=False)
            alembic_upgrade(topology, migration)
            with psycopg.connect(superuser_dsn(topology, name), autocommit=True) as conn:
                yield conn
        finally:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="module")
def from_files(scratch: psycopg.Connection[TupleRow]) -> Catalog:
    return apply_files(scratch, sql_files("functions"), sql_files("policies"))


def test_every_function_and_policy_at_head_is_its_file(head: Catalog, from_files: Catalog) -> None:
    assert drift(head, from_files) == []
    assert len(head.functions) >= 20 and len(head.policies) >= 20, "the comparison must see the whole schema"


def test_the_throwaway_database_is_head_too(scratch: psycopg.Connection[TupleRow], head: Catalog) -> None:
    """The controls below build on the throwaway database: it must say what the live one says."""
    assert drift(head, read_catalog(scratch)) == []


def altered(kind: str, stem: str, old: str, new: str) -> dict[str, str]:
    files = sql_files(kind)
    assert old in files[stem], f"the control's text is gone from {kind}/{stem}.sql"
    files[stem] = files[stem].replace(old, new, 1)
    return files


@pytest.mark.parametrize(
    ("stem", "old", "new"),
    [
        pytest.param("llm_admit_for", "'breaker_open'", "'breaker_shut'", id="a-changed-literal"),
        # Joining two lines puts the statement after a comment into it: whitespace, but not harmless.
        pytest.param(
            "llm_admit_for",
            "read together\n    SELECT p_env_kill_switch",
            "read together SELECT p_env_kill_switch",
            id="code-swallowed-by-a-comment",
        ),
        pytest.param("outbox_claim", "VOLATILE", "STABLE", id="a-changed-header"),
        pytest.param("llm_fail", "p_reason text", "p_reason varchar", id="a-changed-signature"),
    ],
)
def test_a_changed_function_file_is_drift(
    head: Catalog, scratch: psycopg.Connection[TupleRow], stem: str, old: str, new: str
) -> None:
    files = apply_files(scratch, altered("functions", stem, old, new), sql_files("policies"))
    found = drift(head, files)
    assert found and all(stem in line for line in found), found


def test_indentation_alone_is_no_drift(head: Catalog, scratch: psycopg.Connection[TupleRow]) -> None:
    """The other side of the normalisation: re-indenting a file changes nothing that matters."""
    functions = sql_files("functions")
    functions["llm_settle"] = "\n".join("  " + line + "\n" for line in functions["llm_settle"].splitlines())
    assert drift(head, apply_files(scratch, functions, sql_files("policies"))) == []


def test_a_function_without_a_file_and_a_file_without_a_function_are_drift(
    scratch: psycopg.Connection[TupleRow], from_files: Catalog
) -> None:
    with scratch.transaction(force_rollback=True):
        scratch.execute("CREATE FUNCTION drift_probe() RETURNS integer LANGUAGE sql AS $$ SELECT 1 $$")
        with_probe = read_catalog(scratch)
    assert drift(with_probe, from_files) == ["function drift_probe(): in the database, no file in backend/sql"]

    functions = sql_files("functions")
    functions["drift_probe"] = "CREATE FUNCTION drift_probe() RETURNS integer LANGUAGE sql AS $$ SELECT 1 $$"
    at_head = read_catalog(scratch)
    assert drift(at_head, apply_files(scratch, functions, sql_files("policies"))) == [
        "function drift_probe(): in backend/sql, not in the database"
    ]


def test_a_file_that_creates_another_function_is_drift(scratch: psycopg.Connection[TupleRow]) -> None:
    functions = sql_files("functions")
    functions["llm_fail_copy"] = functions.pop("llm_fail")
    found = drift(read_catalog(scratch), apply_files(scratch, functions, sql_files("policies")))
    assert found == ["backend/sql/functions/llm_fail_copy.sql creates ['llm_fail'], not functions of llm_fail_copy"]


@pytest.mark.parametrize(
    ("stem", "old", "new", "policy"),
    [
        pytest.param(
            "outbox",
            "WITH CHECK (tenant_id = (SELECT app_current_tenant()));",
            ";",
            "outbox.tenant_isolation",
            id="check-dropped",
        ),
        pytest.param("outbox", "TO app_system", "TO app_rw", "outbox.system_role", id="another-role"),
        pytest.param("api_keys", "FOR SELECT", "FOR ALL", "api_keys.key_lookup", id="another-command"),
        pytest.param(
            "llm_jobs",
            "(tenant_id, user_id) = (SELECT c.tenant_id, c.user_id FROM app_current_context() c)",
            "tenant_id = (SELECT app_current_tenant())",
            "llm_jobs.tenant_isolation",
            id="a-narrower-qual",
        ),
    ],
)
def test_a_changed_policy_file_is_drift(
    head: Catalog, scratch: psycopg.Connection[TupleRow], stem: str, old: str, new: str, policy: str
) -> None:
    found = drift(head, apply_files(scratch, sql_files("functions"), altered("policies", stem, old, new)))
    assert len(found) == 1 and found[0].startswith(f"policy {policy}: differs from its file"), found


def test_a_policy_without_a_file_is_drift(head: Catalog, scratch: psycopg.Connection[TupleRow]) -> None:
    policies = sql_files("policies")
    del policies["tenants"]
    assert drift(head, apply_files(scratch, sql_files("functions"), policies)) == [
        "policy tenants.tenant_isolation: in the database, no file in backend/sql"
    ]
