"""Rotary position embeddings (RoPE, Su et al., 2021) for attention over frames.

Axis legend: ``S`` sequences, ``H`` heads, ``L`` positions, ``E`` head width (even), ``F = E / 2``
channel pairs.

A query at position ``i`` and a key at position ``j`` are rotated by angles proportional to ``i``
and ``j``; their dot product then depends on ``i - j`` only. Keys can therefore be cached once,
rotated at the frame index they were computed for, and stay valid however far a sliding window
has moved since: nothing is re-encoded when the oldest frame drops out. Channels ``2f, 2f + 1``
form pair ``f`` (rotated as one complex number, a single multiplication). The angles are computed
in float64 from integer positions, so a stream can run for millions of frames without the
rotation drifting.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class RotaryEmbedding(nn.Module):
    """The phases of rotary position embeddings for one head width.

    Shapes: ``phases(positions: ...) -> ... F`` complex64.

    Args:
        head_dim: ``E``, the width of one attention head (must be even).
        base: wavelength base; pair ``f`` turns by ``base^(-2f/E)`` radians per position.
    """

    def __init__(self, head_dim: int, base: float = 10000.0) -> None:
        super().__init__()
        if head_dim % 2:
            raise ValueError(f"Rotary embeddings rotate pairs of channels: head_dim must be even, got {head_dim}.")
        self.head_dim, self.base = int(head_dim), float(base)
        exponent = torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim
        self.inv_freq: Tensor
        self.register_buffer("inv_freq", base**-exponent, persistent=False)

    def phases(self, positions: Tensor, real: bool = False) -> Tensor:
        """Unit complex numbers ``exp(i * position * freq)``: integer ``positions`` (``...``) -> ``... F`` complex64.

        With ``real``, their real view ``... F 2`` (cosine, sine) float32, computed without complex
        numbers (what :func:`torch.compile` generates code for).
        """
        angles = positions.to(torch.float64)[..., None] * self.inv_freq.to(device=positions.device)
        if real:
            return torch.stack([angles.cos(), angles.sin()], dim=-1).to(torch.float32)
        return torch.polar(torch.ones_like(angles), angles).to(torch.complex64)


def apply_rotary(x: Tensor, phases: Tensor) -> Tensor:
    """Rotate each channel pair of ``x`` by ``phases`` (broadcast against ``x``'s leading axes).

    ``phases`` are complex (:meth:`RotaryEmbedding.phases`: one complex multiplication, the
    fastest in eager mode) or their real view ``torch.view_as_real(phases)``, ``... F 2``
    (cosine, sine), rotated with real arithmetic: what :func:`torch.compile` can generate code
    for (inductor has no complex kernels). Both give the same result to float rounding.

    Shapes: ``x: ... E``, ``phases``: broadcastable to ``... F`` (complex) or ``... F 2`` (real)
    -> ``... E`` in ``x``'s dtype.
    """
    if phases.is_complex():
        pairs = torch.view_as_complex(x.float().reshape(*x.shape[:-1], -1, 2))
        return torch.view_as_real(pairs * phases).flatten(-2).to(x.dtype)
    pairs_F2 = x.float().unflatten(-1, (-1, 2))
    a, b = pairs_F2[..., 0], pairs_F2[..., 1]
    cos, sin = phases[..., 0], phases[..., 1]
    return torch.stack([a * cos - b * sin, a * sin + b * cos], dim=-1).flatten(-2).to(x.dtype)
