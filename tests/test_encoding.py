import pytest
import torch

from spikewatch.encoding import DeltaEncoder, DirectEncoder, RateEncoder, build_encoder


def test_direct_encoder_repeats_values():
    windows = torch.randn(3, 8, 2)
    out = DirectEncoder(4)(windows)
    assert out.shape == (4, 3, 2, 8)
    assert torch.equal(out[2], windows.transpose(1, 2))


def test_rate_encoder_is_deterministic_and_binary():
    windows = torch.randn(5, 8, 3)
    encoder = RateEncoder(6, window_length=8, channels=3, seed=7)
    first, second = encoder(windows), encoder(windows)
    assert first.shape == (6, 5, 3, 8)
    assert torch.equal(first, second)
    assert set(first.unique().tolist()) <= {0.0, 1.0}
    same_seed = RateEncoder(6, window_length=8, channels=3, seed=7)(windows)
    assert torch.equal(first, same_seed)


def test_rate_encoder_fires_more_for_larger_values():
    encoder = RateEncoder(32, window_length=8, channels=1, seed=0)
    low = encoder(torch.full((1, 8, 1), -2.0)).mean()
    high = encoder(torch.full((1, 8, 1), 2.0)).mean()
    assert high > low


def test_delta_encoder_thermometer_code():
    windows = torch.tensor([[[0.0], [1.2], [1.2], [0.0]]])  # rise by 1.2, flat, fall by 1.2
    out = DeltaEncoder(4, threshold=0.5)(windows)
    assert out.shape == (4, 1, 2, 4)
    up, down = out[:, 0, 0], out[:, 0, 1]
    assert up[:, 1].tolist() == [1.0, 1.0, 0.0, 0.0]  # 1.2 / 0.5 = 2.4 levels crossed
    assert down[:, 3].tolist() == [1.0, 1.0, 0.0, 0.0]
    assert up[:, 2].sum() == 0 and down[:, 2].sum() == 0


def test_unknown_encoding_rejected():
    with pytest.raises(ValueError, match="'direct', 'rate', 'delta'"):
        build_encoder("morse", time_steps=2, window_length=4, channels=1, delta_threshold=0.5, seed=0)
