"""Generalised Pareto tails: Grimshaw's maximum-likelihood fit and the tail quantile of SPOT.

By the Pickands–Balkema–de Haan theorem, the excesses ``Y = X − t`` of a score over a high
threshold t follow, approximately, a generalised Pareto distribution (GPD) with shape γ and scale
σ, whatever the distribution of X (within mild conditions). SPOT fits that tail to the peaks over
t and reads far quantiles from it.

References
----------
Siffer, A., Fouque, P.-A., Termier, A. and Largouët, C. (2017). Anomaly Detection in Streams
with Extreme Value Theory. KDD, 1067–1075.

Grimshaw, S. D. (1993). Computing Maximum Likelihood Estimates for the Generalized Pareto
Distribution. Technometrics 35(2), 185–191.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import brentq

#: Peaks needed before the shape γ is estimated; with fewer, the tail is taken as exponential
#: (γ = 0), whose one parameter a handful of peaks can estimate.
MIN_PEAKS_FOR_SHAPE = 10
#: Points of the grid on which sign changes of Grimshaw's equation are looked for, per interval.
GRID_POINTS = 64


def _log_likelihood(excesses: np.ndarray, gamma: float, sigma: float) -> float:
    if sigma <= 0:
        return -math.inf
    if gamma == 0.0:
        return -excesses.size * math.log(sigma) - float(excesses.sum()) / sigma
    scaled = 1.0 + gamma * excesses / sigma
    if np.any(scaled <= 0):
        return -math.inf
    return -excesses.size * math.log(sigma) - (1.0 + 1.0 / gamma) * float(np.log(scaled).sum())


def fit_gpd(excesses: np.ndarray) -> tuple[float, float]:
    """Fit (γ, σ) of a GPD to positive ``excesses`` by maximum likelihood, Grimshaw's way.

    The likelihood's stationary points satisfy ``u(s) · v(s) = 1`` with
    ``u(s) = mean(1 / (1 + s·Y))`` and ``v(s) = 1 + mean(log(1 + s·Y))``, where ``s = γ / σ``;
    each root gives ``γ = v(s) − 1`` and ``σ = γ / s``. The roots lie in ``(−1/max Y, 0)`` and
    ``(0, 2(mean Y − min Y) / (min Y)²)``; they are bracketed on a grid and refined with Brent's
    method, and the candidate (the exponential fit γ = 0, σ = mean Y included) with the highest
    likelihood wins. Fewer than :data:`MIN_PEAKS_FOR_SHAPE` excesses give the exponential fit.
    """
    y = np.asarray(excesses, dtype=np.float64)
    y = y[y > 0]
    if y.size == 0:
        raise ValueError("fit_gpd needs at least one positive excess")
    mean = float(y.mean())
    exponential = (0.0, mean)
    if y.size < MIN_PEAKS_FOR_SHAPE:
        return exponential

    def w(s: float) -> float:
        sy = s * y
        return float(np.mean(1.0 / (1.0 + sy)) * (1.0 + np.mean(np.log1p(sy))) - 1.0)

    smallest, largest = float(y.min()), float(y.max())
    # s = 0 is a trivial double root; the brackets keep a relative distance from it. Roots can
    # sit anywhere across orders of magnitude, so the grids are partly geometric.
    margin = 1e-8 / mean
    left_end = -1.0 / largest + margin
    left = [
        np.linspace(left_end, -margin, GRID_POINTS),
        -np.geomspace(margin, -left_end, GRID_POINTS),
        # Shapes far below zero put the root just right of −1/max Y.
        left_end + np.geomspace(margin, -left_end - 2 * margin, GRID_POINTS),
    ]
    grids = [np.unique(np.concatenate(left))]
    high = 2.0 * (mean - smallest) / smallest**2
    if high > margin:
        grids.append(np.geomspace(margin, high, GRID_POINTS))

    candidates = [exponential]
    for grid in grids:
        sy = grid[:, None] * y
        values = np.mean(1.0 / (1.0 + sy), axis=1) * (1.0 + np.mean(np.log1p(sy), axis=1)) - 1.0
        for index in np.flatnonzero(np.sign(values[:-1]) * np.sign(values[1:]) < 0):
            root = brentq(w, grid[index], grid[index + 1], xtol=1e-12 * max(abs(grid[index]), 1e-300))
            gamma = float(np.mean(np.log1p(root * y)))
            if gamma != 0.0:
                candidates.append((gamma, gamma / root))
    return max(candidates, key=lambda candidate: _log_likelihood(y, *candidate))


def tail_quantile(
    threshold: float, gamma: float, sigma: float, *, risk: float, observations: int, peaks: int
) -> float:
    """Return the score exceeded with probability ``risk``, from a GPD tail over ``threshold``.

    ``z = t + σ/γ · ((risk · n / N_t)^(−γ) − 1)``, or ``t − σ · log(risk · n / N_t)`` for γ = 0,
    where n observations gave N_t peaks over t (so ``N_t / n`` estimates ``P(X > t)``). When
    ``risk`` is not below ``N_t / n`` the formula would put z below t, outside the fitted tail;
    t is returned instead.
    """
    ratio = risk * observations / peaks
    if ratio >= 1.0:
        return threshold
    if gamma == 0.0:
        return threshold - sigma * math.log(ratio)
    return threshold + sigma / gamma * (ratio ** (-gamma) - 1.0)
