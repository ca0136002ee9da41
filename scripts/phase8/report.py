"""report.html: the evidence pack for a person (gate table, latency, throughput, logs).

Self-contained (inline CSS and SVG, no scripts), built only from the summary and the result
files the gates wrote, so it shows nothing the evidence does not.
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

from scripts.harness import read_json_object

REPORT = "report.html"
STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#1d2329;max-width:72rem}
h1{font-size:1.5rem} h2{font-size:1.15rem;margin-top:2rem}
table{border-collapse:collapse;margin:.5rem 0} td,th{border:1px solid #ccd3da;padding:.3rem .6rem;text-align:left}
th{background:#eef2f5} .passed{color:#176b2c;font-weight:600} .failed{color:#b3261e;font-weight:600}
.meta{color:#55606b} svg{background:#fafbfc;border:1px solid #ccd3da}
"""


def _gate_rows(summary: dict[str, Any]) -> str:
    rows = []
    for gate_id, gate in summary.get("gates", {}).items():
        status = escape(str(gate.get("status")))
        log = escape(str(gate.get("first_log", "")))
        rows.append(
            f"<tr><td>{escape(gate_id)}</td><td>{escape(str(gate.get('title', '')))}</td>"
            f"<td class='{status}'>{status}</td><td>{gate.get('duration_s', 0):.1f}</td>"
            f"<td>{escape(str(gate.get('error', '')))}</td><td><a href='{log}'>{log}</a></td></tr>"
        )
    head = "<tr><th>gate</th><th>title</th><th>status</th><th>seconds</th><th>error</th><th>read first</th></tr>"
    return f"<table>{head}{''.join(rows)}</table>"


def _latency_table(result: dict[str, Any]) -> str:
    steps = result.get("steps") or []
    if not steps:
        return "<p>No ingestion result.</p>"
    head = (
        "<tr><th>target rps</th><th>achieved rps</th><th>p50</th><th>p95</th><th>p99</th><th>p99.9</th>"
        "<th>max (ms)</th><th>errors</th><th>status</th></tr>"
    )
    rows = "".join(
        f"<tr><td>{s['target_rps']:g}</td><td>{s['achieved_rps']}</td><td>{s['p50_ms']}</td><td>{s['p95_ms']}</td>"
        f"<td>{s['p99_ms']}</td><td>{s['p99_9_ms']}</td><td>{s['max_ms']}</td><td>{s['errors']}</td>"
        f"<td class='{escape(s['status'])}'>{escape(s['status'])}</td></tr>"
        for s in steps
    )
    return f"<table>{head}{rows}</table>"


def latency_svg(series: list[dict[str, Any]], width: int = 720, height: int = 240) -> str:
    """p50 and p99 (corrected, ms) for each second of the schedule, as two polylines."""
    if not series:
        return "<p>No latency series.</p>"
    pad = 40
    top = max(max(point["p99_ms"] for point in series), 1.0) * 1.1
    last = max(series[-1]["t_s"], 1)

    def line(key: str) -> str:
        x_scale, y_scale = (width - 2 * pad) / last, (height - 2 * pad) / top
        return " ".join(f"{pad + p['t_s'] * x_scale:.1f},{height - pad - p[key] * y_scale:.1f}" for p in series)

    return (
        f"<svg width='{width}' height='{height}' role='img' aria-label='latency over time'>"
        f"<line x1='{pad}' y1='{height - pad}' x2='{width - pad}' y2='{height - pad}' stroke='#555'/>"
        f"<line x1='{pad}' y1='{pad}' x2='{pad}' y2='{height - pad}' stroke='#555'/>"
        f"<text x='{pad}' y='{pad - 8}' font-size='11'>{top:.1f} ms</text>"
        f"<text x='{width - pad - 30}' y='{height - pad + 16}' font-size='11'>{last} s</text>"
        f"<polyline fill='none' stroke='#1f6feb' stroke-width='2' points='{line('p50_ms')}'/>"
        f"<polyline fill='none' stroke='#d1242f' stroke-width='2' points='{line('p99_ms')}'/>"
        f"<text x='{width - 150}' y='{pad}' font-size='12' fill='#1f6feb'>p50</text>"
        f"<text x='{width - 110}' y='{pad}' font-size='12' fill='#d1242f'>p99 (corrected)</text></svg>"
    )


def _sweep_steps(sweep: dict[str, Any]) -> str:
    """One row per sustained step: intake p99, attribution lag, backlog at the end, verdict."""
    keys: tuple[str, ...] = ("target_rps", "duration_s", "p99_ms", "attribution_lag_p50_ms")
    keys += ("attribution_lag_p99_ms", "outbox_pending_at_end", "status")
    head = "".join(f"<th>{escape(k)}</th>" for k in keys)
    rows = "".join(
        "<tr>" + "".join(f"<td>{escape(str(step.get(k)))}</td>" for k in keys) + "</tr>"
        for step in sweep.get("steps", [])
    )
    return f"<table><tr>{head}</tr>{rows}</table>"


def render(artifact_dir: Path, summary: dict[str, Any]) -> Path:
    ingestion = read_json_object(artifact_dir / "r3" / "ingestion_under_fire.json")
    sweep = read_json_object(artifact_dir / "r3" / "ingestion_sweep.json")
    eg85 = summary.get("gates", {}).get("eg8_5_composed_ingestion_perf", {}).get("metrics", {})
    logs = sorted(p.relative_to(artifact_dir).as_posix() for p in (artifact_dir / "logs").glob("*.log"))
    status = escape(str(summary.get("status")))
    sustainable = eg85.get("max_sustainable_rps", "not run in this mode")
    sweep_ratio = eg85.get("sweep_ratio_to_baseline", "not run in this mode")
    throughput = (
        f"<table><tr><th>target rps</th><td>{eg85.get('target_rps')}</td></tr>"
        f"<tr><th>achieved rps</th><td>{eg85.get('achieved_rps')}</td></tr>"
        f"<tr><th>plain-insert baseline (tps, same run)</th><td>{eg85.get('baseline_insert_tps')}</td></tr>"
        f"<tr><th>ratio to baseline (this profile)</th><td>{eg85.get('ratio_to_baseline')}</td></tr>"
        f"<tr><th>max sustainable rps (sweep)</th><td>{sustainable}</td></tr>"
        f"<tr><th>sweep ratio to its baseline</th><td>{sweep_ratio}</td></tr>"
        f"<tr><th>HTTP peer max sustainable rps (same run)</th><td>{eg85.get('peer_http_insert_max_rps')}</td></tr>"
        f"<tr><th>ratio to the HTTP peer</th><td>{eg85.get('ratio_to_http_peer')}</td></tr>"
        f"<tr><th>null benchmark p99 (harness floor, ms)</th><td>{eg85.get('null_benchmark_p99_ms')}</td></tr>"
        f"<tr><th>LLM calls ledgered in the ingestion window</th><td>{eg85.get('perf_composed_llm_calls')}</td></tr>"
        "</table>"
    )
    sweep_part = ""
    if sweep:
        sweep_part = (
            f"<h2>Sustained capacity sweep</h2>{_sweep_steps(sweep)}{_latency_table(sweep)}"
            f"{latency_svg(sweep.get('timeseries', []))}"
        )
    html = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Phase 8 closure pack: {status}</title>
<style>{STYLE}</style></head><body>
<h1>Phase 8 closure pack: <span class="{status}">{status}</span></h1>
<p class="meta">mode {escape(str(summary.get("mode")))} &middot; commit {escape(str(summary.get("git_sha")))}
&middot; started {escape(str(summary.get("started_at")))} &middot; {summary.get("duration_s", 0):.0f} s</p>
{f"<p class='failed'>{escape(str(summary['error']))}</p>" if summary.get("error") else ""}
<h2>Gates</h2>{_gate_rows(summary)}
<h2>Ingestion under fire ({escape(str(ingestion.get("profile", "not run")))})</h2>
{_latency_table(ingestion)}
<h3>Latency over time</h3>{latency_svg(ingestion.get("timeseries", []))}
<h2>Throughput</h2>{throughput}
{sweep_part}
<h2>Logs</h2><ul>{"".join(f"<li><a href='{escape(p)}'>{escape(p)}</a></li>" for p in logs)}</ul>
<p class="meta">Verify the pack: <code>sha256sum -c manifest.sha256</code>; provenance in
<code>attestation.intoto.json</code>.</p>
</body></html>
"""
    path = artifact_dir / REPORT
    path.write_text(html)
    return path
