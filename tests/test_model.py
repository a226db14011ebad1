"""The shared StreamModel: every detector and encoder kind, side-effect-free scoring, safe
updates, drift adaptation, energy estimates and checkpoints."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from spikewatch.checkpoint import load_checkpoint, save_checkpoint
from spikewatch.detectors import GOAD, DeepSVDD, NeuTraLAD
from spikewatch.model import ReplayBuffer, StreamModel, build_detector
from spikewatch.spiking.energy import JOULES_PER_MULTIPLY_ACCUMULATE, dense_energy

from .conftest import small_config

CHANNELS = 3
DETECTOR_KINDS = ["deep_svdd", "neutral_ad", "goad"]
ENCODER_KINDS = ["spikformer", "ann", "none"]


@pytest.fixture(autouse=True)
def one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def model_config(tmp_path, detector="deep_svdd", encoder_kind="spikformer", **sections):
    detector_section = {
        "kind": detector,
        "neutral_transformations": 4,
        "goad_transformations": 8,
        "goad_transform_dim": 8,
        **sections.pop("detector", {}),
    }
    return small_config(
        tmp_path,
        detector=detector_section,
        encoder={"kind": encoder_kind, **sections.pop("encoder", {})},
        **sections,
    )


def windows(count, *, seed=0, shift=0.0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(count, 8, CHANNELS)) + shift).astype(np.float32)


def warm_model(config):
    """A model warmed up on 16 windows of one key, chained as the engine would."""
    model = StreamModel(config, CHANNELS)
    state = model.initial_state().unsqueeze(0)
    for window in windows(config.learning.warmup_windows):
        scored = model.score(window[None], state)
        model.remember(window[None], state)
        state = scored.states
        if model.count_windows(1):
            model.learn()
    assert model.warm
    return model, state


def snapshot(model):
    return {
        "encoder": copy.deepcopy(model.encoder.state_dict()),
        "detector": copy.deepcopy(model.detector.state_dict()),
        "optimizer": copy.deepcopy(model.optimizer.state_dict()),
        "generator": model.generator.get_state().clone(),
    }


def assert_same(before, after):
    for part in ("encoder", "detector"):
        for name, value in before[part].items():
            assert torch.equal(value, after[part][name]), f"{part}.{name} changed"
    assert before["optimizer"]["state"].keys() == after["optimizer"]["state"].keys()
    for index, entry in before["optimizer"]["state"].items():
        for name, value in entry.items():
            assert torch.equal(value, after["optimizer"]["state"][index][name])
    assert torch.equal(before["generator"], after["generator"])


@pytest.mark.parametrize("kind, cls", [("deep_svdd", DeepSVDD), ("neutral_ad", NeuTraLAD), ("goad", GOAD)])
def test_build_detector_kinds(tmp_path, kind, cls):
    config = model_config(tmp_path, kind)
    detector = build_detector(config, 12)
    assert type(detector) is cls
    assert detector.n_features == 12


@pytest.mark.parametrize("encoder", ENCODER_KINDS)
@pytest.mark.parametrize("detector", DETECTOR_KINDS)
def test_scoring_has_no_side_effects(tmp_path, detector, encoder):
    model, state = warm_model(model_config(tmp_path, detector, encoder))
    before = snapshot(model)
    batch = windows(5, seed=1)[:, None]  # five consecutive windows of one key
    results = [model.score(batch, state) for _ in range(3)]
    for result in results[1:]:
        assert np.array_equal(result.scores, results[0].scores)
        assert torch.equal(result.states, results[0].states)
    assert np.isfinite(results[0].scores).all()
    assert_same(before, snapshot(model))


@pytest.mark.parametrize("encoder", ENCODER_KINDS)
@pytest.mark.parametrize("detector", DETECTOR_KINDS)
def test_online_update_changes_weights_and_stays_finite(tmp_path, detector, encoder):
    model, state = warm_model(model_config(tmp_path, detector, encoder))
    before = snapshot(model)
    updates = model.updates
    model.update()
    assert model.updates == updates + 1
    assert math.isfinite(model.last_loss)
    changed = any(
        not torch.equal(value, model.detector.state_dict()[name]) for name, value in before["detector"].items()
    )
    assert changed


@pytest.mark.parametrize("detector", DETECTOR_KINDS)
def test_checkpoint_round_trip_gives_identical_scores(tmp_path, detector):
    config = model_config(tmp_path, detector)
    model, state = warm_model(config)
    model.observe(np.linspace(0.0, 1.0, 40), np.random.default_rng(2).uniform(size=40))
    path = save_checkpoint(tmp_path / "model.ckpt", {"model": model.state_dict()})
    restored = StreamModel(config, CHANNELS)
    restored.load_state_dict(load_checkpoint(path)["model"])
    batch = windows(4, seed=3)[:, None]
    assert np.array_equal(restored.score(batch, state).scores, model.score(batch, state).scores)
    assert restored.health.count == model.health.count
    assert restored.drift.adwin.width == model.drift.adwin.width
    # Both continue identically: the same replay sample and the same step.
    model.update()
    restored.update()
    assert np.array_equal(restored.score(batch, state).scores, model.score(batch, state).scores)


@pytest.mark.parametrize("value", [-5.0, -1e4])
@pytest.mark.parametrize("detector", DETECTOR_KINDS)
def test_huge_negative_input_gives_finite_gradients(tmp_path, detector, value):
    model, state = warm_model(model_config(tmp_path, detector))
    extreme = torch.full((4, 8, CHANNELS), value)
    model.encoder.train()
    model.detector.train()
    features, _ = model._features(extreme, state.expand(4, -1))
    loss = model.detector.objective(features).mean()
    loss.backward()
    assert torch.isfinite(loss)
    for name, parameter in list(model.encoder.named_parameters()) + list(model.detector.named_parameters()):
        assert parameter.grad is None or torch.isfinite(parameter.grad).all(), name
    # The updater takes the step: nothing in it is non-finite.
    skipped = model.skipped_updates
    model._step(extreme, state.expand(4, -1))
    assert model.skipped_updates == skipped


@pytest.mark.parametrize("detector", DETECTOR_KINDS)
def test_non_finite_update_is_skipped_and_counted(tmp_path, detector):
    model, state = warm_model(model_config(tmp_path, detector))
    before = snapshot(model)
    updates = model.updates
    bad = torch.from_numpy(windows(4, seed=4))
    bad[1, 3, 0] = float("nan")
    model._step(bad, state.expand(4, -1))
    assert model.skipped_updates == 1
    assert model.updates == updates
    assert_same({**before, "generator": model.generator.get_state()}, snapshot(model))


def test_replay_buffer_samples_newest():
    buffer = ReplayBuffer(8, (2, 1), 0)
    for value in range(11):  # wraps around: 3..10 are kept, 10 is the newest
        buffer.add(torch.full((1, 2, 1), float(value)), torch.zeros(1, 0))
    generator = torch.Generator().manual_seed(0)
    drawn, _ = buffer.sample(200, generator, newest=3)
    assert set(drawn[:, 0, 0].tolist()) == {8.0, 9.0, 10.0}
    drawn, _ = buffer.sample(200, generator)
    assert set(drawn[:, 0, 0].tolist()) == set(map(float, range(3, 11)))


def test_drift_opens_bounded_adaptation(tmp_path):
    config = model_config(tmp_path, learning={"drift_adaptation_windows": 100, "drift_steps_per_update": 3})
    model, _ = warm_model(config)
    rng = np.random.default_rng(5)
    for _ in range(10):
        model.observe(np.ones(50), rng.uniform(size=50))
        model.count_windows(50)
    assert model.drift.detections == 0
    assert not model.adapting
    # Every window now scores above its key's history: p-values near 0.
    model.observe(np.ones(50), rng.uniform(0.0, 0.02, size=50))
    model.count_windows(50)
    assert model.drift.detections >= 1
    assert model.adapting
    updates = model.updates
    model.update()
    assert model.updates == updates + 3
    for _ in range(3):
        model.observe(np.ones(50), np.full(50, np.nan))
        model.count_windows(50)
    assert not model.adapting


def test_drift_state_survives_checkpoint(tmp_path):
    config = model_config(tmp_path)
    model, _ = warm_model(config)
    rng = np.random.default_rng(6)
    model.observe(np.ones(300), rng.uniform(size=300))
    path = save_checkpoint(tmp_path / "drift.ckpt", {"model": model.state_dict()})
    restored = StreamModel(config, CHANNELS)
    restored.load_state_dict(load_checkpoint(path)["model"])
    shifted = rng.uniform(0.0, 0.05, size=200)
    first = model.drift.update(shifted, first_window=1000)
    second = restored.drift.update(shifted, first_window=1000)
    assert first == second >= 1
    assert model.drift.adapt_until == restored.drift.adapt_until


def test_energy_of_spiking_encoder(tmp_path):
    model, state = warm_model(model_config(tmp_path))
    model.take_energy()  # forget the warm-up's windows
    scored = model.score(windows(6, seed=7)[:, None], state)
    energy = scored.energy
    encoder = model.encoder
    T, L, D = model.spike_encoder.time_steps, 8, encoder.embed_dim
    assert energy.multiply_accumulates == T * L * D * CHANNELS * 3
    assert energy.synaptic_operations > 0
    assert energy.joules == pytest.approx(
        energy.synaptic_operations * 0.9e-12 + energy.multiply_accumulates * 4.6e-12
    )
    taken = model.take_energy()
    assert taken.synaptic_operations == pytest.approx(energy.synaptic_operations)
    assert model.take_energy() is None


def test_energy_without_spikes_is_first_layer_only(tmp_path):
    config = model_config(tmp_path, encoder={"v_threshold": 1e9})
    model = StreamModel(config, CHANNELS)
    scored = model.score(windows(2)[:, None], model.initial_state().unsqueeze(0))
    assert scored.firing_rate == 0.0
    assert scored.energy.synaptic_operations == 0.0
    assert scored.energy.multiply_accumulates > 0


def test_dense_energy_counts_every_multiply_accumulate(tmp_path):
    model = StreamModel(model_config(tmp_path, encoder_kind="ann"), CHANNELS)
    x = model.spike_encoder(torch.from_numpy(windows(1)))
    with FlopCounterMode(display=False) as counter:
        model.encoder(x, model.initial_state().unsqueeze(0))
    estimate = dense_energy(model.encoder, time_steps=model.spike_encoder.time_steps)
    # PyTorch counts 2 FLOPs per multiply-accumulate of convolutions and matrix products.
    assert estimate.multiply_accumulates == counter.get_total_flops() / 2
    assert estimate.joules == pytest.approx(estimate.multiply_accumulates * JOULES_PER_MULTIPLY_ACCUMULATE)


def test_no_encoder_costs_nothing(tmp_path):
    model = StreamModel(model_config(tmp_path, encoder_kind="none"), CHANNELS)
    scored = model.score(windows(2)[:, None], model.initial_state().unsqueeze(0))
    assert scored.energy.joules == 0.0
    assert model.detector.n_features == 8 * CHANNELS


def test_drift_window_of_other_river_version_starts_empty(tmp_path, caplog):
    config = model_config(tmp_path)
    model, _ = warm_model(config)
    model.observe(np.ones(100), np.random.default_rng(8).uniform(size=100))
    state = model.state_dict()
    state["drift"]["river_version"] = "0.0.1"
    restored = StreamModel(config, CHANNELS)
    restored.load_state_dict(state)
    assert restored.drift.adwin.width == 0
    assert restored.drift.detections == model.drift.detections
    assert "drift detection starts over" in caplog.text
