import math

import torch

from spikewatch.spiking.neurons import LIF, ArctanSpike


def test_lif_charge_fire_reset():
    layer = LIF((1,), beta=0.5, v_threshold=1.0)
    current = torch.tensor([0.6, 0.6, 0.6, 2.5]).reshape(4, 1, 1)
    spikes, membranes = layer(current, torch.zeros(1, 1))
    membrane = membranes[-1]
    # v: 0.6 -> 0.9 -> 1.05 fires, reset to 0.05 -> 0.025 + 2.5 = 2.525 fires, reset to 1.525
    assert spikes.flatten().tolist() == [0.0, 0.0, 1.0, 1.0]
    assert math.isclose(float(membrane), 1.525, rel_tol=1e-6)


def test_lif_grad_and_inference_paths_agree():
    layer = LIF((3, 5), beta=0.7, v_threshold=0.8)
    current = torch.randn(6, 4, 3, 5)
    start = torch.randn(4, 3, 5)
    with torch.no_grad():
        fast_spikes, fast_end = layer(current, start)
    slow_spikes, slow_end = layer(current.requires_grad_(), start)
    assert torch.equal(fast_spikes, slow_spikes.detach())
    assert fast_end.shape == (1, 4, 3, 5)
    assert torch.allclose(fast_end, slow_end.detach())


def test_surrogate_gradient_finite_for_extreme_inputs():
    x = torch.tensor([-1e4, -5.0, 0.0, 5.0, 1e4], requires_grad=True)
    ArctanSpike.apply(x, 2.0).sum().backward()
    assert torch.isfinite(x.grad).all()
    assert float(x.grad[2]) == 1.0  # alpha / 2 at the threshold
    assert float(x.grad[0]) < 1e-6


def test_huge_negative_membrane_gives_finite_gradients():
    layer = LIF((4,), beta=0.5)
    weight = torch.ones(4, requires_grad=True)
    current = torch.full((4, 2, 4), -1e4) * weight
    spikes, membrane = layer(current, torch.zeros(2, 4))
    (spikes.sum() + membrane.sum() * 1e-6).backward()
    assert torch.isfinite(weight.grad).all()


def test_ann_twin_passes_membrane_through():
    layer = LIF((2,), spiking=False)
    current = torch.tensor([[[-1.0, 2.0]]])
    out, membrane = layer(current, torch.full((1, 2), 0.3))
    assert out.tolist() == [[[0.0, 2.0]]]
    assert torch.equal(membrane, torch.full((1, 1, 2), 0.3))


def test_lif_returns_membrane_after_each_window():
    layer = LIF((1,), beta=1.0, v_threshold=10.0)
    current = torch.ones(6, 1, 1)
    _, membranes = layer(current, torch.zeros(1, 1), windows=3)
    assert membranes.flatten().tolist() == [2.0, 4.0, 6.0]
