"""Speed and memory of the pipeline, beside river's HalfSpaceTrees, and with many stream keys.

Run from the repository root::

    python benchmarks/perf.py --write docs/benchmarks.md

Measurements, each in a fresh Python process so that its peak memory is its own:

* ``pipeline-demo``: the full pipeline (decode, windows, Spikformer, Deep SVDD, threshold, alerts,
  sinks) with the default configuration on the first records of the built-in demo stream;
* ``halfspacetrees-demo``: river's ``MinMaxScaler | HalfSpaceTrees`` on the same records, one model
  per key, each record scored and then learned, as the evaluation runs it;
* ``pipeline-keys-K`` for K = 10, 1,000 and 100,000: the pipeline on a synthetic stream whose
  records go round-robin over K keys, one channel each.

Every measurement stops at a record cap or a time limit, whichever comes first, so the script
ends within a few minutes on 2 cores. Peak memory is the process's resident high-water mark
(``VmHWM``) minus its resident memory once everything is imported (``VmRSS``), so it counts the run
and not the Python, torch and river libraries. ``--write`` replaces the block between the
``perf`` markers in the Markdown file and leaves the rest of the file as it is.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

START_MARKER = "<!-- perf:start -->"
END_MARKER = "<!-- perf:end -->"
#: Key counts of the key-scaling measurements.
KEY_COUNTS = (10, 1_000, 100_000)


def _memory_kib(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not found in /proc/self/status")


class SyntheticKeys:
    """Records round-robin over ``keys`` keys: a daily-like sine with noise, one per minute."""

    def __init__(self, keys: int) -> None:
        from spikewatch.sources.base import CountingSource

        class _Source(CountingSource):
            name = f"synthetic-{keys}-keys"
            total = None

            def _items(self):
                import random

                rng = random.Random(0)
                start = 1_700_000_000.0
                index = 0
                while True:
                    step, key = divmod(index, keys)
                    value = math.sin(step / 60.0 + key) + 0.1 * rng.gauss(0.0, 1.0)
                    yield {
                        "key": f"k{key}",
                        "timestamp": start + 60.0 * step,
                        "values": {"value": value},
                    }
                    index += 1

        self.source = _Source()


def measure_pipeline(source_name: str, records: int, seconds: float) -> dict:
    import torch

    from spikewatch.config import Config
    from spikewatch.engine import Engine
    from spikewatch.sinks import JsonlAlertSink, JsonlDeadLetterSink
    from spikewatch.sources import DemoSource

    scratch = tempfile.mkdtemp(prefix="spikewatch-perf-")
    config = Config().with_overrides(
        {
            "metrics": {"enabled": False},
            "runtime": {"progress": False},
            "checkpoint": {"path": f"{scratch}/perf.ckpt", "interval_s": 0.0},
        }
    )
    if config.runtime.torch_threads:
        torch.set_num_threads(config.runtime.torch_threads)
    if source_name == "demo":
        source = DemoSource()
        keys = len(source.series)
    else:
        keys = int(source_name)
        source = SyntheticKeys(keys).source
    # Windows scored once the warm-up is over, and when the first of them was scored: the
    # scoring rate excludes the one-off warm-up fit and the records that only fill windows.
    scoring = {"first": 0.0, "windows": 0}

    def observe(window) -> None:
        if engine.model.warm:
            if scoring["windows"] == 0:
                scoring["first"] = time.perf_counter()
            scoring["windows"] += 1

    engine = Engine(
        config,
        source,
        alert_sinks=[JsonlAlertSink(f"{scratch}/alerts.jsonl")],
        dead_letter_sink=JsonlDeadLetterSink(f"{scratch}/dead.jsonl"),
        observers=[observe],
    )
    # The run ends with a checkpoint of every key's state. It is timed on its own, because a
    # running pipeline checkpoints every checkpoint.interval_s and not once per record cap.
    checkpoint = engine.checkpoint
    marks: dict[str, float] = {}

    def timed_checkpoint() -> None:
        marks["stream_end"] = time.perf_counter()
        marks["stream_peak_kib"] = _memory_kib("VmHWM")
        checkpoint()
        marks["checkpoint_end"] = time.perf_counter()

    engine.checkpoint = timed_checkpoint
    timer = threading.Timer(seconds, engine.request_stop, args=(f"time limit {seconds:g} s",))
    baseline = _memory_kib("VmRSS")
    started = time.perf_counter()
    timer.start()
    summary = engine.run(max_records=records)
    timer.cancel()
    streamed = marks["stream_end"] - started
    scoring_seconds = marks["stream_end"] - scoring["first"]
    return {
        "records": summary.records,
        "keys": keys,
        "windows": summary.windows,
        "warm": summary.warm,
        "seconds": streamed,
        "records_per_second": summary.records / streamed,
        "scored_windows": scoring["windows"],
        "scoring_windows_per_second": (
            (scoring["windows"] - 1) / scoring_seconds if scoring["windows"] > 1 else math.nan
        ),
        "window_length": config.windows.length,
        "peak_mib": (marks["stream_peak_kib"] - baseline) / 1024,
        "checkpoint_seconds": marks["checkpoint_end"] - marks["stream_end"],
        "checkpoint_peak_mib": (_memory_kib("VmHWM") - baseline) / 1024,
        "state_bytes_per_key": summary.state_bytes_per_key,
        "stopped_by": summary.stopped_by,
    }


def measure_halfspacetrees(records: int, seconds: float) -> dict:
    from river import anomaly, compose, preprocessing

    from spikewatch.sources import DemoSource

    source = DemoSource()
    models = {}
    baseline = _memory_kib("VmRSS")
    started = time.perf_counter()
    count = 0
    stopped_by = "record cap"
    for item in source:
        record = item.payload
        model = models.get(record["key"])
        if model is None:
            model = models[record["key"]] = compose.Pipeline(
                preprocessing.MinMaxScaler(), anomaly.HalfSpaceTrees(seed=42)
            )
        model.score_one(record["values"])
        model.learn_one(record["values"])
        count += 1
        if count >= records:
            break
        if count % 1000 == 0 and time.perf_counter() - started > seconds:
            stopped_by = f"time limit {seconds:g} s"
            break
    elapsed = time.perf_counter() - started
    return {
        "records": count,
        "keys": len(models),
        "seconds": elapsed,
        "records_per_second": count / elapsed,
        "peak_mib": (_memory_kib("VmHWM") - baseline) / 1024,
        "stopped_by": stopped_by,
    }


def run_one(name: str, records: int, seconds: float) -> dict:
    """Run one measurement in a fresh interpreter and return its JSON result."""
    completed = subprocess.run(
        [
            sys.executable,
            __file__,
            "--one",
            name,
            "--records",
            str(records),
            "--seconds",
            str(seconds),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(completed.stdout.strip().splitlines()[-1])


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _revision() -> str:
    completed = subprocess.run(
        ["git", "describe", "--always", "--dirty"],
        cwd=Path(__file__).resolve().parent,
        capture_output=True,
        text=True,
    )
    return completed.stdout.strip() if completed.returncode == 0 else "unknown"


def format_results(results: dict[str, dict], command: str, revision: str = "unknown") -> str:
    """Format the Markdown block that ``--write`` puts between the markers."""
    from importlib.metadata import version

    pipeline, trees = results["pipeline-demo"], results["halfspacetrees-demo"]
    date = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    lines = [
        START_MARKER,
        "## Pipeline speed and memory",
        "",
        f"Measured {date} with `{command}` at source revision {revision}, on {_cpu_model()}, "
        f"{os.cpu_count()} cores "
        f"(shared with other work while it ran), {platform.system()}, Python "
        f"{platform.python_version()}, torch {version('torch')} on CPU with 1 intra-op thread, "
        f"river {version('river')}; the default configuration. Each measurement ran in its own "
        "process and stopped at its record cap or time limit. Peak memory is the process's "
        "resident high-water mark above its resident memory once the libraries were imported.",
        "",
        "| measurement | records | keys | windows | seconds | records/s | peak memory (MiB) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, result in results.items():
        windows = "–" if "windows" not in result else f"{result['windows']:,}"
        lines.append(
            f"| {name} | {result['records']:,} | {result['keys']:,} | {windows} | "
            f"{result['seconds']:.1f} | {result['records_per_second']:,.0f} | "
            f"{result['peak_mib']:.0f} |"
        )
    lines += [
        "",
        "Ratios on the same demo records: HalfSpaceTrees processes "
        f"{trees['records_per_second'] / pipeline['records_per_second']:.1f} times as many records "
        f"per second as the pipeline, and the pipeline's peak memory is "
        f"{pipeline['peak_mib'] / max(trees['peak_mib'], 0.1):.1f} times HalfSpaceTrees'. "
        "The pipeline scores a window of each key every few records with a Spikformer and "
        "learns online, and HalfSpaceTrees scores and learns every record with 10 trees of "
        "height 8.",
        "",
        "| keys | records per key | windows | records/s | windows/s after warm-up "
        "| state per key (engine's count) | peak memory | final checkpoint |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for keys in KEY_COUNTS:
        result = results[f"pipeline-keys-{keys}"]
        lines.append(
            f"| {keys:,} | {result['records'] / keys:,.1f} | {result['windows']:,} | "
            f"{result['records_per_second']:,.0f} | "
            f"{result['scoring_windows_per_second']:,.0f} | "
            f"{result['state_bytes_per_key'] / 1024:.1f} KiB | "
            f"{result['peak_mib']:,.0f} MiB | {result['checkpoint_seconds']:.1f} s, peak "
            f"{result['checkpoint_peak_mib']:,.0f} MiB |"
        )
    first, last = (results[f"pipeline-keys-{k}"] for k in (KEY_COUNTS[0], KEY_COUNTS[-1]))
    marginal = (last["peak_mib"] - first["peak_mib"]) * 1024 / (KEY_COUNTS[-1] - KEY_COUNTS[0])
    window_ratio = last["scoring_windows_per_second"] / first["scoring_windows_per_second"]
    lines += [
        "",
        f"After the warm-up, the pipeline scores {window_ratio:.2f} times as many windows per "
        f"second with {KEY_COUNTS[-1]:,} keys as with {KEY_COUNTS[0]:,}. Each added key costs "
        f"{marginal:.1f} KiB of peak memory while streaming; the engine's own count of a key's "
        "state (window rows, scaler, LIF membranes, threshold history) is "
        f"{last['state_bytes_per_key'] / 1024:.1f} KiB. Records per second are not comparable "
        "across key counts: a key holds a full window only after its first "
        f"{last['window_length']} records, so with many keys most records only fill "
        "windows, which costs far less than scoring them. Windows per second count the windows "
        "scored after the warm-up, over the time from the first of them to the end of the stream. "
        "Throughput and peak memory are measured up to the end of the stream; the final "
        "checkpoint, which serialises every key's state, is timed apart.",
        END_MARKER,
    ]
    return "\n".join(lines) + "\n"


def write_block(path: Path, block: str) -> None:
    """Replace the marked block of ``path``, or append it (creating the file) when absent."""
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n\n"
    if START_MARKER in text and END_MARKER in text:
        before, rest = text.split(START_MARKER, 1)
        after = rest.split(END_MARKER, 1)[1].lstrip("\n")
        text = before + block + ("\n" + after if after else "")
    else:
        text = text.rstrip("\n") + "\n\n" + block
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--records",
        type=int,
        default=30_000,
        help="record cap of the demo measurements (default 30,000)",
    )
    parser.add_argument(
        "--seconds",
        type=float,
        default=60.0,
        help="time limit of each measurement, in seconds (default 60)",
    )
    parser.add_argument(
        "--write", metavar="PATH", help="replace the perf block of this Markdown file"
    )
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.one:
        if args.one == "halfspacetrees-demo":
            result = measure_halfspacetrees(args.records, args.seconds)
        else:
            result = measure_pipeline(
                args.one.removeprefix("pipeline-").removeprefix("keys-"), args.records, args.seconds
            )
        print(json.dumps(result))
        return 0

    plan = {
        "pipeline-demo": args.records,
        "halfspacetrees-demo": args.records,
        # Enough records for every key's first windows where the time limit allows it.
        **{f"pipeline-keys-{keys}": max(args.records, 40 * keys) for keys in KEY_COUNTS},
    }
    revision = _revision()
    results = {}
    for name, records in plan.items():
        results[name] = run_one(name, records, args.seconds)
        print(name, json.dumps(results[name]), flush=True)
    command = (
        "python benchmarks/perf.py"
        + (f" --records {args.records}" if args.records != 30_000 else "")
        + (f" --seconds {args.seconds:g}" if args.seconds != 60.0 else "")
        + (f" --write {args.write}" if args.write else "")
    )
    block = format_results(results, command, revision)
    print(block)
    if args.write:
        write_block(Path(args.write), block)
    return 0


if __name__ == "__main__":
    sys.exit(main())
