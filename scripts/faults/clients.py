"""Slow clients under load: SLOW_CLIENTS connections trickle webhook bodies (slowloris) while the
normal load runs, which must keep its p99 under P99_LIMIT_MS and the exact-count verdict.

A slow client sends its headers with a large Content-Length and then one byte every TRICKLE_S,
more often than the intake's per-chunk body timeout, so the api cannot tell it from a slow network
and keeps each one open. Whether the api cuts them off (408 at its total body timeout) or holds them
to the end, the normal traffic beside them must not queue behind them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Engine

from scripts.faults.scenarios import ScenarioResult, judged, start_load
from scripts.r3.openloop import latency_histogram, percentiles
from scripts.topology import Topology

SLOW_CLIENTS = 500
TRICKLE_S = 2.0  # below WEBHOOK_BODY_TIMEOUT_S's default, so no chunk wait alone ends a slow client
P99_LIMIT_MS = 250.0
RAMP_S = 2.0  # slow clients connect over this long, as a real flood builds up
SLOW_HEAD = (
    b"POST /webhooks/touchpoints HTTP/1.1\r\nhost: faults\r\ncontent-type: application/json\r\n"
    b"content-length: 60000\r\n\r\n{"  # under WEBHOOK_MAX_BODY_BYTES, or it is refused at once
)


async def slow_client(host: str, port: int, delay_s: float, until: float) -> tuple[str, float]:
    """One trickling client: how it ended (held to the end, cut by the server, refused) and after how long."""
    await asyncio.sleep(delay_s)
    started = time.monotonic()
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError:
        return "refused", 0.0
    try:
        writer.write(SLOW_HEAD)
        while time.monotonic() < until:
            await writer.drain()
            try:
                await asyncio.wait_for(reader.read(1), timeout=TRICKLE_S)
            except TimeoutError:
                writer.write(b" ")  # whitespace: the JSON body stays valid, and never completes
                continue
            return "cut", time.monotonic() - started  # an answer (408) or the end of the connection
        return "held", time.monotonic() - started
    except OSError:
        return "cut", time.monotonic() - started
    finally:
        writer.close()


async def slow_flood(api_url: str, count: int, duration_s: float) -> dict[str, Any]:
    parts = urlsplit(api_url)
    assert parts.hostname is not None and parts.port is not None
    until = time.monotonic() + duration_s
    ends = await asyncio.gather(
        *(slow_client(parts.hostname, parts.port, RAMP_S * i / count, until) for i in range(count))
    )
    counts: dict[str, int] = {}
    for end, _ in ends:
        counts[end] = counts.get(end, 0) + 1
    held = sorted(seconds for _, seconds in ends)
    return {"ends": counts, "held_s": {"min": round(held[0], 2), "median": round(held[len(held) // 2], 2)}}


def flood_in_a_process(api_url: str, count: int, duration_s: float) -> dict[str, Any]:
    """The flood from a process of its own, so its 500 sockets do not slow the load generator's clock
    (one interpreter lock would make the load's own latencies look worse than the api's)."""
    argv = [sys.executable, "-m", "scripts.faults.clients", api_url, str(count), str(duration_s)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=duration_s + 60, check=False)
    if done.returncode != 0:
        return {"ends": {"flood_failed": count}, "error": done.stderr[-500:]}
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def slowloris(topology: Topology, engine: Engine, rate: float, duration_s: float) -> ScenarioResult:
    """The flood starts a quarter in: the latencies before it are the baseline, the ones after judged."""
    load = start_load(topology, engine, rate, duration_s)
    time.sleep(duration_s / 4)
    flood_from = time.perf_counter()
    flood = flood_in_a_process(topology.api_url, SLOW_CLIENTS, duration_s * 3 / 4)
    record = load.join()
    result = judged("slowloris", topology, engine, load, record, 0.0, 90)
    offset = flood_from - record.origin
    before = percentiles(latency_histogram([o for o in record.outcomes if o.started_s < offset]))
    during = percentiles(latency_histogram([o for o in record.outcomes if o.started_s >= offset]))
    details: dict[str, Any] = {
        "slow_clients": SLOW_CLIENTS,
        "slow_flood": flood,
        "latency_ms_before_flood": before,
        "latency_ms_during_flood": during,
        "p99_limit_ms": P99_LIMIT_MS,
    }
    result.details.update(details, problems=slowloris_problems(during, flood))
    if result.details["problems"]:
        result.status = "failed"
    return result


def slowloris_problems(during: dict[str, float], flood: dict[str, Any]) -> list[str]:
    """The normal traffic's p99 while flooded, and a flood that really happened (no refused or failed client)."""
    problems = []
    if during["p99"] >= P99_LIMIT_MS:
        problems.append(f"p99 {during['p99']:g} ms beside the slow clients (limit {P99_LIMIT_MS:g})")
    unexpected = set(flood["ends"]) - {"held", "cut"}
    if unexpected:
        problems.append(f"slow clients that never held a connection: {sorted(unexpected)}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="One slow-client flood against a running api; its ends as JSON.")
    parser.add_argument("api_url", help="the api's base URL")
    parser.add_argument("count", type=int, help="slow connections to open")
    parser.add_argument("seconds", type=float, help="how long each trickles")
    args = parser.parse_args(argv)
    print(json.dumps(asyncio.run(slow_flood(args.api_url, args.count, args.seconds))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
