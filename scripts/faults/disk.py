"""PostgreSQL out of disk under load: its WAL on a small tmpfs that fills, then space freed again.

The cluster is stopped cleanly, ``pg_wal`` moved onto a tmpfs of its own (a symlink, as an operator
puts WAL on another volume), and the server started with ``wal_recycle = off`` so every new segment
needs fresh space, as on a filled volume. A quarter into the load a filler file takes all but a
sliver of the tmpfs and the server is made to start a new segment (``pg_switch_wal``, so the moment
does not depend on the WAL rate): that write fails, PostgreSQL PANICs, and its restart cannot finish
while the disk is full. The api must refuse cleanly meanwhile (503, never 500), nothing acknowledged
may be lost, and after the filler is deleted (and the server started again, as a supervisor would)
it accepts again. Afterwards the WAL goes back into the data directory and the tmpfs is unmounted,
also when the scenario fails; ``kill_stale_cluster`` unmounts what a killed run left.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import Engine

from scripts.faults.scenarios import ScenarioResult, first_ack_after, judged, start_load
from scripts.topology import Topology
from scripts.topology.postgres import EmbeddedPostgres

SEGMENT_MB = 16  # PostgreSQL's default WAL segment size
HEADROOM_MB = 3 * SEGMENT_MB  # room for the load until the filler arrives
LEFT_FREE_MB = 2  # less than a segment: the next one cannot be created
FULL_S = 8.0  # how long the disk stays full under load


def _chown(path: Path, embedded: EmbeddedPostgres) -> None:
    if embedded.system_user:
        shutil.chown(path, embedded.system_user, embedded.system_user)


def _move_into(source: Path, target: Path, embedded: EmbeddedPostgres, skip: str = "") -> None:
    """Move a directory's entries across file systems; the copies belong to the server's user again."""
    for entry in source.iterdir():
        if entry.name != skip:
            shutil.move(str(entry), target / entry.name)
    for moved in [target, *target.rglob("*")]:
        _chown(moved, embedded)


def _admin_sql(embedded: EmbeddedPostgres, statement: str) -> None:
    with psycopg.connect(embedded.admin_url, autocommit=True, connect_timeout=5) as conn:
        conn.execute(statement.encode())  # constant statements of this module


@contextlib.contextmanager
def wal_on_tmpfs(topology: Topology) -> Iterator[Path]:
    """pg_wal on a tmpfs sized to today's WAL plus HEADROOM_MB; yields the mount point."""
    embedded = topology.embedded
    assert embedded is not None
    wal = embedded.pgdata / "pg_wal"
    mount = embedded.pgdata.parent / "wal-tmpfs"
    _admin_sql(embedded, "ALTER SYSTEM SET wal_recycle = off")
    topology.stop_postgres()
    used_mb = sum(f.stat().st_size for f in wal.rglob("*") if f.is_file()) // 2**20
    mount.mkdir(exist_ok=True)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={used_mb + HEADROOM_MB}m,mode=0700", "tmpfs", str(mount)], check=True
    )
    try:
        _chown(mount, embedded)
        _move_into(wal, mount, embedded)
        wal.rmdir()
        wal.symlink_to(mount)
        topology.start_postgres()
        yield mount
    finally:
        with contextlib.suppress(Exception):
            topology.stop_postgres()
        if wal.is_symlink():
            wal.unlink()
            wal.mkdir(mode=0o700)
            _move_into(mount, wal, embedded, skip="filler")
        subprocess.run(["umount", str(mount)], check=False)
        with contextlib.suppress(OSError):
            mount.rmdir()
        topology.start_postgres()
        _admin_sql(embedded, "ALTER SYSTEM RESET wal_recycle")
        _admin_sql(embedded, "SELECT pg_reload_conf()")


def fill(mount: Path) -> int:
    """Take all but LEFT_FREE_MB of the tmpfs; returns the filler's size in MB."""
    stats = os.statvfs(mount)
    free_mb = stats.f_bavail * stats.f_frsize // 2**20
    size_mb = max(0, free_mb - LEFT_FREE_MB)
    with (mount / "filler").open("wb") as handle:
        for _ in range(size_mb):
            handle.write(b"\0" * 2**20)  # written, not sparse: tmpfs counts only written pages
    return size_mb


# A switch with nothing written since the last one is a no-op, and a segment may already be
# preallocated: write WAL (a 1 MiB message) before each switch, until the server cannot go on.
FILL_WAL_SQL = "SELECT pg_logical_emit_message(false, 'disk-fault', repeat('x', 1048576)), pg_switch_wal()"
FILL_ATTEMPTS = 12


def force_new_segment(embedded: EmbeddedPostgres) -> str:
    """Write WAL and switch segments until the server can no longer write one; returns what it said."""
    for _ in range(FILL_ATTEMPTS):
        try:
            _admin_sql(embedded, FILL_WAL_SQL)
        except psycopg.Error as exc:
            return type(exc).__name__
    return "switched without failing"


def postgres_out_of_disk(topology: Topology, engine: Engine, rate: float, duration_s: float) -> ScenarioResult:
    embedded = topology.embedded
    if embedded is None:
        raise RuntimeError("the disk scenario needs the embedded server")
    details: dict[str, Any] = {}
    with wal_on_tmpfs(topology) as mount:
        engine.dispose()  # the server was restarted under our pooled connections
        load = start_load(topology, engine, rate, max(duration_s, duration_s / 4 + FULL_S + 8))
        time.sleep(duration_s / 4)
        details["filler_mb"] = fill(mount)
        details["switch_answer"] = force_new_segment(embedded)
        time.sleep(FULL_S)
        (mount / "filler").unlink()
        freed = time.perf_counter()
        details["postgres_running_when_freed"] = embedded.pid() is not None
        if embedded.pid() is None:
            topology.start_postgres()  # a supervisor restarts it; recovery replays the WAL
        record = load.join()
        engine.dispose()
        result = judged("postgres_out_of_disk", topology, engine, load, record, first_ack_after(record, freed), 120)
    answers: dict[str, int] = result.details["answers"]
    details["refused_while_full"] = answers.get("503", 0)
    result.details.update(details, problems=disk_problems(answers))
    if result.details["problems"]:
        result.status = "failed"
    return result


def disk_problems(answers: dict[str, int]) -> list[str]:
    """A full disk must show as clean refusals; none at all means the disk never filled (no proof)."""
    problems = [] if answers.get("503") else ["no 503 while the disk was full: the fault did not bite"]
    if answers.get("500"):
        problems.append(f"{answers['500']} answers of 500 while the disk was full")
    return problems
