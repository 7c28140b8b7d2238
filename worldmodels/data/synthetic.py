"""A seeded moving-sprite world with true actions: test and tutorial data that needs no download.

One controllable square moves on a textured background under five actions (stay, left,
right, up, down); an optional second square drifts on its own, so not every change in a frame
is caused by the action. Every clip carries the true actions, which is what evaluation of
latent actions needs.

Axis legend: ``N`` clips, ``T`` frames, ``C H W`` pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from worldmodels.data.clips import ImageSize, as_hw, resize_video

ACTION_NAMES: tuple[str, ...] = ("stay", "left", "right", "up", "down")
"""The true actions of the sprite world, in index order."""

_MOVES = np.array([(0, 0), (0, -1), (0, 1), (-1, 0), (1, 0)], dtype=np.int64)  # (dy, dx) per action


@dataclass
class SpriteClips:
    """Clips of the sprite world.

    Attributes:
        video: ``N T C H W`` float32 in ``[0, 1]``.
        actions: ``N T-1`` int64 true actions, entry ``t`` leads from frame ``t`` to ``t + 1``.
    """

    video: Tensor
    actions: Tensor

    def frames_uint8(self) -> np.ndarray:
        """The video as ``N T H W C`` uint8 (the on-disk layout of recorded shards)."""
        return (self.video.permute(0, 1, 3, 4, 2).numpy() * 255).round().astype(np.uint8)


def moving_sprites(
    num_clips: int,
    num_frames: int = 8,
    image_size: int = 32,
    *,
    sprite_size: int | None = None,
    speed: int | None = None,
    distractor: bool = True,
    seed: int = 0,
) -> SpriteClips:
    """Generate clips of a controllable sprite with random true actions.

    Args:
        num_clips: ``N``.
        num_frames: ``T`` frames per clip (``T - 1`` actions).
        image_size: ``H = W`` in pixels.
        sprite_size: side of the controllable square (default ``image_size // 6``, at least 2).
        speed: pixels moved per action (default equal to ``sprite_size // 2``, at least 1).
        distractor: add a second square that drifts regardless of the action.
        seed: seed of the generator (same seed, same clips).

    Returns:
        :class:`SpriteClips` with ``video`` ``N T 3 H W`` and ``actions`` ``N T-1``.

    Example:
        >>> clips = moving_sprites(2, num_frames=4, image_size=16)
        >>> tuple(clips.video.shape), tuple(clips.actions.shape)
        ((2, 4, 3, 16, 16), (2, 3))
    """
    if num_clips < 1 or num_frames < 1 or image_size < 8:
        raise ValueError(
            f"moving_sprites needs num_clips >= 1, num_frames >= 1 and image_size >= 8; got "
            f"{num_clips}, {num_frames}, {image_size}."
        )
    rng = np.random.default_rng(seed)
    size = sprite_size or max(2, image_size // 6)
    step = speed or max(1, size // 2)
    lim = image_size - size
    video = np.zeros((num_clips, num_frames, image_size, image_size, 3), dtype=np.float32)
    actions = rng.integers(0, len(ACTION_NAMES), size=(num_clips, max(num_frames - 1, 0)))
    yy, xx = np.mgrid[0:image_size, 0:image_size]
    for n in range(num_clips):
        tint = rng.uniform(0.1, 0.35, size=3).astype(np.float32)
        background = tint * (0.8 + 0.2 * ((yy // 4 + xx // 4) % 2))[..., None]
        color = rng.uniform(0.7, 1.0, size=3).astype(np.float32)
        pos = rng.integers(0, lim + 1, size=2)
        d_pos = rng.integers(0, lim + 1, size=2)
        d_vel = rng.choice([-1, 1], size=2)
        for t in range(num_frames):
            if t > 0:
                pos = np.clip(pos + _MOVES[actions[n, t - 1]] * step, 0, lim)
                d_vel = np.where((d_pos + d_vel < 0) | (d_pos + d_vel > lim), -d_vel, d_vel)
                d_pos = d_pos + d_vel
            frame = background.copy()
            if distractor:
                frame[d_pos[0] : d_pos[0] + size, d_pos[1] : d_pos[1] + size] = (0.2, 0.5, 0.9)
            frame[pos[0] : pos[0] + size, pos[1] : pos[1] + size] = color
            video[n, t] = frame
    video_t = torch.from_numpy(video).permute(0, 1, 4, 2, 3).contiguous()
    return SpriteClips(video=video_t, actions=torch.from_numpy(actions).long())


class SyntheticClipDataset(Dataset):
    """Clips of the seeded moving-sprite world (:func:`~worldmodels.data.synthetic.moving_sprites`).

    Each item is generated on demand from ``(seed, index)``, so the data set costs no memory,
    needs no file, and item ``i`` is the same on every call and in every worker. Items have the
    same keys as :class:`ClipDataset`'s, with the sprite world's five true actions.

    Args:
        num_clips: number of clips (``len()``).
        num_frames: ``T``.
        image_size: ``S`` or ``(H, W)``; non-square sizes are rendered square and resized.
        distractor: add the drifting second square.
        seed: base seed.

    Example:
        >>> ds = SyntheticClipDataset(4, num_frames=5, image_size=16)
        >>> tuple(ds[0]["video"].shape), tuple(ds[0]["actions"].shape)
        ((5, 3, 16, 16), (4,))

    Shapes:
        item ``video`` ``T C H W`` float32 in ``[0, 1]``, ``actions`` ``T-1`` int64.
    """

    num_actions = 5

    def __init__(
        self,
        num_clips: int = 256,
        num_frames: int = 8,
        image_size: ImageSize = 32,
        *,
        distractor: bool = True,
        seed: int = 0,
    ) -> None:
        if num_clips < 1:
            raise ValueError(f"SyntheticClipDataset needs num_clips >= 1, got {num_clips}.")
        self.num_clips = num_clips
        self.num_frames = num_frames
        self.image_size = as_hw(image_size)
        self.distractor = distractor
        self.seed = seed

    def __len__(self) -> int:
        return self.num_clips

    def __getitem__(self, index: int) -> dict[str, Any]:
        if index < 0:
            index += self.num_clips
        if not 0 <= index < self.num_clips:
            raise IndexError(f"clip index {index} out of range for {self.num_clips} synthetic clips.")
        assert self.image_size is not None
        side = max(self.image_size)
        item_seed = int(np.random.SeedSequence([self.seed, index]).generate_state(1)[0])
        clips = moving_sprites(1, self.num_frames, max(8, side), distractor=self.distractor, seed=item_seed)
        return {
            "video": resize_video(clips.video[0], self.image_size),
            "actions": clips.actions[0],
            "source": f"synthetic:moving_sprites(seed={self.seed})#clip={index}",
            "start": 0,
        }
