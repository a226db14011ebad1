"""The engine end to end on small inputs: dead letters, bad series, resume, eviction."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from spikewatch.checkpoint import load_checkpoint
from spikewatch.engine import Engine
from spikewatch.errors import CheckpointError
from spikewatch.sinks import JsonlAlertSink, JsonlDeadLetterSink
from spikewatch.sources import CsvSource, JsonlSource

from .conftest import small_config


def make_engine(config, source, observers=None):
    return Engine(
        config,
        source,
        alert_sinks=[JsonlAlertSink(config.alerts.path)],
        dead_letter_sink=JsonlDeadLetterSink(config.dead_letter.path),
        observers=observers,
    )


def write_series(path, values, *, key="k", start=0, step=60, spike_at=None):
    rows = ["timestamp,key,value"]
    for i, value in enumerate(values):
        rows.append(f"{start + i * step},{key},{value}")
    path.write_text("\n".join(rows) + "\n")
    return path


def spiky_series(n=600, seed=0):
    rng = np.random.default_rng(seed)
    values = np.sin(np.arange(n) / 8.0) + rng.normal(0, 0.1, n)
    values[400:420] += 8.0
    return values


def test_csv_with_text_value_and_empty_timestamp(tmp_path):
    config = small_config(tmp_path)
    values = spiky_series(200)
    path = write_series(tmp_path / "in.csv", values)
    lines = path.read_text().splitlines()
    lines[31] = lines[31].rsplit(",", 1)[0] + ",not-a-number"
    lines[77] = "," + lines[77].split(",", 1)[1]
    path.write_text("\n".join(lines) + "\n")

    summary = make_engine(config, CsvSource(path)).run()

    letters = [json.loads(line) for line in (tmp_path / "dead_letters.jsonl").read_text().splitlines()]
    assert sorted(letter["reason"] for letter in letters) == ["missing_timestamp", "non_numeric_value"]
    assert sorted(letter["position"] for letter in letters) == [31, 77]
    assert letters[0]["payload"]["value"] == "not-a-number"
    assert summary.records == 200
    assert summary.records_accepted == 198
    assert summary.dead_letters_by_reason == {"non_numeric_value": 1, "missing_timestamp": 1}


def test_identical_first_records_score_finite_without_alert(tmp_path):
    config = small_config(tmp_path, windows={"length": 2, "stride": 1}, encoder={"patch_size": 1})
    source = tmp_path / "in.jsonl"
    source.write_text(
        "\n".join(json.dumps({"key": "new", "timestamp": t, "values": {"a": 1, "b": 1}}) for t in (1, 2))
        + "\n"
    )
    scored = []
    summary = make_engine(config, JsonlSource(source), observers=[scored.append]).run()
    assert summary.windows == 1
    assert summary.alerts_firing == 0
    assert summary.dead_letters == 0
    # Scored before any learning: the model is still warming up, so the window is not in the
    # observer stream, but the model's score of it must be a finite number.
    engine = make_engine(config, JsonlSource(source))
    engine.run()
    window = np.ones((1, 2, 2), dtype=np.float32) * 0.0
    batch = engine.model.score(window, engine.model.initial_state().unsqueeze(0))
    assert batch.scores.shape == (1,)
    assert math.isfinite(float(batch.scores[0]))


def test_series_shorter_than_window_reports_not_enough_data(tmp_path):
    config = small_config(tmp_path)
    path = write_series(tmp_path / "short.csv", [1.0, 2.0, 3.0])
    summary = make_engine(config, CsvSource(path)).run()
    assert summary.windows == 0
    assert summary.keys_without_window == {"k": 3}
    assert "not enough data: key 'k' has 3 records, a window needs 8" in summary.format(8)


def test_constant_series_over_741_channels_scores_finite(tmp_path):
    config = small_config(tmp_path, learning={"warmup_windows": 4, "warmup_epochs": 1})
    rows = [json.dumps({"key": "wide", "timestamp": t, "values": {f"c{i}": 3.0 for i in range(741)}}) for t in range(40)]
    path = tmp_path / "wide.jsonl"
    path.write_text("\n".join(rows) + "\n")
    scores = []
    summary = make_engine(config, JsonlSource(path), observers=[scores.append]).run()
    assert summary.windows == 17
    assert scores, "windows after warm-up must reach observers"
    assert all(math.isfinite(window.score) for window in scores)
    assert summary.alerts_firing == 0


def run_spiky(tmp_path, name, *, max_records=None, resume=False):
    config = small_config(tmp_path, checkpoint={"path": str(tmp_path / f"{name}.ckpt"), "interval_s": 0},
                          alerts={"path": str(tmp_path / f"{name}.jsonl")})
    path = tmp_path / "spiky.csv"
    if not path.exists():
        write_series(path, spiky_series())
    scored = []
    summary = make_engine(config, CsvSource(path), observers=[scored.append]).run(
        max_records=max_records, resume=resume
    )
    return summary, scored, config


def read_alerts(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_resume_gives_same_alerts_as_uninterrupted_run(tmp_path):
    full, full_scores, _ = run_spiky(tmp_path, "full")
    assert full.alerts_firing >= 1, "the injected spike should raise an alert"

    first, first_scores, _ = run_spiky(tmp_path, "split", max_records=250)
    second, second_scores, _ = run_spiky(tmp_path, "split", resume=True)
    assert first.records == 250
    assert second.records == 600

    split, full = read_alerts(tmp_path / "split.jsonl"), read_alerts(tmp_path / "full.jsonl")
    identity = ("alert_id", "key", "status", "start", "end", "windows")
    assert [[a[f] for f in identity] for a in split] == [[a[f] for f in identity] for a in full]
    # Scores may differ in the last float32 digits: a resumed run batches windows differently.
    assert np.allclose([a["peak_score"] for a in split], [a["peak_score"] for a in full], rtol=1e-5)
    resumed = [w.score for w in first_scores + second_scores]
    uninterrupted = [w.score for w in full_scores]
    assert np.allclose(resumed, uninterrupted, rtol=1e-5, atol=1e-7)


def test_replaying_windows_raises_no_second_alert(tmp_path):
    full, _, config = run_spiky(tmp_path, "once")
    assert full.alerts_firing >= 1
    lines_before = read_alerts(tmp_path / "once.jsonl")
    # The same stream again, appending to the same alerts file: every id is already there.
    (tmp_path / "once.ckpt").unlink()
    run_spiky(tmp_path, "once")
    assert read_alerts(tmp_path / "once.jsonl") == lines_before


def test_checkpoint_round_trip_gives_identical_next_scores(tmp_path):
    summary, _, config = run_spiky(tmp_path, "ckpt", max_records=300)
    state = load_checkpoint(config.checkpoint.path)
    first = make_engine(config, CsvSource(tmp_path / "spiky.csv"))
    first.restore(state)
    second = make_engine(config, CsvSource(tmp_path / "spiky.csv"))
    second.restore(load_checkpoint(config.checkpoint.path))
    key = first.keys.peek("k")
    window = np.random.default_rng(1).normal(size=(1, 8, 1)).astype(np.float32)
    a = first.model.score(window, key.membrane.unsqueeze(0))
    b = second.model.score(window, second.keys.peek("k").membrane.unsqueeze(0))
    assert np.array_equal(a.scores, b.scores)
    assert torch.equal(a.states, b.states)


def test_corrupt_and_foreign_checkpoints_are_rejected(tmp_path):
    config = small_config(tmp_path)
    path = write_series(tmp_path / "in.csv", spiky_series(100))
    ckpt = tmp_path / "checkpoints" / "run.ckpt"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"\x00not a checkpoint")
    with pytest.raises(CheckpointError, match="corrupt or not a spikewatch checkpoint"):
        make_engine(config, CsvSource(path)).run(resume=True)
    torch.save({"weights": torch.zeros(2)}, ckpt)
    with pytest.raises(CheckpointError, match="not a spikewatch checkpoint"):
        make_engine(config, CsvSource(path)).run(resume=True)
    ckpt.unlink()
    with pytest.raises(CheckpointError, match="not found"):
        make_engine(config, CsvSource(path)).run(resume=True)


def test_checkpoint_from_other_model_config_is_rejected(tmp_path):
    config = small_config(tmp_path)
    path = write_series(tmp_path / "in.csv", spiky_series(100))
    make_engine(config, CsvSource(path)).run()
    other = small_config(tmp_path, encoder={"embed_dim": 16})
    with pytest.raises(CheckpointError, match="encoder.embed_dim = 8 in the checkpoint, 16 now"):
        make_engine(other, CsvSource(path)).run(resume=True)


def test_key_eviction_is_counted(tmp_path):
    config = small_config(tmp_path, windows={"length": 8, "stride": 2, "max_keys": 3})
    rows = [json.dumps({"key": f"k{i % 5}", "timestamp": i, "values": {"v": float(i % 7)}}) for i in range(100)]
    path = tmp_path / "keys.jsonl"
    path.write_text("\n".join(rows) + "\n")
    engine = make_engine(config, JsonlSource(path))
    summary = engine.run()
    assert summary.keys == 3
    assert summary.keys_evicted > 0
    assert engine.metrics.keys_evicted._value.get() == summary.keys_evicted


def test_duplicate_and_out_of_order_records_dead_lettered(tmp_path):
    config = small_config(tmp_path)
    rows = [{"key": "k", "timestamp": t, "values": {"v": 1.0}} for t in (1, 2, 2, 3, 1, 4)]
    path = tmp_path / "order.jsonl"
    path.write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    summary = make_engine(config, JsonlSource(path)).run()
    assert summary.dead_letters_by_reason == {"duplicate": 1, "out_of_order": 1}
    assert summary.records_accepted == 4


def test_stride_in_seconds_cuts_windows_by_event_time(tmp_path):
    config = small_config(tmp_path, windows={"length": 4, "stride": 1, "stride_s": 60.0}, encoder={"patch_size": 2})
    # One record every 10 s for 600 s: a full window first after 40 s, then one every 60 s.
    rows = [{"key": "k", "timestamp": 10 * i, "values": {"v": float(i % 3)}} for i in range(61)]
    path = tmp_path / "timed.jsonl"
    path.write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    summary = make_engine(config, JsonlSource(path)).run()
    assert summary.windows == 10


def test_level_shift_opens_alert_with_spiking_encoder(tmp_path):
    config = small_config(tmp_path, windows={"length": 8, "stride": 2})
    rng = np.random.default_rng(3)
    values = np.sin(np.arange(500) / 6.0) + rng.normal(0, 0.2, 500)
    values[420:] += 20.0
    path = write_series(tmp_path / "shift.csv", values)
    scored = []
    summary = make_engine(config, CsvSource(path), observers=[scored.append]).run()
    assert config.encoder.kind == "spikformer"
    assert summary.alerts_firing >= 1
    opened = [w.timestamp / 60 for w in scored if w.alert is not None and w.alert.status == "firing"]
    assert any(420 <= minute <= 440 for minute in opened), opened


def test_undecodable_bytes_and_byte_order_mark(tmp_path):
    config = small_config(tmp_path)
    lines = [f"{60 * i},k,{i % 7}".encode() for i in range(60)]
    lines[10] = b"600,k,caf\xe9"
    (tmp_path / "latin.csv").write_bytes(b"\xef\xbb\xbftimestamp,key,value\n" + b"\n".join(lines) + b"\n")
    summary = make_engine(config, CsvSource(tmp_path / "latin.csv")).run()
    assert summary.records_accepted == 59
    assert summary.dead_letters_by_reason == {"non_numeric_value": 1}


def test_resume_on_another_source_is_rejected(tmp_path):
    config = small_config(tmp_path)
    first = write_series(tmp_path / "first.csv", spiky_series(100))
    make_engine(config, CsvSource(first)).run()
    second = write_series(tmp_path / "second.csv", spiky_series(100))
    with pytest.raises(CheckpointError, match="was taken on source"):
        make_engine(config, CsvSource(second)).run(resume=True)


def test_max_records_zero_reads_nothing(tmp_path):
    config = small_config(tmp_path)
    path = write_series(tmp_path / "in.csv", spiky_series(50))
    summary = make_engine(config, CsvSource(path)).run(max_records=0)
    assert summary.records == 0


def test_flipped_byte_in_checkpoint_is_detected(tmp_path):
    config = small_config(tmp_path)
    path = write_series(tmp_path / "in.csv", spiky_series(100))
    make_engine(config, CsvSource(path)).run()
    ckpt = Path(config.checkpoint.path)
    data = bytearray(ckpt.read_bytes())
    data[len(data) // 2] ^= 0xFF
    ckpt.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="corrupt"):
        make_engine(config, CsvSource(path)).run(resume=True)
