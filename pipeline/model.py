"""The shared model: spike encoding, encoder, detector, optimizer and replay buffer.

One model serves every stream key. It scores a batch of windows from different keys together,
each with its own membrane state, and learns online from windows judged normal:

1. score first: a window is scored by the current weights before it can be learned from;
2. a window enters the bounded replay buffer only if the caller judged it normal (below the
   contamination quantile of its key's recent scores, and not inside an open alert);
3. every ``update_every_windows`` scored windows, one gradient step runs on a sample of the
   buffer, through the detector's objective and the encoder's surrogate gradient together;
4. the caller reports each window's p-value (:meth:`StreamModel.observe`); ADWIN watches them,
   and after a detected drift each update takes ``drift_steps_per_update`` steps on the newest
   windows of the buffer, for ``drift_adaptation_windows`` windows.

Updates run inline, at fixed counts of scored windows (multiples of ``update_every_windows``),
so a replay of the same stream makes the same updates at the same windows whatever the batch
boundaries were. The engine cuts its scoring batches at those counts.

Until ``warmup_windows`` windows have arrived the model only collects them. It then fixes the
detector's constants (the Deep SVDD center, GOAD's centers) and trains for ``warmup_epochs``
passes.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from spikewatch.config import Config
from spikewatch.detectors import DETECTORS, DeepSVDD, Detector, GOAD, NeuTraLAD, ScoreHealth, finite_scores
from spikewatch.drift import ScoreDrift
from spikewatch.encoding import SpikeEncoder, amplitude_features, build_encoder
from spikewatch.spiking.energy import NO_ENCODER, EnergyEstimate, dense_energy, spiking_energy
from spikewatch.spiking.spikformer import Spikformer

logger = logging.getLogger(__name__)


def build_detector(config: Config, n_features: int) -> Detector:
    """Build the detector named by ``detector.kind`` for feature vectors of ``n_features``."""
    detector = config.detector
    seed = config.encoding.seed
    if detector.kind == "deep_svdd":
        return DeepSVDD(
            n_features,
            rep_dim=detector.rep_dim,
            hidden_dim=detector.hidden_dim,
            objective=detector.objective,
            nu=detector.nu,
            seed=seed,
        )
    if detector.kind == "neutral_ad":
        return NeuTraLAD(
            n_features,
            transformations=detector.neutral_transformations,
            transformation_kind=detector.neutral_transformation_kind,
            hidden_dim=detector.hidden_dim,
            rep_dim=detector.rep_dim,
            temperature=detector.temperature,
            seed=seed,
        )
    if detector.kind == "goad":
        return GOAD(
            n_features,
            transformations=detector.goad_transformations,
            transform_dim=detector.goad_transform_dim,
            hidden_dim=detector.hidden_dim,
            margin=detector.goad_margin,
            triplet_weight=detector.goad_triplet_weight,
            seed=seed,
        )
    raise ValueError(
        f"detector.kind = {detector.kind!r} is not one of {', '.join(map(repr, DETECTORS))}"
    )


class _FlattenEncoder(nn.Module):
    """The "none" encoder: the detector sees the scaled window itself, flattened."""

    state_size = 0

    def forward(
        self, x: torch.Tensor, state: torch.Tensor, *, windows: int = 1
    ) -> tuple[torch.Tensor, torch.Tensor]:
        # x is [windows, B, C, L]: direct coding with one time step, so each step is a window.
        return x.flatten(2), state.unsqueeze(0).expand(windows, *state.shape)

    def initial_state(self, batch_size: int) -> torch.Tensor:
        return torch.zeros(batch_size, 0)

    def firing_rate(self) -> float:
        return 0.0


class ReplayBuffer:
    """A ring buffer of windows judged normal and the membrane state each started from."""

    def __init__(self, capacity: int, window_shape: tuple[int, int], state_size: int) -> None:
        self.windows = torch.zeros(capacity, *window_shape)
        self.states = torch.zeros(capacity, state_size)
        self.size = 0
        self.next = 0

    @property
    def capacity(self) -> int:
        return self.windows.shape[0]

    def add(self, windows: torch.Tensor, states: torch.Tensor) -> None:
        for window, state in zip(windows, states):
            self.windows[self.next] = window
            self.states[self.next] = state
            self.next = (self.next + 1) % self.capacity
            self.size = min(self.size + 1, self.capacity)

    def sample(
        self, batch_size: int, generator: torch.Generator, *, newest: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw ``batch_size`` windows with replacement, from the ``newest`` most recent if given."""
        span = self.size if newest is None else max(1, min(newest, self.size))
        draws = torch.randint(span, (min(batch_size, self.size),), generator=generator)
        # The newest entry sits just before `next`; count back from there.
        index = (self.next - 1 - draws) % self.capacity if span < self.size else draws
        return self.windows[index], self.states[index]

    def state_dict(self) -> dict:
        return {
            "windows": self.windows[: self.size].clone(),
            "states": self.states[: self.size].clone(),
            "next": self.next,
        }

    def load_state_dict(self, state: dict) -> None:
        size = state["windows"].shape[0]
        if size > self.capacity or state["windows"].shape[1:] != self.windows.shape[1:]:
            raise ValueError(
                f"replay buffer of shape {tuple(state['windows'].shape)} does not fit the "
                f"configured {tuple(self.windows.shape)}"
            )
        self.windows[:size] = state["windows"]
        self.states[:size] = state["states"]
        self.size = size
        self.next = int(state["next"])


@dataclass(slots=True)
class ScoredBatch:
    """Scores of a batch of windows, the membrane state after each window, and encoder activity.

    ``energy`` is the estimated cost of encoding one window of the batch.
    """

    scores: np.ndarray
    states: torch.Tensor
    firing_rate: float
    energy: EnergyEstimate = NO_ENCODER


class StreamModel:
    """Spike encoder, encoder network and detector, trained together online.

    Parameters
    ----------
    config
        The validated configuration.
    channels
        Channels per record; fixed for the model's life because the weights depend on it.
    """

    def __init__(self, config: Config, channels: int) -> None:
        self.config = config
        self.channels = channels
        learning = config.learning
        length = config.windows.length
        torch.manual_seed(config.encoding.seed)

        self.spike_encoder: SpikeEncoder = build_encoder(
            "direct" if config.encoder.kind == "none" else config.encoding.kind,
            time_steps=1 if config.encoder.kind == "none" else config.encoding.time_steps,
            window_length=length,
            channels=channels,
            delta_threshold=config.encoding.delta_threshold,
            seed=config.encoding.seed,
        )
        if config.encoder.kind == "none":
            self.encoder: nn.Module = _FlattenEncoder()
            n_features = length * channels
        else:
            enc = config.encoder
            self.encoder = Spikformer(
                self.spike_encoder.in_channels(channels),
                length,
                embed_dim=enc.embed_dim,
                patch_size=enc.patch_size,
                num_heads=enc.num_heads,
                depth=enc.depth,
                mlp_ratio=enc.mlp_ratio,
                beta=enc.beta,
                v_threshold=enc.v_threshold,
                surrogate_alpha=enc.surrogate_alpha,
                spiking=enc.kind == "spikformer",
                reconstruct_channels=channels,
            )
            n_features = self.encoder.feature_dim
            if enc.amplitude_features:
                n_features += 2 * channels
        self.detector = build_detector(config, n_features)
        self.state_size = self.encoder.state_size
        self.optimizer = torch.optim.Adam(
            list(self.encoder.parameters()) + list(self.detector.parameters()),
            lr=learning.learning_rate,
            weight_decay=learning.weight_decay,
        )
        self.buffer = ReplayBuffer(learning.replay_buffer_size, (length, channels), self.state_size)
        self.generator = torch.Generator().manual_seed(config.encoding.seed)
        self.drift = ScoreDrift(
            delta=learning.drift_delta, adaptation_windows=learning.drift_adaptation_windows
        )
        self.health = ScoreHealth()
        # Energy estimates of the windows scored since the last take_energy(): sums and count.
        self._energy_sums = [0.0, 0.0, 0]
        self.warm = False
        self.windows_seen = 0
        self.updates = 0
        self.skipped_updates = 0
        self.last_loss = math.nan
        self._eval()

    # -- scoring ----------------------------------------------------------------------------

    def initial_state(self) -> torch.Tensor:
        """Resting membrane state of a new key, ``[state_size]``."""
        return torch.zeros(self.state_size)

    def _eval(self) -> None:
        self.encoder.eval()
        self.detector.eval()

    def _features(self, windows: torch.Tensor, states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Features ``[B, F]`` of one window per sample and the membrane state after it."""
        features, new_states = self.encoder(self.spike_encoder(windows), states)
        return self._with_amplitude(features[0], windows), new_states[0]

    def _with_amplitude(self, features: torch.Tensor, windows: torch.Tensor) -> torch.Tensor:
        """Append :func:`amplitude_features` of ``windows [..., L, C]`` when configured."""
        if self.config.encoder.kind == "none" or not self.config.encoder.amplitude_features:
            return features
        summary = amplitude_features(windows, recent=self.config.windows.stride)
        return torch.cat([features, summary], dim=-1)

    @torch.no_grad()
    def score(self, windows: np.ndarray, states: torch.Tensor) -> ScoredBatch:
        """Score scaled windows without learning.

        ``windows`` is ``[W, B, L, C]``: W consecutive windows of each of B keys, chained
        through the membrane states ``[B, S]`` the keys start from. Returns scores ``[W, B]``
        and the state after each window, ``[W, B, S]``. A ``[B, L, C]`` array is one window per
        key, and gives scores ``[B]`` and states ``[B, S]``.
        """
        single = windows.ndim == 3
        if single:
            windows = windows[None]
        count, batch, length, channels = windows.shape
        x = self.spike_encoder(torch.from_numpy(windows).reshape(count * batch, length, channels))
        # [T, W·B, C_in, L] -> [W·T, B, C_in, L]: each key's windows follow one another in time.
        x = x.reshape(x.shape[0], count, batch, *x.shape[2:]).transpose(0, 1).flatten(0, 1)
        features, new_states = self.encoder(x, states, windows=count)
        features = self._with_amplitude(features, torch.from_numpy(windows))
        # A non-finite score (an overflow far outside the training range) becomes the largest
        # float32, so the policy still gets a number and ranks the window as most anomalous.
        scores = finite_scores(self.detector.anomaly_score(features.flatten(0, 1))).double().numpy()
        scores = scores.reshape(count, batch)
        energy = self._energy(x, count * batch)
        self._energy_sums[0] += energy.synaptic_operations * count * batch
        self._energy_sums[1] += energy.multiply_accumulates * count * batch
        self._energy_sums[2] += count * batch
        if single:
            return ScoredBatch(scores[0], new_states[0], self.encoder.firing_rate(), energy)
        return ScoredBatch(scores, new_states, self.encoder.firing_rate(), energy)

    def _energy(self, x: torch.Tensor, windows: int) -> EnergyEstimate:
        """Energy estimate per window of the forward call that just encoded ``x``."""
        if not isinstance(self.encoder, Spikformer):
            return NO_ENCODER
        if self.config.encoder.kind == "ann":
            return dense_energy(self.encoder, time_steps=self.spike_encoder.time_steps)
        input_spikes = None if self.spike_encoder.kind == "direct" else float(x.sum())
        return spiking_energy(self.encoder, windows=windows, input_spikes=input_spikes)

    def take_energy(self) -> EnergyEstimate | None:
        """Mean energy estimate per window over the windows scored since the last call, or None."""
        operations, macs, windows = self._energy_sums
        self._energy_sums = [0.0, 0.0, 0]
        if windows == 0:
            return None
        return EnergyEstimate(operations / windows, macs / windows)

    def observe(self, scores: np.ndarray, p_values: np.ndarray) -> None:
        """Watch the scores of the windows just scored, in order, before :meth:`count_windows`.

        ``scores`` feed the score-variance health check; ``p_values`` (NaN where a window's key
        has no trusted history) feed drift detection. Both run only once the model is warm.
        """
        if not self.warm:
            return
        self.health.update(scores)
        if self.config.learning.drift_detection:
            self.drift.update(p_values, first_window=self.windows_seen + 1)

    @property
    def adapting(self) -> bool:
        """Whether the model is in a period of faster adaptation after a drift."""
        return self.config.learning.drift_detection and self.drift.adapting(self.windows_seen)

    # -- learning ---------------------------------------------------------------------------

    def remember(self, windows: np.ndarray, states: torch.Tensor) -> None:
        """Add windows judged normal, with the membrane state each started from, to the buffer."""
        if len(windows):
            self.buffer.add(torch.from_numpy(np.ascontiguousarray(windows)), states)

    def count_windows(self, n: int) -> bool:
        """Count ``n`` newly scored windows; return True when an update or warm-up is due."""
        before = self.windows_seen
        self.windows_seen += n
        learning = self.config.learning
        if not self.warm:
            return self.windows_seen >= learning.warmup_windows
        every = learning.update_every_windows
        return every > 0 and before // every != self.windows_seen // every

    def windows_until_due(self) -> int:
        """Windows that can still be scored before the next warm-up or update is due."""
        learning = self.config.learning
        if not self.warm:
            return max(learning.warmup_windows - self.windows_seen, 1)
        every = learning.update_every_windows
        if every <= 0:
            return 1 << 30
        return every - self.windows_seen % every

    def learn(self) -> None:
        """Run the warm-up fit or one online update, whichever is due."""
        if not self.warm:
            self.warmup()
        else:
            self.update()

    def warmup(self) -> None:
        """Fit on the collected windows: batch-norm statistics, detector constants, epochs."""
        learning = self.config.learning
        windows, states = self.buffer.windows[: self.buffer.size], self.buffer.states[: self.buffer.size]
        logger.info(
            "warm-up: fitting on %d windows for %d epochs", windows.shape[0], learning.warmup_epochs
        )
        chunks = range(0, windows.shape[0], learning.batch_size)
        with torch.no_grad():
            self._refresh_batch_norm(windows, states)
            features = torch.cat(
                [self._features(windows[i : i + learning.batch_size], states[i : i + learning.batch_size])[0] for i in chunks]
            )
            self.detector.initialize(features)
        for _ in range(learning.warmup_epochs):
            order = torch.randperm(windows.shape[0], generator=self.generator)
            for start in chunks:
                index = order[start : start + learning.batch_size]
                if index.numel() > 1:
                    self._step(windows[index], states[index])
        self.warm = True
        logger.info("warm-up done after %d windows; last loss %.4g", self.windows_seen, self.last_loss)

    def _refresh_batch_norm(self, windows: torch.Tensor, states: torch.Tensor) -> None:
        norms = [m for m in self.encoder.modules() if isinstance(m, nn.BatchNorm1d)]
        for norm in norms:
            norm.reset_running_stats()
            norm.momentum = None  # cumulative average over the warm-up windows
        self.encoder.train()
        for start in range(0, windows.shape[0], self.config.learning.batch_size):
            stop = start + self.config.learning.batch_size
            self._features(windows[start:stop], states[start:stop])
        for norm in norms:
            norm.momentum = 0.1
        self._eval()

    def update(self) -> None:
        """Take one gradient step on a sample of the replay buffer, or several on its newest
        windows while adapting to a drift."""
        if self.buffer.size < 2:
            return
        learning = self.config.learning
        if not self.adapting:
            self._step(*self.buffer.sample(learning.batch_size, self.generator))
            return
        # The newest windows reflect the stream after the drift: the last update period's worth.
        newest = max(learning.update_every_windows, learning.batch_size)
        for _ in range(learning.drift_steps_per_update):
            self._step(*self.buffer.sample(learning.batch_size, self.generator, newest=newest))

    def _step(self, windows: torch.Tensor, states: torch.Tensor) -> None:
        self.encoder.train()
        self.detector.train()
        if self.warm:
            # Batch-norm statistics are fixed at the end of warm-up. Updating them from replay
            # batches would rescale every key's features, so scores would shift for all keys
            # at once however small the learning rate.
            for module in self.encoder.modules():
                if isinstance(module, nn.BatchNorm1d):
                    module.eval()
        try:
            self.optimizer.zero_grad(set_to_none=True)
            features, _ = self._features(windows, states)
            loss = self.detector.objective(features).mean()
            weight = self.config.learning.reconstruction_weight
            if weight > 0 and hasattr(self.encoder, "reconstruction_loss"):
                (loss + weight * self.encoder.reconstruction_loss(features, windows)).backward()
            else:
                loss.backward()
            parameters = [p for group in self.optimizer.param_groups for p in group["params"]]
            norm = torch.nn.utils.clip_grad_norm_(parameters, self.config.learning.max_grad_norm)
            if not (torch.isfinite(loss) and torch.isfinite(norm)):
                self.optimizer.zero_grad(set_to_none=True)
                self.skipped_updates += 1
                logger.warning(
                    "skipped an update: loss %s, gradient norm %s are not finite; the weights are unchanged",
                    float(loss.detach()),
                    float(norm),
                )
                return
            self.optimizer.step()
            if type(self.detector).after_step is not Detector.after_step:
                # Constants such as a radius or centers are compared with scoring-time
                # features, so they are refreshed from features computed in evaluation mode.
                self._eval()
                with torch.no_grad():
                    self.detector.after_step(self._features(windows, states)[0])
            self.updates += 1
            self.last_loss = float(loss.detach())
        finally:
            self._eval()

    # -- checkpoints ------------------------------------------------------------------------

    def state_dict(self) -> dict:
        return {
            "encoder": self.encoder.state_dict(),
            "detector": self.detector.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "buffer": self.buffer.state_dict(),
            "generator": self.generator.get_state(),
            "warm": self.warm,
            "windows_seen": self.windows_seen,
            "updates": self.updates,
            "skipped_updates": self.skipped_updates,
            "drift": self.drift.state_dict(),
            "health": self.health.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.encoder.load_state_dict(state["encoder"])
        self.detector.load_state_dict(state["detector"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.buffer.load_state_dict(state["buffer"])
        self.generator.set_state(state["generator"])
        self.warm = bool(state["warm"])
        self.windows_seen = int(state["windows_seen"])
        self.updates = int(state["updates"])
        self.skipped_updates = int(state["skipped_updates"])
        # Checkpoints written before drift detection and health checks existed lack these.
        if "drift" in state:
            self.drift.load_state_dict(state["drift"])
        if "health" in state:
            self.health.load_state_dict(state["health"])
        self._eval()
