"""The interface every detector shares.

A detector maps feature vectors ``[batch, n_features]`` to anomaly scores ``[batch]``, where a
higher score means more anomalous. It is a :class:`torch.nn.Module`, so the streaming pipeline can
train an upstream encoder and the detector together through one loss; it also works alone on
NumPy arrays through two familiar call shapes:

* batch: ``fit(X)`` then ``score(X)`` (``decision_function`` is PyOD's name for the same call);
* online, river style: ``learn_one(x)`` and ``score_one(x)`` on one window.

Scoring never changes the detector: it runs in evaluation mode under ``torch.no_grad`` and leaves
the training mode as it found it. Deciding what is an alert is not a detector's job; thresholds
and the alert policy do that.

A subclass defines :meth:`Detector.initialize`, :meth:`Detector.objective`,
:meth:`Detector.anomaly_score` and :attr:`Detector.is_initialized`, and lists the parameters the
shared check suite (``tests/detectors``) runs it with in :meth:`Detector._unit_test_params`.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import nn

#: Largest float32; a score that overflows is clamped to it, so it compares as most anomalous.
MAX_SCORE = float(torch.finfo(torch.float32).max)


def finite_scores(scores: torch.Tensor) -> torch.Tensor:
    """Replace non-finite scores by the float32 extremes: NaN and +inf become ``MAX_SCORE``.

    A finite input far outside the training range (beyond about 1e18 in a float32 network) can
    overflow a squared distance. Ranking it as the most anomalous window is the safe reading,
    and a threshold or a histogram still gets a number.
    """
    return torch.nan_to_num(scores, nan=MAX_SCORE, posinf=MAX_SCORE, neginf=-MAX_SCORE)


class Detector(nn.Module, ABC):
    """Base class of the detectors; subclasses define the objective and the score.

    Parameters
    ----------
    n_features
        Width F of the feature vectors the detector takes.
    seed
        Seed of the initial weights and of the batch order in :meth:`fit`.

    Attributes
    ----------
    skipped_steps
        Optimizer steps :meth:`learn_batch` skipped because the loss or a gradient was not finite.
    """

    def __init__(self, n_features: int, *, seed: int = 0) -> None:
        super().__init__()
        if n_features < 1:
            raise ValueError(f"n_features = {n_features} must be at least 1")
        self.n_features = n_features
        self.seed = seed
        self.skipped_steps = 0
        self._optimizer: torch.optim.Optimizer | None = None
        self._learning_rate = 1e-3
        self._weight_decay = 1e-6
        self._max_grad_norm = math.inf

    # -- what a subclass defines ------------------------------------------------------------

    @abstractmethod
    def initialize(self, features: torch.Tensor) -> None:
        """Set data-dependent constants (such as a hypersphere center) from a first batch."""

    @abstractmethod
    def objective(self, features: torch.Tensor) -> torch.Tensor:
        """Return the per-sample training loss ``[batch]``; differentiable."""

    @abstractmethod
    def anomaly_score(self, features: torch.Tensor) -> torch.Tensor:
        """Return the per-sample anomaly score ``[batch]``; higher means more anomalous."""

    @property
    @abstractmethod
    def is_initialized(self) -> bool:
        """Whether :meth:`initialize` has run (or a checkpoint set its constants)."""

    def after_step(self, features: torch.Tensor) -> None:  # noqa: B027 - optional hook
        """Update constants that are not trained by gradient descent, after an optimizer step."""

    @classmethod
    def _unit_test_params(cls) -> Iterator[dict[str, Any]]:
        """Yield keyword arguments (besides ``n_features``) for the shared check suite.

        Each set should train in well under a second on 1000 rows of 10 features, so that the
        suite stays fast. A detector with several modes yields one set per mode.
        """
        yield {}

    @classmethod
    def _unit_test_expected_failures(cls, params: dict[str, Any]) -> dict[str, str]:
        """Map checks of the suite that ``params`` is known to fail to the measured reason.

        The suite runs these checks as strict expected failures, so a fix shows up as a
        failure to remove the entry.
        """
        return {}

    # -- training -------------------------------------------------------------------------

    def configure_optimizer(
        self,
        *,
        learning_rate: float = 1e-3,
        weight_decay: float = 1e-6,
        max_grad_norm: float = math.inf,
    ) -> None:
        """Set the Adam settings and the gradient norm clip used by :meth:`fit` and the online calls."""
        if not max_grad_norm > 0:
            raise ValueError(f"max_grad_norm = {max_grad_norm} must be positive")
        self._learning_rate = learning_rate
        self._weight_decay = weight_decay
        self._max_grad_norm = max_grad_norm
        self._optimizer = None

    def _get_optimizer(self) -> torch.optim.Optimizer:
        if self._optimizer is None:
            self._optimizer = torch.optim.Adam(
                self.parameters(), lr=self._learning_rate, weight_decay=self._weight_decay
            )
        return self._optimizer

    def learn_batch(self, features: torch.Tensor, *, contamination: float = 0.0) -> float:
        """Take one optimizer step on a batch and return its mean loss.

        With ``contamination`` c > 0, the samples whose anomaly score is above the batch's
        (1 − c) quantile are left out of the step, so a few anomalies in the training data are
        not learned as normal. This is the streaming pipeline's rule (learn only from windows
        judged normal) applied within a batch.

        A step whose loss or gradient is not finite is skipped, counted in
        :attr:`skipped_steps` and returns ``nan``, so one bad batch cannot poison the weights.
        """
        if not 0.0 <= contamination < 1.0:
            raise ValueError(f"contamination = {contamination} must be in [0, 1)")
        if not self.is_initialized:
            with torch.no_grad():
                self.initialize(features)
        was_training = self.training
        self.train()
        try:
            optimizer = self._get_optimizer()
            optimizer.zero_grad(set_to_none=True)
            if contamination > 0.0 and features.shape[0] > 1:
                features = self._judged_normal(features, contamination)
            loss = self.objective(features).mean()
            loss.backward()
            norm = torch.nn.utils.clip_grad_norm_(list(self.parameters()), self._max_grad_norm)
            if not (torch.isfinite(loss) and torch.isfinite(norm)):
                optimizer.zero_grad(set_to_none=True)
                self.skipped_steps += 1
                return float("nan")
            optimizer.step()
            with torch.no_grad():
                self.after_step(features)
            return float(loss.detach())
        finally:
            self.train(was_training)

    def _judged_normal(self, features: torch.Tensor, contamination: float) -> torch.Tensor:
        """Rows of ``features`` whose score is at most the batch's (1 − contamination) quantile."""
        self.eval()
        with torch.no_grad():
            scores = finite_scores(self.anomaly_score(features))
        self.train()
        return features[scores <= torch.quantile(scores, 1.0 - contamination)]

    def fit(
        self, X: Any, *, epochs: int = 20, batch_size: int = 64, contamination: float = 0.0
    ) -> Detector:
        """Initialize on ``X`` and train for ``epochs`` passes in shuffled mini-batches.

        ``contamination`` is the expected fraction of anomalies in ``X``; each step leaves out
        that fraction of its batch with the highest loss (see :meth:`learn_batch`).
        """
        features = self._as_tensor(X)
        if features.shape[0] == 0:
            raise ValueError("fit needs at least one row; X is empty")
        with torch.no_grad():
            self.initialize(features)
        generator = torch.Generator().manual_seed(self.seed)
        for _ in range(epochs):
            order = torch.randperm(features.shape[0], generator=generator)
            for start in range(0, features.shape[0], batch_size):
                self.learn_batch(features[order[start : start + batch_size]], contamination=contamination)
        return self

    def learn_one(self, x: Any) -> Detector:
        """Take one online step on a single window (river's ``learn_one``)."""
        self.learn_batch(self._as_tensor(x).reshape(1, -1))
        return self

    # -- scoring --------------------------------------------------------------------------

    def score(self, X: Any) -> np.ndarray:
        """Score rows of ``X`` without changing the detector; higher means more anomalous."""
        features = self._as_tensor(X)
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                scores = finite_scores(self.anomaly_score(features))
        finally:
            self.train(was_training)
        return scores.double().numpy()

    def decision_function(self, X: Any) -> np.ndarray:
        """PyOD's name for :meth:`score`."""
        return self.score(X)

    def score_one(self, x: Any) -> float:
        """Score a single window (river's ``score_one``)."""
        return float(self.score(self._as_tensor(x).reshape(1, -1))[0])

    def _as_tensor(self, X: Any) -> torch.Tensor:
        if isinstance(X, torch.Tensor):
            features = X.detach().to(torch.float32)
        else:
            features = torch.as_tensor(np.asarray(X, dtype=np.float32))
        if features.ndim == 1:
            features = features.reshape(1, -1) if features.shape[0] == self.n_features else features
        if features.ndim != 2 or features.shape[1] != self.n_features:
            raise ValueError(
                f"expected rows of {self.n_features} features, got an array of shape "
                f"{tuple(features.shape)}"
            )
        return features
