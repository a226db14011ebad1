"""The streaming engine: one flat loop over short named steps.

For each item from the source::

    poll -> decode -> window -> (batch full) score -> decide -> learn -> emit -> checkpoint

Ordering guarantees of a checkpoint, in this order:

1. the pending batch of windows is scored, so every record up to the source position has
   changed the state it is going to change;
2. the alert and dead-letter sinks are flushed to disk;
3. the checkpoint (model, every key's state, the source position) is written atomically;
4. only then does the source commit that position.

A crash before step 3 replays records from the previous checkpoint. Replayed windows give the
same alert ids, which the sinks drop, so no alert is lost and none is written twice.

A partitioned source (Kafka) moves partitions, and the keys they carry, between the workers of a
group. When the group revokes partitions, :meth:`Engine.partitions_revoked` runs the same four
steps for every key before the revoked keys are forgotten, so the next owner restores exactly
the state that covers the committed offsets (:meth:`Engine.partitions_assigned`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import resource
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from spikewatch.alerting import Alert, AlertPolicy
from spikewatch.checkpoint import load_checkpoint, save_checkpoint
from spikewatch.config import Config
from spikewatch.errors import CheckpointError, InvalidRecord
from spikewatch.keys import KeyState, KeyTable
from spikewatch.metrics import PipelineMetrics
from spikewatch.model import StreamModel
from spikewatch.records import Record, RecordDecoder, check_order
from spikewatch.sinks import AlertSink, DeadLetter, DeadLetterSink
from spikewatch.sources import Source, SourceItem
from spikewatch.sources.pacing import Pacer
from spikewatch.summary import MAX_SHORT_KEYS_LISTED, RunSummary, WindowLog
from spikewatch.thresholds import build_threshold

logger = logging.getLogger(__name__)

#: Configuration sections that shape the model or the meaning of its state; a checkpoint taken
#: under other values of these cannot be resumed.
MODEL_SECTIONS = ("windows", "encoding", "encoder", "detector", "threshold")


@dataclass(slots=True)
class ScoredWindow:
    """A window after scoring, as handed to observers (evaluation, score files)."""

    key: str
    timestamp: float
    score: float
    threshold: float | None
    label: int | None
    ready: bool
    alert: Alert | None


@dataclass(slots=True)
class _PendingWindow:
    state: KeyState
    window: np.ndarray
    timestamp: float
    label: int | None
    read_at: float


def model_fingerprint(config: Config, channels: tuple[str, ...]) -> str:
    """Hash of everything that shapes the model's scores; part of every alert id."""
    shape = {section: getattr(config, section).model_dump() for section in MODEL_SECTIONS}
    shape["channels"] = list(channels)
    return hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()[:16]


class Engine:
    """Runs one source through the pipeline.

    Parameters
    ----------
    config
        The validated configuration.
    source
        Where records come from.
    alert_sinks, dead_letter_sink
        Where alerts and rejected records go.
    metrics
        Prometheus metrics to update; a private registry when omitted.
    observers
        Callables given every :class:`ScoredWindow`, in order.
    """

    def __init__(
        self,
        config: Config,
        source: Source,
        *,
        alert_sinks: list[AlertSink],
        dead_letter_sink: DeadLetterSink,
        metrics: PipelineMetrics | None = None,
        observers: list[Callable[[ScoredWindow], None]] | None = None,
    ) -> None:
        self.config = config
        self.source = source
        self.alert_sinks = alert_sinks
        self.dead_letter_sink = dead_letter_sink
        self.metrics = metrics or PipelineMetrics()
        self.observers = list(observers or [])
        validation = config.validation
        src = config.source
        self.decoder = RecordDecoder(
            key_field=src.key_field,
            default_key=src.default_key,
            timestamp_field=src.timestamp_field,
            label_field=src.label_field,
            ignore_fields=src.ignore_fields,
            channels=validation.channels,
            max_future_s=validation.max_future_s,
        )
        self.pacer = Pacer(src.speed)
        self.model: StreamModel | None = None
        self.policy: AlertPolicy | None = None
        self.keys: KeyTable | None = None
        self.window_log = WindowLog()
        self.summary = RunSummary()
        self.position: Any = None
        self._pending: list[_PendingWindow] = []
        self._latencies: list[float] = []
        self._stop = threading.Event()
        self._stopped_by = "end of stream"
        self._last_checkpoint = time.monotonic()
        self._dead_by_reason: dict[str, int] = {}
        self._open_alerts = 0
        self._keys_ready = 0
        self._accepted_unexported = 0
        self._skipped_reported = 0
        self._drift_reported = 0
        self.checkpoint_path = source.checkpoint_path(config.checkpoint.path)
        # Key states of partitions given up, written with every checkpoint until another worker
        # has checkpointed them: {partition: [KeyState.to_dict(), ...]}.
        self._released: dict[str, list[dict]] = {}
        source.bind(self, self.metrics)

    # -- set-up -----------------------------------------------------------------------------

    def _start_model(self, channels: tuple[str, ...]) -> None:
        """Build the shared model and the key table once the channel set is known."""
        config = self.config
        self.model = StreamModel(config, len(channels))
        self.fingerprint = model_fingerprint(config, channels)
        self.policy = AlertPolicy(
            open_after=config.alerts.open_after,
            resolve_after=config.alerts.resolve_after,
            fingerprint=self.fingerprint,
            detector=f"{config.encoder.kind}+{config.detector.kind}",
        )
        self.keys = KeyTable(
            max_keys=config.windows.max_keys,
            new_state=self._new_key_state,
            on_evict=self._on_evict,
        )
        logger.info(
            "model ready: %d channels %s, %s encoder (%d membrane values per key), %s detector",
            len(channels),
            list(channels)[:8],
            config.encoder.kind,
            self.model.state_size,
            config.detector.kind,
        )

    def _new_key_state(self, key: str) -> KeyState:
        threshold = self.config.threshold
        return KeyState(
            key,
            window_length=self.config.windows.length,
            channels=len(self.decoder.channels),
            membrane=self.model.initial_state(),
            threshold=build_threshold(threshold),
        )

    def _on_evict(self, state: KeyState) -> None:
        self.metrics.keys_evicted.inc()
        self._forget(state)

    def _forget(self, state: KeyState) -> None:
        """Take a key that leaves the table out of the ready and open-alert counts."""
        if state.threshold.ready:
            self._keys_ready -= 1
        if state.alert.open_alert is not None:
            self._open_alerts -= 1

    # -- the loop ---------------------------------------------------------------------------

    def request_stop(self, reason: str = "stop requested") -> None:
        """Ask the loop to stop after the current record; safe from signal handlers and threads."""
        self._stopped_by = reason
        self._stop.set()

    def run(self, *, max_records: int | None = None, resume: bool = False) -> RunSummary:
        """Process the source until it ends, ``max_records`` are read or a stop is requested."""
        if resume and self.source.partitioned:
            logger.info("--resume ignored: %s restores each partition's state when it is assigned", self.source.name)
        elif resume:
            self.restore(load_checkpoint(self.checkpoint_path))
        started = time.perf_counter()
        records_at_start = self.summary.records
        progress = self._progress_bar()
        logger.info("run started: source %s", self.source.name)
        try:
            items = self.source
            if max_records is not None and max_records <= 0:
                self._stopped_by = f"--max-records {max_records}"
                items = ()
            for item in items:
                if item is None:  # the source is idle: score what is waiting
                    self._flush()
                elif self._process(item):
                    self.summary.records += 1
                    if self._accepted_unexported >= 4096:
                        self._export_accepted()
                    if progress is not None and self.summary.records % 512 == 0:
                        progress.update(512)
                    if max_records is not None and self.summary.records - records_at_start >= max_records:
                        self._stopped_by = f"--max-records {max_records}"
                        break
                self._maybe_checkpoint()
                if self._stop.is_set():
                    break
            else:
                self._stopped_by = self.source.end_reason
            self._flush()
            self.checkpoint()
        finally:
            if progress is not None:
                progress.close()
            for sink in self.alert_sinks:
                sink.close()
            self.dead_letter_sink.close()
            self.source.close()
        return self._finish_summary(time.perf_counter() - started, self.summary.records - records_at_start)

    def _process(self, item: SourceItem) -> bool:
        """Decode, validate and window one item; return False only for an ignored item."""
        self.position = item.position
        read_at = time.perf_counter()
        record = self._decode(item)
        if record is None:
            return True
        if self.model is None:
            self._start_model(self.decoder.channels)
        state = self.keys.get(record.key)
        if item.partition is not None and state.partition != item.partition:
            self._follow_partition(state, item.partition)
        try:
            check_order(record, state.newest_timestamp, self.config.validation.max_lateness_s)
        except InvalidRecord as error:
            self._dead_letter(item, error)
            if state.records == 0:
                self.keys.pop(record.key)
            return True
        self.summary.records_accepted += 1
        # Counted here and exported once per batch: a labelled counter's inc() per record would
        # cost more than the rest of this step.
        self._accepted_unexported += 1
        delay = self.pacer.delay(record.key, record.timestamp) if self.pacer.speed else 0.0
        if delay > 0:
            self._flush()
            time.sleep(delay)
        values = record.values
        row = tuple(values[name] for name in self.decoder.channels)
        windows = self.config.windows
        if state.push(record.timestamp, row, stride=windows.stride, stride_s=windows.stride_s):
            self._enqueue(state, record, read_at)
        return True

    def _decode(self, item: SourceItem) -> Record | None:
        try:
            return self.decoder.decode(item.payload, key_override=item.key)
        except InvalidRecord as error:
            self._dead_letter(item, error)
            return None

    def _dead_letter(self, item: SourceItem, error: InvalidRecord) -> None:
        self.dead_letter_sink.send(
            DeadLetter(error.reason, error.detail, item.payload, self.source.name, item.position)
        )
        self.summary.dead_letters += 1
        self._dead_by_reason[error.reason] = self._dead_by_reason.get(error.reason, 0) + 1
        self.metrics.dead_letters.labels(reason=error.reason).inc()
        self.metrics.records.labels(outcome="dead_lettered").inc()
        if self.summary.dead_letters <= 10 or self.summary.dead_letters % 1000 == 0:
            logger.warning(
                "dead-lettered record at %s position %s: %s (%d so far)",
                self.source.name,
                item.position,
                error,
                self.summary.dead_letters,
            )

    def _enqueue(self, state: KeyState, record: Record, read_at: float) -> None:
        self._pending.append(
            _PendingWindow(state, state.cut_window(), record.timestamp, record.label, read_at)
        )
        limit = min(self.config.runtime.max_batch_windows, self.model.windows_until_due())
        if len(self._pending) >= limit:
            self._flush()

    # -- scoring, deciding, learning --------------------------------------------------------

    def _flush(self) -> None:
        """Score the pending windows, decide alerts, learn, and emit."""
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        model = self.model
        scores, start_states, firing_rate = self._score_chained(pending)
        learnable = []
        p_values = np.full(len(pending), np.nan)
        contamination = self.config.learning.contamination
        for index, window in enumerate(pending):
            state = window.state
            score = float(scores[index])
            alert, threshold, normal = None, None, True
            if model.warm:
                threshold = state.threshold.threshold()
                if threshold is not None:
                    p_values[index] = state.threshold.p_value(score)
                    alert = self._decide(state, window, score, threshold)
                    normal = score <= state.threshold.quantile_of(1.0 - contamination) and (
                        state.alert.open_alert is None
                    )
                was_ready = state.threshold.ready
                in_alert = state.alert.open_alert is not None
                state.threshold.learn(score, timestamp=window.timestamp, in_alert=in_alert)
                if state.threshold.ready and not was_ready:
                    self._keys_ready += 1
                    logger.debug("key %r is ready: its threshold has %d scores", state.key, state.threshold.count)
                self.window_log.add(state.key, score, window.label)
            if normal:
                learnable.append(index)
            self._observe(window, score, threshold, alert)
        if learnable:
            # Only the windows judged normal are copied into the replay buffer.
            kept = np.stack([pending[index].window for index in learnable])
            model.remember(kept, start_states[learnable])
        model.observe(scores, p_values)
        if model.count_windows(len(pending)):
            updates_before = model.updates
            model.learn()
            self.metrics.model_updates.inc(model.updates - updates_before)
            self.metrics.training_loss.set(model.last_loss)
        self._update_metrics(pending, scores, firing_rate)

    def _score_chained(self, pending: list[_PendingWindow]) -> tuple[np.ndarray, torch.Tensor, float]:
        """Score pending windows; return scores and start states in arrival order, and firing rate.

        Keys with the same number of pending windows are scored together, each key's windows
        chained in time, so a key's backlog costs one forward pass rather than one per window.
        Each key's membrane is left at the state after its last window.
        """
        by_key: dict[str, list[int]] = {}
        for index, window in enumerate(pending):
            by_key.setdefault(window.state.key, []).append(index)
        groups: dict[int, list[list[int]]] = {}
        for indices in by_key.values():
            groups.setdefault(len(indices), []).append(indices)

        scores = np.empty(len(pending))
        start_states = torch.empty(len(pending), self.model.state_size)
        rates, weights = [], []
        for count, members in groups.items():
            keys = [pending[indices[0]].state for indices in members]
            windows = np.stack([[pending[i].window for i in indices] for indices in members], axis=1)
            starts = torch.stack([state.membrane for state in keys])
            scored = self.model.score(windows, starts)
            for column, indices in enumerate(members):
                for step, index in enumerate(indices):
                    scores[index] = scored.scores[step, column]
                    start_states[index] = starts[column] if step == 0 else scored.states[step - 1, column]
                keys[column].membrane = scored.states[count - 1, column].clone()
            rates.append(scored.firing_rate)
            weights.append(count * len(members))
        return scores, start_states, float(np.average(rates, weights=weights))

    def _decide(self, state: KeyState, window: _PendingWindow, score: float, threshold: float) -> Alert | None:
        alert = self.policy.observe(
            state.alert,
            key=state.key,
            timestamp=window.timestamp,
            score=score,
            threshold=threshold,
            top_channels=self._top_channels(window.window),
        )
        if alert is None:
            return None
        self._open_alerts += 1 if alert.status == "firing" else -1
        delivered = False
        for sink in self.alert_sinks:
            delivered |= sink.send(alert)
        if alert.status == "firing":
            self.summary.alerts_firing += 1
        else:
            self.summary.alerts_resolved += 1
        if delivered:
            self.metrics.alerts.labels(status=alert.status).inc()
        logger.info(
            "alert %s %s on key %r: score %.4g, threshold %.4g%s",
            alert.alert_id,
            alert.status,
            alert.key,
            score,
            threshold,
            "" if delivered else " (already delivered before; not sent again)",
        )
        return alert

    def _top_channels(self, window: np.ndarray) -> list[str]:
        """Channels with the largest mean |z| over the window's newest stride of records.

        A heuristic attribution: the model's score is not decomposed per channel.
        """
        count = self.config.alerts.top_channels
        if count == 0:
            return []
        recent = np.abs(window[-self.config.windows.stride :]).mean(axis=0)
        order = np.argsort(-recent, kind="stable")[:count]
        return [self.decoder.channels[i] for i in order]

    def _observe(self, window: _PendingWindow, score: float, threshold: float | None, alert: Alert | None) -> None:
        self._latencies.append(time.perf_counter() - window.read_at)
        if not self.observers:
            return
        scored = ScoredWindow(
            key=window.state.key,
            timestamp=window.timestamp,
            score=score,
            threshold=threshold,
            label=window.label,
            ready=threshold is not None,
            alert=alert,
        )
        for observer in self.observers:
            observer(scored)

    def _export_accepted(self) -> None:
        if self._accepted_unexported:
            self.metrics.records.labels(outcome="accepted").inc(self._accepted_unexported)
            self._accepted_unexported = 0
        if self.keys is not None:
            self.metrics.active_keys.set(len(self.keys))

    def _update_metrics(self, pending: list[_PendingWindow], scores: np.ndarray, firing_rate: float) -> None:
        metrics = self.metrics
        self.summary.windows += len(pending)
        metrics.windows_scored.inc(len(pending))
        self._export_accepted()
        for score in scores:
            metrics.window_score.observe(float(score))
        for latency in self._latencies[-len(pending) :]:
            metrics.processing_latency.observe(latency)
        if len(self._latencies) > 100_000:
            del self._latencies[:50_000]
        metrics.firing_rate.set(firing_rate)
        metrics.active_keys.set(len(self.keys))
        metrics.alerts_open.set(self._open_alerts)
        metrics.keys_ready.set(self._keys_ready)
        learning = self.config.learning
        metrics.warmup_progress.set(
            1.0 if self.model.warm else self.model.windows_seen / learning.warmup_windows
        )
        metrics.model_updates_skipped.inc(self.model.skipped_updates - self._skipped_reported)
        self._skipped_reported = self.model.skipped_updates
        metrics.drift_detected.inc(self.model.drift.detections - self._drift_reported)
        self._drift_reported = self.model.drift.detections
        metrics.drift_adaptation_active.set(int(self.model.adapting))
        metrics.score_variance_collapsed.set(int(self.model.health.collapsed))
        energy = self.model.take_energy()
        if energy is not None:
            metrics.synaptic_operations.set(energy.synaptic_operations)
            metrics.energy_per_window.set(energy.joules)

    def open_alerts(self) -> list[Alert]:
        """Return the firing alert of every live key that has one, as the sinks received it."""
        if self.keys is None:
            return []
        return [
            self.policy._alert(state.key, state.alert.open_alert, "firing", end=None)
            for state in self.keys
            if state.alert.open_alert is not None
        ]

    # -- checkpoints ------------------------------------------------------------------------

    def _maybe_checkpoint(self) -> None:
        interval = self.config.checkpoint.interval_s
        if interval > 0 and time.monotonic() - self._last_checkpoint >= interval:
            self.checkpoint()

    def checkpoint(self) -> None:
        """Write a checkpoint in the four ordered steps of the module docstring."""
        # Step 1: every record up to the source position has changed its state.
        self._flush()
        self._export_accepted()
        if self.model is None:
            logger.info("no checkpoint written: no valid record has arrived yet")
            self._last_checkpoint = time.monotonic()
            return
        # Step 2: sinks are durable before the state that produced their lines is.
        for sink in self.alert_sinks:
            sink.flush()
        self.dead_letter_sink.flush()
        # Step 3: atomic write of model, keys and position.
        state = self.state_dict()
        path = save_checkpoint(self.checkpoint_path, state)
        self._last_checkpoint = time.monotonic()
        self.metrics.checkpoints.inc()
        self.metrics.checkpoint_timestamp.set(time.time())
        self.summary.checkpoint = str(path)
        logger.info(
            "checkpoint written to %s: %d keys, source position %s", path, len(self.keys), self.position
        )
        # Step 4: the source may now forget what the checkpoint covers.
        self.source.commit(state["source"]["position"])

    def state_dict(self) -> dict:
        # NOTE: every key becomes a dict of small tensors and arrays; at 100,000 keys the final
        # checkpoint took 26-36 s and about 6 GB at peak on a 2-core machine. Packing keys into
        # stacked arrays would remove that cost; until then keep checkpoint.interval_s long there.
        summary = self.summary
        return {
            "fingerprint": self.fingerprint,
            "model_config": {s: getattr(self.config, s).model_dump() for s in MODEL_SECTIONS},
            "channels": list(self.decoder.channels),
            "model": self.model.state_dict(),
            "keys": [state.to_dict() for state in self.keys] + [k for keys in self._released.values() for k in keys],
            "source": {"name": self.source.name, "position": self.source.checkpoint_position(self.position)},
            "written_at": time.time(),
            "totals": {
                "records": summary.records,
                "records_accepted": summary.records_accepted,
                "windows": summary.windows,
                "alerts_firing": summary.alerts_firing,
                "alerts_resolved": summary.alerts_resolved,
                "dead_letters": summary.dead_letters,
                "dead_letters_by_reason": dict(self._dead_by_reason),
            },
            "window_log": self.window_log.state_dict(),
        }

    def _check_restorable(self, state: dict, origin: str, remedy: str) -> None:
        """Raise CheckpointError unless ``state`` was written under this model configuration."""
        current = {s: getattr(self.config, s).model_dump() for s in MODEL_SECTIONS}
        saved = state["model_config"]
        differences = [
            f"{section}.{key} = {saved[section].get(key)!r} in the checkpoint, {value!r} now"
            for section in MODEL_SECTIONS
            for key, value in current[section].items()
            if saved.get(section, {}).get(key) != value
        ]
        if differences:
            raise CheckpointError(
                f"checkpoint {origin} was written with another model "
                "configuration: " + "; ".join(differences)
                + f". Restore those values, or {remedy}."
            )
        channels = tuple(state["channels"])
        if self.decoder.channels and self.decoder.channels != channels:
            raise CheckpointError(
                f"checkpoint channels {list(channels)} differ from validation.channels "
                f"{list(self.decoder.channels)}"
            )

    def _restore_model(self, state: dict, origin: str) -> None:
        channels = tuple(state["channels"])
        self.decoder.channels = channels
        self._start_model(channels)
        try:
            self.model.load_state_dict(state["model"])
        except (KeyError, ValueError, RuntimeError) as error:
            raise CheckpointError(f"checkpoint {origin} does not match this model: {error}") from None

    def _restore_keys(self, saved_keys: list[dict], origin: str) -> None:
        try:
            for saved_key in saved_keys:
                key_state = self._new_key_state(saved_key["key"])
                key_state.load_dict(saved_key)
                self.keys.put(key_state)
        except (KeyError, ValueError, RuntimeError) as error:
            raise CheckpointError(f"checkpoint {origin} does not match this model: {error}") from None

    def restore(self, state: dict) -> None:
        """Continue from a checkpoint written by :meth:`checkpoint` under a compatible config."""
        if state["source"]["name"] != self.source.name:
            # A position counts records of one source; applied to another it would skip records
            # that were never processed.
            raise CheckpointError(
                f"checkpoint {self.checkpoint_path} was taken on source {state['source']['name']!r}, "
                f"not {self.source.name!r}; resume with the same source, or run without --resume "
                "to start from scratch"
            )
        origin = self.checkpoint_path
        self._check_restorable(state, origin, "run without --resume to start from scratch")
        self._restore_model(state, origin)
        self._restore_keys(state["keys"], origin)
        self._open_alerts = sum(1 for s in self.keys if s.alert.open_alert is not None)
        self._keys_ready = sum(1 for s in self.keys if s.threshold.ready)
        self._skipped_reported = self.model.skipped_updates
        self._drift_reported = self.model.drift.detections
        self.window_log.load_state_dict(state["window_log"])
        totals = state["totals"]
        for name in ("records", "records_accepted", "windows", "alerts_firing", "alerts_resolved", "dead_letters"):
            setattr(self.summary, name, int(totals[name]))
        self._dead_by_reason = dict(totals["dead_letters_by_reason"])
        self.position = state["source"]["position"]
        if self.position is not None:
            self.source.seek(self.position)
        logger.info(
            "resumed from %s: %d keys, %d records already processed, source position %s",
            self.checkpoint_path,
            len(self.keys),
            self.summary.records,
            self.position,
        )

    # -- partitions -------------------------------------------------------------------------

    def partitions_revoked(self, partitions: list[str]) -> None:
        """Checkpoint every key, then release the keys of ``partitions``.

        The checkpoint runs steps 1-4 of the module docstring, so the revoked partitions'
        offsets are committed only after the state that covers them is on disk. The next owner
        restores that state and continues from those offsets. Released keys leave the key table
        but stay in this worker's checkpoints until :meth:`forget_partitions`.
        """
        self.checkpoint()
        if self.keys is None:
            return
        revoked = set(partitions)
        dropped = 0
        for state in self.keys:
            if state.partition in revoked:
                self._released.setdefault(state.partition, []).append(state.to_dict())
                self._forget(self.keys.pop(state.key))
                dropped += 1
        self.metrics.active_keys.set(len(self.keys))
        logger.info("partitions %s revoked: checkpointed and released %d keys", sorted(revoked), dropped)

    def forget_partitions(self, partitions: list[str]) -> None:
        """Stop writing the released keys of ``partitions``: another worker checkpointed them."""
        for partition in partitions:
            self._released.pop(partition, None)

    def partitions_assigned(self, saved: dict[str, dict | None]) -> None:
        """Restore the keys of newly assigned partitions from their newest checkpoints.

        ``saved`` maps each partition to the newest checkpoint that contains it, or None when no
        checkpoint does. Only the keys of that partition are taken from it. A worker that has no
        model yet also takes the model of the newest of these checkpoints.
        """
        found = {partition: state for partition, state in saved.items() if state is not None}
        if not found:
            return
        origin = f"of partition(s) {sorted(found)}"
        for state in found.values():
            self._check_restorable(state, origin, "move the group's checkpoint directory away")
        if self.model is None:
            self._restore_model(max(found.values(), key=lambda state: state["written_at"]), origin)
        restored = 0
        for partition, state in found.items():
            keys = [key for key in state["keys"] if key.get("partition") == partition]
            self._restore_keys(keys, origin)
            self._released.pop(partition, None)
            restored += len(keys)
        self._open_alerts = sum(1 for s in self.keys if s.alert.open_alert is not None)
        self._keys_ready = sum(1 for s in self.keys if s.threshold.ready)
        self.metrics.active_keys.set(len(self.keys))
        logger.info("partitions %s assigned: restored %d keys from their checkpoints", sorted(found), restored)

    def _follow_partition(self, state: KeyState, partition: str) -> None:
        """Move a key's state to the partition its records now arrive on."""
        if state.partition is not None:
            logger.warning(
                "key %r moved from partition %s to %s; its state now follows %s. Produce records "
                "with the stream key as message key so that each key stays in one partition",
                state.key,
                state.partition,
                partition,
                partition,
            )
        state.partition = partition

    # -- the end ----------------------------------------------------------------------------

    def _progress_bar(self):
        if not (self.config.runtime.progress and sys.stderr.isatty()):
            return None
        from tqdm import tqdm

        return tqdm(total=self.source.total, unit="rec", unit_scale=True, desc="spikewatch", file=sys.stderr)

    def _finish_summary(self, seconds: float, records: int) -> RunSummary:
        self._export_accepted()
        summary = self.summary
        summary.stopped_by = self._stopped_by
        summary.seconds = seconds
        summary.records_per_second = records / seconds if seconds > 0 else 0.0
        summary.dead_letters_by_reason = dict(self._dead_by_reason)
        summary.peak_memory_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        if self._latencies:
            latencies = np.asarray(self._latencies) * 1000
            summary.latency_p50_ms = float(np.percentile(latencies, 50))
            summary.latency_p99_ms = float(np.percentile(latencies, 99))
        if self.keys is not None:
            states = list(self.keys)
            summary.keys = len(states)
            summary.keys_evicted = self.keys.evictions
            short = [s for s in states if s.windows == 0]
            summary.keys_without_window = {s.key: s.records for s in short[:MAX_SHORT_KEYS_LISTED]}
            summary.keys_too_short = len(short)
            if states:
                summary.state_bytes_per_key = sum(s.memory_bytes for s in states) / len(states)
        if self.model is not None:
            summary.model_updates = self.model.updates
            summary.model_updates_skipped = self.model.skipped_updates
            summary.warm = self.model.warm
        summary.detection = self.window_log.detection()
        logger.info(
            "run stopped (%s): %d records, %d windows, %d alerts opened",
            summary.stopped_by,
            summary.records,
            summary.windows,
            summary.alerts_firing,
        )
        return summary


def install_signal_handlers(engine: Engine) -> None:
    """Make SIGINT and SIGTERM stop the run cleanly, with a checkpoint; a second SIGINT aborts."""

    def handle(signum: int, frame: Any) -> None:
        name = signal.Signals(signum).name
        if engine._stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        logger.info("%s received: finishing the current batch and writing a checkpoint", name)
        engine.request_stop(name)

    signal.signal(signal.SIGINT, handle)
    signal.signal(signal.SIGTERM, handle)
