"""SPOT and DSPOT: streaming peaks-over-threshold thresholds from extreme value theory."""

from __future__ import annotations

import numpy as np

from spikewatch.thresholds.base import ScoreThreshold
from spikewatch.thresholds.evt import fit_gpd, tail_quantile


class SPOT(ScoreThreshold):
    """Streaming Peaks-Over-Threshold: the score a normal window exceeds with probability ``risk``.

    Calibration: the first ``min_history`` scores of the key set the initial threshold t, their
    ``level`` quantile, and the excesses over t (the peaks) are fitted with a generalised Pareto
    tail (:func:`~spikewatch.thresholds.evt.fit_gpd`). The alert threshold z is the tail's
    ``1 − risk`` quantile (:func:`~spikewatch.thresholds.evt.tail_quantile`).

    Streaming, for each new score x, after the alert decision:

    * x > z while the key's alert is open is an anomaly and is not learned from, so anomalies
      do not fatten the tail;
    * any other x > t is a new peak: the tail is fitted again and z updated;
    * x ≤ t only counts as one more observation.

    Siffer et al. leave every x > z out of the tail. But normal windows also exceed z, at the
    rate ``risk``. Leaving them out truncates the fitted tail at z, which lowers z, which
    truncates more. On exponential scores the realised rate then settled at 2.4 to 5 times the
    risk (risk 0.001 to 0.01). Here a window over z is left out only once the alert policy has
    opened an alert, that is after ``alerts.open_after`` windows over z in a row.

    The peaks are kept in a ring of ``history`` values (the newest); the observation and peak
    counts behind ``P(X > t)`` are never truncated.

    Parameters
    ----------
    risk
        Probability q that a normal window's score exceeds the threshold: the false alarms per
        window the threshold is set for. Must be below ``1 − level``.
    level
        Quantile of the calibration scores taken as the initial threshold t. Siffer et al.
        use 0.98: high enough for the excesses to follow a Pareto tail, low enough to leave
        peaks to fit.
    history, min_history
        Recent scores kept (and peaks kept), and calibration scores needed before the threshold
        is trusted. With min_history n the calibration leaves about ``n · (1 − level)`` peaks,
        so SPOT wants min_history in the hundreds.

    References
    ----------
    Siffer, A., Fouque, P.-A., Termier, A. and Largouët, C. (2017). Anomaly Detection in Streams
    with Extreme Value Theory. KDD, 1067–1075.
    """

    __slots__ = ("risk", "level", "initial", "peaks", "peak_count", "observations", "gamma", "sigma", "z")

    kind = "spot"

    def __init__(self, *, risk: float, level: float = 0.98, history: int, min_history: int) -> None:
        if not 0.0 < level < 1.0:
            raise ValueError(f"level = {level} must be in (0, 1)")
        if not 0.0 < risk < 1.0 - level:
            raise ValueError(
                f"risk = {risk} must be in (0, 1 - level = {1.0 - level:g}): the alert threshold "
                "is read from the tail above the level quantile"
            )
        super().__init__(history=history, min_history=min_history)
        self.risk = risk
        self.level = level
        self.initial: float | None = None
        self.peaks = np.zeros(history, dtype=np.float64)
        self.peak_count = 0
        self.observations = 0
        self.gamma = 0.0
        self.sigma = 0.0
        self.z: float | None = None

    # -- the stream of scores -------------------------------------------------------------

    def threshold(self) -> float | None:
        return self.z

    def learn(self, score: float, *, timestamp: float | None = None, in_alert: bool = False) -> None:
        self._remember(score)
        if self.z is None:
            if self.count >= self.min_history:
                self._calibrate(self.recent.astype(np.float64))
            return
        self._observe(float(score), in_alert=in_alert)

    def _observe(self, value: float, *, in_alert: bool) -> None:
        """Apply the update rule to one value (a score, or a DSPOT residual)."""
        if value > self.z and in_alert:
            return
        self.observations += 1
        if value > self.initial:
            self.peaks[self.peak_count % self.peaks.shape[0]] = value - self.initial
            self.peak_count += 1
            self._fit()

    def _calibrate(self, values: np.ndarray) -> None:
        self.initial = float(np.quantile(values, self.level))
        excesses = values[values > self.initial] - self.initial
        kept = excesses[-self.peaks.shape[0] :]
        self.peaks[: kept.size] = kept
        self.peak_count = excesses.size
        self.observations = values.size
        self._fit()

    def _fit(self) -> None:
        kept = self.peaks[: min(self.peak_count, self.peaks.shape[0])]
        if kept.size == 0 or not np.any(kept > 0):
            # No peak over t yet (for example a constant score): any higher score is an alarm.
            self.gamma, self.sigma, self.z = 0.0, 0.0, self.initial
            return
        self.gamma, self.sigma = fit_gpd(kept)
        self.z = tail_quantile(
            self.initial,
            self.gamma,
            self.sigma,
            risk=self.risk,
            observations=self.observations,
            peaks=self.peak_count,
        )

    # -- checkpoints ----------------------------------------------------------------------

    @property
    def memory_bytes(self) -> int:
        return self.scores.nbytes + self.peaks.nbytes

    def to_dict(self) -> dict:
        state = super().to_dict()
        state.update(
            initial=self.initial,
            peaks=self.peaks.copy(),
            peak_count=self.peak_count,
            observations=self.observations,
            gamma=self.gamma,
            sigma=self.sigma,
            z=self.z,
        )
        return state

    def load_dict(self, state: dict) -> None:
        super().load_dict(state)
        peaks = np.asarray(state["peaks"], dtype=np.float64)
        if peaks.shape != self.peaks.shape:
            raise ValueError(
                f"SPOT state keeps {peaks.shape[0]} peaks, the configuration {self.peaks.shape[0]}"
            )
        self.peaks = peaks.copy()
        self.initial = None if state["initial"] is None else float(state["initial"])
        self.peak_count = int(state["peak_count"])
        self.observations = int(state["observations"])
        self.gamma = float(state["gamma"])
        self.sigma = float(state["sigma"])
        self.z = None if state["z"] is None else float(state["z"])


class DSPOT(SPOT):
    """SPOT on the drift-corrected score: ``x − mean`` of the last ``depth`` normal scores.

    A slowly drifting score level (a detector still adapting, a sensor ageing) would otherwise
    raise or starve the alarms of plain SPOT. DSPOT runs SPOT on the residual of each score
    against the moving average of the ``depth`` most recent normal scores, and the alert
    threshold is that average plus the residual threshold. A window over the threshold while
    the key's alert is open does not enter the average, so an anomaly does not drag the
    baseline up.

    Parameters
    ----------
    depth
        Scores in the moving average d; must be below ``min_history`` so that calibration has
        residuals to fit.
    risk, level, history, min_history
        As for :class:`SPOT`, applied to the residuals.
    """

    __slots__ = ("recent_normal", "normal_count")

    kind = "dspot"

    def __init__(
        self, *, risk: float, level: float = 0.98, depth: int, history: int, min_history: int
    ) -> None:
        if depth < 1:
            raise ValueError(f"depth = {depth} must be at least 1")
        if min_history < depth + 10:
            raise ValueError(
                f"min_history = {min_history} must be at least depth + 10 = {depth + 10}, so that "
                "calibration has residuals to fit"
            )
        super().__init__(risk=risk, level=level, history=history, min_history=min_history)
        self.recent_normal = np.zeros(depth, dtype=np.float64)
        self.normal_count = 0

    @property
    def baseline(self) -> float:
        """Mean of the last ``depth`` scores not left out as anomalies."""
        return float(self.recent_normal[: min(self.normal_count, self.recent_normal.shape[0])].mean())

    def threshold(self) -> float | None:
        return None if self.z is None else self.z + self.baseline

    def learn(self, score: float, *, timestamp: float | None = None, in_alert: bool = False) -> None:
        self._remember(score)
        if self.z is None:
            if self.count >= self.min_history:
                self._calibrate_residuals()
            return
        residual = float(score) - self.baseline
        anomaly = residual > self.z and in_alert
        self._observe(residual, in_alert=in_alert)
        if not anomaly:
            self._add_normal(float(score))

    def _add_normal(self, score: float) -> None:
        self.recent_normal[self.normal_count % self.recent_normal.shape[0]] = score
        self.normal_count += 1

    def _calibrate_residuals(self) -> None:
        # The ring contains the calibration scores in time order (min_history ≤ history).
        values = self.recent.astype(np.float64)
        depth = self.recent_normal.shape[0]
        windows = np.lib.stride_tricks.sliding_window_view(values[:-1], depth)
        residuals = values[depth:] - windows.mean(axis=1)
        self._calibrate(residuals)
        for value in values[-depth:]:
            self._add_normal(float(value))

    @property
    def memory_bytes(self) -> int:
        return super().memory_bytes + self.recent_normal.nbytes

    def to_dict(self) -> dict:
        state = super().to_dict()
        state.update(recent_normal=self.recent_normal.copy(), normal_count=self.normal_count)
        return state

    def load_dict(self, state: dict) -> None:
        super().load_dict(state)
        recent = np.asarray(state["recent_normal"], dtype=np.float64)
        if recent.shape != self.recent_normal.shape:
            raise ValueError(
                f"DSPOT state averages {recent.shape[0]} scores, the configuration "
                f"{self.recent_normal.shape[0]}"
            )
        self.recent_normal = recent.copy()
        self.normal_count = int(state["normal_count"])
