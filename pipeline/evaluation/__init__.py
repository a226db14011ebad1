"""Evaluation metrics for anomaly detectors: NAB and SKAB scores, range- and event-aware metrics."""
