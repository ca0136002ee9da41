"""Nothing a CI run started may outlive it: no process from the checkout, no embedded PostgreSQL data
directory in the temp folder, no network namespace of a --netns topology.

    python3 scripts/ci/leak_check.py snapshot FILE     # before the run: the data directories already there
    python3 scripts/ci/leak_check.py check FILE        # after it: list what was left, stop it, exit 1

A process counts as the checkout's when its executable, working directory or command line lies
under the checkout (the nox virtualenvs, the embedded server's binaries, the harness's scripts);
this script, the processes that started it, and any process already running when the snapshot was
taken (a developer's `make up` in the same checkout) are not counted. A data directory counts when it is
new since the snapshot and its server was started from this checkout's binaries (``postmaster.opts``
names them), so neither an older run's leftovers nor another checkout's live cluster (a developer
running tests beside a CI run) fail this one, and only this checkout's are removed. A network
namespace counts when it carries the topology's prefix and is new since the snapshot.

Standard library only: it runs with any Python 3, before or after the virtualenvs exist.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[2]
DATA_DIR_PREFIX = "attrib-pg-"  # scripts/topology/postgres.py: EmbeddedPostgres.fresh()
NETNS_PREFIX = "attrib-"  # scripts/topology/netns.py: PREFIX


def namespaces() -> list[str]:
    """The --netns topologies' network namespaces (none where `ip` is missing or not allowed)."""
    try:
        listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return []
    names = (line.split()[0] for line in listed.stdout.splitlines() if line.strip())
    return sorted(name for name in names if name.startswith(NETNS_PREFIX))


def data_dirs(temp_dir: Path) -> list[str]:
    return sorted(str(p) for p in temp_dir.glob(f"{DATA_DIR_PREFIX}*"))


def started_from(directory: str, checkout: Path) -> bool:
    """Whether the cluster in ``directory`` was started with this checkout's server binaries."""
    for opts in Path(directory).glob("*/postmaster.opts"):
        try:
            if str(checkout) + "/" in opts.read_text(errors="replace"):
                return True
        except OSError:
            continue
    return False


def ancestors(pid: int) -> set[int]:
    found = set()
    while pid > 1:
        found.add(pid)
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            break
        pid = int(stat.rsplit(")", 1)[1].split()[1])
    return found


def describe(pid: int) -> dict[str, str] | None:
    """The process's state, executable, working directory and command line, or None when it is gone."""
    proc = Path(f"/proc/{pid}")
    try:
        state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return None
    links = {}
    for name in ("exe", "cwd"):
        try:
            links[name] = os.readlink(proc / name)
        except OSError:
            links[name] = ""
    return {"pid": str(pid), "state": state, "cmdline": cmdline, **links}


def start_time(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def running() -> dict[str, str]:
    """Every process now, by pid, with its start time (a pid alone may be reused)."""
    return {entry.name: start_time(int(entry.name)) for entry in Path("/proc").iterdir() if entry.name.isdigit()}


def leaked_processes(checkout: Path, before: dict[str, str] | None = None) -> list[dict[str, str]]:
    root = str(checkout)
    mine = ancestors(os.getpid())
    earlier = before or {}
    leaked = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in mine:
            continue
        if entry.name in earlier and earlier[entry.name] == start_time(int(entry.name)):
            continue
        info = describe(int(entry.name))
        if info is None or info["state"] == "Z":
            continue
        under = (
            info["exe"].startswith(root + "/") or info["cwd"] == root or info["cwd"].startswith(root + "/")
        ) or root + "/" in info["cmdline"]
        if under:
            leaked.append(info)
    return leaked


def stop(pids: list[int]) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        time.sleep(2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=("snapshot", "check"))
    parser.add_argument("file", type=Path, help="where the snapshot of existing data directories is kept")
    parser.add_argument("--checkout", type=Path, default=CHECKOUT, help="default: the checkout holding this script")
    parser.add_argument("--temp-dir", type=Path, default=Path(tempfile.gettempdir()), help="default: the system's")
    args = parser.parse_args(argv)
    if args.action == "snapshot":
        taken = {"data_dirs": data_dirs(args.temp_dir), "processes": running(), "namespaces": namespaces()}
        args.file.write_text(json.dumps(taken))
        return 0
    snapshot = json.loads(args.file.read_text()) if args.file.exists() else {}
    before = set(snapshot.get("data_dirs", []))
    processes = leaked_processes(args.checkout.resolve(), snapshot.get("processes"))
    checkout = args.checkout.resolve()
    directories = [d for d in data_dirs(args.temp_dir) if d not in before and started_from(d, checkout)]
    netns = [name for name in namespaces() if name not in set(snapshot.get("namespaces", []))]
    if not processes and not directories and not netns:
        print("leak check: no process from the checkout, no new data directory or network namespace is left")
        return 0
    for info in processes:
        print(f"leak check: process {info['pid']} still running: {info['cmdline'][:300]}", file=sys.stderr)
    for directory in directories:
        print(f"leak check: data directory left behind: {directory}", file=sys.stderr)
    for name in netns:
        print(f"leak check: network namespace left behind: {name}", file=sys.stderr)
        subprocess.run(["ip", "netns", "delete", name], capture_output=True, timeout=10, check=False)
    stop([int(info["pid"]) for info in processes])  # reported above; do not let them spoil the next run
    for directory in directories:
        shutil.rmtree(directory, ignore_errors=True)
    return 1


if __name__ == "__main__":
    sys.exit(main())
