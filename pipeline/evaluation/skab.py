"""Skoltech Anomaly Benchmark (SKAB) metrics: outlier F1/FAR/MAR and the changepoint NAB score.

Both follow the SKAB repository (https://github.com/waico/SKAB, ``core/metrics.py``, function
``chp_score``, which comes from the ``tsad`` library):

* ``metric='binary'``: one confusion matrix pooled over the rows of all files, then
  ``F1 = TP / (TP + (FN + FP) / 2)``, ``FAR = 100 * FP / (FP + TN)`` and
  ``MAR = 100 * FN / (FN + TP)``. FAR and MAR are percentages, as on the SKAB leaderboard.
  SKAB rounds all three to 2 decimals for display and :func:`binary_scores` does not round.
* ``metric='nab'``: each labeled changepoint opens a detection window. The first alert in a
  window earns a tanh-shaped reward that falls from ``A_TP`` at the window start to ``-A_FP``
  at its end. Each missed window costs ``A_FN`` and each alert outside every window costs
  ``A_FP``, whatever its distance. The per-profile sums over all files are normalized to
  0 for a detector without alerts and 100 for a perfect one.

References
----------
.. [1] I. D. Katser and V. O. Kozitsin, "Skoltech Anomaly Benchmark (SKAB)", Kaggle, 2020,
   doi:10.34740/KAGGLE/DSV/1693952.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from spikewatch.evaluation.nab import NAB_PROFILES, CostProfile

#: SKAB samples its tanh reward curve at this many evenly spaced points per window.
REWARD_CURVE_POINTS = 1000
#: Default window width as a fraction of the file span divided by (changepoints + 1).
DEFAULT_WINDOW_PORTION = 0.1
WINDOW_POSITIONS = ("left", "right", "center")


@dataclass(frozen=True)
class BinaryScores:
    """SKAB outlier-detection scores: F1 as a fraction, FAR and MAR in percent."""

    f1: float
    far: float
    mar: float
    tp: int
    tn: int
    fp: int
    fn: int


def _as_files(name: str, values: ArrayLike | Sequence[ArrayLike]) -> list[np.ndarray]:
    """Accept one 1-D array or a sequence of them and return a list of boolean arrays."""
    if isinstance(values, np.ndarray) and values.ndim == 1:
        files = [values]
    elif isinstance(values, Sequence) and values and np.ndim(values[0]) == 0:
        files = [np.asarray(values)]
    else:
        files = [np.asarray(file) for file in values]
    for index, file in enumerate(files):
        if file.ndim != 1 or not np.isin(file, (0, 1)).all():
            raise ValueError(f"{name}[{index}] must be a 1-D array of 0/1 or booleans")
    return [file.astype(bool) for file in files]


def _paired_files(labels, predictions) -> list[tuple[np.ndarray, np.ndarray]]:
    truth, alarm = _as_files("labels", labels), _as_files("predictions", predictions)
    if len(truth) != len(alarm):
        raise ValueError(f"labels has {len(truth)} files but predictions has {len(alarm)}")
    for index, (label, prediction) in enumerate(zip(truth, alarm)):
        if label.shape != prediction.shape:
            raise ValueError(
                f"file {index}: predictions shape {prediction.shape} differs from labels"
                f" shape {label.shape}"
            )
    return list(zip(truth, alarm))


def binary_scores(
    labels: ArrayLike | Sequence[ArrayLike], predictions: ArrayLike | Sequence[ArrayLike]
) -> BinaryScores:
    """Compute SKAB's per-row F1, FAR and MAR over one file or the concatenation of files.

    A ratio whose denominator is zero is NaN, e.g. MAR when no row is labeled anomalous.
    """
    tp = tn = fp = fn = 0
    for label, prediction in _paired_files(labels, predictions):
        tp += int(np.sum(label & prediction))
        tn += int(np.sum(~label & ~prediction))
        fp += int(np.sum(~label & prediction))
        fn += int(np.sum(label & ~prediction))
    return BinaryScores(
        f1=tp / (tp + (fn + fp) / 2) if tp + fn + fp else math.nan,
        far=100.0 * fp / (fp + tn) if fp + tn else math.nan,
        mar=100.0 * fn / (fn + tp) if fn + tp else math.nan,
        tp=tp,
        tn=tn,
        fp=fp,
        fn=fn,
    )


def _detection_windows(
    times: np.ndarray, changepoints: np.ndarray, width: float, position: str
) -> np.ndarray:
    """Place one window per changepoint and cut each overlapped right window, as SKAB does."""
    offsets = {"left": (-width, 0.0), "right": (0.0, width), "center": (-width / 2, width / 2)}
    low, high = offsets[position]
    windows = np.column_stack((times[changepoints] + low, times[changepoints] + high))
    for k in range(len(windows) - 1):
        if windows[k, 1] >= windows[k + 1, 0]:
            windows[k + 1, 0] = windows[k, 1]
    return windows


def _reward(position: float, profile: CostProfile) -> float:
    """Return SKAB's tanh reward for an alert at ``position`` (0 = window start, 1 = end)."""
    a_tp, a_fp = profile.tp_weight, -profile.fp_weight
    index = min(int(position * REWARD_CURVE_POINTS), REWARD_CURVE_POINTS - 1)
    x = -math.pi / 2 + math.pi * index / (REWARD_CURVE_POINTS - 1)
    return (a_tp - a_fp) / 2 * -math.tanh(x) / math.tanh(math.pi / 2) + (a_tp - a_fp) / 2 + a_fp


def changepoint_nab_scores(
    changepoints: ArrayLike | Sequence[ArrayLike],
    predictions: ArrayLike | Sequence[ArrayLike],
    timestamps: Sequence[ArrayLike] | None = None,
    window_width: float | None = None,
    window_portion: float = DEFAULT_WINDOW_PORTION,
    window_position: str = "left",
    profiles: dict[str, CostProfile] | None = None,
) -> dict[str, float]:
    """Compute SKAB's normalized changepoint NAB score per profile, 0 = no alerts, 100 = perfect.

    Parameters
    ----------
    changepoints, predictions : array_like of {0, 1}, or a sequence of them (one per file)
        Labeled changepoints (SKAB's ``changepoint`` column) and the detector's alerts.
    timestamps : sequence of array_like, optional
        Per-file ``datetime64`` values or numbers in seconds. Without them, row numbers are
        the time axis and ``window_width`` is in rows.
    window_width : float, optional
        Window width in seconds (rows without timestamps). By default it is ``window_portion``
        times the file span divided by the number of changepoints plus one, as in SKAB.
    window_position : {"left", "right", "center"}
        Where the window lies relative to its changepoint. SKAB's default is "left" (its
        "lefter"), i.e. the window ends at the changepoint.
    profiles : dict of CostProfile, optional
        Defaults to NAB's three profiles, which are SKAB's Standard, LowFP and LowFN.
    """
    if window_position not in WINDOW_POSITIONS:
        raise ValueError(
            f"window_position must be one of {WINDOW_POSITIONS}, got {window_position!r}"
        )
    if window_width is not None and window_width <= 0:
        raise ValueError(f"window_width must be > 0, got {window_width}")
    if window_width is None and window_portion <= 0:
        raise ValueError(f"window_portion must be > 0, got {window_portion}")
    files = _paired_files(changepoints, predictions)
    if timestamps is not None and len(timestamps) != len(files):
        raise ValueError(f"timestamps has {len(timestamps)} files but labels has {len(files)}")
    profiles = NAB_PROFILES if profiles is None else profiles

    totals = {name: 0.0 for name in profiles}
    n_windows = 0
    for index, (label, prediction) in enumerate(files):
        times = np.arange(label.size, dtype=np.float64)
        if timestamps is not None:
            times = np.asarray(timestamps[index])
            if np.issubdtype(times.dtype, np.datetime64):
                times = (times - times[0]) / np.timedelta64(1, "s")
            times = times.astype(np.float64)
        if times.shape != label.shape or np.any(np.diff(times) < 0):
            raise ValueError(f"timestamps[{index}] must match the file length and be sorted")
        n_points = int(label.sum())
        alerts = times[prediction]
        if n_points == 0:
            for name, profile in profiles.items():
                totals[name] -= profile.fp_weight * alerts.size
            continue
        width = window_width
        if width is None:
            width = (times[-1] - times[0]) / (n_points + 1) * window_portion
        if width <= 0:
            raise ValueError(f"file {index}: the detection window width is {width}, not > 0")
        windows = _detection_windows(times, label, width, window_position)
        n_windows += len(windows)

        inside_any = np.zeros(alerts.size, dtype=bool)
        first_hits = []
        for start, end in windows:
            inside = (alerts >= start) & (alerts <= end)
            inside_any |= inside
            first_hits.append((alerts[inside][0] - start) / (end - start) if inside.any() else None)
        n_false = int(np.sum(~inside_any))
        for name, profile in profiles.items():
            totals[name] -= profile.fp_weight * n_false
            for hit in first_hits:
                totals[name] += -profile.fn_weight if hit is None else _reward(hit, profile)

    if n_windows == 0:
        raise ValueError("changepoints contain no labeled changepoint, so the score is undefined")
    normalized = {}
    for name, profile in profiles.items():
        null, perfect = -profile.fn_weight * n_windows, profile.tp_weight * n_windows
        normalized[name] = 100.0 * (totals[name] - null) / (perfect - null)
    return normalized
