"""Exceptions raised by spikewatch; every one derives from :class:`SpikewatchError`."""

from __future__ import annotations


class SpikewatchError(Exception):
    """Root of every error that spikewatch raises on purpose."""


class ConfigError(SpikewatchError):
    """The configuration is invalid; the message names the key, the value and what is allowed."""


class InvalidRecord(SpikewatchError):
    """A record cannot be used and goes to the dead-letter sink.

    ``reason`` is one of a small fixed set (it becomes a metric label); ``detail`` is free text
    for the dead-letter line.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class CheckpointError(SpikewatchError):
    """A checkpoint cannot be written, or is missing, corrupt or from another configuration."""


class SourceError(SpikewatchError):
    """A source cannot be opened or read (missing file, unreadable header, broken stream)."""
