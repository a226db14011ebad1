"""The spikewatch command as a user runs it: a subprocess, its files, its metrics page, signals."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from .conftest import REPO


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def spikewatch(*args: str, cwd: Path) -> list[str]:
    return [sys.executable, "-m", "spikewatch.cli", *args]


def write_small_config(path: Path) -> Path:
    path.write_text(
        "[windows]\nlength = 8\nstride = 4\n"
        "[encoder]\nembed_dim = 8\npatch_size = 2\nnum_heads = 2\n"
        "[learning]\nwarmup_windows = 32\nwarmup_epochs = 2\n"
        "[threshold]\nmin_history = 8\n"
    )
    return path


def test_demo_run_writes_summary_alerts_and_checkpoint(tmp_path):
    config = write_small_config(tmp_path / "config.toml")
    result = subprocess.run(
        spikewatch("run", "--config", str(config), "--max-records", "7000", "--no-metrics",
                   "--summary-json", "summary.json", cwd=tmp_path),
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["records"] == 7000
    assert summary["keys"] == 7
    assert summary["windows"] > 1000
    assert summary["stopped_by"] == "--max-records 7000"
    assert set(summary["detection"]["per_key"]) <= {
        "ambient_temperature_system_failure", "cpu_utilization_asg_misconfiguration",
        "ec2_request_latency_system_failure", "machine_temperature_system_failure", "nyc_taxi",
        "rogue_agent_key_hold", "rogue_agent_key_updown",
    }
    assert "ROC-AUC" in result.stdout
    assert (tmp_path / "checkpoints" / "spikewatch.ckpt").exists()
    assert (tmp_path / "alerts.jsonl").exists()

    resumed = subprocess.run(
        spikewatch("run", "--config", str(config), "--resume", "--max-records", "1000", "--no-metrics",
                   "--summary-json", "resumed.json", cwd=tmp_path),
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert json.loads((tmp_path / "resumed.json").read_text())["records"] == 8000
    assert "resumed from" in resumed.stderr


def test_metrics_page_answers_while_running_and_sigterm_checkpoints(tmp_path):
    config = write_small_config(tmp_path / "config.toml")
    port = free_port()
    process = subprocess.Popen(
        spikewatch("run", "--config", str(config), "--metrics-address", f"127.0.0.1:{port}",
                   "--speed", "20000", "--no-progress", cwd=tmp_path),
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        page = ""
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
                    page = response.read().decode()
                if "spikewatch_windows_scored_total" in page and 'outcome="accepted"} 0.0' not in page:
                    break
            except OSError:
                pass
            assert process.poll() is None, process.stderr.read()[-2000:]
            time.sleep(0.5)
        assert "spikewatch_records_total" in page
        assert "spikewatch_dead_letters_total" in page
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, stderr[-2000:]
    assert "SIGTERM" in stdout
    assert "checkpoint written" in stderr
    assert (tmp_path / "checkpoints" / "spikewatch.ckpt").exists()


def test_replay_csv_with_bad_rows(tmp_path):
    rows = ["time,temp,label"] + [f"{1700000000 + 60 * i},{20 + (i % 5)},0" for i in range(300)]
    rows[10] = f"{1700000000 + 600},warm,0"
    rows[20] = ",21,0"
    (tmp_path / "sensor.csv").write_text("\n".join(rows) + "\n")
    config = write_small_config(tmp_path / "config.toml")
    result = subprocess.run(
        spikewatch("replay", "sensor.csv", "--timestamp-column", "time", "--label-column", "label",
                   "--config", str(config), "--no-metrics", "--summary-json", "s.json", cwd=tmp_path),
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["dead_letters_by_reason"] == {"non_numeric_value": 1, "missing_timestamp": 1}
    assert summary["records_accepted"] == 298
    letters = (tmp_path / "dead_letters.jsonl").read_text().splitlines()
    assert len(letters) == 2


def test_bad_config_exits_2_with_message(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[windows]\nstrde = 3\n")
    result = subprocess.run(
        spikewatch("run", "--config", str(bad), cwd=tmp_path),
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    assert "unknown key 'windows.strde'" in result.stderr


def test_missing_input_file_is_a_clear_error(tmp_path):
    result = subprocess.run(
        spikewatch("replay", "absent.csv", "--no-metrics", cwd=tmp_path),
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 1
    assert "input file not found: absent.csv" in result.stderr


def test_misspelt_column_names_the_columns(tmp_path):
    (tmp_path / "in.csv").write_text("time,value\n1,2\n2,3\n")
    result = subprocess.run(
        spikewatch("replay", "in.csv", "--timestamp-column", "tme", "--no-metrics", cwd=tmp_path),
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 1
    assert "no column for timestamp_field 'tme'" in result.stderr
    assert "['time', 'value']" in result.stderr
