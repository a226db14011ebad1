"""Baselines from other libraries, run record by record on the rows the pipeline accepts.

Each baseline keeps one model per stream key and, for every accepted record in order, scores
it and then learns from it, as river's and PySAD's online detectors are meant to be used. The
records are the ones the engine accepts, decoded by the same decoder. Decisions use the
pipeline's own stage: a per-key running quantile threshold and the alert policy, with the
``[threshold]`` and ``[alerts]`` settings of the evaluation's configuration, applied per record
where the pipeline applies them per window.

* ``halfspacetrees``: river's ``HalfSpaceTrees`` after river's ``MinMaxScaler``, the
  combination river's documentation uses, because the trees split the unit cube.
* ``pysad-loda``, ``pysad-xstream``: PySAD's LODA and xStream on channels standardised by river's
  running ``StandardScaler``, because their random projections mix channels of any scale.
"""

from __future__ import annotations

import importlib.util
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from spikewatch.alerting import AlertPolicy, AlertState
from spikewatch.config import Config
from spikewatch.evaluation.benchmarks import EvaluationError, configured_warmup_rows
from spikewatch.evaluation.detectors import EvaluatedDetector
from spikewatch.evaluation.scores import OnlineRank, RowOutputs
from spikewatch.thresholds import RunningQuantile

#: Seed of every baseline's random state, so that a rerun gives the same scores.
BASELINE_SEED = 42


class OnlineModel(Protocol):
    def score_then_learn(self, x: dict[str, float]) -> float:
        """Score one record with the model as it is, then learn from it."""


class RiverModel:
    """A river anomaly detector (or pipeline) behind :class:`OnlineModel`."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def score_then_learn(self, x: dict[str, float]) -> float:
        score = self.model.score_one(x)
        self.model.learn_one(x)
        return score


class PysadModel:
    """A PySAD model on channels standardised by river's running ``StandardScaler``.

    The record is standardised with the statistics of the records before it, scored, and then
    both the scaler and the model learn from it.
    """

    def __init__(self, model: Any) -> None:
        from river import preprocessing

        self.model = model
        self.scaler = preprocessing.StandardScaler()

    def score_then_learn(self, x: dict[str, float]) -> float:
        z = np.fromiter(self.scaler.transform_one(x).values(), dtype=np.float64, count=len(x))
        score = self.model.score_partial(z)
        self.model.fit_partial(z)
        self.scaler.learn_one(x)
        return score


@dataclass
class _KeyModel:
    """One key's model and decision state."""

    model: OnlineModel
    threshold: RunningQuantile
    alert: AlertState
    rank: OnlineRank
    records: int = 0


@dataclass
class OnlineBaseline(EvaluatedDetector):
    """A record-by-record detector from another library; ``make_model`` builds one per key."""

    name: str
    description: str
    make_model: Callable[[], OnlineModel]

    def _new_key(self, config: Config) -> _KeyModel:
        threshold = config.threshold
        return _KeyModel(
            model=self.make_model(),
            threshold=RunningQuantile(
                quantile=threshold.quantile,
                history=threshold.history,
                min_history=threshold.min_history,
                margin=threshold.margin,
            ),
            alert=AlertState(),
            rank=OnlineRank(),
        )

    def run(self, base_config, file_overrides, rows, *, warmup_rows, output_dir, file_slug):
        config = base_config
        if warmup_rows is None:
            warmup_rows = configured_warmup_rows(config)
        policy = AlertPolicy(
            open_after=config.alerts.open_after,
            resolve_after=config.alerts.resolve_after,
            fingerprint=self.name,
            detector=self.name,
        )
        keys: dict[str, _KeyModel] = {}
        outputs = RowOutputs(len(rows))
        started = time.perf_counter()

        for row in np.flatnonzero(rows.accepted):
            key = rows.keys[row]
            state = keys.get(key)
            if state is None:
                state = keys[key] = self._new_key(config)

            # Score first, then learn: the record is new to the model when it is scored.
            x = dict(zip(rows.channels, rows.values[row].tolist()))
            score = _finite(state.model.score_then_learn(x))
            state.records += 1
            if state.records <= warmup_rows:
                outputs.set(
                    row,
                    score=score,
                    threshold=None,
                    anomaly_score=0.0,
                    alert_open=False,
                    alert_onset=False,
                )
                continue

            # Decide as the engine does: against the threshold before this score joins it.
            threshold = state.threshold.threshold()
            alert = None
            if threshold is not None:
                alert = policy.observe(
                    state.alert,
                    key=key,
                    timestamp=float(rows.timestamps[row]),
                    score=score,
                    threshold=threshold,
                    top_channels=[],
                )
            state.threshold.learn(score)
            outputs.set(
                row,
                score=score,
                threshold=threshold,
                anomaly_score=state.rank(score),
                alert_open=state.alert.open_alert is not None,
                alert_onset=alert is not None and alert.status == "firing",
            )
        return outputs.finish(rows.keys, time.perf_counter() - started)


def _finite(score: float) -> float:
    """Replace NaN by 0 and infinities by the largest float32, as the pipeline's model does."""
    score = float(score)
    if math.isnan(score):
        return 0.0
    if math.isinf(score):
        return math.copysign(float(np.finfo(np.float32).max), score)
    return score


def _halfspacetrees(name: str, settings: dict[str, Any], spec: str) -> OnlineBaseline:
    from river import anomaly, compose, preprocessing

    options = {"seed": BASELINE_SEED, **settings}
    try:
        anomaly.HalfSpaceTrees(**options)
    except TypeError as error:
        raise EvaluationError(f"{spec}: invalid HalfSpaceTrees setting: {error}") from None
    arguments = ", ".join(f"{key}={value}" for key, value in sorted(options.items()))
    return OnlineBaseline(
        name,
        f"river {_version('river')} MinMaxScaler | HalfSpaceTrees({arguments})",
        lambda: RiverModel(
            compose.Pipeline(preprocessing.MinMaxScaler(), anomaly.HalfSpaceTrees(**options))
        ),
    )


def _pysad_entry(class_name: str):
    def build(name: str, settings: dict[str, Any], spec: str) -> OnlineBaseline:
        if importlib.util.find_spec("pysad") is None:
            raise EvaluationError(
                f"{spec} needs PySAD, which is not installed; install it with "
                "pip install 'spikewatch[eval]'"
            )
        import pysad.models

        model_class = getattr(pysad.models, class_name)
        options = {"random_state": BASELINE_SEED, **settings}
        try:
            model_class(**options)
        except TypeError as error:
            raise EvaluationError(f"{spec}: invalid {class_name} setting: {error}") from None
        arguments = ", ".join(f"{key}={value}" for key, value in sorted(options.items()))
        return OnlineBaseline(
            name,
            f"PySAD {_version('pysad')} {class_name}({arguments}) after river StandardScaler",
            lambda: PysadModel(model_class(**options)),
        )

    return build


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "(version unknown)"


#: Baseline names and their builders, ``build(name, settings, spec)``.
REGISTRY = {
    "halfspacetrees": _halfspacetrees,
    "pysad-loda": _pysad_entry("LODA"),
    "pysad-xstream": _pysad_entry("xStream"),
}


def pysad_available() -> bool:
    """Return whether PySAD can be imported, for the default detector list."""
    return importlib.util.find_spec("pysad") is not None
