"""The fault load's rate on the machine that runs it: half a sweep's max sustainable rate, scaled
by how this machine's plain-insert baseline compares with the one that sweep measured.

A published sweep was measured on one machine at one hour; CI runs on whatever machine it gets, and
these shared machines drift by a factor of two in speed. The scenarios' timing bounds (slowloris's
p99, the recovery limits) are meant at half the capacity of the machine under test, so the rate
follows the machine: the sweep (scripts/r3/ingestion_under_fire.py) and this step measure the same
baseline, single-row inserts by eight clients into the same table, and the rate is scaled by their
ratio, never above the sweep's half and never below the soak's stated default (DEFAULT_RPS): a
broken or starved measurement must not turn the fault load into a trickle that passes anything.
Without a baseline in the sweep, or with ``--rate``, the rate stands as given.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from scripts.harness import read_json_object
from scripts.r3 import database
from scripts.soak.__main__ import DEFAULT_RPS
from scripts.topology import Topology

BASELINE_SECONDS = 5.0


def published_baseline(sweep_file: Path) -> float | None:
    """The plain-insert baseline a sweep recorded beside its max sustainable rate, or None."""
    tps = read_json_object(sweep_file).get("baseline_insert_tps")
    return float(tps) if isinstance(tps, int | float) and tps > 0 else None


def scale_factor(measured_tps: float, published_tps: float) -> float:
    """This machine's speed against the sweep's, capped at 1: a faster machine never raises the rate."""
    return round(min(1.0, measured_tps / published_tps), 3)


@dataclass
class MachineRate:
    """Called once per topology by run_group; measures on the first and keeps that rate for the rest,
    so every scenario of a run sees the same rate."""

    half_of_sweep: float
    published_tps: float
    measured: dict[str, Any] = field(default_factory=dict)
    rate: float | None = None

    def __call__(self, topology: Topology, engine: Engine) -> float:
        if self.rate is None:
            assert topology.dsns is not None
            tenant = database.provision_tenants(engine, 1, f"faults-baseline-{uuid.uuid4().hex[:6]}")[0]
            self.measured = database.baseline_insert_tps(topology.dsns.runtime_sync, tenant, BASELINE_SECONDS)
            factor = scale_factor(self.measured["baseline_insert_tps"], self.published_tps)
            self.measured["factor"] = factor
            self.rate = max(DEFAULT_RPS, round(self.half_of_sweep * factor, 1))
        return self.rate

    def source(self) -> str:
        if self.rate is None:
            return f"half of the sweep, {self.half_of_sweep:g} rps (no topology came up to measure this machine)"
        return (
            f"half of the sweep, {self.half_of_sweep:g} rps, x {self.measured['factor']:g}: this machine's "
            f"plain-insert baseline {self.measured['baseline_insert_tps']:g} tps against the sweep's "
            f"{self.published_tps:g} (at least {DEFAULT_RPS:g} rps)"
        )
