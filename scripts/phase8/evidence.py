"""Evidence pack primitives: step logs, the secret-hygiene scan and the sha256 manifest."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scripts import interrupts
from scripts.harness import REPO_ROOT, redact_dsn
from scripts.topology.processes import stop_group

MANIFEST = "manifest.sha256"
ATTESTATION = "attestation.intoto.json"
PREDICATE_TYPE = "https://github.com/attribution-backend/phase8-closure-pack/v1"
STEP_STOP_GRACE_S = 2.0

# Shapes of secrets that must never reach a log, whatever the run's own secrets were.
SECRET_PATTERNS = {
    "dsn_with_password": re.compile(r"[a-z][a-z0-9+.-]*://[^:/@\s]+:(?!\*+@)[^@\s]+@", re.I),
    "bearer_token": re.compile(r"Bearer\s+ak_[A-Za-z0-9_-]{8,}"),
    "api_key": re.compile(r"\bak_[A-Za-z0-9_-]{32,}"),
    "webhook_secret": re.compile(r"\bwhsec_[A-Za-z0-9+/=_-]{8,}"),
}


@dataclass
class SecretFinding:
    file: str
    line: int
    kind: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.kind}"


def scan_for_secrets(root: Path, known_secrets: list[str]) -> list[SecretFinding]:
    """Every place under ``root`` (logs and evidence) where a known secret or a secret shape appears."""
    findings = []
    literal = [s for s in known_secrets if len(s) >= 8]
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.name not in (MANIFEST, ATTESTATION)):
        text = path.read_text(errors="replace")
        for number, line in enumerate(text.splitlines(), start=1):
            kinds = [name for name, pattern in SECRET_PATTERNS.items() if pattern.search(line)]
            kinds += ["run_secret"] if any(secret in line for secret in literal) else []
            findings += [SecretFinding(str(path.relative_to(root)), number, kind) for kind in kinds]
    return findings


def file_digests(root: Path, skip: tuple[str, ...] = ()) -> dict[str, str]:
    """sha256 of every file under ``root`` by relative POSIX path, sorted; ``skip`` names top-level files."""
    return {
        path.relative_to(root).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(p for p in root.rglob("*") if p.is_file() and p.relative_to(root).as_posix() not in skip)
    }


def write_manifest(root: Path) -> Path:
    """sha256 of every file under ``root`` in ``sha256sum -c`` format, sorted for stable diffs."""
    lines = [f"{digest}  {name}" for name, digest in file_digests(root, (MANIFEST, ATTESTATION)).items()]
    manifest = root / MANIFEST
    manifest.write_text("\n".join(lines) + "\n")
    return manifest


def write_attestation(root: Path, summary: dict[str, Any]) -> Path:
    """An in-toto v1 Statement: every evidence file (manifest included) as a subject, the run as predicate."""
    statement = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [
            {"name": name, "digest": {"sha256": digest}} for name, digest in file_digests(root, (ATTESTATION,)).items()
        ],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "status": summary.get("status"),
            "mode": summary.get("mode"),
            "git_sha": summary.get("git_sha"),
            "started_at": summary.get("started_at"),
            "finished_at": summary.get("finished_at"),
            "gates": {gate_id: gate.get("status") for gate_id, gate in summary.get("gates", {}).items()},
        },
    }
    path = root / ATTESTATION
    path.write_text(json.dumps(statement, indent=2) + "\n")
    return path


def start_step(name: str, argv: list[str], logs_dir: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """Start one harness step as its own process, its output appended to ``logs/<name>.log``."""
    full_env = {**os.environ, **env}
    with (logs_dir / f"{name}.log").open("ab") as log, interrupts.shielded():
        # Shielded: a signal now is recorded, and finish_step (which must follow) stops the step.
        shown = " ".join(Path(a).name if a == sys.executable else a for a in argv)
        log.write(f"$ {redact_dsn(shown)}\n".encode())
        log.flush()
        return subprocess.Popen(
            argv,
            cwd=REPO_ROOT,
            env=full_env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopping the step stops what it started
        )


def stop_step(proc: subprocess.Popen[bytes], grace_s: float = STEP_STOP_GRACE_S) -> None:
    """SIGTERM the step's whole process group, SIGKILL what is left after ``grace_s``, reap the step."""
    stop_group(proc.pid, grace_s)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


def finish_step(name: str, proc: subprocess.Popen[bytes], logs_dir: Path, timeout_s: float) -> int:
    """Wait for a started step; past the timeout it is stopped, noted in its log, and exits 124.

    After an interrupt it is stopped at once, whatever its timeout: the orchestrator is on its way out.
    """
    try:
        if interrupts.received() is not None:
            raise KeyboardInterrupt(f"interrupted while waiting for {name}")
        return proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        stop_step(proc)
        with (logs_dir / f"{name}.log").open("ab") as log:
            log.write(f"\n[harness] step timed out after {timeout_s:g}s\n".encode())
        return 124
    except BaseException:  # Ctrl-C in the orchestrator: the step must not outlive it
        with interrupts.shielded():
            stop_step(proc)
        raise


def run_step(name: str, argv: list[str], logs_dir: Path, env: dict[str, str], timeout_s: float) -> int:
    """Run one harness step as its own process, its output in ``logs/<name>.log``; returns the exit code."""
    return finish_step(name, start_step(name, argv, logs_dir, env), logs_dir, timeout_s)
