"""GroupCheckpoints: which file holds the newest state of a partition, and which files can go."""

from __future__ import annotations

from pathlib import Path

import pytest

from spikewatch.checkpoint import save_checkpoint
from spikewatch.kafka.state import GroupCheckpoints, group_directory


def write(
    directory: Path, worker: str, partitions: dict[str, tuple[int, float]], *, written_at: float
) -> Path:
    """A worker file whose partitions map to (offset, checkpointed_at)."""
    position = {
        p: {"offset": o, "records": o, "checkpointed_at": at} for p, (o, at) in partitions.items()
    }
    path = directory / f"{worker}.ckpt"
    save_checkpoint(
        path,
        {"source": {"name": "kafka:t", "position": position}, "written_at": written_at, "keys": []},
    )
    return path


def test_group_directory_sits_beside_checkpoint() -> None:
    assert group_directory("checkpoints/spikewatch.ckpt", "team/a b") == Path(
        "checkpoints/spikewatch-team_a_b"
    )


def test_worker_id_is_required(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="worker_id"):
        GroupCheckpoints(tmp_path, worker_id="")


def test_newest_copy_wins_by_checkpoint_time(tmp_path: Path) -> None:
    # "a" gave t:0 up at time 5 and still carries it; "b" checkpointed it at time 8.
    write(tmp_path, "a", {"t:0": (100, 5.0), "t:1": (50, 9.0)}, written_at=9.0)
    write(tmp_path, "b", {"t:0": (80, 8.0)}, written_at=8.0)
    copies = GroupCheckpoints(tmp_path, worker_id="c").scan()
    assert copies["t:0"].path.name == "b.ckpt"
    assert copies["t:0"].entry["offset"] == 80
    assert copies["t:1"].path.name == "a.ckpt"


def test_newest_maps_missing_partitions_to_none(tmp_path: Path) -> None:
    write(tmp_path, "a", {"t:0": (3, 1.0)}, written_at=1.0)
    saved = GroupCheckpoints(tmp_path, worker_id="c").newest(["t:0", "t:2"])
    assert saved["t:0"]["written_at"] == 1.0
    assert saved["t:2"] is None


def test_stale_files_are_pruned(tmp_path: Path) -> None:
    stale = write(tmp_path, "gone", {"t:0": (10, 1.0)}, written_at=1.0)
    holder = write(tmp_path, "live", {"t:0": (20, 2.0)}, written_at=2.0)
    newest = write(tmp_path, "empty", {}, written_at=3.0)
    mine = write(tmp_path, "me", {}, written_at=0.5)
    GroupCheckpoints(tmp_path, worker_id="me").scan()
    assert not stale.exists()
    assert holder.exists()
    assert newest.exists()  # the newest file holds the model a new worker starts from
    assert mine.exists()


def test_unreadable_file_is_skipped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "broken.ckpt").write_bytes(b"not a checkpoint")
    write(tmp_path, "a", {"t:0": (3, 1.0)}, written_at=1.0)
    assert set(GroupCheckpoints(tmp_path, worker_id="me").scan()) == {"t:0"}
    assert "skipping" in caplog.text
