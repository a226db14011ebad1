"""Anomaly detectors on feature vectors, usable with or without the streaming pipeline.

Every detector returns scores where higher means more anomalous.
"""

from spikewatch.detectors.base import Detector
from spikewatch.detectors.deep_svdd import DeepSVDD

__all__ = ["DeepSVDD", "Detector"]
