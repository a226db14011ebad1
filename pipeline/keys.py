"""Per-key state: everything the pipeline remembers about one stream key, in one object.

A :class:`KeyState` contains the key's open window, its scaler, its LIF membrane potentials, its
threshold and its alert state. It checkpoints as a unit (:meth:`KeyState.to_dict`), so a key's
state moves between runs, or between workers with its partition, in one piece. The model's
weights are shared by all keys and are not part of it.
"""

from __future__ import annotations

import logging
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator

import numpy as np
import torch

from spikewatch.alerting import AlertState
from spikewatch.scaling import OnlineScaler
from spikewatch.thresholds import ScoreThreshold

logger = logging.getLogger(__name__)


class KeyState:
    """State of one stream key.

    Attributes
    ----------
    rows
        The last ``window_length`` raw rows, as tuples in channel order.
    rows_since_window
        Rows accepted since the key's last window (or since its first record).
    unscaled_rows
        Rows not yet merged into the scaler; merged when the next window is cut.
    membrane
        Flat LIF membrane state ``[state_size]`` carried from one window of this key to the next.
    partition
        The source partition whose records carry this key (``"topic:3"``), or None for sources
        without partitions; the key's state moves between workers with that partition.
    """

    __slots__ = (
        "key",
        "newest_timestamp",
        "last_window_at",
        "rows",
        "rows_since_window",
        "unscaled_rows",
        "records",
        "windows",
        "scaler",
        "membrane",
        "threshold",
        "alert",
        "partition",
    )

    def __init__(
        self,
        key: str,
        *,
        window_length: int,
        channels: int,
        membrane: torch.Tensor,
        threshold: ScoreThreshold,
    ) -> None:
        self.key = key
        self.newest_timestamp: float | None = None
        self.last_window_at: float | None = None
        self.rows: deque[tuple[float, ...]] = deque(maxlen=window_length)
        self.rows_since_window = 0
        self.unscaled_rows = 0
        self.records = 0
        self.windows = 0
        self.scaler = OnlineScaler(channels)
        self.membrane = membrane
        self.threshold = threshold
        self.alert = AlertState()
        self.partition: str | None = None

    def push(
        self, timestamp: float, row: tuple[float, ...], *, stride: int, stride_s: float = 0.0
    ) -> bool:
        """Append one accepted row; return True when it completes a window.

        A window is complete once the key has a full window of rows and, since its last window,
        ``stride`` more rows or, when ``stride_s`` is positive, ``stride_s`` seconds of event
        time.
        """
        if self.newest_timestamp is None or timestamp > self.newest_timestamp:
            self.newest_timestamp = timestamp
        self.rows.append(row)
        self.records += 1
        self.rows_since_window += 1
        self.unscaled_rows += 1
        if len(self.rows) < self.rows.maxlen:
            return False
        if stride_s > 0:
            if self.last_window_at is not None and timestamp - self.last_window_at < stride_s:
                return False
        elif self.rows_since_window < stride:
            return False
        self.rows_since_window = 0
        self.last_window_at = timestamp
        return True

    def cut_window(self) -> np.ndarray:
        """Merge new rows into the scaler and return the scaled window ``[length, channels]``."""
        raw = np.asarray(self.rows, dtype=np.float64)
        fresh = min(self.unscaled_rows, raw.shape[0])
        self.scaler.update(raw[raw.shape[0] - fresh :])
        self.unscaled_rows = 0
        self.windows += 1
        return self.scaler.transform(raw).astype(np.float32)

    @property
    def memory_bytes(self) -> int:
        """Approximate bytes in this key's arrays and tensors.

        NOTE: Python object overhead is not counted; measured resident memory per key is about
        twice this figure.
        """
        row_bytes = len(self.rows) * (56 + 24 * (len(self.rows[0]) if self.rows else 0))
        return (
            row_bytes
            + self.scaler.mean.nbytes * 2
            + self.membrane.numel() * self.membrane.element_size()
            + self.threshold.memory_bytes
        )

    def to_dict(self) -> dict:
        """Checkpointable form: tensors, NumPy arrays, numbers, strings, lists and dicts only."""
        return {
            "key": self.key,
            "newest_timestamp": self.newest_timestamp,
            "last_window_at": self.last_window_at,
            "rows": np.asarray(self.rows, dtype=np.float64),
            "rows_since_window": self.rows_since_window,
            "unscaled_rows": self.unscaled_rows,
            "records": self.records,
            "windows": self.windows,
            "scaler": {
                "count": self.scaler.count,
                "mean": self.scaler.mean.copy(),
                "m2": self.scaler.m2.copy(),
            },
            "membrane": self.membrane.clone(),
            "threshold": self.threshold.to_dict(),
            "alert": self.alert.to_dict(),
            "partition": self.partition,
        }

    def load_dict(self, state: dict) -> None:
        """Restore from :meth:`to_dict` output."""
        self.newest_timestamp = state["newest_timestamp"]
        self.last_window_at = state["last_window_at"]
        self.rows.clear()
        self.rows.extend(tuple(float(v) for v in row) for row in np.asarray(state["rows"]))
        self.rows_since_window = int(state["rows_since_window"])
        self.unscaled_rows = int(state["unscaled_rows"])
        self.records = int(state["records"])
        self.windows = int(state["windows"])
        self.scaler.count = int(state["scaler"]["count"])
        self.scaler.mean = np.asarray(state["scaler"]["mean"], dtype=np.float64).copy()
        self.scaler.m2 = np.asarray(state["scaler"]["m2"], dtype=np.float64).copy()
        membrane = torch.as_tensor(state["membrane"], dtype=torch.float32)
        if membrane.shape != self.membrane.shape:
            raise ValueError(
                f"key {self.key!r}: membrane state has {membrane.numel()} values, the model "
                f"expects {self.membrane.numel()}"
            )
        self.membrane = membrane.clone()
        self.threshold.load_dict(state["threshold"])
        self.alert = AlertState.from_dict(state["alert"])
        self.partition = state.get("partition")


class KeyTable:
    """The live keys, at most ``max_keys``; the least recently seen key is evicted first.

    ``new_state`` builds a fresh :class:`KeyState` for a key seen for the first time (or again
    after its eviction). ``on_evict`` is called with each evicted state.
    """

    def __init__(
        self,
        *,
        max_keys: int,
        new_state: Callable[[str], KeyState],
        on_evict: Callable[[KeyState], None] | None = None,
    ) -> None:
        if max_keys < 1:
            raise ValueError(f"max_keys = {max_keys} must be at least 1")
        self.max_keys = max_keys
        self._new_state = new_state
        self._on_evict = on_evict
        self._states: OrderedDict[str, KeyState] = OrderedDict()
        self.evictions = 0

    def __len__(self) -> int:
        return len(self._states)

    def __iter__(self) -> Iterator[KeyState]:
        return iter(list(self._states.values()))

    def __contains__(self, key: str) -> bool:
        return key in self._states

    def get(self, key: str) -> KeyState:
        """Return the state of ``key``, creating it (and evicting the oldest) as needed."""
        state = self._states.get(key)
        if state is not None:
            self._states.move_to_end(key)
            return state
        state = self._new_state(key)
        self._states[key] = state
        if len(self._states) > self.max_keys:
            _, evicted = self._states.popitem(last=False)
            self.evictions += 1
            if self.evictions == 1 or self.evictions % 1000 == 0:
                logger.warning(
                    "evicted key %r, the least recently seen, because %d keys are live "
                    "(windows.max_keys); %d evictions so far, its state is dropped",
                    evicted.key,
                    self.max_keys + 1,
                    self.evictions,
                )
            if self._on_evict is not None:
                self._on_evict(evicted)
        return state

    def peek(self, key: str) -> KeyState | None:
        return self._states.get(key)

    def put(self, state: KeyState) -> None:
        """Insert a restored state, replacing any live state of the same key."""
        self._states[state.key] = state
        self._states.move_to_end(state.key)

    def pop(self, key: str) -> KeyState | None:
        return self._states.pop(key, None)
