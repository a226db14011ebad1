"""Drift in the stream of window scores, watched by ADWIN, and the adaptation it triggers."""

from __future__ import annotations

import logging
import math

import river
import torch
from river.drift import ADWIN

logger = logging.getLogger(__name__)


class ScoreDrift:
    """ADWIN over per-window p-values; a detected drift opens a bounded adaptation period.

    Each window scored after warm-up contributes the p-value of its score among its key's
    recent scores (see :meth:`spikewatch.thresholds.ScoreThreshold.p_value`). While neither the
    stream nor the model changes, p-values are close to uniform on [0, 1] for every key, so keys
    of very different score scales share one detector. When the scores move (the data drifted,
    or the model did), the mean p-value moves, and ADWIN (adaptive windowing, river's
    implementation) reports a change in the mean of its window.

    A detection at window count w keeps :meth:`adapting` true up to window count
    ``w + adaptation_windows``. The counts are those of the windows themselves, not of the
    batches they were scored in, so a replay adapts over the same windows.

    Parameters
    ----------
    delta
        ADWIN's confidence δ: the false-detection bound of its cut test. River's default is
        0.002.
    adaptation_windows
        Windows of faster adaptation after each detection.
    """

    def __init__(self, *, delta: float = 0.002, adaptation_windows: int = 512) -> None:
        if not 0.0 < delta < 1.0:
            raise ValueError(f"delta = {delta} must be in (0, 1)")
        self.delta = delta
        self.adaptation_windows = adaptation_windows
        self.adwin = ADWIN(delta=delta)
        self.detections = 0
        self.adapt_until = 0

    def update(self, p_values, *, first_window: int) -> int:
        """Feed p-values of consecutive windows numbered from ``first_window``; return detections.

        NaN entries (windows whose key has no trusted history yet) are skipped.
        """
        found = 0
        for offset, value in enumerate(p_values):
            value = float(value)
            if math.isnan(value):
                continue
            self.adwin.update(value)
            if self.adwin.drift_detected:
                found += 1
                window = first_window + offset
                self.adapt_until = window + self.adaptation_windows
                logger.info(
                    "drift detected in the score stream at window %d (ADWIN width now %d); "
                    "adapting faster until window %d",
                    window,
                    int(self.adwin.width),
                    self.adapt_until,
                )
        self.detections += found
        return found

    def adapting(self, windows_seen: int) -> bool:
        """Return whether window count ``windows_seen`` falls in an adaptation period."""
        return windows_seen < self.adapt_until

    def state_dict(self) -> dict:
        # ADWIN's buckets serialise to bytes of plain numbers (river's own format); stored as a
        # uint8 tensor, they load under the checkpoint's weights-only unpickler.
        raw = self.adwin._helper.__getstate__()
        return {
            "adwin": torch.frombuffer(bytearray(raw), dtype=torch.uint8).clone(),
            "river_version": river.__version__,
            "detections": self.detections,
            "adapt_until": self.adapt_until,
        }

    def load_state_dict(self, state: dict) -> None:
        self.detections = int(state["detections"])
        self.adapt_until = int(state["adapt_until"])
        self.adwin = ADWIN(delta=self.delta)
        saved_version = state.get("river_version")
        if saved_version != river.__version__:
            # The byte layout is river's own and may change between versions; river's Rust code
            # panics on bytes it cannot parse, so another version's window is not tried.
            logger.warning(
                "the checkpoint's ADWIN drift window was written by river %s, this is river %s; "
                "drift detection starts over with an empty window",
                saved_version,
                river.__version__,
            )
            return
        self.adwin._helper.__setstate__(bytes(state["adwin"].numpy().tobytes()))
