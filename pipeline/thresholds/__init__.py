"""Per-key streaming thresholds on window scores.

Kinds, as named in ``threshold.kind``:

* ``"quantile"``: :class:`RunningQuantile`, a quantile of the key's recent scores;
* ``"spot"`` and ``"dspot"``: :class:`SPOT` and :class:`DSPOT`, peaks over threshold with a
  generalised Pareto tail, for a chosen probability of a false alarm per window;
* ``"conformal"``: :class:`ConformalThreshold`, a false-alarm budget (alarms per key per day)
  held by a conformal quantile of the key's recent scores judged normal.

Every kind decides on one score at a time and learns from it after the alert decision, so a
window is judged against a threshold it has not influenced.
"""

from __future__ import annotations

from typing import Any

from spikewatch.thresholds.base import ScoreThreshold, conformal_p_values
from spikewatch.thresholds.conformal import ConformalThreshold
from spikewatch.thresholds.quantile import RunningQuantile
from spikewatch.thresholds.spot import DSPOT, SPOT

THRESHOLD_KINDS = ("quantile", "spot", "dspot", "conformal")


def build_threshold(settings: Any) -> ScoreThreshold:
    """Build a fresh per-key threshold from the ``[threshold]`` settings (a ThresholdConfig)."""
    kind = settings.kind
    if kind == "quantile":
        return RunningQuantile(
            quantile=settings.quantile,
            history=settings.history,
            min_history=settings.min_history,
            margin=settings.margin,
        )
    if kind == "spot":
        return SPOT(
            risk=settings.risk,
            level=settings.peaks_level,
            history=settings.history,
            min_history=settings.min_history,
        )
    if kind == "dspot":
        return DSPOT(
            risk=settings.risk,
            level=settings.peaks_level,
            depth=settings.dspot_depth,
            history=settings.history,
            min_history=settings.min_history,
        )
    if kind == "conformal":
        return ConformalThreshold(
            false_alarms_per_day=settings.false_alarms_per_day,
            window_interval_s=settings.window_interval_s,
            history=settings.history,
            min_history=settings.min_history,
        )
    raise ValueError(f"threshold.kind = {kind!r} is not one of {', '.join(map(repr, THRESHOLD_KINDS))}")


__all__ = [
    "DSPOT",
    "SPOT",
    "THRESHOLD_KINDS",
    "ConformalThreshold",
    "RunningQuantile",
    "ScoreThreshold",
    "build_threshold",
    "conformal_p_values",
]
