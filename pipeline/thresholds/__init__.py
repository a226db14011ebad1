"""Per-key streaming thresholds on window scores.

Kinds, as named in ``threshold.kind``:

* ``"quantile"``: :class:`RunningQuantile`, a quantile of the key's recent scores;
* ``"spot"`` and ``"dspot"``: :class:`SPOT` and :class:`DSPOT`, peaks over threshold with a
  generalised Pareto tail, for a chosen probability of a false alarm per window;
* ``"conformal"``: :class:`ConformalThreshold`, a false-alarm budget (alarms per key per day)
  held by a conformal quantile of the key's recent scores judged normal.
"""

from spikewatch.thresholds.base import ScoreThreshold, conformal_p_values
from spikewatch.thresholds.quantile import RunningQuantile

__all__ = ["RunningQuantile", "ScoreThreshold", "conformal_p_values"]
