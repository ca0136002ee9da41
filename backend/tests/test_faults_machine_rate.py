"""The fault load's rate follows the machine (scripts/faults/machine.py): half the sweep's max, scaled
down by this machine's plain-insert baseline against the sweep's, never up; measured once per run
and the same for every topology; left alone with --rate, --no-machine-scale or a sweep without a
baseline. Controls: the unscaled rate on a slow machine, and a second measurement per topology."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from scripts.faults import machine, run_faults
from scripts.faults.machine import MachineRate, scale_factor


def test_a_slower_machine_scales_the_rate_down_and_a_faster_one_never_up() -> None:
    assert scale_factor(3000.0, 6000.0) == 0.5
    assert scale_factor(9000.0, 6000.0) == 1.0


def test_the_rate_is_measured_once_and_kept_for_every_topology(monkeypatch: pytest.MonkeyPatch) -> None:
    measured: list[float] = []

    def baseline(dsn: str, tenant: Any, seconds: float) -> dict[str, Any]:
        measured.append(seconds)
        return {"baseline_insert_tps": 2870.0 if len(measured) == 1 else 5740.0}

    monkeypatch.setattr(machine.database, "provision_tenants", lambda engine, count, tag: ["tenant"])
    monkeypatch.setattr(machine.database, "baseline_insert_tps", baseline)
    rate = MachineRate(150.0, 5740.0)
    topology = SimpleNamespace(dsns=SimpleNamespace(runtime_sync="postgresql://x"))
    assert [rate(topology, None), rate(topology, None)] == [75.0, 75.0]  # type: ignore[arg-type]
    assert len(measured) == 1  # the control: a second measurement would have given 150
    assert "x 0.5" in rate.source() and "2870" in rate.source()


def test_a_starved_measurement_never_turns_the_load_into_a_trickle(monkeypatch: pytest.MonkeyPatch) -> None:
    """A baseline of 60 tps (a broken or starved measurement) would scale 150 rps down to 1.6 rps."""
    monkeypatch.setattr(machine.database, "provision_tenants", lambda engine, count, tag: ["tenant"])
    monkeypatch.setattr(machine.database, "baseline_insert_tps", lambda dsn, t, s: {"baseline_insert_tps": 60.0})
    topology = SimpleNamespace(dsns=SimpleNamespace(runtime_sync="postgresql://x"))
    assert MachineRate(150.0, 5740.0)(topology, None) == machine.DEFAULT_RPS  # type: ignore[arg-type]


def run_args(tmp_path: Path, sweep: dict[str, Any], **overrides: Any) -> argparse.Namespace:
    sweep_file = tmp_path / "sweep.json"
    sweep_file.write_text(json.dumps(sweep))
    values = {
        "artifact_dir": tmp_path / "faults",
        "rate": None,
        "sweep_file": sweep_file,
        "no_machine_scale": False,
        "duration": 1.0,
        "scenario": ["slowloris"],
        "topology": "native",
    }
    return argparse.Namespace(**{**values, **overrides})


@pytest.mark.parametrize(
    ("sweep", "overrides", "scaled"),
    [
        pytest.param({"max_sustainable_rps": 300, "baseline_insert_tps": 5740}, {}, True, id="published-sweep"),
        pytest.param({"max_sustainable_rps": 300}, {}, False, id="no-baseline-in-the-sweep"),
        pytest.param({"max_sustainable_rps": 300, "baseline_insert_tps": 5740}, {"rate": 150.0}, False, id="rate"),
        pytest.param(
            {"max_sustainable_rps": 300, "baseline_insert_tps": 5740}, {"no_machine_scale": True}, False, id="opt-out"
        ),
    ],
)
def test_run_hands_the_groups_a_machine_rate_only_for_a_sweep_with_a_baseline(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, sweep: dict[str, Any], overrides: dict[str, Any], scaled: bool
) -> None:
    handed: list[Any] = []
    monkeypatch.setattr(run_faults, "run_group", lambda names, config, rate_of, duration: handed.append(rate_of) or [])
    summary = run_faults.run(run_args(tmp_path, sweep, **overrides))
    assert isinstance(handed[0], MachineRate) is scaled
    assert summary["rate"] == 150.0  # nothing measured here: the half of the sweep (or --rate) is reported
