"""A Bayesian channel model: non-negative regression of daily revenue on channel activity.

    revenue[d] ~ Normal(sum_c beta[c] * touches[d, c], sigma^2)
    beta[c]    ~ HalfNormal(tau),  sigma^2 ~ InverseGamma(a0, b0)

sampled by Gibbs (truncated-normal and inverse-gamma full conditionals), several chains at once.
A channel's contribution is beta[c] times its touches over the window, in revenue units, with a
90% equal-tailed credible interval. Split R-hat and bulk ESS say whether the chains agree.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float64]


@dataclass
class Posterior:
    channels: list[str]
    beta_draws: Array  # (chains, draws, channels)
    contribution_draws: Array  # (chains, draws, channels)
    rhat: Array
    ess: Array
    wall_s: float

    def summary(self) -> dict[str, Any]:
        flat = self.contribution_draws.reshape(-1, len(self.channels))
        beta = self.beta_draws.reshape(-1, len(self.channels))
        chains, draws = self.beta_draws.shape[:2]
        return {
            "channels": [
                {
                    "channel": name,
                    "contribution_mean": round(float(flat[:, i].mean()), 2),
                    "contribution_ci90": [round(float(v), 2) for v in np.percentile(flat[:, i], [5, 95])],
                    "beta_mean": round(float(beta[:, i].mean()), 4),
                    "beta_ci90": [round(float(v), 4) for v in np.percentile(beta[:, i], [5, 95])],
                    "rhat": round(float(self.rhat[i]), 4),
                    "ess": round(float(self.ess[i]), 1),
                }
                for i, name in enumerate(self.channels)
            ],
            "chains": chains,
            "draws": draws,
            "max_rhat": round(float(self.rhat.max()), 4),
            "min_ess": round(float(self.ess.min()), 1),
            "wall_s": round(self.wall_s, 3),
        }


def truncated_normal_positive(mean: Array, sd: Array, rng: np.random.Generator) -> Array:
    """Exact draws from Normal(mean, sd) restricted to [0, inf), elementwise.

    Near the bound, plain rejection; deep in the tail, Robert's (1995) exponential proposal.
    """
    lower = -mean / sd  # the bound in standard units
    z = np.empty_like(mean)
    pending = np.arange(mean.size)
    flat_lower = lower.ravel()
    flat_z = z.ravel()
    while pending.size:
        a = flat_lower[pending]
        tail = a >= 0.5
        rate = (a + np.sqrt(a * a + 4.0)) / 2.0
        exp_draw = a + rng.exponential(1.0 / rate)
        exp_ok = rng.random(a.size) <= np.exp(-((exp_draw - rate) ** 2) / 2.0)
        normal_draw = rng.standard_normal(a.size)
        candidate = np.where(tail, exp_draw, normal_draw)
        accepted = np.where(tail, exp_ok, normal_draw >= a)
        flat_z[pending[accepted]] = candidate[accepted]
        pending = pending[~accepted]
    result: Array = mean + sd * flat_z.reshape(mean.shape)
    return result


def split_rhat(draws: Array) -> Array:
    """Split R-hat per parameter for draws shaped (chains, n, params)."""
    half = draws.shape[1] // 2
    split = np.concatenate([draws[:, :half], draws[:, half : 2 * half]], axis=0)
    n = split.shape[1]
    chain_means = split.mean(axis=1)
    within = split.var(axis=1, ddof=1).mean(axis=0)
    between = n * chain_means.var(axis=0, ddof=1)
    var_plus = (n - 1) / n * within + between / n
    rhat: Array = np.sqrt(var_plus / np.maximum(within, 1e-300))
    return rhat


def effective_sample_size(draws: Array) -> Array:
    """Multi-chain ESS per parameter (autocorrelation summed over Geyer's initial positive pairs)."""
    chains, n, params = draws.shape
    result = np.empty(params)
    for p in range(params):
        x = draws[:, :, p] - draws[:, :, p].mean(axis=1, keepdims=True)
        spectrum = np.fft.rfft(x, n=2 * n, axis=1)
        acov = np.fft.irfft(spectrum * np.conj(spectrum), axis=1)[:, :n] / n
        within = (acov[:, 0] * n / (n - 1)).mean()
        var_plus = within * (n - 1) / n + (draws[:, :, p].mean(axis=1).var(ddof=1) if chains > 1 else 0.0)
        if var_plus <= 0:
            result[p] = float(chains * n)
            continue
        rho = 1.0 - (within - acov.mean(axis=0)) / var_plus
        rho[0] = 1.0
        total, t = 0.0, 0
        while t + 1 < n:
            pair = rho[t] + rho[t + 1]
            if pair <= 0:
                break
            total += pair
            t += 2
        result[p] = chains * n / max(2.0 * total - 1.0, 1e-12)
    capped: Array = np.minimum(result, chains * n * np.log10(chains * n))  # Stan's upper bound
    return capped


def fit(
    touches: Array,
    revenue: Array,
    channels: list[str],
    *,
    draws: int = 1000,
    warmup: int = 500,
    chains: int = 4,
    seed: int = 0,
) -> Posterior:
    """Gibbs-sample the posterior of channel effects. ``touches`` is (days, channels), ``revenue`` (days,)."""
    started = time.perf_counter()
    x = np.asarray(touches, dtype=np.float64)
    y = np.asarray(revenue, dtype=np.float64)
    days, n_channels = x.shape
    if days < 2 or n_channels < 1 or y.shape != (days,):
        raise ValueError("need at least two days of data and one channel")
    rng = np.random.default_rng(seed)
    # Weakly informative, data-scaled priors: effects up to a few times revenue per touch.
    scale = max(float(np.abs(y).max()), 1.0) / max(float(x.sum(axis=1).max()), 1.0)
    tau2 = (10.0 * scale) ** 2
    a0, b0 = 2.0, max(float(y.var()), 1.0)
    xtx = (x * x).sum(axis=0)

    beta = np.abs(rng.normal(scale, scale, size=(chains, n_channels)))
    sigma2 = np.full(chains, b0)
    residual = y[None, :] - beta @ x.T
    kept = np.empty((chains, draws, n_channels))
    for step in range(warmup + draws):
        for c in range(n_channels):
            partial = residual + beta[:, c : c + 1] * x[None, :, c]
            precision = xtx[c] / sigma2 + 1.0 / tau2
            mean = (partial @ x[:, c]) / sigma2 / precision
            beta[:, c] = truncated_normal_positive(mean, 1.0 / np.sqrt(precision), rng)
            residual = partial - beta[:, c : c + 1] * x[None, :, c]
        sse = (residual * residual).sum(axis=1)
        sigma2 = 1.0 / rng.gamma(a0 + days / 2.0, 1.0 / (b0 + sse / 2.0))
        if step >= warmup:
            kept[:, step - warmup] = beta
    contributions = kept * x.sum(axis=0)[None, None, :]
    return Posterior(
        channels=list(channels),
        beta_draws=kept,
        contribution_draws=contributions,
        rhat=split_rhat(kept),
        ess=effective_sample_size(kept),
        wall_s=time.perf_counter() - started,
    )
