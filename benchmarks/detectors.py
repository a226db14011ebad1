"""ROC-AUC of every detector with every encoder variant, with firing rate and energy estimates.

Run from the repository root::

    python benchmarks/detectors.py --stream demo --json reports/detectors-demo.json
    python benchmarks/detectors.py --stream skab --json reports/detectors-skab.json

Each cell runs the pipeline exactly as ``spikewatch run`` (``--stream demo``, the built-in NAB
stream) or ``spikewatch replay`` (``--stream skab``, ``../shared/data/skab/data/valve1/0.csv``)
would, with a configuration that differs from the defaults only in ``[detector]``,
``[encoder]`` and, for SKAB, ``learning.warmup_windows``. The configuration of each cell is
written to a file, and the equivalent command is printed, so any cell can be rerun alone.

ROC-AUC is the run summary's window-level figure (every window scored after warm-up, labelled
anomalous when its newest record is), pooled over keys. Firing rate and energy are the means
over the run's scoring batches of the values the engine exports as metrics.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

from spikewatch.commands.run import build_source
from spikewatch.config import load_config
from spikewatch.engine import Engine
from spikewatch.metrics import PipelineMetrics
from spikewatch.sinks import JsonlAlertSink, JsonlDeadLetterSink

REPO = Path(__file__).resolve().parents[1]
SKAB_FILE = REPO.parent / "shared" / "data" / "skab" / "data" / "valve1" / "0.csv"

DETECTORS = {
    "deep_svdd one-class": {"kind": "deep_svdd", "objective": "one-class"},
    "deep_svdd soft-boundary": {"kind": "deep_svdd", "objective": "soft-boundary"},
    "neutral_ad": {"kind": "neutral_ad"},
    "goad": {"kind": "goad"},
}
ENCODERS = ("spikformer", "ann", "none")
#: SKAB's valve1/0.csv has 1147 records; 64 windows of warm-up (544 records) end before its
#: first anomalous record (573), and leave 76 windows to score.
SKAB_WARMUP_WINDOWS = 64


class _MeanGauge:
    """Stands in for a Prometheus gauge and keeps the mean of the values set."""

    def __init__(self) -> None:
        self.total = 0.0
        self.count = 0

    def set(self, value: float) -> None:
        self.total += float(value)
        self.count += 1

    @property
    def mean(self) -> float | None:
        return self.total / self.count if self.count else None


def _toml_value(value) -> str:
    return json.dumps(value)


def write_config(path: Path, sections: dict[str, dict]) -> Path:
    lines = []
    for section, values in sections.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {_toml_value(value)}" for key, value in values.items()]
        lines.append("")
    path.write_text("\n".join(lines))
    return path


def cell_sections(stream: str, detector: dict, encoder: str, folder: Path) -> dict[str, dict]:
    sections = {
        "detector": detector,
        "encoder": {"kind": encoder},
        "alerts": {"path": str(folder / "alerts.jsonl")},
        "dead_letter": {"path": str(folder / "dead_letters.jsonl")},
        "checkpoint": {"path": str(folder / "run.ckpt"), "interval_s": 0.0},
        "metrics": {"enabled": False},
        "runtime": {"progress": False},
    }
    if stream == "skab":
        sections["source"] = {
            "kind": "csv",
            "path": str(SKAB_FILE),
            "timestamp_field": "datetime",
            "label_field": "anomaly",
            "ignore_fields": ["changepoint"],
        }
        sections["learning"] = {"warmup_windows": SKAB_WARMUP_WINDOWS}
    return sections


def command(stream: str, config_path: Path) -> str:
    if stream == "skab":
        return (
            f"spikewatch replay {SKAB_FILE} --timestamp-column datetime --label-column anomaly "
            f"--ignore-column changepoint --no-metrics --no-progress --config {config_path}"
        )
    return f"spikewatch run --no-metrics --no-progress --config {config_path}"


def run_cell(config_path: Path) -> dict:
    config = load_config(config_path)
    metrics = PipelineMetrics()
    firing, energy, operations = _MeanGauge(), _MeanGauge(), _MeanGauge()
    metrics.firing_rate, metrics.energy_per_window, metrics.synaptic_operations = firing, energy, operations
    engine = Engine(
        config,
        build_source(config),
        alert_sinks=[JsonlAlertSink(config.alerts.path)],
        dead_letter_sink=JsonlDeadLetterSink(config.dead_letter.path),
        metrics=metrics,
    )
    started = time.perf_counter()
    summary = engine.run()
    overall = summary.detection.get("overall", {})
    return {
        "roc_auc": overall.get("roc_auc"),
        "pr_auc": overall.get("pr_auc"),
        "mean_per_key_roc_auc": summary.detection.get("mean_per_key_roc_auc"),
        "windows": summary.windows,
        "alerts": summary.alerts_firing,
        "updates": summary.model_updates,
        "skipped_updates": summary.model_updates_skipped,
        "drifts": engine.model.drift.detections,
        "firing_rate": firing.mean,
        "synaptic_operations_per_window": operations.mean,
        "energy_per_window_joules": energy.mean,
        "seconds": round(time.perf_counter() - started, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stream", choices=["demo", "skab"], required=True)
    parser.add_argument("--json", type=Path, help="write the results here as JSON")
    parser.add_argument("--detector", action="append", choices=list(DETECTORS), help="only these (repeatable)")
    parser.add_argument("--encoder", action="append", choices=ENCODERS, help="only these (repeatable)")
    args = parser.parse_args(argv)
    if args.stream == "skab" and not SKAB_FILE.exists():
        print(f"SKAB file not found: {SKAB_FILE}", file=sys.stderr)
        return 1
    torch.set_num_threads(1)
    folder = Path(tempfile.mkdtemp(prefix=f"spikewatch-detectors-{args.stream}-"))
    results = []
    for name in args.detector or DETECTORS:
        for encoder in args.encoder or ENCODERS:
            cell = folder / f"{name.replace(' ', '-')}-{encoder}"
            cell.mkdir()
            config_path = write_config(cell / "config.toml", cell_sections(args.stream, DETECTORS[name], encoder, cell))
            print(f"# {name} / {encoder}: {command(args.stream, config_path)}", flush=True)
            result = {"stream": args.stream, "detector": name, "encoder": encoder, **run_cell(config_path)}
            print(json.dumps(result), flush=True)
            results.append(result)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
