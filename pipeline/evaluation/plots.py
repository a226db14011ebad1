"""PNG plots of an evaluation: one per file and one comparison chart per benchmark.

A file's plot has the signal on top and one panel per detector below it: the raw score, the
running threshold it was compared with, the open alerts, the label ranges (grey) and the end
of the warm-up (dotted line).
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display is needed or wanted
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from spikewatch.evaluation.ranges import label_ranges  # noqa: E402

#: Channels drawn in a file's signal panel; more would be unreadable.
MAX_PLOTTED_CHANNELS = 8
LABEL_COLOR, ALERT_COLOR = "0.85", "tab:red"


def _shade(axis, mask: np.ndarray, x: np.ndarray, color: str, alpha: float) -> None:
    if not mask.any():
        return
    for first, last in label_ranges(mask):
        axis.axvspan(x[first], x[last], color=color, alpha=alpha, linewidth=0)


def _scale(axis, scores: np.ndarray) -> None:
    positive = scores[scores > 0]
    if positive.size and np.all(scores >= 0) and positive.max() / np.median(positive) > 50:
        axis.set_yscale("log")


def plot_file(result, detectors: list[str], path: Path) -> None:
    """Draw the signal, scores, thresholds, alerts and labels of one file."""
    rows, labels = result.rows, result.labels
    x = np.arange(len(rows))
    figure, axes = plt.subplots(
        1 + len(detectors), 1, figsize=(12, 2.0 + 1.6 * len(detectors)), sharex=True, squeeze=False
    )
    axes = axes[:, 0]
    signal = axes[0]
    values = rows.values[:, :MAX_PLOTTED_CHANNELS]
    if values.shape[1] > 1:
        # Channels of different units share one panel as z-scores.
        spread = np.nanstd(values, axis=0)
        values = (values - np.nanmean(values, axis=0)) / np.where(spread > 0, spread, 1.0)
    for channel, name in enumerate(rows.channels[:MAX_PLOTTED_CHANNELS]):
        signal.plot(x, values[:, channel], linewidth=0.6, label=name)
    if 1 < len(rows.channels) <= MAX_PLOTTED_CHANNELS:
        signal.legend(fontsize=6, ncol=4, loc="upper left")
    signal.set_ylabel("signal" if values.shape[1] == 1 else "signal (z)")
    signal.set_title(f"{result.file.name}: {len(rows)} rows", fontsize=9)

    for axis, name in zip(axes[1:], detectors):
        scores = result.scores[name]
        axis.plot(x, scores.score, linewidth=0.6, color="tab:blue", label="score")
        axis.plot(
            x, scores.threshold, linewidth=0.8, linestyle="--", color="black", label="threshold"
        )
        _shade(axis, scores.alert, x, ALERT_COLOR, 0.25)
        onsets = np.flatnonzero(scores.alert_onset)
        axis.plot(onsets, scores.score[onsets], "v", color=ALERT_COLOR, markersize=4, label="alert")
        _scale(axis, scores.score)
        axis.set_ylabel(name, fontsize=8)
    for axis in axes:
        _shade(axis, labels, x, LABEL_COLOR, 1.0)
        if result.scored_from and len(set(rows.keys) - {None}) == 1:
            axis.axvline(result.scored_from, linestyle=":", color="0.4", linewidth=0.8)
    axes[1 if len(axes) > 1 else 0].legend(fontsize=6, loc="upper left", ncol=3)
    axes[-1].set_xlabel("row")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=90)
    plt.close(figure)


def _headline(figures: dict) -> dict[str, tuple[str, float]]:
    """Collect the benchmark figures in score units (NAB 0..100, SKAB %), keyed by label."""
    headline = {}
    for profile, values in figures.get("nab", {}).get("profiles", {}).items():
        headline[f"NAB {profile}"] = values["score"]
    if "skab" in figures:
        skab = figures["skab"]
        headline["SKAB F1 x100"] = 100 * skab["f1"]
        headline["SKAB FAR %"] = skab["far"]
        headline["SKAB MAR %"] = skab["mar"]
    return headline


def plot_comparison(figures: dict[str, dict], title: str, path: Path) -> None:
    """Grouped bars of the headline figures of every detector."""
    detectors = list(figures)
    headline = {name: _headline(figures[name]) for name in detectors}
    unit_metrics = ("roc_auc", "pr_auc", "vus_roc", "vus_pr", "event_f1")
    panels = [("benchmark score", list(headline[detectors[0]]))] if headline[detectors[0]] else []
    panels.append(("range and event metrics (0..1)", list(unit_metrics)))
    figure, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 3.6), squeeze=False)
    width = 0.8 / len(detectors)
    for axis, (label, metrics) in zip(axes[0], panels):
        positions = np.arange(len(metrics))
        for index, name in enumerate(detectors):
            if label == "benchmark score":
                heights = [headline[name].get(metric) for metric in metrics]
            else:
                heights = [figures[name]["ranges"][metric] for metric in metrics]
            heights = [0.0 if h is None or math.isnan(h) else h for h in heights]
            axis.bar(positions + index * width, heights, width, label=name)
        axis.set_xticks(positions + width * (len(detectors) - 1) / 2)
        axis.set_xticklabels(
            [metric.replace("_", " ") for metric in metrics], rotation=30, ha="right", fontsize=7
        )
        axis.axhline(0, color="black", linewidth=0.6)
        axis.set_title(label, fontsize=9)
    axes[0][0].legend(fontsize=7)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
