"""Where alerts and dead-lettered records go."""

from spikewatch.sinks.alertmanager import AlertmanagerSink
from spikewatch.sinks.alerts import AlertSink, JsonlAlertSink
from spikewatch.sinks.dead_letter import DeadLetter, DeadLetterSink, JsonlDeadLetterSink

__all__ = ["AlertmanagerSink", "AlertSink", "DeadLetter", "DeadLetterSink", "JsonlAlertSink", "JsonlDeadLetterSink"]
