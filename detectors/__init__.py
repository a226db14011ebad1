"""Anomaly detectors on feature vectors, usable with or without the streaming pipeline.

Every detector returns scores where higher means more anomalous. :data:`DETECTORS` maps the
names used in ``detector.kind`` of the configuration to the classes.
"""

from spikewatch.detectors.base import Detector, finite_scores
from spikewatch.detectors.deep_svdd import DeepSVDD
from spikewatch.detectors.goad import GOAD
from spikewatch.detectors.health import ScoreHealth
from spikewatch.detectors.neutral_ad import NeuTraLAD

#: Detector classes by their configuration name.
DETECTORS: dict[str, type[Detector]] = {
    "deep_svdd": DeepSVDD,
    "neutral_ad": NeuTraLAD,
    "goad": GOAD,
}

__all__ = ["DETECTORS", "DeepSVDD", "Detector", "GOAD", "NeuTraLAD", "ScoreHealth", "finite_scores"]
