import pytest
import torch

from spikewatch.encoding import DeltaEncoder, DirectEncoder
from spikewatch.spiking.spikformer import Spikformer


def encode_one(model, x, state):
    """Features ``[B, D]`` and state ``[B, S]`` of one window per sample."""
    features, states = model(x, state)
    return features[0], states[0]


def make_encoder(**options) -> Spikformer:
    """A small encoder whose batch-norm statistics come from one pass over random windows."""
    torch.manual_seed(0)
    model = Spikformer(2, 8, embed_dim=8, patch_size=2, num_heads=2, **options)
    for norm in model.modules():
        if isinstance(norm, torch.nn.BatchNorm1d):
            norm.momentum = None
    with torch.no_grad():
        model.train()(DirectEncoder(4)(torch.randn(64, 8, 2)), model.initial_state(64))
    return model.eval()


def test_spikformer_shapes():
    model = make_encoder()
    x = DirectEncoder(3)(torch.randn(5, 8, 2))
    features, state = encode_one(model, x, model.initial_state(5))
    assert features.shape == (5, 8)
    assert state.shape == (5, model.state_size)


def test_state_carries_per_key_across_batch_sizes():
    model = make_encoder()
    encode = DirectEncoder(4)
    window_a1, window_b1, window_a2 = (torch.randn(1, 8, 2) * 3 for _ in range(3))
    with torch.no_grad():
        # Keys a and b together, then key a alone, with no reset between.
        _, both = encode_one(model, encode(torch.cat([window_a1, window_b1])), model.initial_state(2))
        features_batched, _ = encode_one(model, encode(window_a2), both[:1])
        # Key a on its own all along.
        _, alone = encode_one(model, encode(window_a1), model.initial_state(1))
        features_alone, _ = encode_one(model, encode(window_a2), alone)
    assert torch.allclose(features_batched, features_alone, atol=1e-6)


def test_state_never_leaks_between_keys():
    model = make_encoder()
    encode = DirectEncoder(4)
    quiet = torch.zeros(1, 8, 2)
    loud = torch.full((1, 8, 2), 50.0)
    with torch.no_grad():
        _, state_with_loud_neighbour = encode_one(
            model, encode(torch.cat([quiet, loud])), model.initial_state(2)
        )
        _, state_alone = encode_one(model, encode(quiet), model.initial_state(1))
    assert torch.equal(state_with_loud_neighbour[0], state_alone[0])
    assert not torch.equal(state_with_loud_neighbour[0], state_with_loud_neighbour[1])


def test_membrane_state_changes_next_window():
    model = make_encoder()
    encode = DirectEncoder(4)
    first, second = torch.full((1, 8, 2), 3.0), torch.randn(1, 8, 2)
    with torch.no_grad():
        _, carried = encode_one(model, encode(first), model.initial_state(1))
        with_memory, _ = encode_one(model, encode(second), carried)
        without_memory, _ = encode_one(model, encode(second), model.initial_state(1))
    assert not torch.equal(with_memory, without_memory)


def test_chained_windows_equal_one_call_per_window():
    model = make_encoder()
    encode = DirectEncoder(4)
    windows = [torch.randn(3, 8, 2) * 2 for _ in range(4)]
    state = model.initial_state(3)
    sequential_features, sequential_states = [], []
    with torch.no_grad():
        for window in windows:
            features, state = encode_one(model, encode(window), state)
            sequential_features.append(features)
            sequential_states.append(state)
        chained = torch.cat([encode(window) for window in windows])  # [4·T, B, C, L]
        chained_features, chained_states = model(chained, model.initial_state(3), windows=4)
    assert chained_features.shape == (4, 3, 8)
    assert chained_states.shape == (4, 3, model.state_size)
    assert torch.allclose(chained_features, torch.stack(sequential_features), atol=1e-5)
    assert torch.allclose(chained_states, torch.stack(sequential_states), atol=1e-5)


def test_wrong_state_shape_rejected():
    model = make_encoder()
    with pytest.raises(ValueError, match="membrane state has shape"):
        model(DirectEncoder(2)(torch.randn(3, 8, 2)), model.initial_state(2))


def test_surrogate_gradient_reaches_first_layer():
    model = make_encoder().train()
    x = DeltaEncoder(4, threshold=0.5)(torch.randn(6, 8, 1))
    model = Spikformer(2, 8, embed_dim=8, patch_size=2, num_heads=2).train()
    features, _ = encode_one(model, x, model.initial_state(6))
    (features.sum() + model.reconstruction_loss(features, torch.randn(6, 8, 2))).backward()
    gradient = model.patch_conv.weight.grad
    assert gradient is not None
    assert torch.isfinite(gradient).all()
    assert gradient.abs().sum() > 0


def test_ann_twin_has_no_spikes_but_same_shapes():
    model = make_encoder(spiking=False)
    features, state = encode_one(model, DirectEncoder(2)(torch.randn(3, 8, 2)), model.initial_state(3))
    assert features.shape == (3, 8)
    assert torch.equal(state, model.initial_state(3))


def test_patch_size_must_divide_window():
    with pytest.raises(ValueError, match="patch_size = 3 must divide window_length = 8"):
        Spikformer(1, 8, patch_size=3)
