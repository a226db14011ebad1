"""Sources of raw records: the built-in demo, recorded files, standard input (and Kafka)."""

from spikewatch.sources.base import Source, SourceItem
from spikewatch.sources.demo import DemoSource
from spikewatch.sources.files import CsvSource, JsonlSource, StdinSource

__all__ = ["CsvSource", "DemoSource", "JsonlSource", "Source", "SourceItem", "StdinSource"]
