"""Negative controls for the evidence pack: a planted secret fails EG8.7, a tampered artifact fails
the manifest check, and the gate index in docs/ops/phase8 is the one the code renders. Also what
report.html and the in-toto attestation say about a pack.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from scripts.phase8 import docs, report
from scripts.phase8.evidence import scan_for_secrets, write_attestation, write_manifest
from scripts.phase8.gates import GateContext, eg8_7_evidence

RUN_PASSWORD = "Zq3v-9_kLmNoPqRsTuVwXyZ012345"


def evidence_dir(tmp_path: Path) -> Path:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "api.log").write_text("INFO started on http://127.0.0.1:8000\n")
    (logs / "worker.log").write_text("Connected to sqla+postgresql://app_user:**@/attribution\n")
    (logs / "step.log").write_text('{"dsn": "postgresql://app_user:***@/attribution"}\n')
    return tmp_path


def gate_7(root: Path) -> Any:
    topology = SimpleNamespace(secrets=lambda: [RUN_PASSWORD])
    return eg8_7_evidence(GateContext(root, "ci_subset", cast(Any, topology)))


def test_clean_logs_pass(tmp_path: Path) -> None:
    result = gate_7(evidence_dir(tmp_path))
    assert result.status == "passed", result.metrics


@pytest.mark.parametrize(
    ("planted", "kind"),
    [
        (f"connecting with password {RUN_PASSWORD}", "run_secret"),
        ("DATABASE_URL=postgresql+asyncpg://app_user:hunter2hunter2@/db", "dsn_with_password"),
        ("Authorization: Bearer ak_AbCdEfGhIjKlMnOp1234", "bearer_token"),
        ("secret=whsec_c2VjcmV0c2VjcmV0c2VjcmV0", "webhook_secret"),
    ],
)
def test_planted_secret_fails_eg8_7(tmp_path: Path, planted: str, kind: str) -> None:
    root = evidence_dir(tmp_path)
    with (root / "logs" / "worker.log").open("a") as log:
        log.write(planted + "\n")
    result = gate_7(root)
    assert result.status == "failed"
    assert f"logs/worker.log:2: {kind}" in result.error
    assert [str(f) for f in scan_for_secrets(root, [RUN_PASSWORD])] == [f"logs/worker.log:2: {kind}"]


@pytest.mark.skipif(shutil.which("sha256sum") is None, reason="coreutils sha256sum not installed")
def test_tampered_artifact_fails_the_manifest(tmp_path: Path) -> None:
    root = evidence_dir(tmp_path)
    (root / "phase8_gate_summary.json").write_text('{"status": "passed"}\n')
    write_manifest(root)

    def verify() -> int:
        return subprocess.run(
            ["sha256sum", "-c", "--quiet", "manifest.sha256"], cwd=root, capture_output=True, check=False
        ).returncode

    assert verify() == 0
    (root / "phase8_gate_summary.json").write_text('{"status": "failed"}\n')
    assert verify() != 0


def test_gate_index_is_current() -> None:
    assert docs.INDEX.read_text() == docs.render(), "run `python -m scripts.phase8.docs`"


def test_report_and_attestation_describe_the_pack(tmp_path: Path) -> None:
    root = evidence_dir(tmp_path)
    (root / "r3").mkdir()
    step = {
        "target_rps": 5.0,
        "achieved_rps": 5.0,
        "p50_ms": 6.1,
        "p95_ms": 9.0,
        "p99_ms": 21.0,
        "p99_9_ms": 22.0,
        "max_ms": 22.5,
        "errors": 0,
        "status": "passed",
    }
    series = [{"t_s": t, "p50_ms": 5.0 + t, "p99_ms": 20.0 + t} for t in range(10)]
    (root / "r3" / "ingestion_under_fire.json").write_text(
        json.dumps({"profile": "sanity", "steps": [step], "timeseries": series})
    )
    summary = {
        "status": "failed",
        "mode": "ci_subset",
        "git_sha": "abc123",
        "error": "eg8_5_composed_ingestion_perf: perf_composed_llm_calls = 0",
        "gates": {
            "eg8_1_topology": {
                "title": "EG8.1 topology",
                "status": "passed",
                "duration_s": 1.5,
                "first_log": "logs/api.log",
            },
            "eg8_5_composed_ingestion_perf": {
                "title": "EG8.5",
                "status": "failed",
                "duration_s": 40.0,
                "first_log": "logs/r3_ingestion_under_fire.log",
                "metrics": {"target_rps": 5.0, "perf_composed_llm_calls": 0},
            },
        },
    }
    (root / "phase8_gate_summary.json").write_text(json.dumps(summary))
    html = report.render(root, summary).read_text()
    assert "eg8_5_composed_ingestion_perf" in html and "perf_composed_llm_calls = 0" in html
    assert html.count("<polyline") == 2  # p50 and p99 over time
    assert "logs/api.log" in html and "<script" not in html

    write_manifest(root)
    statement = json.loads(write_attestation(root, summary).read_text())
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    subjects = {s["name"]: s["digest"]["sha256"] for s in statement["subject"]}
    files = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()} - {"attestation.intoto.json"}
    assert set(subjects) == files  # every evidence file, the manifest and the report included
    summary_digest = hashlib.sha256((root / "phase8_gate_summary.json").read_bytes()).hexdigest()
    assert subjects["phase8_gate_summary.json"] == summary_digest
    assert statement["predicate"]["gates"] == {"eg8_1_topology": "passed", "eg8_5_composed_ingestion_perf": "failed"}
    assert statement["predicate"]["git_sha"] == "abc123" and statement["predicate"]["mode"] == "ci_subset"
