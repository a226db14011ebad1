import json

from spikewatch.alerting import AlertPolicy, AlertState
from spikewatch.sinks import JsonlAlertSink


def feed(policy, state, scores, *, threshold=1.0, key="k"):
    changes = []
    for step, score in enumerate(scores):
        alert = policy.observe(
            state, key=key, timestamp=float(step), score=score, threshold=threshold, top_channels=["a"]
        )
        if alert is not None:
            changes.append(alert)
    return changes


def make_policy(**options):
    settings = {"open_after": 2, "resolve_after": 3, "fingerprint": "f", "detector": "d"} | options
    return AlertPolicy(**settings)


def test_single_spike_does_not_open():
    assert feed(make_policy(), AlertState(), [0, 5, 0, 5, 0]) == []


def test_open_after_k_and_resolve_after_m():
    changes = feed(make_policy(), AlertState(), [0, 5, 6, 9, 0, 0, 5, 0, 0, 0])
    assert [c.status for c in changes] == ["firing", "resolved"]
    firing, resolved = changes
    assert firing.start == 1.0
    assert resolved.end == 9.0
    assert resolved.peak_score == 9
    assert resolved.windows == 4
    assert firing.alert_id == resolved.alert_id


def test_alert_id_is_deterministic():
    first = feed(make_policy(), AlertState(), [0, 5, 6])[0]
    second = feed(make_policy(), AlertState(), [0, 5, 6])[0]
    other_key = feed(make_policy(), AlertState(), [0, 5, 6], key="other")[0]
    other_model = feed(make_policy(fingerprint="g"), AlertState(), [0, 5, 6])[0]
    assert first.alert_id == second.alert_id
    assert first.alert_id != other_key.alert_id
    assert first.alert_id != other_model.alert_id


def test_replayed_alert_is_not_written_twice(tmp_path):
    path = tmp_path / "alerts.jsonl"
    alert = feed(make_policy(), AlertState(), [5, 5])[0]
    sink = JsonlAlertSink(path)
    assert sink.send(alert) is True
    assert sink.send(alert) is False
    sink.close()
    reopened = JsonlAlertSink(path)
    assert reopened.send(alert) is False
    reopened.close()
    lines = path.read_text().splitlines()
    assert len(lines) == 1
    assert json.loads(lines[0])["status"] == "firing"


def test_sink_survives_torn_last_line(tmp_path):
    path = tmp_path / "alerts.jsonl"
    path.write_text('{"alert_id": "x", "status": "firing"}\n{"alert_id": "y", "sta')
    sink = JsonlAlertSink(path)
    assert ("x", "firing") in sink.delivered
    alert = feed(make_policy(), AlertState(), [5, 5])[0]
    sink.send(alert)
    sink.close()
    assert (alert.alert_id, "firing") in JsonlAlertSink(path).delivered


def test_alert_state_round_trip():
    state = AlertState()
    feed(make_policy(), state, [5, 5, 7])
    restored = AlertState.from_dict(state.to_dict())
    assert restored == state
