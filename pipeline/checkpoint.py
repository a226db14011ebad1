"""Checkpoint files: written atomically, read without unpickling arbitrary objects.

A checkpoint is a ``torch.save`` file of plain containers, numbers, strings, tensors and NumPy
arrays. It is loaded with ``torch.load(weights_only=True)``, which refuses any other pickled
object, so a checkpoint from an untrusted place cannot run code. The NumPy types the state uses
are allow-listed explicitly.

Writing goes to a temporary file in the same directory, is flushed to disk, then renamed over the
old checkpoint: a crash leaves either the old or the new file, never half of one.
"""

from __future__ import annotations

import logging
import os
import pickle
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from spikewatch.errors import CheckpointError

logger = logging.getLogger(__name__)

FORMAT = "spikewatch-checkpoint"
VERSION = 1

try:
    from numpy._core.multiarray import _reconstruct
except ImportError:  # pragma: no cover - NumPy 1
    from numpy.core.multiarray import _reconstruct

_SAFE_GLOBALS = [
    _reconstruct,
    np.ndarray,
    np.dtype,
    np.dtypes.Float64DType,
    np.dtypes.Float32DType,
    np.dtypes.Int64DType,
]


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Write ``state`` atomically to ``path``, creating its directory."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT, "version": VERSION, **state}
    descriptor, temporary = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            torch.save(payload, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    return path


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint, raising :class:`CheckpointError` when it is missing, corrupt or foreign."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(
            f"checkpoint {path} not found; run without --resume to start from scratch"
        )
    if path.is_dir():
        raise CheckpointError(f"checkpoint path {path} is a directory; point checkpoint.path at a file")
    # torch.load does not verify the archive's CRCs, so a flipped byte would load silently.
    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
    except (zipfile.BadZipFile, OSError):
        damaged = None  # not a zip archive at all: torch.load below reports it
    if damaged is not None:
        raise CheckpointError(
            f"checkpoint {path} is corrupt (member {damaged} fails its CRC check); move it away "
            "and run without --resume to start from scratch"
        )
    try:
        with torch.serialization.safe_globals(_SAFE_GLOBALS):
            state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, zipfile.BadZipFile, RuntimeError, EOFError, OSError) as error:
        raise CheckpointError(
            f"checkpoint {path} is corrupt or not a spikewatch checkpoint "
            f"(torch.load with weights_only=True failed: {type(error).__name__}); "
            "move it away and run without --resume to start from scratch"
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(
            f"{path} is not a spikewatch checkpoint (no {FORMAT!r} marker); "
            "point checkpoint.path at a file written by spikewatch"
        )
    if state.get("version") != VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format version {state.get('version')!r}; this spikewatch "
            f"reads version {VERSION}"
        )
    return state
