"""Evidence pack primitives: step logs, the secret-hygiene scan and the sha256 manifest."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from scripts.harness import REPO_ROOT, redact_dsn

MANIFEST = "manifest.sha256"

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
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.name != MANIFEST):
        text = path.read_text(errors="replace")
        for number, line in enumerate(text.splitlines(), start=1):
            kinds = [name for name, pattern in SECRET_PATTERNS.items() if pattern.search(line)]
            kinds += ["run_secret"] if any(secret in line for secret in literal) else []
            findings += [SecretFinding(str(path.relative_to(root)), number, kind) for kind in kinds]
    return findings


def write_manifest(root: Path) -> Path:
    """sha256 of every file under ``root`` in ``sha256sum -c`` format, sorted for stable diffs."""
    lines = []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.name != MANIFEST):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        lines.append(f"{digest}  {path.relative_to(root).as_posix()}")
    manifest = root / MANIFEST
    manifest.write_text("\n".join(lines) + "\n")
    return manifest


def run_step(name: str, argv: list[str], logs_dir: Path, env: dict[str, str], timeout_s: float) -> int:
    """Run one harness step as its own process, its output in ``logs/<name>.log``; returns the exit code."""
    log_path = logs_dir / f"{name}.log"
    full_env = {
        **os.environ,
        **env,
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), str(REPO_ROOT / "backend")]),
    }
    with log_path.open("ab") as log:
        shown = " ".join(Path(a).name if a == sys.executable else a for a in argv)
        log.write(f"$ {redact_dsn(shown)}\n".encode())
        log.flush()
        try:
            return subprocess.run(
                argv,
                cwd=REPO_ROOT,
                env=full_env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=timeout_s,
                check=False,
            ).returncode
        except subprocess.TimeoutExpired:
            log.write(f"\n[harness] step timed out after {timeout_s:g}s\n".encode())
            return 124
