"""Deep Support Vector Data Description (Deep SVDD)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

import torch
from torch import nn

from spikewatch.detectors.base import Detector


class DeepSVDD(Detector):
    """Deep SVDD: map normal data into a small hypersphere; the score is the squared distance.

    A bias-free network φ maps each feature vector to a representation; training pulls the
    representations of normal windows towards a center ``c``. The anomaly score is
    ``‖φ(x) − c‖²`` (one-class) or ``‖φ(x) − c‖² − R²`` (soft-boundary). Higher means more
    anomalous.

    The paper's guards against the trivial solution, in which φ maps everything to ``c``, are kept:

    * ``c`` is fixed from the mean of an initial forward pass and never trained; coordinates
      closer to zero than ``eps`` are pushed to ±``eps`` so that a zero weight vector cannot
      reach it;
    * no layer has a bias term (a bias alone could output ``c`` for every input);
    * the activation is the unbounded leaky ReLU (a bounded one could saturate to a constant).

    Parameters
    ----------
    n_features
        Width of the input feature vectors.
    rep_dim
        Width of the representation (the hypersphere's dimension).
    hidden_dim
        Width of the hidden layer of φ.
    objective
        ``"one-class"`` minimises the mean squared distance; ``"soft-boundary"`` also learns a
        radius ``R`` and penalises only points outside it, weighted by ``1 / nu``.
    nu
        Soft-boundary trade-off in (0, 1]: an upper bound on the fraction of training points
        outside the sphere. ``R`` is set after each step to the ``(1 - nu)`` quantile of the
        distances in that step's batch, as in the paper's alternating scheme (which takes the
        quantile over all training data, every few epochs).
    eps
        Smallest magnitude of a center coordinate (0.1 in the paper's code).
    seed
        Seed of the initial weights.

    Examples
    --------
    Trained on normal flights of river's bundled Shuttle data set (space shuttle sensor rows,
    standardised), Deep SVDD ranks the rare flight classes above the normal one:

    >>> import itertools
    >>> import numpy as np
    >>> from river import datasets
    >>> from sklearn.metrics import roc_auc_score
    >>> rows = list(itertools.islice(datasets.Shuttle(), 3000))
    >>> X = np.array([list(x.values()) for x, _ in rows], dtype="float32")
    >>> y = np.array([label for _, label in rows])
    >>> X = (X - X[:2000].mean(0)) / X[:2000].std(0)
    >>> normal = X[:2000][y[:2000] == 0]
    >>> detector = DeepSVDD(n_features=9, seed=0).fit(normal, epochs=10)
    >>> print(f"ROC-AUC {roc_auc_score(y[2000:], detector.score(X[2000:])):.2f}")
    ROC-AUC 1.00

    Training data must be (nearly) free of anomalies: the objective pulls every training point
    into the sphere, anomalies included. The streaming pipeline therefore learns only from
    windows it judged normal.

    References
    ----------
    Ruff, L., Vandermeulen, R., Goernitz, N., Deecke, L., Siddiqui, S. A., Binder, A., Müller, E.
    and Kloft, M. (2018). Deep One-Class Classification. ICML, PMLR 80:4393–4402.
    """

    def __init__(
        self,
        n_features: int,
        *,
        rep_dim: int = 16,
        hidden_dim: int = 64,
        objective: Literal["one-class", "soft-boundary"] = "one-class",
        nu: float = 0.05,
        eps: float = 0.1,
        seed: int = 0,
    ) -> None:
        super().__init__(n_features, seed=seed)
        if objective not in ("one-class", "soft-boundary"):
            raise ValueError(
                f"objective = {objective!r} is not one of 'one-class', 'soft-boundary'"
            )
        if not 0.0 < nu <= 1.0:
            raise ValueError(f"nu = {nu} must be in (0, 1]")
        self.objective_kind = objective
        self.nu = nu
        self.eps = eps
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.network = nn.Sequential(
                nn.Linear(n_features, hidden_dim, bias=False),
                nn.LeakyReLU(0.1),
                nn.Linear(hidden_dim, rep_dim, bias=False),
            )
        self.register_buffer("center", torch.zeros(rep_dim))
        self.register_buffer("radius", torch.zeros(()))
        self.register_buffer("initialized", torch.zeros((), dtype=torch.bool))

    @property
    def is_initialized(self) -> bool:
        return bool(self.initialized)

    def initialize(self, features: torch.Tensor) -> None:
        """Fix the center ``c`` at the mean representation of ``features``."""
        with torch.no_grad():
            center = self.network(features).mean(dim=0)
            small = center.abs() < self.eps
            center[small & (center < 0)] = -self.eps
            center[small & (center >= 0)] = self.eps
            self.center.copy_(center)
            self.initialized.fill_(True)

    def squared_distance(self, features: torch.Tensor) -> torch.Tensor:
        return ((self.network(features) - self.center) ** 2).sum(dim=1)

    def objective(self, features: torch.Tensor) -> torch.Tensor:
        distance = self.squared_distance(features)
        if self.objective_kind == "one-class":
            return distance
        # The soft-boundary loss R² + 1/ν · mean(max(0, d − R²)), spread over the samples so the
        # mean over a batch equals the paper's objective with R held fixed.
        radius_sq = self.radius**2
        return radius_sq + torch.clamp(distance - radius_sq, min=0.0) / self.nu

    def after_step(self, features: torch.Tensor) -> None:
        if self.objective_kind == "soft-boundary":
            distance = self.squared_distance(features)
            self.radius.fill_(float(torch.quantile(distance, 1.0 - self.nu).sqrt()))

    def anomaly_score(self, features: torch.Tensor) -> torch.Tensor:
        distance = self.squared_distance(features)
        if self.objective_kind == "soft-boundary":
            return distance - self.radius**2
        return distance

    @classmethod
    def _unit_test_params(cls) -> Iterator[dict[str, Any]]:
        for objective in ("one-class", "soft-boundary"):
            yield {"objective": objective, "rep_dim": 8, "hidden_dim": 16, "nu": 0.1}
