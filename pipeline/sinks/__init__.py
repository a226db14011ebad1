"""Where alerts and dead-lettered records go."""

from spikewatch.sinks.alerts import AlertSink, JsonlAlertSink
from spikewatch.sinks.dead_letter import DeadLetter, DeadLetterSink, JsonlDeadLetterSink

__all__ = ["AlertSink", "DeadLetter", "DeadLetterSink", "JsonlAlertSink", "JsonlDeadLetterSink"]
