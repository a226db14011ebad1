"""The report of an evaluation: ``report.md`` with tables and plots, ``results.json``."""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from spikewatch.evaluation.detectors import SpikewatchDetector
from spikewatch.evaluation.runner import file_slug
from spikewatch.evaluation.scores import SCORE_COLUMNS

#: Packages whose versions each report records.
VERSIONED_PACKAGES = ("spikewatch", "torch", "numpy", "river", "pysad", "drain3", "scikit-learn")


def _versions() -> dict[str, str | None]:
    found = {}
    for package in VERSIONED_PACKAGES:
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = None
    return found


def _revision() -> str | None:
    """Return ``git describe --always --dirty`` of the source tree, or None outside a checkout."""
    try:
        completed = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if completed.returncode != 0:
        return None
    return completed.stdout.strip() or None


def _plain(value: Any) -> Any:
    """JSON-safe copy: NaN and infinities become null, NumPy numbers become Python numbers."""
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _format(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def evaluation_json(evaluation, *, command: str, started: datetime) -> dict:
    """Collect every figure, the protocol and the settings of one evaluation, JSON-safe."""
    detectors = {}
    for detector in evaluation.detectors:
        entry = {"description": detector.description, **evaluation.figures[detector.name]}
        if isinstance(detector, SpikewatchDetector):
            entry["config"] = detector.config(evaluation.config).model_dump()
        detectors[detector.name] = entry
    files = [
        {
            "name": result.file.name,
            "rows": len(result.rows),
            "accepted": int(result.rows.accepted.sum()),
            "rejected": result.rows.rejected,
            "labeled_rows": int(result.labels.sum()),
            "warmup_rows": result.warmup_rows,
            "scored_from_row": result.scored_from,
            "plot": f"{file_slug(result.file)}.png",
        }
        for result in evaluation.results
    ]
    return _plain(
        {
            "benchmark": evaluation.benchmark.name,
            "title": evaluation.benchmark.title,
            "protocol": evaluation.benchmark.protocol,
            "warmup": evaluation.warmup,
            "command": command,
            "started": started.isoformat(timespec="seconds"),
            "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "machine": {
                "platform": platform.platform(),
                "python": platform.python_version(),
                "cpus": os.cpu_count(),
            },
            "versions": _versions(),
            "revision": _revision(),
            "files": files,
            "detectors": detectors,
        }
    )


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    def line(cells: list[str]) -> str:
        # A bare "|" inside a cell would end the cell.
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"

    return [line(header), "|" + "---|" * len(header), *(line(row) for row in rows), ""]


def headline_table(data: dict) -> list[str]:
    """Format the results table, one row per detector with its headline figures, as Markdown."""
    header, rows = _headline_rows(data)
    return _table(header, rows)


def _headline_rows(data: dict) -> tuple[list[str], list[list[str]]]:
    names = list(data["detectors"])
    first = data["detectors"][names[0]]
    header = ["detector"]
    if "nab" in first:
        header += ["NAB standard", "NAB low FP", "NAB low FN"]
    if "skab" in first:
        header += ["SKAB F1", "FAR %", "MAR %"]
    header += ["ROC-AUC", "PR-AUC", "VUS-PR", "event F1", "delay (rows)", "records/s"]
    rows = []
    for name in names:
        figures = data["detectors"][name]
        row = [name]
        if "nab" in figures:
            profiles = figures["nab"]["profiles"]
            row += [
                _format(profiles[p]["score"], 1)
                for p in ("standard", "reward_low_FP_rate", "reward_low_FN_rate")
            ]
        if "skab" in figures:
            skab = figures["skab"]
            row += [_format(skab["f1"], 3), _format(skab["far"], 2), _format(skab["mar"], 2)]
        totals = figures["ranges"]
        row += [
            _format(totals["roc_auc"]),
            _format(totals["pr_auc"]),
            _format(totals["vus_pr"]),
            _format(totals["event_f1"]),
            _format(totals["mean_delay_rows"], 1),
            _format(figures["records_per_second"], 0),
        ]
        rows.append(row)
    return header, rows


def _nab_section(data: dict) -> list[str]:
    lines = ["## NAB details", ""]
    rows = []
    for name, figures in data["detectors"].items():
        for profile, values in figures["nab"]["profiles"].items():
            alerts = figures["nab"]["alerts"][profile]
            rows.append(
                [
                    name,
                    profile,
                    _format(values["score"], 2),
                    _format(values["threshold"], 4),
                    _format(values["raw"], 2),
                    str(values["tp"]),
                    str(values["fp"]),
                    str(values["fn"]),
                    _format(alerts["score"], 2),
                ]
            )
    lines += _table(
        [
            "detector",
            "profile",
            "score",
            "threshold",
            "raw",
            "TP rows",
            "FP rows",
            "FN rows",
            "score of alert onsets",
        ],
        rows,
    )
    first = next(iter(data["detectors"].values()))["nab"]["profiles"]["standard"]
    lines += [
        f"Null detector raw score {first['null']:.2f}, perfect {first['perfect']:.2f} "
        '(standard profile). "Score of alert onsets" takes the rows where each detector\'s '
        "alert policy opened an alert as its detections, with no threshold sweep.",
        "",
    ]
    return lines


def _skab_section(data: dict) -> list[str]:
    rows = []
    for name, figures in data["detectors"].items():
        skab = figures["skab"]
        changepoint = skab.get("changepoint_nab", {})
        rows.append(
            [
                name,
                _format(skab["f1"]),
                _format(skab["far"], 2),
                _format(skab["mar"], 2),
                str(skab["tp"]),
                str(skab["fp"]),
                str(skab["fn"]),
                str(skab["tn"]),
                _format(changepoint.get("standard"), 2),
                _format(changepoint.get("reward_low_FP_rate"), 2),
                _format(changepoint.get("reward_low_FN_rate"), 2),
            ]
        )
    return ["## SKAB details", ""] + _table(
        [
            "detector",
            "F1",
            "FAR %",
            "MAR %",
            "TP",
            "FP",
            "FN",
            "TN",
            "CP-NAB standard",
            "CP-NAB low FP",
            "CP-NAB low FN",
        ],
        rows,
    )


def _events_section(data: dict) -> list[str]:
    rows = []
    for name, figures in data["detectors"].items():
        totals = figures["ranges"]
        rows.append(
            [
                name,
                _format(totals["vus_roc"]),
                _format(totals["vus_pr"]),
                _format(totals["event_precision"]),
                _format(totals["event_recall"]),
                str(totals["events_detected"]),
                str(totals["events_missed"]),
                str(totals["false_positive_events"]),
                _format(totals["alert_share"]),
                _format(totals["mean_delay_rows"], 1),
                _format(totals["mean_delay_seconds"], 0),
                _format(figures["seconds"], 1),
            ]
        )
    header = [
        "detector",
        "VUS-ROC",
        "VUS-PR",
        "event precision",
        "event recall",
        "detected",
        "missed",
        "false events",
        "share of rows in alert",
        "delay (rows)",
        "delay (s)",
        "run time (s)",
    ]
    return ["## Events, delays and run time", ""] + _table(header, rows)


def _files_section(data: dict, plots: bool) -> list[str]:
    names = list(data["detectors"])
    header = ["file", "rows", "dead-lettered", "labeled", "warm-up rows"] + [
        f"{name}: VUS-PR · ROC-AUC · alerts" for name in names
    ]
    rows = []
    for file in data["files"]:
        cells = []
        for name in names:
            figures = data["detectors"][name]["files"][file["name"]]
            vus_pr, roc_auc = _format(figures["vus_pr"]), _format(figures["roc_auc"])
            cells.append(f"{vus_pr} · {roc_auc} · {figures['alerts']}")
        label = file["name"]
        if plots:
            label = f"[{label}](plots/{file['plot']})"
        rows.append(
            [
                label,
                str(file["rows"]),
                str(file["rows"] - file["accepted"]),
                str(file["labeled_rows"]),
                _format(file["scored_from_row"]),
                *cells,
            ]
        )
    return ["## Files", ""] + _table(header, rows)


#: How the rows are scored, as every report states it.
ROW_SCORES = (
    "Row scores: each detector's raw score is mapped to [0, 1) online, as the share of its "
    "earlier scores on the same key that are lower (one minus a conformal p-value), so no "
    "future row is used. NAB takes the mapped score on the rows where the detector produced "
    "an output (for the pipeline, the newest record of each window). Threshold-free metrics "
    "(ROC-AUC, PR-AUC, VUS) take on every row the latest mapped score at or before it, and "
    "event metrics, SKAB's F1/FAR/MAR and the detection delay take the alert state. Range, "
    "event and delay figures cover the rows after each file's warm-up. The baselines decide "
    "with the pipeline's own threshold and alert policy, per record."
)


def _header_section(data: dict) -> list[str]:
    versions = ", ".join(f"{name} {v}" for name, v in data["versions"].items() if v)
    machine = data["machine"]
    lines = [
        f"# {data['title']}: evaluation",
        "",
        f"- Command: `{data['command']}`",
        f"- Started {data['started']}, finished {data['finished']}",
        f"- Machine: {machine['platform']}, {machine['cpus']} CPUs, Python {machine['python']}",
        f"- Versions: {versions}; source revision {data['revision'] or 'unknown'}",
        "",
        "## Protocol",
        "",
        data["protocol"],
        "",
        ROW_SCORES,
        "",
    ]
    if data["warmup"] == "config":
        lines += ["Warm-up: as configured (`learning.warmup_windows`), not the benchmark's.", ""]
    return lines


def _outputs_section() -> list[str]:
    return [
        "## Output files",
        "",
        "- `results.json`: every figure above, per detector and per file, with the configuration.",
        "- `scores/DETECTOR/FILE.csv`: per-row scores, in the format below.",
        "- `alerts/DETECTOR/FILE.jsonl`, `dead_letters/DETECTOR/FILE.jsonl`: the pipeline's "
        "alert and dead-letter sinks, as `spikewatch run` writes them.",
        "- `plots/`: one plot per file and `comparison.png`.",
        "",
        "Per-row score files have one line per source row, in source order. A row takes its "
        "key's latest output at or before it, and rows before the key's first output have "
        "score 0 and no alert.",
        "",
        *_table(["column", "meaning"], [[f"`{name}`", meaning] for name, meaning in SCORE_COLUMNS]),
    ]


def write_report(data: dict, output_dir: Path, *, plots: bool) -> Path:
    """Write ``results.json`` and ``report.md`` into ``output_dir``; return the report's path."""
    output_dir.mkdir(parents=True, exist_ok=True)
    with open(output_dir / "results.json", "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2, allow_nan=False)
        handle.write("\n")

    lines = _header_section(data)
    lines += ["## Detectors", ""] + _table(
        ["detector", "what"],
        [[name, figures["description"]] for name, figures in data["detectors"].items()],
    )
    lines += ["## Results", ""] + headline_table(data)
    if plots:
        lines += ["![comparison of the detectors](plots/comparison.png)", ""]

    first = next(iter(data["detectors"].values()))
    if "nab" in first:
        lines += _nab_section(data)
    if "skab" in first:
        lines += _skab_section(data)
    lines += _events_section(data)
    lines += _files_section(data, plots)
    lines += _outputs_section()

    path = output_dir / "report.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
