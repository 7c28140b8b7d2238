"""Write played or generated worlds to GIF or MP4 files.

Axis legend: ``B`` batch, ``T`` frames, ``C H W`` pixels.

All encoding goes through :mod:`worldmodels.data.video_io` (Pillow for GIF, PyAV for MP4); this
module only converts what the library produces (float tensors, uint8 arrays, batches) into
``T H W 3`` uint8 frames, lays a batch out as a grid and picks the writer by file suffix.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
import torch
from torch import Tensor

from worldmodels.data.video_io import rgb_uint8_frames, write_gif, write_video

__all__ = [
    "GIF_SUFFIXES",
    "VIDEO_SUFFIXES",
    "output_format",
    "save_generation",
    "save_rollout",
    "to_uint8_frames",
    "video_grid",
]

GIF_SUFFIXES: frozenset[str] = frozenset({".gif"})
"""Suffixes written as animated GIF (Pillow)."""

VIDEO_SUFFIXES: frozenset[str] = frozenset({".mp4", ".m4v", ".mov"})
"""Suffixes written as H.264 video (PyAV)."""

VideoLike: TypeAlias = "np.ndarray | Tensor | list[Any]"


def to_uint8_frames(video: VideoLike) -> np.ndarray:
    """Frames of one video as ``T H W 3`` uint8.

    Accepts a list of ``H W 3`` uint8 frames (what :class:`~worldmodels.envs.WorldModelEnv`
    returns), a ``T H W C`` uint8 array, or a float tensor ``T C H W`` / ``1 T C H W`` in ``[0, 1]``
    (what :meth:`~worldmodels.WorldModel.generate` returns for one prompt).

    Raises:
        ValueError: for another shape or dtype (a batch of several videos goes to :func:`video_grid`).

    Shapes:
        returns ``T H W 3``.
    """
    if isinstance(video, list):
        if not video:
            raise ValueError("Cannot write an empty list of frames; play or generate at least one frame.")
        return rgb_uint8_frames(np.stack([np.asarray(frame) for frame in video]), "to_uint8_frames")
    if isinstance(video, Tensor):
        tensor = video.detach()
        if tensor.ndim == 5:
            if tensor.shape[0] != 1:
                raise ValueError(
                    f"Got a batch of {tensor.shape[0]} videos (B T C H W); lay it out with video_grid() or "
                    "save_generation(), or pick one with video[i]."
                )
            tensor = tensor[0]
        if tensor.ndim != 4 or tensor.shape[1] not in (1, 3):
            raise ValueError(f"A video tensor must be T C H W with C in (1, 3), got shape {tuple(video.shape)}.")
        if tensor.is_floating_point():
            tensor = (tensor.float().clamp(0.0, 1.0) * 255.0).round().to(torch.uint8)
        elif tensor.dtype != torch.uint8:
            raise ValueError(f"A video tensor must be float in [0, 1] or uint8, got dtype {tensor.dtype}.")
        if tensor.shape[1] == 1:
            tensor = tensor.expand(-1, 3, -1, -1)
        return np.ascontiguousarray(tensor.permute(0, 2, 3, 1).cpu().numpy())
    return rgb_uint8_frames(video, "to_uint8_frames")


def video_grid(video: Tensor, nrow: int | None = None, padding: int = 2, pad_value: float = 0.0) -> np.ndarray:
    """Lay a batch of videos out as one video of a grid of tiles.

    Args:
        video: ``B T C H W`` float in ``[0, 1]`` (e.g. :meth:`~worldmodels.WorldModel.generate` output).
        nrow: tiles per row (default: ``ceil(sqrt(B))``).
        padding: pixels between tiles and around the grid.
        pad_value: grey level of the padding, in ``[0, 1]``.

    Returns:
        ``T H' W' 3`` uint8 frames.

    Shapes:
        ``B T C H W`` -> ``T H' W' 3`` with ``H' = rows * (H + padding) + padding``.
    """
    if not isinstance(video, Tensor) or video.ndim != 5:
        shape = tuple(video.shape) if hasattr(video, "shape") else type(video).__name__
        raise ValueError(f"video_grid expects a B T C H W tensor, got {shape}.")
    b, t, c, h, w = video.shape
    if b < 1 or t < 1:
        raise ValueError(f"video_grid needs at least one video of one frame, got shape {tuple(video.shape)}.")
    ncol = nrow or math.ceil(math.sqrt(b))
    rows = math.ceil(b / ncol)
    video = video.detach().float().clamp(0.0, 1.0)
    if c == 1:
        video = video.expand(-1, -1, 3, -1, -1)
    grid = torch.full((t, 3, rows * (h + padding) + padding, ncol * (w + padding) + padding), float(pad_value))
    for i in range(b):
        top, left = padding + (i // ncol) * (h + padding), padding + (i % ncol) * (w + padding)
        grid[:, :, top : top + h, left : left + w] = video[i].cpu()
    return to_uint8_frames(grid)


def _upscale(frames: np.ndarray, scale: int) -> np.ndarray:
    if scale == 1:
        return frames
    return np.ascontiguousarray(frames.repeat(scale, axis=1).repeat(scale, axis=2))


def output_format(path: str | os.PathLike[str]) -> str:
    """``"gif"`` or ``"video"``: the format :func:`save_rollout` writes for this file name.

    Raises:
        ValueError: for a suffix that is neither (the message lists the supported ones).

    Shapes:
        not applicable.
    """
    suffix = Path(path).suffix.lower()
    if suffix in GIF_SUFFIXES:
        return "gif"
    if suffix in VIDEO_SUFFIXES:
        return "video"
    raise ValueError(
        f"Cannot tell the format of {path}: name it with one of "
        f"{', '.join(sorted(GIF_SUFFIXES | VIDEO_SUFFIXES))} (e.g. run.gif or run.mp4)."
    )


def save_rollout(video: VideoLike, path: str | os.PathLike[str], fps: float = 15.0, *, scale: int = 1) -> Path:
    """Write a rollout to ``path``: GIF for ``.gif``, H.264 for ``.mp4`` / ``.m4v`` / ``.mov``.

    Args:
        video: frames (see :func:`to_uint8_frames`).
        path: destination; its suffix picks the format.
        fps: frames per second.
        scale: integer nearest-neighbour upscaling (64x64 worlds are small on screen).

    Returns:
        The path written.

    Raises:
        ValueError: for an unsupported suffix, ``scale < 1`` or malformed frames.

    Shapes:
        ``video``: ``T H W 3`` uint8, a list of ``H W 3`` frames, or ``T C H W`` float.
    """
    path = Path(path)
    kind = output_format(path)
    if scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale}.")
    frames = _upscale(to_uint8_frames(video), int(scale))
    if path.parent and not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "gif":
        return write_gif(path, frames, fps=fps)
    return write_video(path, frames, fps=fps)


def save_generation(
    video: Tensor,
    path: str | os.PathLike[str],
    fps: float = 15.0,
    *,
    nrow: int | None = None,
    padding: int = 2,
    scale: int = 1,
) -> Path:
    """Write :meth:`~worldmodels.WorldModel.generate` output to a file; a batch becomes a grid.

    Args:
        video: ``B T C H W`` float in ``[0, 1]``.
        path: ``.gif`` or ``.mp4`` (see :func:`save_rollout`).
        fps: frames per second.
        nrow: tiles per row of the grid (see :func:`video_grid`).
        padding: pixels between tiles (a single video is written without padding).
        scale: integer upscaling.

    Returns:
        The path written.

    Shapes:
        ``B T C H W``.
    """
    if isinstance(video, Tensor) and video.ndim == 5 and video.shape[0] == 1:
        return save_rollout(video[0], path, fps, scale=scale)
    return save_rollout(video_grid(video, nrow=nrow, padding=padding), path, fps, scale=scale)
