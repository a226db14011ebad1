"""A stateful Spikformer encoder for windows of a multichannel stream.

Spikformer (Zhou et al., ICLR 2023) turns its input into spike-form tokens with spiking patch
splitting, then mixes them with spiking self-attention, in which Q, K and V are spike tensors and
the attention map ``Q·Kᵀ·V`` needs no softmax because every term is non-negative. Here the
patches run along the time axis of a window and the channels are the stream's features.

The encoder is stateful across windows: every LIF layer's membrane potential after the last
simulation step of a window is returned, and the caller passes it back in with the next window of
the same stream key. All membranes of one sample are packed in one flat vector of
:attr:`Spikformer.state_size` floats, so per-key state can be stacked into a batch in any order.

References
----------
Zhou, Z., Zhu, Y., He, C., Wang, Y., Yan, S., Tian, Y. and Yuan, L. (2023). Spikformer: When
Spiking Neural Network Meets Transformer. ICLR.
"""

from __future__ import annotations

import torch
from torch import nn

from spikewatch.spiking.neurons import LIF

#: Scale of the attention map; Spikformer uses 0.125 because Q·Kᵀ·V of spikes grows with the
#: number of tokens and head width, and no softmax normalises it.
ATTENTION_SCALE = 0.125
#: Spikformer fires the attention output at half the usual threshold, because the scaled
#: attention map is small.
ATTENTION_V_THRESHOLD = 0.5


class _LinearBN(nn.Module):
    """Bias-free linear map followed by batch norm over the feature axis of ``[..., features]``."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, out_features, bias=False)
        # affine=False: BN's shift would be a bias term, which Deep SVDD forbids.
        self.norm = nn.BatchNorm1d(out_features, affine=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        y = self.norm(self.linear(x.reshape(-1, shape[-1])))
        return y.reshape(*shape[:-1], -1)


class Spikformer(nn.Module):
    """Spiking patch splitting, spiking self-attention blocks and a mean readout.

    Shapes: input ``[T, B, C_in, L]`` (time steps, batch, input channels, window length),
    membrane state ``[B, state_size]``; returns features ``[B, embed_dim]`` and the new state.

    Parameters
    ----------
    in_channels
        Input channels C_in (the stream's channels, doubled by send-on-delta coding).
    window_length
        Records per window L; ``patch_size`` must divide it.
    embed_dim
        Token width D.
    patch_size
        Records per token P, so a window becomes ``L / P`` tokens.
    num_heads
        Attention heads; must divide D.
    depth
        Number of attention blocks.
    mlp_ratio
        Hidden width of a block's MLP, as a multiple of D.
    spiking
        False builds the real-valued twin: same layers, ReLU in place of LIF neurons.
    reconstruct_channels
        Channels C of the scaled window that :meth:`reconstruction_loss` reconstructs.
    """

    def __init__(
        self,
        in_channels: int,
        window_length: int,
        *,
        embed_dim: int = 32,
        patch_size: int = 4,
        num_heads: int = 4,
        depth: int = 1,
        mlp_ratio: float = 2.0,
        beta: float = 0.5,
        v_threshold: float = 1.0,
        surrogate_alpha: float = 2.0,
        spiking: bool = True,
        reconstruct_channels: int | None = None,
    ) -> None:
        super().__init__()
        if window_length % patch_size:
            raise ValueError(
                f"patch_size = {patch_size} must divide window_length = {window_length}"
            )
        if embed_dim % num_heads:
            raise ValueError(f"num_heads = {num_heads} must divide embed_dim = {embed_dim}")
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.num_tokens = window_length // patch_size
        hidden = max(1, round(embed_dim * mlp_ratio))
        D, N = embed_dim, self.num_tokens

        def lif(shape: tuple[int, ...], threshold: float = v_threshold) -> LIF:
            return LIF(
                shape,
                beta=beta,
                v_threshold=threshold,
                surrogate_alpha=surrogate_alpha,
                spiking=spiking,
            )

        # Spiking patch splitting: a convolution over the window's time axis lifts the channels
        # to D features, a second one with stride P cuts patches, a third adds a relative
        # position embedding.
        self.patch_conv = nn.Conv1d(in_channels, D, 3, padding=1, bias=False)
        self.patch_norm = nn.BatchNorm1d(D, affine=False)
        self.patch_lif = lif((D, window_length))
        self.token_conv = nn.Conv1d(D, D, patch_size, stride=patch_size, bias=False)
        self.token_norm = nn.BatchNorm1d(D, affine=False)
        self.token_lif = lif((D, N))
        self.position_conv = nn.Conv1d(D, D, 3, padding=1, bias=False)
        self.position_norm = nn.BatchNorm1d(D, affine=False)
        self.position_lif = lif((D, N))

        self.blocks = nn.ModuleList()
        for _ in range(depth):
            block = nn.Module()
            block.q, block.k, block.v = _LinearBN(D, D), _LinearBN(D, D), _LinearBN(D, D)
            block.q_lif, block.k_lif, block.v_lif = lif((N, D)), lif((N, D)), lif((N, D))
            block.attention_lif = lif((N, D), ATTENTION_V_THRESHOLD)
            block.projection = _LinearBN(D, D)
            block.projection_lif = lif((N, D))
            block.mlp_in = _LinearBN(D, hidden)
            block.mlp_in_lif = lif((N, hidden))
            block.mlp_out = _LinearBN(hidden, D)
            block.mlp_out_lif = lif((N, D))
            self.blocks.append(block)

        # A bias-free linear decoder from the features back to the scaled window. Training it
        # with the detector keeps the features informative, because a one-class objective alone
        # is minimised by an encoder that maps every window to the same point. Deep SVDD's
        # authors prevent that by autoencoder pretraining; a joint reconstruction term does the
        # same job online.
        self.reconstruct_shape = (window_length, reconstruct_channels or in_channels)
        self.feature_dim = D
        self.decoder = nn.Linear(self.feature_dim, window_length * self.reconstruct_shape[1], bias=False)

        self.lifs = [module for module in self.modules() if isinstance(module, LIF)]
        self.state_size = sum(layer.state_size for layer in self.lifs)

    def initial_state(self, batch_size: int) -> torch.Tensor:
        """Resting membranes (all zero) for ``batch_size`` new keys."""
        return torch.zeros(batch_size, self.state_size)

    def firing_rate(self) -> float:
        """Fraction of neuron-steps that spiked in the last forward call, over every LIF layer."""
        steps = sum(layer.last_neuron_steps for layer in self.lifs)
        return sum(layer.last_spike_count for layer in self.lifs) / steps if steps else 0.0

    def reconstruction_loss(self, features: torch.Tensor, windows: torch.Tensor) -> torch.Tensor:
        """Mean squared error of decoding ``features [B, ≥D]`` back to ``windows [B, L, C]``.

        Targets are clipped to ±10 standard deviations so one extreme window cannot dominate.
        """
        target = windows.clamp(-10.0, 10.0).flatten(1)
        # Features beyond feature_dim (amplitude summaries) are not the encoder's to decode.
        return ((self.decoder(features[..., : self.feature_dim]) - target) ** 2).mean()

    def _conv_bn(self, conv: nn.Conv1d, norm: nn.BatchNorm1d, x: torch.Tensor) -> torch.Tensor:
        steps, batch = x.shape[:2]
        y = norm(conv(x.flatten(0, 1)))
        return y.reshape(steps, batch, *y.shape[1:])

    def _attention(self, block: nn.Module, x: torch.Tensor, run) -> torch.Tensor:
        steps, batch, tokens, width = x.shape
        heads = self.num_heads

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(steps, batch, tokens, heads, width // heads).transpose(2, 3)

        q = split(run(block.q_lif, block.q(x)))
        k = split(run(block.k_lif, block.k(x)))
        v = split(run(block.v_lif, block.v(x)))
        # No softmax: Q, K and V are non-negative spike counts, so the map needs only a scale.
        mixed = (q @ k.transpose(-2, -1)) @ v * ATTENTION_SCALE
        mixed = mixed.transpose(2, 3).reshape(steps, batch, tokens, width)
        mixed = run(block.attention_lif, mixed)
        return run(block.projection_lif, block.projection(mixed))

    def forward(
        self, x: torch.Tensor, state: torch.Tensor, *, windows: int = 1
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode ``windows`` consecutive windows of each sample, chained along time.

        ``x`` is ``[windows · T, B, C_in, L]``: the T steps of a sample's first window, then
        those of its next window, and so on. The membranes carry from one window to the next
        exactly as if the windows were encoded one call at a time, so a key's backlog of
        windows costs one call. Returns features ``[windows, B, D]`` and the membrane state
        after each window, ``[windows, B, state_size]``.
        """
        if state.shape != (x.shape[1], self.state_size):
            raise ValueError(
                f"membrane state has shape {tuple(state.shape)}, expected "
                f"({x.shape[1]}, {self.state_size}) for a batch of {x.shape[1]}"
            )
        membranes = list(torch.split(state, [layer.state_size for layer in self.lifs], dim=1))
        new_membranes: dict[int, torch.Tensor] = {}
        position = {id(layer): index for index, layer in enumerate(self.lifs)}

        def run(layer: LIF, current: torch.Tensor) -> torch.Tensor:
            index = position[id(layer)]
            start = membranes[index].reshape(-1, *layer.neuron_shape)
            spikes, ends = layer(current, start, windows=windows)
            new_membranes[index] = ends.reshape(windows, ends.shape[1], -1)
            return spikes

        x = run(self.patch_lif, self._conv_bn(self.patch_conv, self.patch_norm, x))
        x = run(self.token_lif, self._conv_bn(self.token_conv, self.token_norm, x))
        x = x + run(self.position_lif, self._conv_bn(self.position_conv, self.position_norm, x))
        tokens = x.transpose(2, 3)  # [T, B, N, D]
        for block in self.blocks:
            tokens = tokens + self._attention(block, tokens, run)
            hidden = run(block.mlp_in_lif, block.mlp_in(tokens))
            tokens = tokens + run(block.mlp_out_lif, block.mlp_out(hidden))

        steps, batch = tokens.shape[:2]
        per_window = tokens.reshape(windows, steps // windows, batch, *tokens.shape[2:])
        features = per_window.mean(dim=(1, 3))
        new_state = torch.cat([new_membranes[index] for index in range(len(self.lifs))], dim=2)
        return features, new_state
