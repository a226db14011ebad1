"""Spiking neural network layers: LIF neurons and the Spikformer encoder."""
