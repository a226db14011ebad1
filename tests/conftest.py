"""Shared fixtures: small configurations and paths to the shared data sets."""

from __future__ import annotations

from pathlib import Path

import pytest

from spikewatch.config import Config

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def small_config(tmp_path: Path, **sections: dict) -> Config:
    """A configuration sized for unit tests: short windows, a tiny encoder, quick warm-up."""
    base = {
        "source": {"key_field": "key"},
        "windows": {"length": 8, "stride": 2},
        "encoder": {"embed_dim": 8, "patch_size": 2, "num_heads": 2},
        "detector": {"rep_dim": 4, "hidden_dim": 16},
        "learning": {"warmup_windows": 16, "warmup_epochs": 3, "batch_size": 8, "update_every_windows": 8},
        "threshold": {"history": 64, "min_history": 4},
        "alerts": {"path": str(tmp_path / "alerts.jsonl")},
        "dead_letter": {"path": str(tmp_path / "dead_letters.jsonl")},
        "checkpoint": {"path": str(tmp_path / "checkpoints" / "run.ckpt"), "interval_s": 0},
        "metrics": {"enabled": False},
        "runtime": {"progress": False},
    }
    for section, values in sections.items():
        base.setdefault(section, {}).update(values)
    return Config().with_overrides(base)


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.exists():
        pytest.skip(f"shared data sets not found at {SHARED_DATA}")
    return SHARED_DATA
