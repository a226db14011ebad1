"""Synaptic operations and an energy estimate per window for the Spikformer encoder.

A spiking layer does work only when a spike arrives: each input spike adds one weight to each
neuron it connects to, an accumulate (AC) per synapse. A real-valued layer multiplies and adds
every input into every output, a multiply-accumulate (MAC). Following the Spikformer paper, the
estimate counts

* synaptic operations (SOPs): for every layer fed by spikes, the spikes it received times the
  number of outputs each input feeds (its fan-out), at 0.9 pJ per AC;
* MACs of the first layer, which receives real values under direct coding, at 4.6 pJ each.

0.9 pJ and 4.6 pJ are the 32-bit floating-point AC and MAC energies of a 45 nm process that
Spikformer's authors use (from Horowitz, ISSCC 2014). Counts come from the spikes that the LIF
layers recorded in the last forward call (``LIF.last_spike_count``), so the figure reflects
the windows just scored. It is an estimate of the arithmetic on neuromorphic hardware: memory
traffic, the leak and reset of the neurons, batch norm (folded into the weights at inference)
and the 0.125 attention scale (a shift) are not counted.

The real-valued twin (``encoder.kind = "ann"``) is estimated as all MACs, counted from the layer
shapes, for comparison.

References
----------
Zhou, Z., Zhu, Y., He, C., Wang, Y., Yan, S., Tian, Y. and Yuan, L. (2023). Spikformer: When
Spiking Neural Network Meets Transformer. ICLR.

Horowitz, M. (2014). Computing's energy problem (and what we can do about it). ISSCC, 10–14.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from spikewatch.spiking.spikformer import Spikformer

#: Energy of one accumulate, in joules (32-bit float, 45 nm).
JOULES_PER_SYNAPTIC_OPERATION = 0.9e-12
#: Energy of one multiply-accumulate, in joules (32-bit float, 45 nm).
JOULES_PER_MULTIPLY_ACCUMULATE = 4.6e-12


@dataclass(frozen=True, slots=True)
class EnergyEstimate:
    """Operations and estimated energy of encoding one window."""

    synaptic_operations: float
    multiply_accumulates: float

    @property
    def joules(self) -> float:
        return (
            self.synaptic_operations * JOULES_PER_SYNAPTIC_OPERATION
            + self.multiply_accumulates * JOULES_PER_MULTIPLY_ACCUMULATE
        )


NO_ENCODER = EnergyEstimate(0.0, 0.0)


def _conv_fan_out(conv: nn.Conv1d) -> float:
    """Outputs one input position feeds: every output channel, at kernel / stride positions."""
    return conv.out_channels * conv.kernel_size[0] / conv.stride[0]


def _conv_macs(conv: nn.Conv1d, output_length: int) -> float:
    return output_length * conv.out_channels * conv.in_channels * conv.kernel_size[0]


def spiking_energy(
    encoder: Spikformer, *, windows: int, input_spikes: float | None = None
) -> EnergyEstimate:
    """Estimate per window from the spikes of the last forward call over ``windows`` windows.

    ``input_spikes`` is the number of input spikes in that call when the spike encoding sends
    spikes (rate or send-on-delta coding), so that the first layer also does SOPs. None means
    direct coding, whose real-valued input costs the first layer MACs at every time step.
    """
    if windows < 1:
        raise ValueError(f"windows = {windows} must be at least 1")
    tokens = encoder.num_tokens

    def count(layer) -> float:
        return layer.last_spike_count / windows

    operations = 0.0
    macs = 0.0
    first = encoder.patch_conv
    if input_spikes is None:
        steps_per_window = encoder.patch_lif.last_neuron_steps / windows / encoder.patch_lif.state_size
        macs = steps_per_window * _conv_macs(first, encoder.patch_lif.neuron_shape[-1])
    else:
        operations += input_spikes / windows * _conv_fan_out(first)
    operations += count(encoder.patch_lif) * _conv_fan_out(encoder.token_conv)
    operations += count(encoder.token_lif) * _conv_fan_out(encoder.position_conv)
    # The blocks' input is the sum of two spike tensors; every unit of it is one accumulate.
    events = count(encoder.token_lif) + count(encoder.position_lif)
    for block in encoder.blocks:
        width = block.q.linear.out_features
        operations += events * 3 * width  # Q, K and V projections
        # (Q·Kᵀ)·V: each query spike adds a key column over the N tokens, and each value spike
        # adds an attention column over the N tokens.
        operations += (count(block.q_lif) + count(block.v_lif)) * tokens
        operations += count(block.attention_lif) * block.projection.linear.out_features
        events += count(block.projection_lif)
        operations += events * block.mlp_in.linear.out_features
        operations += count(block.mlp_in_lif) * block.mlp_out.linear.out_features
        events += count(block.mlp_out_lif)
    operations += events  # the mean readout adds each unit once
    return EnergyEstimate(operations, macs)


def dense_energy(encoder: Spikformer, *, time_steps: int) -> EnergyEstimate:
    """All-MAC estimate per window of the real-valued twin, from the layer shapes."""
    length = encoder.patch_lif.neuron_shape[-1]
    tokens = encoder.num_tokens
    macs = _conv_macs(encoder.patch_conv, length)
    macs += _conv_macs(encoder.token_conv, tokens) + _conv_macs(encoder.position_conv, tokens)
    for block in encoder.blocks:
        width = block.q.linear.out_features
        hidden = block.mlp_in.linear.out_features
        macs += tokens * width * width * 4  # Q, K, V and the output projection
        macs += 2 * tokens * tokens * width  # Q·Kᵀ and its product with V
        macs += 2 * tokens * width * hidden  # the MLP
    return EnergyEstimate(0.0, float(time_steps * macs))
