"""Detector configurations that an evaluation runs side by side, and the spikewatch runner.

``--detectors`` takes a comma-separated list of specifications:

* a registered name, such as ``spikewatch``, ``spikewatch-ann``, ``halfspacetrees`` or
  ``pysad-loda`` (see :func:`registry`);
* a name with settings in brackets, separated by ``;``: configuration keys for the spikewatch
  family (``spikewatch[detector.kind=deep_svdd;windows.length=64]``) and keyword arguments for
  the baselines (``halfspacetrees[n_trees=25]``); values are TOML literals, or plain text;
* the path of a TOML configuration (``goad.toml``), which runs the pipeline with that file;
* any of these behind ``ALIAS=``, which names the column in the report.

New detector kinds of the pipeline plug in through their configuration keys, e.g.
``spikewatch[detector.kind=goad]``, with no change here.
"""

from __future__ import annotations

import re
import tempfile
import time
import tomllib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spikewatch.commands.run import build_source
from spikewatch.config import Config, load_config
from spikewatch.engine import Engine, ScoredWindow
from spikewatch.evaluation.benchmarks import EvaluationError
from spikewatch.evaluation.rows import RowTable
from spikewatch.evaluation.scores import FileScores, OnlineRank, RowOutputs
from spikewatch.sinks import JsonlAlertSink, JsonlDeadLetterSink


class EvaluatedDetector(ABC):
    """A detector configuration that scores the rows of one file at a time."""

    name: str
    description: str

    @abstractmethod
    def run(
        self,
        base_config: Config,
        file_overrides: dict[str, dict],
        rows: RowTable,
        *,
        warmup_rows: int | None,
        output_dir: Path,
        file_slug: str,
    ) -> FileScores:
        """Replay one file and return its per-row outputs.

        ``file_overrides`` are the configuration sections that describe the file (source,
        logs). ``warmup_rows`` is the number of rows of each key that the detector learns from
        before it scores, or None for the configured warm-up.
        """


def warmup_windows_for(rows: int, *, length: int, stride: int) -> int:
    """Windows of one key that end within its first ``rows`` rows (at least 1).

    A key's first window ends at its ``length``-th record and each later one ``stride`` records
    after the previous.

    NOTE: with ``windows.stride_s`` set, windows follow event time and this count only
    approximates where the warm-up ends.
    """
    if rows < length:
        return 1
    return (rows - length) // stride + 1


@dataclass
class SpikewatchDetector(EvaluatedDetector):
    """The pipeline itself: a fresh :class:`~spikewatch.engine.Engine` per file.

    ``overrides`` change the evaluation's configuration (``{section: {key: value}}``), and
    ``config_path`` replaces it with a TOML file.
    """

    name: str
    description: str
    overrides: dict[str, dict[str, Any]]
    config_path: Path | None = None

    def config(self, base_config: Config) -> Config:
        """Return the configuration this detector runs with, before the file's settings."""
        config = load_config(self.config_path) if self.config_path else base_config
        return config.with_overrides(self.overrides) if self.overrides else config

    def run(self, base_config, file_overrides, rows, *, warmup_rows, output_dir, file_slug):
        config = self.config(base_config).with_overrides(file_overrides)
        with tempfile.TemporaryDirectory(prefix="spikewatch-eval-") as scratch:
            run = {
                "metrics": {"enabled": False},
                "runtime": {"progress": False},
                # Checkpoints of a replayed file are never resumed: they go to a scratch folder.
                "checkpoint": {"path": str(Path(scratch) / "evaluation.ckpt"), "interval_s": 0.0},
            }
            if warmup_rows is not None:
                run["learning"] = {
                    "warmup_windows": warmup_windows_for(
                        warmup_rows, length=config.windows.length, stride=config.windows.stride
                    )
                }
            config = config.with_overrides(run)
            alerts_path = output_dir / "alerts" / self.name / f"{file_slug}.jsonl"
            dead_letters_path = output_dir / "dead_letters" / self.name / f"{file_slug}.jsonl"
            for path in (alerts_path, dead_letters_path):
                # A previous evaluation's alerts would be taken as delivered and not written.
                path.unlink(missing_ok=True)
            windows: list[tuple[ScoredWindow, bool]] = []
            engine = Engine(
                config,
                build_source(config),
                alert_sinks=[JsonlAlertSink(alerts_path)],
                dead_letter_sink=JsonlDeadLetterSink(dead_letters_path),
                observers=[lambda window: windows.append((window, engine.model.warm))],
            )
            started = time.perf_counter()
            summary = engine.run()
            seconds = time.perf_counter() - started
        expected = int(rows.accepted.sum())
        if summary.records_accepted != expected:
            raise EvaluationError(
                f"{self.name}: the engine accepted {summary.records_accepted} rows of "
                f"{file_slug} but the evaluation's reading accepted {expected}, so windows cannot "
                "be matched to rows; give every detector the evaluation's [validation] settings"
            )
        return self._row_outputs(windows, rows, seconds)

    @staticmethod
    def _row_outputs(
        windows: list[tuple[ScoredWindow, bool]], rows: RowTable, seconds: float
    ) -> FileScores:
        index = rows.row_index()
        outputs = RowOutputs(len(rows))
        ranks: dict[str, OnlineRank] = {}
        open_alerts: set[str] = set()
        for window, warm in windows:
            onset = window.alert is not None and window.alert.status == "firing"
            if onset:
                open_alerts.add(window.key)
            elif window.alert is not None:
                open_alerts.discard(window.key)
            # Scores of the untrained model during warm-up are not the detector's opinion.
            rank = ranks.setdefault(window.key, OnlineRank())
            outputs.set(
                index[(window.key, window.timestamp)],
                score=window.score,
                threshold=window.threshold,
                anomaly_score=rank(window.score) if warm else 0.0,
                alert_open=window.key in open_alerts,
                alert_onset=onset,
            )
        return outputs.finish(rows.keys, seconds)


def _parse_value(text: str) -> Any:
    try:
        return tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError:
        return text


def _parse_settings(text: str, spec: str) -> dict[str, Any]:
    settings = {}
    for item in filter(None, (part.strip() for part in text.split(";"))):
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise EvaluationError(f"detector setting {item!r} in {spec!r} is not NAME=VALUE")
        settings[name.strip()] = _parse_value(value.strip())
    return settings


def _nest(settings: dict[str, Any], spec: str) -> dict[str, dict[str, Any]]:
    nested: dict[str, dict[str, Any]] = {}
    for name, value in settings.items():
        section, sep, key = name.partition(".")
        if not sep:
            raise EvaluationError(
                f"setting {name!r} of {spec!r} needs the form SECTION.KEY, e.g. detector.kind"
            )
        nested.setdefault(section, {})[key] = value
    return nested


def split_specs(text: str) -> list[str]:
    """Split a ``--detectors`` value on the commas outside brackets."""
    specs, depth, current = [], 0, []
    for char in text:
        depth += (char == "[") - (char == "]")
        if char == "," and depth == 0:
            specs.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    specs.append("".join(current).strip())
    return [spec for spec in specs if spec]


_SPEC = re.compile(r"^(?:(?P<alias>[\w.+-]+)=)?(?P<name>[^\[\]=]+?)(?:\[(?P<settings>.*)\])?$")


def _spikewatch_entry(overrides: dict[str, dict[str, Any]], description: str):
    """Registry entry for a pipeline configuration; settings add configuration keys."""

    def build(name: str, settings: dict[str, Any], spec: str) -> SpikewatchDetector:
        merged = {section: dict(values) for section, values in overrides.items()}
        for section, values in _nest(settings, spec).items():
            merged.setdefault(section, {}).update(values)
        return SpikewatchDetector(name, description, merged)

    return build


def registry() -> dict[str, Any]:
    """Registered detector names and the builders that make them from their settings."""
    from spikewatch.evaluation import baselines

    return {
        "spikewatch": _spikewatch_entry({}, "the pipeline as configured"),
        "spikewatch-ann": _spikewatch_entry(
            {"encoder": {"kind": "ann"}},
            "the pipeline with real-valued activations in place of spiking neurons",
        ),
        "spikewatch-none": _spikewatch_entry(
            {"encoder": {"kind": "none"}},
            "the pipeline's detector on the scaled window, without an encoder",
        ),
        **baselines.REGISTRY,
    }


def parse_detectors(text: str) -> list[EvaluatedDetector]:
    """Build the detectors of a ``--detectors`` value (see the module docstring)."""
    entries = registry()
    detectors: list[EvaluatedDetector] = []
    for spec in split_specs(text):
        match = _SPEC.match(spec)
        if match is None:
            raise EvaluationError(
                f"detector specification {spec!r} is not NAME, NAME[SETTINGS] or PATH.toml"
            )
        name, alias = match["name"].strip(), match["alias"]
        settings = _parse_settings(match["settings"] or "", spec)
        # The report and the output folders name a detector by its alias, or by the whole
        # specification when settings change it.
        display = alias or (re.sub(r"[^\w.+=-]+", "_", spec).strip("_") if settings else name)
        if name.endswith(".toml"):
            path = Path(name)
            if not path.is_file():
                raise EvaluationError(f"detector configuration {path} not found")
            display = alias or path.stem
            detector: EvaluatedDetector = SpikewatchDetector(
                display, f"the pipeline configured by {path}", _nest(settings, spec), path
            )
        elif name in entries:
            detector = entries[name](display, settings, spec)
        else:
            raise EvaluationError(
                f"unknown detector {name!r}; choose one of {sorted(entries)} or the path of a "
                "TOML configuration"
            )
        detectors.append(detector)
    names = [detector.name for detector in detectors]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise EvaluationError(f"detectors {duplicates} appear twice; give one an ALIAS=")
    return detectors
