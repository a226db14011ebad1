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
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np
import torch
from torch import nn


class Detector(nn.Module, ABC):
    """Base class of the detectors; subclasses define the objective and the score.

    Parameters
    ----------
    n_features
        Width F of the feature vectors the detector takes.
    seed
        Seed of the initial weights and of the batch order in :meth:`fit`.
    """

    def __init__(self, n_features: int, *, seed: int = 0) -> None:
        super().__init__()
        if n_features < 1:
            raise ValueError(f"n_features = {n_features} must be at least 1")
        self.n_features = n_features
        self.seed = seed
        self._optimizer: torch.optim.Optimizer | None = None
        self._learning_rate = 1e-3
        self._weight_decay = 1e-6

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

    # -- training -------------------------------------------------------------------------

    def configure_optimizer(self, *, learning_rate: float = 1e-3, weight_decay: float = 1e-6) -> None:
        """Set the Adam settings used by :meth:`fit` and the online calls."""
        self._learning_rate = learning_rate
        self._weight_decay = weight_decay
        self._optimizer = None

    def _get_optimizer(self) -> torch.optim.Optimizer:
        if self._optimizer is None:
            self._optimizer = torch.optim.Adam(
                self.parameters(), lr=self._learning_rate, weight_decay=self._weight_decay
            )
        return self._optimizer

    def learn_batch(self, features: torch.Tensor) -> float:
        """Take one optimizer step on a batch and return its mean loss.

        A step whose loss or gradient is not finite is skipped and returns ``nan``, so one bad
        batch cannot poison the weights.
        """
        if not self.is_initialized:
            self.initialize(features)
        was_training = self.training
        self.train()
        optimizer = self._get_optimizer()
        optimizer.zero_grad(set_to_none=True)
        loss = self.objective(features).mean()
        loss.backward()
        gradients_finite = all(
            parameter.grad is None or bool(torch.isfinite(parameter.grad).all())
            for parameter in self.parameters()
        )
        if not (torch.isfinite(loss) and gradients_finite):
            optimizer.zero_grad(set_to_none=True)
            self.train(was_training)
            return float("nan")
        optimizer.step()
        with torch.no_grad():
            self.after_step(features)
        self.train(was_training)
        return float(loss.detach())

    def fit(self, X: Any, *, epochs: int = 20, batch_size: int = 64) -> Detector:
        """Initialize on ``X`` and train for ``epochs`` passes in shuffled mini-batches."""
        features = self._as_tensor(X)
        if features.shape[0] == 0:
            raise ValueError("fit needs at least one row; X is empty")
        with torch.no_grad():
            self.initialize(features)
        generator = torch.Generator().manual_seed(self.seed)
        for _ in range(epochs):
            order = torch.randperm(features.shape[0], generator=generator)
            for start in range(0, features.shape[0], batch_size):
                self.learn_batch(features[order[start : start + batch_size]])
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
                scores = self.anomaly_score(features)
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
        features = torch.as_tensor(np.asarray(X, dtype=np.float32))
        if features.ndim == 1:
            features = features.reshape(1, -1) if features.shape[0] == self.n_features else features
        if features.ndim != 2 or features.shape[1] != self.n_features:
            raise ValueError(
                f"expected rows of {self.n_features} features, got an array of shape "
                f"{tuple(features.shape)}"
            )
        return features
