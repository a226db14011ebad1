"""Metric names in PromQL expressions, and the names the product exports.

A small lexer, not a PromQL parser: it drops strings, label matchers, ranges, grouping clauses
and Grafana variables, then keeps each identifier that is neither a keyword nor a function call.
test_promql.py checks it on expressions of each shape that deploy/ uses.
"""

from __future__ import annotations

import re

from spikewatch.metrics import PipelineMetrics

KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan", "by", "without", "on", "ignoring",
            "group_left", "group_right"}
#: Series that Prometheus itself writes for every target.
PROMETHEUS_SERIES = {"up"}

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGES = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_VARIABLE = re.compile(r"\$\{[^}]*\}|\$\w+")
_IDENTIFIER = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_LABEL_VALUES = re.compile(r"^\s*label_values\(\s*([A-Za-z_:][A-Za-z0-9_:]*)\s*(?:\{[^}]*\})?\s*,\s*\w+\s*\)\s*$")


def metric_names(expr: str) -> set[str]:
    """Return the metric names that ``expr`` selects."""
    text = _STRING.sub('""', expr)
    text = _VARIABLE.sub("", text)
    text = _MATCHERS.sub("", text)
    text = _RANGES.sub("", text)
    text = _GROUPING.sub("", text)
    names = set()
    for match in _IDENTIFIER.finditer(text):
        before = text[: match.start()].rstrip()
        after = text[match.end() :].lstrip()
        if after.startswith("("):
            continue  # a function or an aggregation
        if before and (before[-1].isdigit() or before[-1] == "."):
            continue  # the exponent of a number such as 1e3
        if match.group(0).lower() in KEYWORDS:
            continue
        names.add(match.group(0))
    return names


def label_values_metric(query: str) -> str:
    """Return the metric of a Grafana ``label_values(METRIC, LABEL)`` variable query."""
    match = _LABEL_VALUES.match(query)
    if match is None:
        raise ValueError(f"not a label_values(METRIC, LABEL) query: {query!r}")
    return match.group(1)


def exported_names() -> set[str]:
    """Names of every series that a pipeline's registry can expose, with type suffixes."""
    names = set()
    for family in PipelineMetrics().registry.collect():
        if family.type == "counter":
            names |= {family.name + "_total", family.name + "_created"}
        elif family.type == "histogram":
            names |= {family.name + suffix for suffix in ("_bucket", "_sum", "_count", "_created")}
        else:
            names.add(family.name)
    return names
