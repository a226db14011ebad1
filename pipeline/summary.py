"""The end-of-run summary: counts, speed, memory and, for labeled streams, ROC-AUC and PR-AUC."""

from __future__ import annotations

import json
import math
from array import array
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np


def _auc_pair(labels: np.ndarray, scores: np.ndarray) -> tuple[float | None, float | None]:
    """ROC-AUC and PR-AUC (average precision), or None when only one class is present."""
    if labels.size == 0 or labels.min() == labels.max():
        return None, None
    from sklearn.metrics import average_precision_score, roc_auc_score

    return float(roc_auc_score(labels, scores)), float(average_precision_score(labels, scores))


class WindowLog:
    """Score and label of every labeled window scored after warm-up, per key, for the summary.

    Each window costs 9 bytes (a float64 score and a label byte). Unlabeled windows are not kept.
    """

    def __init__(self) -> None:
        self._scores: dict[str, array] = {}
        self._labels: dict[str, array] = {}

    def add(self, key: str, score: float, label: int | None) -> None:
        if label is None:
            return
        if key not in self._scores:
            self._scores[key] = array("d")
            self._labels[key] = array("b")
        self._scores[key].append(score)
        self._labels[key].append(label)

    def keys(self) -> list[str]:
        return list(self._scores)

    def arrays(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        return np.frombuffer(self._labels[key], dtype=np.int8), np.frombuffer(self._scores[key])

    def detection(self) -> dict:
        """ROC-AUC and PR-AUC per key and pooled over all keys."""
        per_key = {}
        all_labels, all_scores = [], []
        for key in self.keys():
            labels, scores = self.arrays(key)
            roc, pr = _auc_pair(labels, scores)
            per_key[key] = {
                "windows": int(labels.size),
                "anomalous_windows": int(labels.sum()),
                "roc_auc": roc,
                "pr_auc": pr,
            }
            all_labels.append(labels)
            all_scores.append(scores)
        if not per_key:
            return {}
        roc, pr = _auc_pair(np.concatenate(all_labels), np.concatenate(all_scores))
        rocs = [entry["roc_auc"] for entry in per_key.values() if entry["roc_auc"] is not None]
        return {
            "overall": {"roc_auc": roc, "pr_auc": pr},
            "mean_per_key_roc_auc": float(np.mean(rocs)) if rocs else None,
            "per_key": per_key,
        }

    def state_dict(self) -> dict:
        return {
            key: {"scores": np.frombuffer(self._scores[key]).copy(), "labels": np.frombuffer(self._labels[key], dtype=np.int8).astype(np.int64)}
            for key in self._scores
        }

    def load_state_dict(self, state: dict) -> None:
        self._scores = {key: array("d", np.asarray(v["scores"], dtype=np.float64).tolist()) for key, v in state.items()}
        self._labels = {key: array("b", np.asarray(v["labels"]).astype(np.int8).tolist()) for key, v in state.items()}


#: Keys listed by name as too short for a window; the rest are counted in one line, and
#: ``keys_without_window`` in the JSON summary keeps the same first entries.
MAX_SHORT_KEYS_LISTED = 20


@dataclass
class RunSummary:
    """Totals of one run; ``detection`` is filled only for labeled streams."""

    records: int = 0
    records_accepted: int = 0
    windows: int = 0
    keys: int = 0
    alerts_firing: int = 0
    alerts_resolved: int = 0
    dead_letters: int = 0
    dead_letters_by_reason: dict[str, int] = field(default_factory=dict)
    keys_evicted: int = 0
    keys_without_window: dict[str, int] = field(default_factory=dict)
    keys_too_short: int = 0
    seconds: float = 0.0
    records_per_second: float = 0.0
    peak_memory_mib: float = 0.0
    state_bytes_per_key: float = 0.0
    latency_p50_ms: float | None = None
    latency_p99_ms: float | None = None
    model_updates: int = 0
    model_updates_skipped: int = 0
    warm: bool = False
    stopped_by: str = "end of stream"
    checkpoint: str | None = None
    detection: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return asdict(self)

    def write_json(self, path: str | Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(self.to_json(), indent=2) + "\n")

    def format(self, window_length: int) -> str:
        """Human-readable summary for the terminal."""
        def fmt(value: float | None) -> str:
            return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"

        lines = [
            f"records        {self.records:,} read, {self.records_accepted:,} accepted "
            f"({self.stopped_by})",
            f"windows        {self.windows:,} scored over {self.keys} keys"
            + ("" if self.warm else " (model still warming up: no alerts yet)"),
            f"alerts         {self.alerts_firing} opened, {self.alerts_resolved} resolved",
            f"dead letters   {self.dead_letters:,}"
            + (f" {self.dead_letters_by_reason}" if self.dead_letters else ""),
            f"speed          {self.records_per_second:,.0f} records/s over {self.seconds:.1f} s",
            (
                f"latency        p50 {fmt(self.latency_p50_ms)} ms, p99 {fmt(self.latency_p99_ms)} ms "
                "(record read to alert decision)"
                if self.latency_p50_ms is not None
                else "latency        n/a (no window scored)"
            ),
            f"memory         peak {self.peak_memory_mib:,.0f} MiB, "
            f"{self.state_bytes_per_key / 1024:.1f} KiB state per key",
        ]
        if self.keys_evicted:
            lines.append(f"evicted keys   {self.keys_evicted:,}")
        short = list(self.keys_without_window.items())
        for key, records in short:
            lines.append(
                f"not enough data: key {key!r} has {records} records, a window needs {window_length}"
            )
        if self.keys_too_short > len(short):
            lines.append(
                f"not enough data: {self.keys_too_short - len(short):,} more keys have fewer than "
                f"{window_length} records"
            )
        if self.checkpoint:
            lines.append(f"checkpoint     {self.checkpoint}")
        if self.detection:
            overall = self.detection["overall"]
            lines.append(
                f"detection      ROC-AUC {fmt(overall['roc_auc'])}, PR-AUC {fmt(overall['pr_auc'])} "
                f"(all keys pooled); mean per-key ROC-AUC {fmt(self.detection['mean_per_key_roc_auc'])}"
            )
            for key, entry in self.detection["per_key"].items():
                lines.append(
                    f"  {key:<40} ROC-AUC {fmt(entry['roc_auc'])}  PR-AUC {fmt(entry['pr_auc'])}  "
                    f"({entry['windows']} windows, {entry['anomalous_windows']} anomalous)"
                )
        return "\n".join(lines)
