"""Checkpoint files of the workers of one consumer group, and the newest state of each partition.

Every worker writes one checkpoint file, ``<directory>/<worker_id>.ckpt``, holding the model,
the keys of the partitions it owns and, per partition, the next offset and the number of records
folded into that state (the engine's ordinary checkpoint, see :mod:`spikewatch.engine`). A file
is replaced atomically, so it is always one consistent snapshot of one worker.

When a partition is assigned, the worker looks for it in every file of the directory and takes
the copy written last (``written_at``). A worker that gives a partition up writes its checkpoint
before the group hands the partition on, so that copy is the revoking worker's; after a crash it
is the crashed worker's last checkpoint, and the records after it are processed again.
"""

from __future__ import annotations

import logging
import os
import re
import socket
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
    """``{partition: {"offset": next offset, "records": records folded in}}`` of a checkpoint."""
    position = state.get("source", {}).get("position")
    return position if isinstance(position, dict) else {}


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
            raise ValueError("worker_id must not be empty; leave kafka.worker_id empty for HOSTNAME-PID")
        self.directory = Path(directory)
        self.worker_path = self.directory / f"{_file_name_part(worker_id)}{SUFFIX}"

    def _files(self) -> list[Path]:
        if not self.directory.is_dir():
            return []
        return sorted(p for p in self.directory.iterdir() if p.suffix == SUFFIX and p.is_file())

    def _load_all(self) -> list[tuple[Path, dict]]:
        loaded = []
        for path in self._files():
            try:
                loaded.append((path, load_checkpoint(path)))
            except FileNotFoundError:
                continue  # pruned by another worker since the directory was listed
            except CheckpointError as error:
                logger.warning("skipping %s: %s", path, error)
        return loaded

    def newest(self, partitions: list[str]) -> dict[str, dict | None]:
        """Map each partition to the checkpoint that holds its newest state, or None.

        Checkpoints are compared by ``written_at``, and by offset when two were written in the
        same instant. Files that hold no newest copy of any partition and are older than
        another worker's file are deleted (the files of workers that have stopped).
        """
        loaded = self._load_all()
        best: dict[str, tuple[tuple[float, int], dict]] = {}
        holders: dict[str, Path] = {}
        for path, state in loaded:
            for partition, entry in partition_entries(state).items():
                rank = (float(state.get("written_at", 0.0)), int(entry["offset"]))
                if partition not in best or rank > best[partition][0]:
                    best[partition] = (rank, state)
                    holders[partition] = path
        self._prune(loaded, set(holders.values()))
        return {p: best[p][1] if p in best else None for p in partitions}

    def _prune(self, loaded: list[tuple[Path, dict]], needed: set[Path]) -> None:
        if not loaded:
            return
        newest_written = max(float(state.get("written_at", 0.0)) for _, state in loaded)
        for path, state in loaded:
            if path in needed or path == self.worker_path:
                continue
            # The newest file stays: it holds the model a worker without one starts from.
            if float(state.get("written_at", 0.0)) >= newest_written:
                continue
            try:
                path.unlink()
                logger.info("deleted %s: every partition in it has a newer checkpoint", path)
            except FileNotFoundError:
                pass
