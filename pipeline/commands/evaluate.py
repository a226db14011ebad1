"""``spikewatch evaluate``: replay a labeled benchmark through the pipeline and baselines."""

from __future__ import annotations

import argparse
import logging
import shlex
from datetime import datetime, timezone
from pathlib import Path

import torch

from spikewatch.config import load_config
from spikewatch.evaluation.baselines import pysad_available
from spikewatch.evaluation.benchmarks import (
    BGL_BUCKET_SECONDS,
    Benchmark,
    load_bgl,
    load_labeled,
    load_nab,
    load_skab,
)
from spikewatch.evaluation.detectors import parse_detectors
from spikewatch.evaluation.plots import plot_comparison, plot_file
from spikewatch.evaluation.report import evaluation_json, headline_table, write_report
from spikewatch.evaluation.runner import WARMUP_CHOICES, file_slug, run_evaluation

logger = logging.getLogger(__name__)

BENCHMARKS = ("nab", "skab", "bgl", "labeled")


def default_detectors() -> str:
    """Return the default detectors: the pipeline, river's HalfSpaceTrees and PySAD's LODA.

    LODA is left out when PySAD is not installed.
    """
    return "spikewatch,halfspacetrees" + (",pysad-loda" if pysad_available() else "")


def add_parsers(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "evaluate",
        help="replay a labeled benchmark through the pipeline and baselines and write a report",
        description="Replay every file of a benchmark through the pipeline (a fresh engine per "
        "file, labels never shown to a detector) and through baseline detectors, and write a "
        "Markdown report, a JSON file of every figure, per-row scores and PNG plots to --out.",
    )
    parser.add_argument(
        "benchmark", choices=BENCHMARKS, help="nab, skab, bgl, or labeled CSV/JSON-lines files"
    )
    parser.add_argument(
        "--data",
        required=True,
        metavar="PATH",
        help="the benchmark's folder (NAB, SKAB), log file (BGL), or labeled file or folder",
    )
    parser.add_argument(
        "--out",
        required=True,
        metavar="DIR",
        help="folder for report.md, results.json, scores/, alerts/ and plots/",
    )
    parser.add_argument(
        "--detectors",
        metavar="LIST",
        help="comma-separated detector configurations: registered names (spikewatch, "
        "spikewatch-ann, spikewatch-none, halfspacetrees, pysad-loda, pysad-xstream), "
        "NAME[section.key=value;...] or TOML configuration files "
        "(default: spikewatch,halfspacetrees,pysad-loda)",
    )
    parser.add_argument(
        "--config",
        metavar="PATH",
        help="TOML configuration of the pipeline (default: built-in defaults, as in config.toml)",
    )
    parser.add_argument(
        "--files",
        action="append",
        metavar="PATTERN",
        help="evaluate only the files whose name matches this glob, e.g. 'realKnownCause/*'; "
        "repeatable",
    )
    parser.add_argument(
        "--warmup",
        choices=WARMUP_CHOICES,
        default="benchmark",
        help="rows the detectors learn from before scoring: each benchmark's learning period "
        "(default) or learning.warmup_windows as configured",
    )
    parser.add_argument("--label-column", help="labeled: field with the 0/1 label")
    parser.add_argument(
        "--timestamp-column",
        default="timestamp",
        help="labeled: field with the timestamp (default 'timestamp')",
    )
    parser.add_argument(
        "--key-column",
        default="",
        help="labeled: field with the stream key (default: one key per file)",
    )
    parser.add_argument(
        "--ignore-column",
        action="append",
        default=[],
        help="labeled: field that is not a channel; repeatable",
    )
    parser.add_argument(
        "--format",
        choices=["csv", "jsonl"],
        help="labeled: file format (default: from the file name)",
    )
    parser.add_argument(
        "--log-bucket-seconds",
        type=float,
        default=BGL_BUCKET_SECONDS,
        metavar="S",
        help="bgl: width of the template-count buckets in seconds "
        f"(default {BGL_BUCKET_SECONDS:g})",
    )
    parser.add_argument("--no-plots", action="store_true", help="do not draw the PNG plots")
    parser.add_argument("--no-progress", action="store_true", help="do not show a progress bar")
    parser.add_argument(
        "--log-level",
        default="WARNING",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="log verbosity (default WARNING)",
    )
    parser.set_defaults(handler=main)


def load_benchmark(args: argparse.Namespace) -> Benchmark:
    """Load the benchmark that the arguments name, with its files selected by ``--files``."""
    data = Path(args.data)
    if args.benchmark == "nab":
        return load_nab(data, patterns=args.files)
    if args.benchmark == "skab":
        return load_skab(data, patterns=args.files)
    if args.benchmark == "bgl":
        return load_bgl(data, patterns=args.files, bucket_seconds=args.log_bucket_seconds)
    return load_labeled(
        data,
        label_field=args.label_column or "",
        timestamp_field=args.timestamp_column,
        key_field=args.key_column,
        ignore_fields=args.ignore_column,
        file_format=args.format,
        patterns=args.files,
    )


def command_line(args: argparse.Namespace, detectors: str) -> str:
    """Format the command that reproduces this evaluation, with the detector list spelled out."""
    words = [
        "spikewatch",
        "evaluate",
        args.benchmark,
        "--data",
        args.data,
        "--out",
        args.out,
        "--detectors",
        detectors,
    ]
    for option in ("config", "label_column", "key_column", "format"):
        if getattr(args, option):
            words += [f"--{option.replace('_', '-')}", getattr(args, option)]
    for pattern in args.files or []:
        words += ["--files", pattern]
    for column in args.ignore_column:
        words += ["--ignore-column", column]
    if args.benchmark == "labeled" and args.timestamp_column != "timestamp":
        words += ["--timestamp-column", args.timestamp_column]
    if args.benchmark == "bgl" and args.log_bucket_seconds != BGL_BUCKET_SECONDS:
        words += ["--log-bucket-seconds", f"{args.log_bucket_seconds:g}"]
    if args.warmup != "benchmark":
        words += ["--warmup", args.warmup]
    if args.no_plots:
        words.append("--no-plots")
    return shlex.join(words)


def main(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    if config.runtime.torch_threads:
        torch.set_num_threads(config.runtime.torch_threads)
    benchmark = load_benchmark(args)
    detector_list = args.detectors or default_detectors()
    detectors = parse_detectors(detector_list)
    output_dir = Path(args.out)
    started = datetime.now(timezone.utc)
    evaluation = run_evaluation(
        benchmark,
        detectors,
        config,
        output_dir,
        warmup=args.warmup,
        progress=not args.no_progress,
    )
    data = evaluation_json(evaluation, command=command_line(args, detector_list), started=started)
    if not args.no_plots:
        names = [detector.name for detector in detectors]
        for result in evaluation.results:
            plot_file(result, names, output_dir / "plots" / f"{file_slug(result.file)}.png")
        plot_comparison(
            evaluation.figures, benchmark.title, output_dir / "plots" / "comparison.png"
        )
    report = write_report(data, output_dir, plots=not args.no_plots)
    print("\n".join(headline_table(data)))
    print(f"report: {report}")
    return 0
