"""Leaky integrate-and-fire neurons with an arctan surrogate gradient.

The neuron is written here rather than taken from snntorch or spikingjelly because the pipeline
keeps one membrane tensor per stream key and batches keys freely: each call takes the membrane
potential explicitly and returns the new one, and a layer keeps no hidden state of its own that a
change of batch size could break. snntorch's ``Leaky`` supports explicit state too, but its
instance-level ``init_hidden`` mode and per-step call would cost a Python call per time step per
layer; here one call runs all T steps of a layer.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from spikewatch.spiking import kernels


class ArctanSpike(torch.autograd.Function):
    """Heaviside step forward; derivative of a scaled arctan backward.

    Forward: ``S = 1 if x >= 0 else 0``. Backward: ``dS/dx ≈ α / 2 / (1 + (π/2 · α · x)²)``, the
    derivative of ``arctan(π/2 · α · x) / π + 1/2`` (Fang et al., 2021; the surrogate-gradient
    method is reviewed by Neftci, Mostafa and Zenke, 2019). The derivative is bounded by α/2 and
    decays as 1/x², so a very large or very negative membrane potential gives a small, finite
    gradient.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, alpha: float) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        ctx.alpha = alpha
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):  # type: ignore[override]
        (x,) = ctx.saved_tensors
        alpha = ctx.alpha
        surrogate = alpha / 2 / (1 + (math.pi / 2 * alpha * x) ** 2)
        return grad_output * surrogate, None


class LIF(nn.Module):
    """A layer of leaky integrate-and-fire neurons run over T time steps (multi-step mode).

    Each step charges, fires and resets::

        v[t] = β · v[t-1] + I[t]          charge (leaky integration of the input current)
        S[t] = Θ(v[t] − v_threshold)      fire (Heaviside step, surrogate gradient backward)
        v[t] = v[t] − S[t] · v_threshold  reset by subtraction

    Shapes: input current ``[T, B, *neuron_shape]``, membrane ``[B, *neuron_shape]``; returns
    spikes ``[T, B, *neuron_shape]`` and the membrane after the last step of each window,
    ``[windows, B, *neuron_shape]``.

    With ``spiking=False`` the layer is the real-valued twin used for ablation: it outputs
    ``ReLU(I[t])`` and passes the membrane through unchanged, so the same architecture runs with
    ordinary activations.

    Parameters
    ----------
    neuron_shape
        Shape of one sample's neurons, without time and batch axes.
    beta
        Membrane decay per step, in (0, 1).
    v_threshold
        Firing threshold.
    surrogate_alpha
        Steepness α of the arctan surrogate.
    """

    def __init__(
        self,
        neuron_shape: tuple[int, ...],
        *,
        beta: float = 0.5,
        v_threshold: float = 1.0,
        surrogate_alpha: float = 2.0,
        spiking: bool = True,
    ) -> None:
        super().__init__()
        self.neuron_shape = tuple(neuron_shape)
        self.beta = beta
        self.v_threshold = v_threshold
        self.surrogate_alpha = surrogate_alpha
        self.spiking = spiking
        # Neuron-steps of the last forward call, for firing-rate metrics.
        self.last_neuron_steps = 0

    @property
    def state_size(self) -> int:
        return math.prod(self.neuron_shape)

    def forward(
        self, current: torch.Tensor, membrane: torch.Tensor, *, windows: int = 1
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Run all steps; return spikes and the membrane at the end of each of ``windows``.

        The steps split evenly into ``windows`` consecutive windows of one sample; the returned
        membranes have shape ``[windows, B, *neuron_shape]``.
        """
        steps = current.shape[0]
        if steps % windows:
            raise ValueError(f"{steps} time steps do not split into {windows} windows")
        every = steps // windows
        if not self.spiking:
            return torch.relu(current), membrane.unsqueeze(0).expand(windows, *membrane.shape)
        if not torch.is_grad_enabled():
            return self._forward_inference(current, membrane, every)
        spikes, ends = [], []
        v = membrane
        for step, step_current in enumerate(current, start=1):
            v = self.beta * v + step_current
            spike = ArctanSpike.apply(v - self.v_threshold, self.surrogate_alpha)
            # The reset is detached, as in snntorch's default, so the gradient flows through
            # the charge path only; this keeps the surrogate gradient's variance low.
            v = v - spike.detach() * self.v_threshold
            spikes.append(spike)
            if step % every == 0:
                ends.append(v)
        out = torch.stack(spikes)
        self._record_activity(out.detach())
        return out, torch.stack(ends)

    def _forward_inference(
        self, current: torch.Tensor, membrane: torch.Tensor, every: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        # The same charge, fire and reset as forward(), without the autograd function: scoring
        # runs this path for every window, so its per-step overhead matters.
        if kernels.AVAILABLE:
            return self._forward_compiled(current, membrane, every)
        out = torch.empty_like(current)
        ends = torch.empty((current.shape[0] // every, *membrane.shape), dtype=membrane.dtype)
        v = membrane.clone()
        for step, step_current in enumerate(current):
            v.mul_(self.beta).add_(step_current)
            torch.ge(v, self.v_threshold, out=out[step])
            v.sub_(out[step], alpha=self.v_threshold)
            if (step + 1) % every == 0:
                ends[(step + 1) // every - 1] = v
        self._record_activity(out)
        return out, ends

    def _forward_compiled(
        self, current: torch.Tensor, membrane: torch.Tensor, every: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        steps = current.shape[0]
        flat_current = current.detach().reshape(steps, -1).to(torch.float32).contiguous().numpy()
        flat_membrane = membrane.detach().reshape(-1).to(torch.float32).numpy().copy()
        spikes, ends = kernels.lif_scan(
            flat_current, flat_membrane, beta=self.beta, v_threshold=self.v_threshold, every=every
        )
        out = torch.from_numpy(spikes).reshape(current.shape)
        self._record_activity(out)
        return out, torch.from_numpy(ends).reshape(steps // every, *membrane.shape)

    def _record_activity(self, spikes: torch.Tensor) -> None:
        # Kept as a tensor and summed only when a metric reads it, to avoid a sync per call.
        self._last_spikes = spikes
        self.last_neuron_steps = spikes.numel()

    @property
    def last_spike_count(self) -> float:
        spikes = getattr(self, "_last_spikes", None)
        return float(spikes.sum()) if spikes is not None else 0.0

    def extra_repr(self) -> str:
        return (
            f"neuron_shape={self.neuron_shape}, beta={self.beta}, "
            f"v_threshold={self.v_threshold}, spiking={self.spiking}"
        )
