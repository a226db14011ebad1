"""Checkpoint files of the workers of one consumer group, and the newest state of each partition.

Every worker writes one checkpoint file, ``<directory>/<worker_id>.ckpt``: the engine's ordinary
checkpoint (see :mod:`spikewatch.engine`), whose source position maps each partition to its
next offset, the records folded into its keys, and ``checkpointed_at``, the time its owner last
checkpointed it. A file is replaced atomically, so it is one consistent snapshot of one worker.

A worker keeps the partitions it gave up in its file, frozen at the time it released them,
until another worker's file holds a newer copy. So the state of a partition is on disk from the
moment its owner releases it, also while its next owner has restored it only in memory.

When a partition is assigned, the worker takes the copy with the latest ``checkpointed_at``
from all files of the directory. A worker that gives a partition up checkpoints it before the
group hands it on, so that copy is the revoking worker's. After a crash it is the crashed
worker's last checkpoint, and the records after it are processed again.
"""

from __future__ import annotations

import logging
import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path

from spikewatch.checkpoint import load_checkpoint
from spikewatch.errors import CheckpointError

logger = logging.getLogger(__name__)

SUFFIX = ".ckpt"


def default_worker_id() -> str:
    """HOSTNAME-PID: unique among the workers that share one checkpoint directory."""
    return f"{socket.gethostname()}-{os.getpid()}"


def _file_name_part(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", text)


def group_directory(checkpoint_path: str | os.PathLike, group_id: str) -> Path:
    """``<dir>/<stem>-<group_id>/`` beside the configured checkpoint file."""
    path = Path(checkpoint_path)
    return path.parent / f"{path.stem}-{_file_name_part(group_id)}"


def partition_entries(state: dict) -> dict[str, dict]:
    """``{partition: {"offset", "records", "checkpointed_at"}}`` of a worker's checkpoint."""
    position = state.get("source", {}).get("position")
    return position if isinstance(position, dict) else {}


@dataclass(slots=True)
class PartitionCopy:
    """The newest checkpointed state of one partition and the file that contains it."""

    path: Path
    state: dict
    partition: str

    @property
    def entry(self) -> dict:
        """``{"offset", "records", "checkpointed_at"}`` of the partition in that checkpoint."""
        return partition_entries(self.state)[self.partition]


class GroupCheckpoints:
    """The checkpoint files of one consumer group's workers, in one directory.

    Parameters
    ----------
    directory
        Shared by every worker of the group; see :func:`group_directory`.
    worker_id
        Names this worker's file; two live workers must not share it.
    """

    def __init__(self, directory: str | os.PathLike, *, worker_id: str) -> None:
        if not worker_id:
            raise ValueError(
                "worker_id must not be empty; leave kafka.worker_id empty for HOSTNAME-PID"
            )
        self.directory = Path(directory)
        self.worker_path = self.directory / f"{_file_name_part(worker_id)}{SUFFIX}"

    def _load_all(self) -> list[tuple[Path, dict]]:
        if not self.directory.is_dir():
            return []
        loaded = []
        for path in sorted(self.directory.glob(f"*{SUFFIX}")):
            try:
                loaded.append((path, load_checkpoint(path)))
            except CheckpointError as error:
                # A file pruned by another worker since the glob reads as "not found" too.
                if path.exists():
                    logger.warning("skipping %s: %s", path, error)
        return loaded

    def scan(self) -> dict[str, PartitionCopy]:
        """Find the newest copy of every partition in the directory's files.

        Copies are compared by ``checkpointed_at``, then by offset. Files that hold no newest
        copy and are not the newest file are deleted: they belong to workers that have stopped.
        """
        loaded = self._load_all()
        best: dict[str, tuple[tuple[float, int], PartitionCopy]] = {}
        for path, state in loaded:
            written_at = float(state.get("written_at", 0.0))
            for partition, entry in partition_entries(state).items():
                rank = (float(entry.get("checkpointed_at", written_at)), int(entry["offset"]))
                if partition not in best or rank > best[partition][0]:
                    best[partition] = (rank, PartitionCopy(path, state, partition))
        copies = {partition: copy for partition, (_, copy) in best.items()}
        self._prune(loaded, {copy.path for copy in copies.values()})
        return copies

    def newest(self, partitions: list[str]) -> dict[str, dict | None]:
        """Map each partition to the checkpoint that contains its newest state, or None."""
        copies = self.scan()
        return {p: copies[p].state if p in copies else None for p in partitions}

    def _prune(self, loaded: list[tuple[Path, dict]], needed: set[Path]) -> None:
        if not loaded:
            return
        newest_written = max(float(state.get("written_at", 0.0)) for _, state in loaded)
        for path, state in loaded:
            if path in needed or path == self.worker_path:
                continue
            # The newest file stays, because a worker without a model starts from its model.
            if float(state.get("written_at", 0.0)) >= newest_written:
                continue
            try:
                path.unlink()
                logger.info(
                    "deleted %s: every partition in it has a newer checkpoint elsewhere", path
                )
            except FileNotFoundError:
                pass
