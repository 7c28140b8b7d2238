"""Cutting frames into patches and back, and the linear patch embedding.

Axis legend: ``B`` batch, ``T`` frames, ``C H W`` pixels, ``p`` patch side, ``h w`` patch grid,
``N = h * w``, ``P = C * p * p`` values per patch, ``D`` width.

Frames whose sides are not multiples of the patch size are zero-padded at the bottom and right
(the paper's 160x90 frames with patch 4 give a 23x40 grid); :func:`unpatchify` crops the padding.
"""

from __future__ import annotations

import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn


def image_hw(size: int | list[int] | tuple[int, int]) -> tuple[int, int]:
    """``(H, W)`` of an image size given as one int (square) or a pair ``[H, W]``.

    Raises:
        ValueError: for anything else.
    """
    if isinstance(size, int):
        return size, size
    if isinstance(size, (list, tuple)) and len(size) == 2:
        return int(size[0]), int(size[1])
    raise ValueError(f"image_size must be an int or [height, width], got {size!r}.")


def patch_grid(height: int, width: int, patch_size: int) -> tuple[int, int]:
    """The patch grid ``(h, w)`` of a ``height x width`` frame (sides rounded up)."""
    return -(-height // patch_size), -(-width // patch_size)


def patchify(video: Tensor, patch_size: int) -> Tensor:
    """Cut every frame into non-overlapping patches.

    Shapes: ``B T C H W -> B T h w P`` with ``P = C * p * p``.
    """
    height, width = video.shape[-2:]
    h, w = patch_grid(height, width, patch_size)
    pad_h, pad_w = h * patch_size - height, w * patch_size - width
    if pad_h or pad_w:
        video = F.pad(video, (0, pad_w, 0, pad_h))
    return rearrange(video, "b t c (h p) (w q) -> b t h w (c p q)", p=patch_size, q=patch_size)


def unpatchify(patches: Tensor, patch_size: int, height: int, width: int) -> Tensor:
    """Reassemble frames from patches, cropping any padding.

    Shapes: ``B T h w P -> B T C H W``.
    """
    frames = rearrange(patches, "b t h w (c p q) -> b t c (h p) (w q)", p=patch_size, q=patch_size)
    return frames[..., :height, :width]


class PatchEmbed(nn.Module):
    """Linear embedding of non-overlapping patches (a strided convolution written as a matmul).

    The projection is Xavier-initialised (not with the small transformer std), so that the
    contrast between patches is not attenuated at the input of a model.

    Shapes: ``forward(video: B T C H W) -> B T N D``.

    Args:
        in_channels: ``C``.
        patch_size: ``p``.
        dim: output width ``D``.
    """

    def __init__(self, in_channels: int, patch_size: int, dim: int) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Linear(in_channels * patch_size * patch_size, dim)
        nn.init.xavier_uniform_(self.proj.weight)  # unit-gain: pixel contrasts must survive into the stream
        nn.init.zeros_(self.proj.bias)

    def forward(self, video: Tensor) -> Tensor:
        """``B T C H W -> B T N D``."""
        patches = patchify(video, self.patch_size)
        b, t, h, w, p = patches.shape
        tokens = self.proj(patches.reshape(-1, p))
        return tokens.reshape(b, t, h * w, -1)
