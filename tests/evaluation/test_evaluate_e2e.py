"""End to end: ``spikewatch evaluate`` on a slice of NAB, one SKAB file and the BGL sample.

The slice keeps CI to about a minute on two cores; the full runs and their figures are in
docs/results.md.
"""

import csv
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from spikewatch.cli import main
from spikewatch.config import Config
from spikewatch.evaluation.baselines import pysad_available
from spikewatch.evaluation.benchmarks import load_labeled, load_skab
from spikewatch.evaluation.detectors import parse_detectors
from spikewatch.evaluation.runner import run_evaluation

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
NAB_SLICE = [
    "realTraffic/speed_7578.csv",
    "realAWSCloudwatch/iio_us-east-1_i-a2eb1cd9_NetworkIn.csv",
    "artificialWithAnomaly/art_daily_jumpsup.csv",
]
DETECTORS = "spikewatch,halfspacetrees" + (",pysad-loda" if pysad_available() else "")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def evaluate(tmp_path_factory, *arguments) -> Path:
    if not DATA.is_dir():
        pytest.skip(f"shared data sets not found at {DATA}")
    out = tmp_path_factory.mktemp("evaluation")
    assert (
        main(["evaluate", *arguments, "--out", str(out), "--detectors", DETECTORS, "--no-progress"])
        == 0
    )
    return out


@pytest.fixture(scope="module")
def nab_run(tmp_path_factory):
    files = [argument for name in NAB_SLICE for argument in ("--files", name)]
    out = evaluate(tmp_path_factory, "nab", "--data", str(DATA / "nab"), *files)
    return out, json.loads((out / "results.json").read_text())


def test_nab_report_has_every_detector(nab_run):
    out, results = nab_run
    report = (out / "report.md").read_text()
    assert list(results["detectors"]) == DETECTORS.split(",")
    for name in results["detectors"]:
        assert f"| {name} |" in report
    assert "| detector | NAB standard | NAB low FP | NAB low FN |" in report
    assert "![comparison of the detectors](plots/comparison.png)" in report
    assert results["command"].startswith("spikewatch evaluate nab --data ")


def test_nab_figures_are_in_range(nab_run):
    _, results = nab_run
    assert [file["name"] for file in results["files"]] == sorted(NAB_SLICE)
    for name, figures in results["detectors"].items():
        profiles = figures["nab"]["profiles"]
        assert set(profiles) == {"standard", "reward_low_FP_rate", "reward_low_FN_rate"}
        for profile in profiles.values():
            assert profile["score"] <= 100.0, name
            assert 0.0 <= profile["threshold"] <= 1.0 + 1e-9, name
            assert profile["perfect"] == figures["nab"]["windows"], name
        ranges = figures["ranges"]
        assert 0.0 <= ranges["roc_auc"] <= 1.0, name
        assert 0.0 <= ranges["vus_pr"] <= 1.0, name
        # Every label window lies after the probationary period in these files.
        assert ranges["events_detected"] + ranges["events_missed"] == figures["nab"]["windows"], (
            name
        )
        assert figures["records_per_second"] > 0


def test_nab_warmup_is_the_probationary_period(nab_run):
    _, results = nab_run
    warmups = {file["name"]: file["warmup_rows"] for file in results["files"]}
    assert warmups["realTraffic/speed_7578.csv"] == math.floor(0.15 * 1127)
    assert warmups["artificialWithAnomaly/art_daily_jumpsup.csv"] == 604


def test_nab_score_files_cover_every_row(nab_run):
    out, _ = nab_run
    for name in DETECTORS.split(","):
        path = out / "scores" / name / "realTraffic" / "speed_7578.csv"
        with open(path, newline="") as handle:
            rows = list(csv.DictReader(handle))
        assert len(rows) == 1127
        anomaly = np.array([float(row["anomaly_score"]) for row in rows])
        assert ((anomaly >= 0) & (anomaly < 1)).all()
        assert not anomaly[: math.floor(0.15 * 1127)].any(), name
        assert sum(int(row["label"]) for row in rows) > 0


def test_nab_pipeline_scores_one_row_per_window(nab_run):
    out, _ = nab_run
    with open(
        out / "scores" / "spikewatch" / "realTraffic" / "speed_7578.csv", newline=""
    ) as handle:
        outputs = [int(row["row"]) for row in csv.DictReader(handle) if row["output"] == "1"]
    windows = Config().windows
    assert outputs[0] == windows.length - 1
    if windows.stride_s == 0:
        assert set(np.diff(outputs)) == {windows.stride}


def test_nab_plots_and_sink_files(nab_run):
    out, _ = nab_run
    for path in [
        out / "plots" / "comparison.png",
        out / "plots" / "realTraffic" / "speed_7578.png",
    ]:
        assert path.read_bytes()[:8] == PNG_MAGIC
    assert (out / "alerts" / "spikewatch" / "realTraffic" / "speed_7578.jsonl").exists()
    assert (out / "dead_letters" / "spikewatch" / "realTraffic" / "speed_7578.jsonl").exists()


def test_skab_file_end_to_end(tmp_path_factory):
    out = evaluate(
        tmp_path_factory,
        "skab",
        "--data",
        str(DATA / "skab"),
        "--files",
        "valve1/0.csv",
        "--no-plots",
    )
    results = json.loads((out / "results.json").read_text())
    (file,) = results["files"]
    assert file["warmup_rows"] == 400
    for figures in results["detectors"].values():
        skab = figures["skab"]
        assert skab["tp"] + skab["fp"] + skab["fn"] + skab["tn"] == file["rows"]
        assert 0.0 <= skab["far"] <= 100.0
        assert 0.0 <= skab["mar"] <= 100.0
        assert set(skab["changepoint_nab"]) == {
            "standard",
            "reward_low_FP_rate",
            "reward_low_FN_rate",
        }
    assert "| detector | SKAB F1 | FAR % | MAR % |" in (out / "report.md").read_text()
    assert not (out / "plots").exists()


def test_bgl_end_to_end(tmp_path_factory):
    out = evaluate(
        tmp_path_factory, "bgl", "--data", str(DATA / "loghub" / "BGL" / "BGL_2k.log"), "--no-plots"
    )
    results = json.loads((out / "results.json").read_text())
    (file,) = results["files"]
    assert file["rows"] == 1380
    assert file["labeled_rows"] == 125
    assert file["warmup_rows"] == 207
    with open(out / "scores" / "spikewatch" / "BGL_2k.csv", newline="") as handle:
        assert sum(1 for _ in csv.DictReader(handle)) == 1380


def test_labels_never_reach_the_pipeline(tmp_path):
    if not DATA.is_dir():
        pytest.skip(f"shared data sets not found at {DATA}")
    source = load_skab(DATA / "skab", patterns=["valve1/0.csv"]).files[0].path
    flipped = tmp_path / "flipped.csv"
    shutil.copy(source, tmp_path / "original.csv")
    with open(source, newline="") as handle, open(flipped, "w", newline="") as out:
        reader = csv.DictReader(handle, delimiter=";")
        writer = csv.DictWriter(out, reader.fieldnames, delimiter=";")
        writer.writeheader()
        for row in reader:
            row["anomaly"] = "0.0" if float(row["anomaly"]) else "1.0"
            writer.writerow(row)
    detectors = parse_detectors("spikewatch")
    scores = {}
    for name in ("original.csv", "flipped.csv"):
        benchmark = load_labeled(
            tmp_path,
            label_field="anomaly",
            timestamp_field="datetime",
            ignore_fields=["changepoint"],
            patterns=[name],
        )
        evaluation = run_evaluation(
            benchmark, detectors, Config(), tmp_path / "out", progress=False
        )
        scores[name] = evaluation.results[0].scores["spikewatch"]
    assert np.array_equal(scores["original.csv"].score, scores["flipped.csv"].score)
    assert np.array_equal(scores["original.csv"].alert, scores["flipped.csv"].alert)


def test_labeled_csv_through_the_command(tmp_path):
    rng = np.random.default_rng(1)
    lines = ["time,host,load,anomaly"]
    for row in range(1200):
        host = "a" if row % 2 else "b"
        load = 5.0 + rng.normal() + (40.0 if 900 <= row < 910 else 0.0)
        lines.append(f"{1_700_000_000 + 60 * row},{host},{load:.3f},{int(900 <= row < 910)}")
    data = tmp_path / "hosts.csv"
    data.write_text("\n".join(lines) + "\n")
    # A labeled file keeps the configured warm-up: 10 windows span 104 records of a key.
    config = tmp_path / "short.toml"
    config.write_text("[learning]\nwarmup_windows = 10\n")
    out = tmp_path / "out"
    code = main(
        [
            "evaluate",
            "labeled",
            "--data",
            str(data),
            "--out",
            str(out),
            "--label-column",
            "anomaly",
            "--config",
            str(config),
            "--timestamp-column",
            "time",
            "--key-column",
            "host",
            "--detectors",
            "trees=halfspacetrees[n_trees=5]",
            "--no-plots",
            "--no-progress",
        ]
    )
    assert code == 0

    results = json.loads((out / "results.json").read_text())
    assert results["command"].endswith("--no-plots")
    assert "--key-column host" in results["command"]
    (file,) = results["files"]
    assert (file["rows"], file["labeled_rows"], file["warmup_rows"]) == (1200, 10, None)
    assert file["scored_from_row"] == 104
    figures = results["detectors"]["trees"]
    assert "n_trees=5" in figures["description"]
    assert figures["ranges"]["roc_auc"] > 0.9

    with open(out / "scores" / "trees" / "hosts.csv", newline="") as handle:
        keys = {row["key"] for row in csv.DictReader(handle)}
    assert keys == {"a", "b"}
