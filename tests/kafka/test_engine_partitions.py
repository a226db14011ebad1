"""The engine's partition hooks with a scripted partitioned source: release, keep, restore."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from spikewatch.checkpoint import load_checkpoint
from spikewatch.engine import Engine
from spikewatch.sinks import JsonlAlertSink, JsonlDeadLetterSink
from spikewatch.sources.base import Source, SourceItem
from tests.conftest import small_config


def item(partition: str, key: str, t: int) -> SourceItem:
    value = json.dumps({"key": key, "timestamp": 60.0 * t, "values": {"v": float(t % 7)}})
    return SourceItem(value, {"partition": partition, "offset": t}, key, partition)


class ScriptedSource(Source):
    """Yields items and calls the engine's hooks between them, as a partitioned source does."""

    partitioned = True

    def __init__(self, script: list[SourceItem | Callable[[Any], None]], checkpoint: Path) -> None:
        self.script = script
        self.checkpoint = checkpoint
        self.name = "scripted"
        self.positions: dict[str, dict] = {}
        self.commits: list[dict] = []

    def bind(self, listener: Any, metrics: Any) -> None:
        self.listener = listener

    def checkpoint_path(self, configured: str) -> str:
        return str(self.checkpoint)

    def checkpoint_position(self, last_position: Any) -> dict:
        return {p: dict(entry) for p, entry in self.positions.items()}

    def commit(self, position: Any) -> None:
        self.commits.append(position)

    def __iter__(self) -> Iterator[SourceItem | None]:
        for step in self.script:
            if callable(step):
                step(self.listener)
                continue
            entry = self.positions.setdefault(step.partition, {"offset": 0, "records": 0})
            entry["offset"] = step.position["offset"] + 1
            entry["records"] += 1
            yield step


def engine_for(tmp_path: Path, source: Source) -> Engine:
    config = small_config(tmp_path)
    return Engine(
        config,
        source,
        alert_sinks=[JsonlAlertSink(config.alerts.path)],
        dead_letter_sink=JsonlDeadLetterSink(config.dead_letter.path),
    )


def keys_in(path: Path) -> dict[str, tuple[str, int]]:
    return {k["key"]: (k["partition"], k["records"]) for k in load_checkpoint(path)["keys"]}


def test_revoked_keys_are_checkpointed_committed_and_kept(tmp_path: Path) -> None:
    first_file = tmp_path / "first.ckpt"
    script = [item("t:0", "a", t) for t in range(40)] + [item("t:1", "b", t) for t in range(40)]
    script.append(lambda listener: listener.partitions_revoked(["t:0"]))
    script += [item("t:1", "b", t) for t in range(40, 50)]
    source = ScriptedSource(script, first_file)
    engine = engine_for(tmp_path, source)
    engine.run()

    # The revocation committed what its checkpoint covered, with key "a" still in it.
    assert source.commits[0] == {
        "t:0": {"offset": 40, "records": 40},
        "t:1": {"offset": 40, "records": 40},
    }
    assert "a" not in engine.keys
    # The final checkpoint still holds the released key, frozen, beside the live one.
    assert keys_in(first_file) == {"a": ("t:0", 40), "b": ("t:1", 50)}


def test_forgotten_partitions_leave_the_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "first.ckpt"
    script = [item("t:0", "a", t) for t in range(40)]
    script.append(lambda listener: listener.partitions_revoked(["t:0"]))
    script.append(lambda listener: listener.forget_partitions(["t:0"]))
    script += [item("t:1", "b", t) for t in range(40)]
    engine_for(tmp_path, ScriptedSource(script, path)).run()
    assert keys_in(path) == {"b": ("t:1", 40)}


def test_assigned_partition_continues_from_other_workers_state(tmp_path: Path) -> None:
    first_file = tmp_path / "first.ckpt"
    script = [item("t:0", "a", t) for t in range(40)] + [item("t:1", "b", t) for t in range(40)]
    script.append(lambda listener: listener.partitions_revoked(["t:0", "t:1"]))
    engine_for(tmp_path, ScriptedSource(script, first_file)).run()
    saved = load_checkpoint(first_file)

    second_file = tmp_path / "second.ckpt"
    script = [lambda listener: listener.partitions_assigned({"t:0": saved, "t:2": None})]
    script += [item("t:0", "a", t) for t in range(40, 60)] + [
        item("t:2", "c", t) for t in range(10)
    ]
    second = engine_for(tmp_path, ScriptedSource(script, second_file))
    second.run()

    # Key "a" carries on with the first worker's state; "b" (not assigned) is not taken over.
    assert keys_in(second_file) == {"a": ("t:0", 60), "c": ("t:2", 10)}
    assert second.model.warm
    assert second.model.windows_seen > 0
