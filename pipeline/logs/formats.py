"""Log formats: split one raw log line into named fields.

A format names the fields of a line in angle brackets, in the notation of the loghub data sets
and of the Drain benchmarks, for example the Blue Gene/L (BGL) format::

    <Label> <Timestamp> <Date> <Node> <Time> <NodeRepeat> <Type> <Component> <Level> <Content>

Text between fields is matched literally, except that a run of spaces matches any run of
whitespace. Every field but the last matches as little text as possible, so ``<Content>``, the
free-text message, belongs at the end. The timestamp comes from a ``<Timestamp>`` field or from
``<Date>`` and ``<Time>`` joined by a space.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

from spikewatch.errors import InvalidRecord
from spikewatch.records import parse_timestamp

#: Field that holds the message that templates are mined from.
CONTENT_FIELD = "Content"
#: Field that holds the whole timestamp.
TIMESTAMP_FIELD = "Timestamp"
#: Fields joined by a space when there is no ``<Timestamp>`` field.
DATE_FIELD, TIME_FIELD = "Date", "Time"
#: Field that holds a per-line label, as in loghub's BGL and Thunderbird logs.
LABEL_FIELD = "Label"

_FIELD = re.compile(r"<(\w+)>")


class LogFormatError(ValueError):
    """A log format that cannot parse lines; the message names the format and the fix."""


class LogFormat:
    """A compiled log format.

    Parameters
    ----------
    format
        The fields of a line in angle brackets, e.g. ``"<Date> <Time> <Level> <Content>"``.
    timestamp_format
        ``strptime`` format of the timestamp text, read as UTC when it has no offset. Empty:
        the timestamp is seconds since the Unix epoch or ISO 8601 text.

    Examples
    --------
    >>> fmt = LogFormat("<Label> <Timestamp> <Level> <Content>")
    >>> fields = fmt.parse("- 1117838570 INFO instruction cache parity error corrected")
    >>> fields["Content"], fmt.timestamp(fields)
    ('instruction cache parity error corrected', 1117838570.0)
    """

    def __init__(self, format: str, *, timestamp_format: str = "") -> None:
        self.format = format
        self.timestamp_format = timestamp_format
        self.fields = _FIELD.findall(format)
        duplicates = sorted({name for name in self.fields if self.fields.count(name) > 1})
        if duplicates:
            raise LogFormatError(f"log format {format!r} names the fields {duplicates} twice")
        if CONTENT_FIELD not in self.fields:
            raise LogFormatError(
                f"log format {format!r} has no <{CONTENT_FIELD}> field; add one for the message "
                "that templates are mined from"
            )
        if TIMESTAMP_FIELD not in self.fields and not {DATE_FIELD, TIME_FIELD} <= set(self.fields):
            raise LogFormatError(
                f"log format {format!r} has no <{TIMESTAMP_FIELD}> field and not both "
                f"<{DATE_FIELD}> and <{TIME_FIELD}>; name the timestamp of a line with one of them"
            )
        self._pattern = re.compile(self._regex(format))

    @staticmethod
    def _regex(format: str) -> str:
        parts = _FIELD.split(format)
        # re.split with one group alternates literal text and field names.
        pattern = []
        for index, part in enumerate(parts):
            if index % 2:
                last = index == len(parts) - 2
                pattern.append(f"(?P<{part}>.*)" if last else f"(?P<{part}>.*?)")
            else:
                pattern.append(r"\s+".join(re.escape(chunk) for chunk in re.split(r" +", part)))
        return "^" + "".join(pattern) + "$"

    def parse(self, line: str) -> dict[str, str]:
        """Split ``line`` into its fields; raise InvalidRecord when it does not match."""
        match = self._pattern.match(line.strip())
        if match is None:
            raise InvalidRecord(
                "invalid_log_line", f"line does not match the log format {self.format!r}"
            )
        return match.groupdict()

    def timestamp(self, fields: dict[str, str]) -> float:
        """Seconds since the Unix epoch (UTC) of a parsed line; raise InvalidRecord when invalid."""
        if TIMESTAMP_FIELD in fields:
            text = fields[TIMESTAMP_FIELD]
        else:
            text = f"{fields[DATE_FIELD]} {fields[TIME_FIELD]}"
        if not self.timestamp_format:
            return parse_timestamp(text)
        try:
            moment = datetime.strptime(text, self.timestamp_format)
        except ValueError:
            raise InvalidRecord(
                "invalid_timestamp",
                f"timestamp {text!r} does not match the format {self.timestamp_format!r}",
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        return moment.timestamp()
