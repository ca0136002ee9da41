"""The Bayesian channel model recovers known channel effects, and its 90% intervals cover the
truth at about their nominal rate across seeds.

Tolerances: mean relative error of posterior means below 15% per channel; coverage of 80 intervals
(20 seeds x 4 channels) between 0.80 and 0.98 (nominal 0.90; the binomial sd is ~0.034). A model
that ignores the data fails the same check (negative control).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest

from app.attribution.bayesian import (
    Posterior,
    effective_sample_size,
    fit,
    split_rhat,
    truncated_normal_positive,
)

TRUTH = np.array([30.0, 80.0, 120.0, 15.0])  # revenue per touch, per channel
RATES = [20, 8, 5, 30]  # touches per day
CHANNELS = ["search", "social", "email", "display"]
SEEDS = range(20)

Model = Callable[[np.ndarray, np.ndarray, int], Posterior]


def synthetic(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(10_000 + seed)
    touches = rng.poisson(RATES, size=(120, len(RATES))).astype(float)
    revenue = touches @ TRUTH + rng.normal(0.0, 150.0, size=120)
    return touches, revenue


def gibbs(touches: np.ndarray, revenue: np.ndarray, seed: int) -> Posterior:
    return fit(touches, revenue, CHANNELS, draws=800, warmup=300, chains=4, seed=seed)


def ignores_the_data(touches: np.ndarray, revenue: np.ndarray, seed: int) -> Posterior:
    """A broken model: fits a revenue series unrelated to these touches."""
    rng = np.random.default_rng(seed)
    return gibbs(touches, rng.permutation(revenue), seed)


def recovery(model: Model) -> tuple[np.ndarray, float]:
    errors, covered, total = [], 0, 0
    for seed in SEEDS:
        touches, revenue = synthetic(seed)
        beta = model(touches, revenue, seed).beta_draws.reshape(-1, len(TRUTH))
        low, high = np.percentile(beta, [5, 95], axis=0)
        covered += int(((low <= TRUTH) & (TRUTH <= high)).sum())
        total += len(TRUTH)
        errors.append(np.abs(beta.mean(axis=0) - TRUTH) / TRUTH)
    return np.mean(errors, axis=0), covered / total


def passes(relative_error: np.ndarray, coverage: float) -> bool:
    return bool((relative_error < 0.15).all() and 0.80 <= coverage <= 0.98)


@pytest.mark.slow
def test_posterior_recovers_truth_with_nominal_coverage() -> None:
    relative_error, coverage = recovery(gibbs)
    assert passes(relative_error, coverage), (relative_error, coverage)


@pytest.mark.slow
def test_a_model_that_ignores_the_data_fails_the_same_check() -> None:
    relative_error, coverage = recovery(ignores_the_data)
    assert not passes(relative_error, coverage), (relative_error, coverage)


def test_summary_reports_contributions_and_diagnostics() -> None:
    touches, revenue = synthetic(0)
    summary = gibbs(touches, revenue, 0).summary()
    assert summary["chains"] == 4 and summary["draws"] == 800
    assert summary["max_rhat"] < 1.05 and summary["min_ess"] > 100
    for channel, truth in zip(summary["channels"], TRUTH, strict=True):
        low, high = channel["contribution_ci90"]
        assert low <= channel["contribution_mean"] <= high
        expected = truth * touches[:, CHANNELS.index(channel["channel"])].sum()
        assert abs(channel["contribution_mean"] - expected) / expected < 0.2


def test_truncated_normal_matches_its_closed_form_mean() -> None:
    rng = np.random.default_rng(1)
    for mu in (2.0, 0.0, -1.0, -4.0):  # body, bound, tail, deep tail
        draws = truncated_normal_positive(np.full(200_000, mu), np.ones(200_000), rng)
        alpha = -mu
        pdf = math.exp(-alpha * alpha / 2) / math.sqrt(2 * math.pi)
        survival = 0.5 * math.erfc(alpha / math.sqrt(2))
        assert draws.min() >= 0
        assert abs(draws.mean() - (mu + pdf / survival)) < 0.01


def test_diagnostics_flag_disagreeing_chains() -> None:
    rng = np.random.default_rng(2)
    agreeing = rng.normal(size=(4, 1000, 1))
    disagreeing = agreeing + np.array([0.0, 0.0, 3.0, 3.0])[:, None, None]
    assert split_rhat(agreeing)[0] < 1.01
    assert split_rhat(disagreeing)[0] > 1.5
    assert 3000 < effective_sample_size(agreeing)[0] <= 4000 * math.log10(4000)
    sticky = np.repeat(agreeing[:, ::20], 20, axis=1)  # each value repeated: ~20x less information
    assert effective_sample_size(sticky)[0] < 400


def test_rejects_unusable_input() -> None:
    with pytest.raises(ValueError, match="two days"):
        fit(np.zeros((1, 2)), np.zeros(1), ["a", "b"])
