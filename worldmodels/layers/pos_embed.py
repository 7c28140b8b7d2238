"""Factorised positional encodings for a video token grid.

Axis legend: ``T`` frames, ``h w`` token grid, ``N = h * w``, ``D`` width.

The encoding of token ``(t, i, j)`` is ``time[t] + row[i] + col[j]``: learned tables or fixed
sinusoids, each of width ``D``. Factorising keeps the table small (``T + h + w`` rows rather
than ``T * h * w``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

POS_EMBED_KINDS: tuple[str, ...] = ("learned", "sinusoidal")


def sinusoidal_table(length: int, dim: int, base: float = 10000.0) -> Tensor:
    """The fixed sine/cosine table of "Attention is all you need".

    Shapes: returns ``length D``.
    """
    half = dim // 2
    freqs = torch.exp(-math.log(base) * torch.arange(half, dtype=torch.float32) / max(half, 1))
    angles = torch.arange(length, dtype=torch.float32)[:, None] * freqs[None, :]
    table = torch.zeros(length, dim)
    table[:, 0 : 2 * half : 2] = torch.sin(angles)
    table[:, 1 : 2 * half : 2] = torch.cos(angles)
    return table


class FactorizedPosEmbed(nn.Module):
    """Positional encoding of ``(t, i, j)`` as the sum of a time, a row and a column vector.

    Shapes: ``forward(num_frames, offset=0) -> T N D`` for frames ``offset .. offset + T - 1``.

    Args:
        dim: width ``D``.
        max_frames: the most frames ``T`` it can encode.
        grid: token grid ``(h, w)``.
        kind: ``"learned"`` (tables initialised with std 0.02) or ``"sinusoidal"`` (fixed).
        temporal: encode the frame index too; ``False`` for a model whose attention carries time
            itself (rotary temporal positions): then any number of frames is accepted.
    """

    def __init__(
        self, dim: int, max_frames: int, grid: tuple[int, int] | list[int], kind: str = "learned",
        temporal: bool = True,
    ) -> None:
        super().__init__()
        if kind not in POS_EMBED_KINDS:
            raise ValueError(f"pos_embed kind {kind!r} is not one of {POS_EMBED_KINDS}.")
        h, w = int(grid[0]), int(grid[1])
        self.max_frames, self.grid, self.kind, self.temporal = max_frames, (h, w), kind, temporal
        self.time: Tensor | None
        if kind == "learned":
            self.time = nn.Parameter(torch.randn(max_frames, dim) * 0.02) if temporal else None
            self.row = nn.Parameter(torch.randn(h, dim) * 0.02)
            self.col = nn.Parameter(torch.randn(w, dim) * 0.02)
        else:
            self.register_buffer("time", sinusoidal_table(max_frames, dim) if temporal else None, persistent=False)
            self.register_buffer("row", sinusoidal_table(h, dim), persistent=False)
            self.register_buffer("col", sinusoidal_table(w, dim), persistent=False)

    def forward(self, num_frames: int, offset: int = 0) -> Tensor:
        """Encodings of frames ``offset .. offset + num_frames - 1``: ``T N D``.

        Raises:
            ValueError: when the frames reach beyond ``max_frames``.
        """
        space = (self.row[:, None, :] + self.col[None, :, :]).flatten(0, 1)
        if self.time is None:
            return space[None, :, :].expand(num_frames, -1, -1)
        if offset + num_frames > self.max_frames:
            raise ValueError(
                f"Asked for positions of frames {offset}..{offset + num_frames - 1} but this model encodes at most "
                f"{self.max_frames} frames (max_frames/num_frames in its config); use shorter clips or build "
                "the model with a larger num_frames."
            )
        time = self.time[offset : offset + num_frames]
        return time[:, None, :] + space[None, :, :]
