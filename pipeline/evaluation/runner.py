"""Replay every file of a benchmark through each detector and compute the figures.

For each file, in order:

1. read its rows with the pipeline's own source and decoder (labels kept apart for scoring);
2. run each detector on it: a fresh engine per file for the pipeline, fresh models per file for
   the baselines, so nothing learned on one file reaches the next;
3. write each detector's per-row scores (format in :mod:`.scores`).

Then every detector's figures are computed over all files (:mod:`.scoring`).
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from spikewatch.config import Config
from spikewatch.evaluation.benchmarks import Benchmark, BenchmarkFile, configured_warmup_rows
from spikewatch.evaluation.detectors import EvaluatedDetector
from spikewatch.evaluation.rows import read_rows
from spikewatch.evaluation.scores import write_scores
from spikewatch.evaluation.scoring import FileResult, detector_figures

logger = logging.getLogger(__name__)

#: Warm-up choices: each benchmark's learning period, or ``learning.warmup_windows`` as configured.
WARMUP_CHOICES = ("benchmark", "config")


@dataclass
class Evaluation:
    """Everything an evaluation produced, for the report and the plots."""

    benchmark: Benchmark
    detectors: list[EvaluatedDetector]
    config: Config
    warmup: str
    results: list[FileResult]
    figures: dict[str, dict]


def file_slug(file: BenchmarkFile) -> str:
    """Relative output path of a file's outputs: its name without the data suffix."""
    path = PurePosixPath(file.name)
    while path.suffix in (".csv", ".jsonl", ".json", ".gz", ".log"):
        path = path.with_suffix("")
    return str(path)


def file_overrides(file: BenchmarkFile) -> dict[str, dict]:
    """Configuration sections that describe ``file``: its source and, for logs, the format."""
    overrides: dict[str, dict] = {"source": dict(file.source)}
    if file.logs:
        overrides["logs"] = dict(file.logs)
    return overrides


def _progress_bar(total: int, description: str, enabled: bool):
    if not (enabled and sys.stderr.isatty()):
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="run", desc=description, file=sys.stderr)


def run_evaluation(
    benchmark: Benchmark,
    detectors: list[EvaluatedDetector],
    config: Config,
    output_dir: Path,
    *,
    warmup: str = "benchmark",
    progress: bool = True,
) -> Evaluation:
    """Run ``detectors`` on every file of ``benchmark``; outputs go under ``output_dir``."""
    if warmup not in WARMUP_CHOICES:
        raise ValueError(f"warmup = {warmup!r} is not one of {WARMUP_CHOICES}")
    results: list[FileResult] = []
    bar = _progress_bar(len(benchmark.files) * len(detectors), benchmark.name, progress)
    logger.info(
        "evaluation started: %s, %d files, detectors %s",
        benchmark.name,
        len(benchmark.files),
        [detector.name for detector in detectors],
    )
    try:
        for file in benchmark.files:
            overrides = file_overrides(file)
            extra = (file.changepoint_field,) if file.changepoint_field else ()
            rows = read_rows(config.with_overrides(overrides), extra_fields=extra)
            warmup_rows = None
            if warmup == "benchmark" and file.warmup_rows is not None:
                warmup_rows = file.warmup_rows(len(rows))
            scored_from = configured_warmup_rows(config) if warmup_rows is None else warmup_rows
            slug = file_slug(file)
            result = FileResult(file, rows, warmup_rows, scored_from, {})
            labels = result.labels
            scores = result.scores
            for detector in detectors:
                if bar is not None:
                    bar.set_postfix_str(f"{slug} · {detector.name}")
                scores[detector.name] = detector.run(
                    config,
                    overrides,
                    rows,
                    warmup_rows=warmup_rows,
                    output_dir=output_dir,
                    file_slug=slug,
                )
                write_scores(
                    output_dir / "scores" / detector.name / f"{slug}.csv",
                    keys=rows.keys,
                    timestamps=rows.timestamps,
                    labels=labels,
                    accepted=rows.accepted,
                    scores=scores[detector.name],
                )
                logger.info(
                    "%s: %s scored %d rows in %.1f s",
                    slug,
                    detector.name,
                    len(rows),
                    scores[detector.name].seconds,
                )
                if bar is not None:
                    bar.update(1)
            results.append(result)
    finally:
        if bar is not None:
            bar.close()
    figures = {detector.name: detector_figures(results, detector.name) for detector in detectors}
    logger.info("evaluation finished: %s, %d files", benchmark.name, len(results))
    return Evaluation(benchmark, detectors, config, warmup, results, figures)
